"""Summaries of traces: per-template latency, rows read and written, plans; and comparisons.

Percentiles are computed from the raw response times, never from the
histograms, with linear interpolation between the two nearest ranks: DuckDB's
``quantile_cont``, which is numpy's default ``percentile(..., method="linear")``
and the "type 7" estimator of Hyndman & Fan.  Spread is the sample standard
deviation (``ddof=1``).  Latency statistics cover successful requests only;
failed ones are counted in ``errors``, units the schedule had left behind in
``dropped`` (never sent, so neither an error nor a retry), and warm-up is left
out unless asked for.

Rates are statements per second over the measured window: from the first
measured intended start to the last completion, summed over the runs of a
merged trace.  Dollars are D1's monthly bill (:mod:`d1bench.cost`) for the
rows read and written per execution, sustained at the achieved rate or at a
rate asked for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from d1bench.errors import UsageError
from d1bench.trace import Trace, metadata_differences

__all__ = ["ALL", "FAIL_ON", "PERCENTILES", "compare", "intervals", "mann_whitney",
           "parse_fail_on", "percentile_support", "regressions", "summarize"]

#: The label of the row that covers every template.
ALL = "ALL"
#: Percentiles reported, as fractions, with their column suffixes.
PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999))

_SUMMARY_SQL = """
WITH m AS (SELECT * FROM requests WHERE {where}),
windows AS (
    SELECT sum(w) AS seconds FROM (
        SELECT (max(done_ns) - min(intended_ns)) / 1e9 AS w FROM m GROUP BY run)
),
g AS (
    SELECT
        coalesce(template, '{all}') AS template,
        grouping(template) AS is_all,
        count(*) AS count,
        count(error_class) FILTER (WHERE error_class <> 'dropped') AS errors,
        count(*) FILTER (WHERE error_class = 'dropped') AS dropped,
        count(DISTINCT run::BIGINT * 4294967296 + unit_index) AS units,
        coalesce(sum(attempts) FILTER (WHERE error_class IS DISTINCT FROM 'dropped'), 0)
            AS attempts,
        count(*) FILTER (WHERE attempts > 1) AS retried,
        min(response_ms) FILTER (WHERE error_class IS NULL) AS min_ms,
        quantile_cont(response_ms, [{qs}]) FILTER (WHERE error_class IS NULL) AS q,
        max(response_ms) FILTER (WHERE error_class IS NULL) AS max_ms,
        avg(response_ms) FILTER (WHERE error_class IS NULL) AS mean_ms,
        stddev_samp(response_ms) FILTER (WHERE error_class IS NULL) AS stddev_ms,
        quantile_cont(service_ms, [0.5, 0.99]) FILTER (WHERE error_class IS NULL) AS sq,
        avg(service_ms) FILTER (WHERE error_class IS NULL) AS service_mean_ms,
        quantile_cont(lag_ms, [0.99]) FILTER (WHERE error_class IS NULL) AS lq,
        avg(lag_ms) FILTER (WHERE error_class IS NULL) AS lag_mean_ms,
        max(lag_ms) FILTER (WHERE error_class IS NULL) AS lag_max_ms,
        sum(rows_returned) AS rows_returned,
        sum(rows_read) AS rows_read,
        sum(rows_written) AS rows_written,
        count(*) FILTER (WHERE error_class IS NULL) AS ok,
        count(rows_read) AS n_read,
        count(rows_written) AS n_written,
        CASE WHEN count(DISTINCT plan_class) = 1 THEN any_value(plan_class) END AS plan_class,
        avg(CASE WHEN all_indexed THEN 1.0 WHEN NOT all_indexed THEN 0.0 END) AS index_hit_rate,
        coalesce(sum(service_ms) FILTER (WHERE all_indexed), 0)
            / nullif(sum(service_ms) FILTER (WHERE all_indexed IS NOT NULL), 0)
            AS index_hit_rate_time
    FROM m
    GROUP BY GROUPING SETS ((template), ())
)
SELECT g.*, windows.seconds FROM g, windows
ORDER BY is_all, template
"""

_COLUMNS = [
    "template", "count", "errors", "dropped", "attempts", "retried", "error_rate", "drop_rate",
    "retry_rate", "rate_per_s",
    "min_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms", "stddev_ms",
    "service_p50_ms", "service_p99_ms", "service_mean_ms", "lag_mean_ms", "lag_p99_ms",
    "lag_max_ms", "rows_returned", "rows_read", "rows_written", "rows_returned_per_exec",
    "rows_read_per_exec", "rows_written_per_exec", "efficiency", "plan_class",
    "index_hit_rate", "index_hit_rate_time", "scan_rate", "usd_per_month",
]


def _requests(trace: Trace | pd.DataFrame) -> pd.DataFrame:
    return trace.requests if isinstance(trace, Trace) else trace


def summarize(trace: Trace | pd.DataFrame, *, include_warmup: bool = False,
              at_rate: float | None = None, plan: str = "paid") -> pd.DataFrame:
    """One row per template and an ``ALL`` row, computed with DuckDB over the raw requests.

    Columns: ``count`` statements (failed and dropped included); ``errors``
    (sent and failed), ``dropped`` (never sent: the schedule had passed);
    ``attempts`` (sends, retries included) and ``retried`` (statements sent
    more than once); ``error_rate`` = errors / sent, ``drop_rate`` = dropped /
    count, ``retry_rate`` = retried / sent; ``rate_per_s`` achieved; response
    time ``min/p50/p90/p95/p99/p999/max/mean/stddev`` in ms (percentile
    definition in the module docstring);
    service time p50/p99/mean and schedule lag mean/p99/max; ``rows_returned``,
    ``rows_read``, ``rows_written`` in total and per execution (per execution
    that reported them); ``efficiency`` = rows returned / rows read (D1's
    ``queryEfficiency``); ``plan_class`` (``None`` on ``ALL`` when templates
    differ); ``index_hit_rate``, the share of executions whose every table
    access goes through an index or key, and ``index_hit_rate_time``, the same
    share weighted by service time; ``scan_rate`` = 1 - ``index_hit_rate``
    (the seed's "index miss" rate); ``usd_per_month``, D1's bill on ``plan``
    for the rows read and written at the achieved rate, or at ``at_rate``
    units a second (replay's ``--rate``) with the trace's mix: the ``ALL`` row
    is the bill, allowances deducted, and each template its share of it.
    """
    if at_rate is not None and not at_rate > 0:
        raise UsageError(f"at_rate must be a positive number of units a second, got {at_rate}")
    frame = _requests(trace)
    where = "true" if include_warmup else "NOT warmup"
    qs = ", ".join(str(q) for _, q in PERCENTILES)
    con = duckdb.connect()
    try:
        con.register("requests", frame)
        raw = con.execute(_SUMMARY_SQL.format(where=where, all=ALL, qs=qs)).df()
    finally:
        con.close()
    if raw.empty:
        return pd.DataFrame(columns=_COLUMNS)
    out = pd.DataFrame({"template": raw["template"], "count": raw["count"],
                        "errors": raw["errors"], "dropped": raw["dropped"],
                        "attempts": raw["attempts"].astype("int64"), "retried": raw["retried"]})
    sent = (raw["count"] - raw["dropped"]).where(lambda n: n > 0)
    out["error_rate"] = raw["errors"] / sent
    out["drop_rate"] = raw["dropped"] / raw["count"]
    out["retry_rate"] = raw["retried"] / sent
    out["rate_per_s"] = raw["count"] / raw["seconds"].where(raw["seconds"] > 0)
    out["min_ms"] = raw["min_ms"]
    for k, (name, _) in enumerate(PERCENTILES):
        out[f"{name}_ms"] = [q[k] if _present(q) else np.nan for q in raw["q"]]
    for col in ("max_ms", "mean_ms", "stddev_ms"):
        out[col] = raw[col]
    out["service_p50_ms"] = [q[0] if _present(q) else np.nan for q in raw["sq"]]
    out["service_p99_ms"] = [q[1] if _present(q) else np.nan for q in raw["sq"]]
    out["service_mean_ms"] = raw["service_mean_ms"]
    out["lag_mean_ms"] = raw["lag_mean_ms"]
    out["lag_p99_ms"] = [q[0] if _present(q) else np.nan for q in raw["lq"]]
    out["lag_max_ms"] = raw["lag_max_ms"]
    for col in ("rows_returned", "rows_read", "rows_written"):
        out[col] = raw[col].astype("Int64")
    out["rows_returned_per_exec"] = raw["rows_returned"] / raw["count"]
    out["rows_read_per_exec"] = raw["rows_read"] / raw["n_read"].where(raw["n_read"] > 0)
    out["rows_written_per_exec"] = raw["rows_written"] / raw["n_written"].where(
        raw["n_written"] > 0)
    out["efficiency"] = raw["rows_returned"] / raw["rows_read"].where(raw["rows_read"] > 0)
    out["plan_class"] = raw["plan_class"].where(raw["is_all"] == 0, None)
    out["index_hit_rate"] = raw["index_hit_rate"]
    out["index_hit_rate_time"] = raw["index_hit_rate_time"]
    out["scan_rate"] = 1.0 - raw["index_hit_rate"]
    units_per_s = float(raw["units"].iloc[-1]) / float(raw["seconds"].iloc[-1]) \
        if raw["seconds"].iloc[-1] > 0 else math.nan
    out["usd_per_month"] = _bill(out, 1.0 if at_rate is None else at_rate / units_per_s, plan)
    out.attrs.update(plan=plan, at_rate=at_rate, units_per_s=units_per_s)
    return out[_COLUMNS].reset_index(drop=True)


def percentile_support(summary: pd.DataFrame,
                       percentiles: Sequence[str] = ("p50", "p95", "p99")) -> pd.DataFrame:
    """A :func:`summarize` table's percentiles as text, each with the runs behind it.

    One row per template: ``n`` (successful runs) and, for each percentile,
    ``"12.30 (n=600)"`` when it has the runs :func:`d1bench.claims.runs_needed`
    asks for, ``"12.30? (n=40 < 500)"`` when it has fewer (then it is close to
    the slowest runs seen, not a percentile), empty when nothing ran.
    """
    from d1bench.claims import runs_needed

    quantiles = dict(PERCENTILES)
    n = (summary["count"] - summary["errors"] - summary["dropped"]).astype(int)
    out = pd.DataFrame({"template": summary["template"], "n": n})
    for name in percentiles:
        need = runs_needed(quantiles[name])
        out[name] = [
            "" if not _present(v) else f"{v:,.2f} (n={k})" if k >= need
            else f"{v:,.2f}? (n={k} < {need})"
            for v, k in zip(summary[f"{name}_ms"], n)]
    return out


def _bill(out: pd.DataFrame, scale: float, plan: str) -> pd.Series:
    """Monthly dollars: the ALL row's bill, shared among templates by their list-price cost.

    The allowances are the workload's, not a template's, so each template gets
    the share of the bill its own rows would cost at list price.
    """
    from d1bench.cost import PLANS, monthly_cost

    price = PLANS[plan]
    rates = out["rate_per_s"] * scale
    read = out["rows_read_per_exec"].astype(float).fillna(0.0)
    written = out["rows_written_per_exec"].astype(float).fillna(0.0)
    is_all = (out["template"] == ALL).to_numpy()
    if not is_all.any() or not rates[is_all].iloc[0] >= 0:
        return pd.Series(np.nan, index=out.index)
    k = np.flatnonzero(is_all)[0]
    total = float(monthly_cost(read.iloc[k], written.iloc[k], rates.iloc[k],
                               plan=plan).loc["total", "cost_usd"])
    gross = rates * (read * price.usd_per_million_read + written * price.usd_per_million_written)
    spread = gross[~is_all].sum()
    usd = total * gross / spread if spread > 0 else pd.Series(0.0, index=out.index)
    usd[is_all] = total
    return usd


def _present(value: Any) -> bool:
    return value is not None and value is not pd.NA and not (
        isinstance(value, float) and math.isnan(value))


def intervals(trace: Trace | pd.DataFrame, *, seconds: float = 1.0,
              include_warmup: bool = False) -> pd.DataFrame:
    """Per-interval throughput and latency (pgbench ``-P``): when did it slow down?

    Requests are placed in the interval of their intended start.  Columns:
    ``run``, ``t_s`` (interval start), ``count``, ``errors``, ``rate_per_s``,
    ``p50_ms``, ``p99_ms``, ``max_ms``.
    """
    if seconds <= 0:
        raise UsageError(f"interval must be > 0 s, got {seconds}")
    frame = _requests(trace)
    where = "true" if include_warmup else "NOT warmup"
    con = duckdb.connect()
    try:
        con.register("requests", frame)
        out = con.execute(f"""
            SELECT run, floor(intended_ns / 1e9 / {seconds}) * {seconds} AS t_s,
                   count(*) AS count, count(error_class) AS errors,
                   count(*) / {seconds} AS rate_per_s,
                   quantile_cont(response_ms, 0.5) FILTER (WHERE error_class IS NULL) AS p50_ms,
                   quantile_cont(response_ms, 0.99) FILTER (WHERE error_class IS NULL) AS p99_ms,
                   max(response_ms) FILTER (WHERE error_class IS NULL) AS max_ms
            FROM requests WHERE {where} GROUP BY ALL ORDER BY run, t_s""").df()
    finally:
        con.close()
    return out


def _latencies(frame: pd.DataFrame, include_warmup: bool) -> dict[str, np.ndarray]:
    keep = frame["error_class"].isna()
    if not include_warmup:
        keep &= ~frame["warmup"].astype(bool)
    ok = frame[keep]
    out = {str(t): g["response_ms"].to_numpy(float) for t, g in ok.groupby("template")}
    out[ALL] = ok["response_ms"].to_numpy(float)
    return out


def _rows(frame: pd.DataFrame, include_warmup: bool, column: str) -> dict[str, np.ndarray]:
    """Per template (and ALL), the rows read or written of each execution that reported them."""
    m = frame if include_warmup else frame[~frame["warmup"].astype(bool)]
    m = m[m[column].notna()]
    out = {str(t): g[column].to_numpy(float) for t, g in m.groupby("template")}
    if len(m):
        out[ALL] = m[column].to_numpy(float)
    return out


#: What ``compare --fail-on`` can fail on, and the ``change`` column that says so.
FAIL_ON = {"slower": ("change", "slower"), "more-rows": ("rows_read_change", "more"),
           "more-writes": ("rows_written_change", "more")}
#: Rows per execution must grow by this share (and half a row) before they count as "more":
#: a significant but tiny drift in a sampled count is not a regression, while one more
#: row written per UPDATE (a new index entry) is.
ROWS_TOLERANCE = 0.05


def _rows_change(x: np.ndarray, y: np.ndarray, alpha: float) -> str:
    """``more``/``fewer``/``same`` rows per execution from ``x`` (before) to ``y`` (after).

    >>> _rows_change(np.array([10.0] * 30), np.array([50.0] * 30), 0.05)
    'more'
    >>> _rows_change(np.array([10.0] * 30), np.array([10.0] * 30), 0.05)
    'same'
    """
    if not len(x) or not len(y):
        return "no data"
    before, after = float(x.mean()), float(y.mean())
    if abs(after - before) <= ROWS_TOLERANCE * before + 0.5:
        return "same"
    if np.ptp(np.concatenate([x, y])) == 0:
        return "same"
    p, _ = mann_whitney(x, y)
    if p >= alpha:
        return "same"
    return "more" if after > before else "fewer"


def compare(a: Trace, b: Trace, *, alpha: float = 0.05, force: bool = False,
            include_warmup: bool = False,
            checked: Sequence[str] = ("machine", "corpus")) -> pd.DataFrame:
    """Which templates got faster or slower from trace ``a`` (before) to ``b`` (after).

    For each template present in either trace, and ``ALL``: counts, p50/p99/mean
    response time before and after, ``ratio`` (after / before of p50),
    rows read and written per execution before and after with
    ``rows_read_change`` / ``rows_written_change`` (``more``, ``fewer`` or
    ``same``: a change of more than :data:`ROWS_TOLERANCE` and half a row that
    the same test finds significant), D1's bill at each trace's achieved rate
    (``usd_per_month_before/after``, see :func:`summarize`), and the two-sided Mann-Whitney U
    test's p-value on successful measured response times.  ``change`` is
    ``"faster"`` or ``"slower"`` when ``p_value < alpha`` (the direction from
    the test's effect, whether ``b`` tends to be below ``a``), else
    ``"not significant"``; ``"only before"``/``"only after"`` when a template
    ran in one trace alone (``"no data"`` when in neither, after warm-up).

    Refuses (:class:`UsageError`) traces whose ``checked`` metadata differ
    (machine, corpus), naming each difference, unless ``force=True``.
    """
    if not 0 < alpha < 1:
        raise UsageError(f"alpha must be between 0 and 1, got {alpha}")
    diffs = metadata_differences(a.meta, b.meta, tuple(checked))
    if diffs and not force:
        raise UsageError("traces were taken on a different " + "; ".join(diffs)
                         + "; pass force=True (--force) to compare anyway")
    la, lb = _latencies(a.requests, include_warmup), _latencies(b.requests, include_warmup)
    ra, rb = (_rows(t.requests, include_warmup, "rows_read") for t in (a, b))
    wa, wb = (_rows(t.requests, include_warmup, "rows_written") for t in (a, b))
    usd_a, usd_b = (summarize(t, include_warmup=include_warmup).set_index("template")
                    ["usd_per_month"] for t in (a, b))
    names = sorted((set(la) | set(lb)) - {ALL}) + [ALL]
    rows = []
    for name in names:
        x, y = la.get(name, np.empty(0)), lb.get(name, np.empty(0))
        row: dict[str, Any] = {
            "template": name, "count_before": len(x), "count_after": len(y),
            "p50_before_ms": _pct(x, 50), "p50_after_ms": _pct(y, 50),
            "p99_before_ms": _pct(x, 99), "p99_after_ms": _pct(y, 99),
            "mean_before_ms": float(x.mean()) if len(x) else np.nan,
            "mean_after_ms": float(y.mean()) if len(y) else np.nan,
        }
        row["ratio"] = (row["p50_after_ms"] / row["p50_before_ms"]
                        if len(x) and len(y) and row["p50_before_ms"] > 0 else np.nan)
        for kind, before, after in (("read", ra, rb), ("written", wa, wb)):
            xs, ys = before.get(name, np.empty(0)), after.get(name, np.empty(0))
            row[f"rows_{kind}_before"] = float(xs.mean()) if len(xs) else np.nan
            row[f"rows_{kind}_after"] = float(ys.mean()) if len(ys) else np.nan
            row[f"rows_{kind}_change"] = _rows_change(xs, ys, alpha)
        row["usd_per_month_before"] = float(usd_a.get(name, np.nan))
        row["usd_per_month_after"] = float(usd_b.get(name, np.nan))
        if not len(x) or not len(y):
            change = "only after" if len(y) else "only before" if len(x) else "no data"
            row.update(p_value=np.nan, change=change)
        else:
            p, direction = mann_whitney(x, y)
            row["p_value"] = p
            row["change"] = direction if p < alpha else "not significant"
        rows.append(row)
    return pd.DataFrame(rows)


def parse_fail_on(text: str) -> tuple[str, ...]:
    """``"slower,more-rows"`` -> ``("slower", "more-rows")``; an unknown name is a UsageError.

    >>> parse_fail_on("slower, more-writes")
    ('slower', 'more-writes')
    """
    names = tuple(f.strip() for f in text.split(",") if f.strip())
    unknown = [f for f in names if f not in FAIL_ON]
    if unknown:
        raise UsageError(f"--fail-on {','.join(unknown)}: choose from {', '.join(FAIL_ON)}")
    return names


def regressions(comparison: pd.DataFrame, fail_on: Sequence[str]) -> pd.DataFrame:
    """The rows of a :func:`compare` table that ``fail_on`` counts as regressions.

    ``fail_on`` holds names of :data:`FAIL_ON`: ``slower`` (a significant
    rise in response time), ``more-rows`` (more rows read per execution),
    ``more-writes`` (more rows written).  Templates only: the ``ALL`` row
    mixes templates, so a change of mix alone could move it.  The frame has
    the comparison's columns and ``regression`` naming what was found.
    """
    parse_fail_on(",".join(fail_on))
    rows = comparison[comparison["template"] != ALL]
    found = []
    for name in fail_on:
        column, word = FAIL_ON[name]
        hit = rows[rows[column] == word].copy()
        hit["regression"] = name
        found.append(hit)
    out = pd.concat(found, ignore_index=True) if found else rows.iloc[:0].assign(regression="")
    return out


def mann_whitney(before: np.ndarray, after: np.ndarray) -> tuple[float, str]:
    """Two-sided Mann-Whitney U test of two samples of response times: (p-value,
    ``"faster"`` or ``"slower"``, the way ``after`` tends to lie from ``before``).

    >>> p, way = mann_whitney(np.array([5.0, 6, 7, 8, 9]), np.array([1.0, 2, 3, 2, 1]))
    >>> round(p, 3), way
    (0.012, 'faster')
    """
    from scipy.stats import mannwhitneyu

    test = mannwhitneyu(before, after, alternative="two-sided")
    # U counts pairs where before > after: above half of all pairs means after is faster.
    after_lower = float(test.statistic) > len(before) * len(after) / 2
    return float(test.pvalue), "faster" if after_lower else "slower"


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else np.nan
