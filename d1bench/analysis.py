"""Summaries of traces: per-template latency, rows read and written, plans; and comparisons.

Percentiles are computed from the raw response times, never from the
histograms, with linear interpolation between the two nearest ranks: DuckDB's
``quantile_cont``, which is numpy's default ``percentile(..., method="linear")``
and the "type 7" estimator of Hyndman & Fan.  Spread is the sample standard
deviation (``ddof=1``).  Latency statistics cover successful requests only;
failed ones are counted in ``errors`` (``dropped`` separately), and warm-up is
left out unless asked for.

Rates are statements per second over the measured window: from the first
measured intended start to the last completion, summed over the runs of a
merged trace.
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

__all__ = ["ALL", "PERCENTILES", "compare", "intervals", "mann_whitney", "summarize"]

#: The label of the row that covers every template.
ALL = "ALL"
#: Percentiles reported, as fractions, with their column suffixes.
PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999))

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
        count(error_class) AS errors,
        count(*) FILTER (WHERE error_class = 'dropped') AS dropped,
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
    "template", "count", "errors", "dropped", "rate_per_s",
    "min_ms", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms", "stddev_ms",
    "service_p50_ms", "service_p99_ms", "service_mean_ms", "lag_mean_ms", "lag_p99_ms",
    "lag_max_ms", "rows_returned", "rows_read", "rows_written", "rows_returned_per_exec",
    "rows_read_per_exec", "rows_written_per_exec", "efficiency", "plan_class",
    "index_hit_rate", "index_hit_rate_time",
]


def _requests(trace: Trace | pd.DataFrame) -> pd.DataFrame:
    return trace.requests if isinstance(trace, Trace) else trace


def summarize(trace: Trace | pd.DataFrame, *, include_warmup: bool = False) -> pd.DataFrame:
    """One row per template and an ``ALL`` row, computed with DuckDB over the raw requests.

    Columns: ``count`` statements (failed included), ``errors`` (``dropped``
    among them), ``rate_per_s`` achieved; response time ``min/p50/p90/p99/p999/
    max/mean/stddev`` in ms (percentile definition in the module docstring);
    service time p50/p99/mean and schedule lag mean/p99/max; ``rows_returned``,
    ``rows_read``, ``rows_written`` in total and per execution (per execution
    that reported them); ``efficiency`` = rows returned / rows read (D1's
    ``queryEfficiency``); ``plan_class`` (``None`` on ``ALL`` when templates
    differ); ``index_hit_rate``, the share of executions whose every table
    access goes through an index or key, and ``index_hit_rate_time``, the same
    share weighted by service time.
    """
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
                        "errors": raw["errors"], "dropped": raw["dropped"]})
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
    return out[_COLUMNS].reset_index(drop=True)


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


def _reads(frame: pd.DataFrame, include_warmup: bool) -> dict[str, float]:
    m = frame if include_warmup else frame[~frame["warmup"].astype(bool)]
    per = m.groupby("template")["rows_read"].mean()
    out = {str(t): float(v) for t, v in per.items() if not pd.isna(v)}
    if m["rows_read"].notna().any():
        out[ALL] = float(m["rows_read"].mean())
    return out


def compare(a: Trace, b: Trace, *, alpha: float = 0.05, force: bool = False,
            include_warmup: bool = False,
            checked: Sequence[str] = ("machine", "corpus")) -> pd.DataFrame:
    """Which templates got faster or slower from trace ``a`` (before) to ``b`` (after).

    For each template present in either trace, and ``ALL``: counts, p50/p99/mean
    response time before and after, ``ratio`` (after / before of p50),
    rows read per execution before and after, and the two-sided Mann-Whitney U
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
    ra, rb = _reads(a.requests, include_warmup), _reads(b.requests, include_warmup)
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
        row["rows_read_before"] = ra.get(name, np.nan)
        row["rows_read_after"] = rb.get(name, np.nan)
        if not len(x) or not len(y):
            change = "only after" if len(y) else "only before" if len(x) else "no data"
            row.update(p_value=np.nan, change=change)
        else:
            p, direction = mann_whitney(x, y)
            row["p_value"] = p
            row["change"] = direction if p < alpha else "not significant"
        rows.append(row)
    return pd.DataFrame(rows)


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
