"""Proof by replay: build the advised set on a copy of the corpus and measure again.

Two copies of the corpus are made: one as it is, one with the migration
applied (its drops, its creates and its ``PRAGMA optimize``).  The workload is
replayed on each with the same seed (so the same units, values and writes), one
statement at a time, in rounds, until every template's mean rows read is known
within ``target_rse`` (:mod:`~d1bench.advisor.sequential`), capped by
``max_requests``.  Then, template by template:

* rows read and written before and after, and the rows read the advisor
  predicted, with the prediction's error (``rows_read_error``);
* latency: a template is called slower only when a Mann-Whitney U test on its
  response times says so (p < ``WORSE_LATENCY``) *and* its median grew by more
  than ``min_effect``: on a shared machine small shifts are significant and
  meaningless.  A template whose plan, rows read and rows written did not change
  is ``"unchanged plan"``: the index set cannot have made it slower.

A template that got worse is flagged: a what-if prediction is only a prediction.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from d1bench.advisor.sequential import Rounds, sequential

__all__ = [
    "DEFAULT_MAX_REQUESTS",
    "FIDELITY_TOLERANCE",
    "MIN_EFFECT",
    "TARGET_RSE",
    "VERIFY_COLUMNS",
    "WORSE_LATENCY",
    "WORSE_READS",
    "apply_sql",
    "copy_corpus",
    "fidelity",
    "index_bytes",
    "measure",
    "real_plans",
    "verify",
]

VERIFY_COLUMNS = ["template", "executions_before", "executions_after", "rows_read_before",
                  "rows_read_after", "rows_read_predicted", "ms_before", "ms_after",
                  "p50_before_ms", "p50_after_ms", "latency_change", "p_value",
                  "rows_written_before", "rows_written_after", "worse", "why",
                  "rows_read_rse_before", "rows_read_rse_after", "rows_read_same_values",
                  "rows_read_error", "latency_effect", "plan_changed"]

#: Rows read per execution may grow by this fraction (plus one row) before a template is "worse".
WORSE_READS = 0.05
#: A latency change counts when the Mann-Whitney U test on response times says so at this level.
WORSE_LATENCY = 0.05
#: ... and the median moved by more than this fraction (``--min-effect``).
MIN_EFFECT = 0.25
#: Replay until each template's mean rows read has at most this relative standard error.
TARGET_RSE = 0.05
#: Units replayed on each copy at most, unless ``--max-requests`` says otherwise.
DEFAULT_MAX_REQUESTS = 2000
#: A prediction within this fraction of the measured rows read counts as right.
FIDELITY_TOLERANCE = 0.15


def copy_corpus(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Copy a SQLite database consistently (the backup API, so WAL content comes too)."""
    import apsw

    source = apsw.Connection(str(src), flags=apsw.SQLITE_OPEN_READONLY)
    target = apsw.Connection(str(dest))
    try:
        with target.backup("main", source, "main") as backup:
            while not backup.done:
                backup.step(4096)
    finally:
        target.close()
        source.close()
    return Path(dest)


def apply_sql(db_path: str | os.PathLike[str], sql: str) -> None:
    """Run a migration's statements on ``db_path``."""
    import apsw

    conn = apsw.Connection(str(db_path))
    try:
        conn.execute(sql)
    finally:
        conn.close()


def index_bytes(db_path: str | os.PathLike[str], names: Iterable[str]) -> float:
    """Bytes the named indexes take on disk (``dbstat``)."""
    import apsw

    names = list(names)
    if not names:
        return 0.0
    conn = apsw.Connection(str(db_path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        marks = ",".join("?" * len(names))
        row = next(iter(conn.execute(f"SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name IN ({marks})",
                                     names)))
        return float(row[0])
    finally:
        conn.close()


def real_plans(db_path: str | os.PathLike[str], templates: Mapping[str, str],
               params: Mapping[str, Sequence[Any]]) -> dict[str, list[str]]:
    """EXPLAIN QUERY PLAN of each template on ``db_path`` with the given parameters."""
    import apsw

    conn = apsw.Connection(str(db_path), flags=apsw.SQLITE_OPEN_READONLY)
    out = {}
    try:
        for name, sql in templates.items():
            try:
                out[name] = [str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql,
                                                                tuple(params.get(name, ())))]
            except Exception as exc:  # noqa: BLE001 - SQLite's refusal is the answer
                out[name] = [f"error: {exc}"]
    finally:
        conn.close()
    return out


def measure(db_path: str | os.PathLike[str], workload: Any, *, requests: int, seed: int,
            progress: bool = False) -> pd.DataFrame:
    """Replay ``workload`` on ``db_path`` one statement at a time; per-template means.

    Returns one row per template: ``executions``, ``rows_read`` and
    ``rows_written`` (means per execution, as the SQLite target estimates D1's
    counts), ``ms`` (mean service time), ``units`` (units replayed).
    """
    from d1bench.runner import replay

    trace = replay(workload, f"sqlite:{db_path}", concurrency=1, requests=requests, seed=seed,
                   progress=progress)
    frame = trace.measured
    frame = frame[frame["error_class"].isna()]
    grouped = frame.groupby("template")
    out = pd.DataFrame({
        "executions": grouped.size(),
        "rows_read": grouped["rows_read"].mean().astype(float),
        "rows_written": grouped["rows_written"].mean().astype(float),
        "ms": grouped["service_ms"].mean().astype(float),
    })
    out.attrs["units"] = int(trace.measured["unit_index"].nunique())
    out.attrs["trace"] = trace
    return out


def verify(db_path: str | os.PathLike[str], workload: Any, migration_sql: str, *,
           requests: int = 300, seed: int = 0, progress: bool = False,
           predicted: pd.DataFrame | None = None, workdir: str | os.PathLike[str] | None = None,
           max_requests: int | None = None, target_rse: float = TARGET_RSE,
           min_effect: float = MIN_EFFECT,
           priced: Mapping[str, Sequence[Sequence[Any]]] | None = None,
           max_seconds: float | None = None) -> pd.DataFrame:
    """Measured before/after per template of applying ``migration_sql`` (see module docstring).

    Args:
        requests: units of the whole workload replayed first on each copy.
        max_requests: most units replayed on each copy in all (default
            ``max(requests, DEFAULT_MAX_REQUESTS)``); more rounds run, for the
            templates whose mean rows read is not yet known within ``target_rse``.
        target_rse: relative standard error of each template's mean rows read to reach.
        max_seconds: after the first round, replay no longer than this (rounds are cut
            to what fits, cheapest templates first); ``None``: no limit but ``max_requests``.
            The runs on the priced values keep to it too, once every template ran one.
        min_effect: a template is called slower only when its median response
            time grew by more than this fraction and the change is significant.
        predicted: the advice's templates frame (``rows_read_after``, predicted).
        priced: the parameter values each template's prediction averaged over.
            Each is run once on a third copy with the set built, so that
            ``rows_read_error`` compares prediction and measurement on the same
            values: the what-if model's error, apart from the sampling error of
            a mean over a few values (which the replay's mean carries).

    The frame's ``attrs`` hold the weighted totals: ``rows_read_per_unit_before`` /
    ``_after`` and ``rows_written_per_unit_before`` / ``_after`` (executions per unit
    as the workload's mix has them, times the mean over every round), ``fidelity`` (share of
    templates whose predicted rows read is within ``FIDELITY_TOLERANCE`` of the
    measured), ``requests_replayed``, ``rounds``, ``seconds``, ``stopped`` (why the
    rounds ended: ``known``, ``cap``, ``time`` or ``rounds``) and ``unmeasured``
    (templates no round ran on both copies: the totals miss their rows).
    """
    from d1bench.errors import UsageError

    if not 0 < target_rse < 1:
        raise UsageError(f"target relative standard error must be in (0, 1), got {target_rse!r}")
    if not min_effect >= 0:
        raise UsageError(f"minimum effect must be a fraction >= 0, got {min_effect!r}")
    cap = max(requests, DEFAULT_MAX_REQUESTS) if max_requests is None else int(max_requests)
    if cap < requests:
        raise UsageError(f"--max-requests {cap} is below --requests {requests}")
    if max_seconds is not None and not max_seconds > 0:
        raise UsageError(f"--max-seconds must be a positive number of seconds, got {max_seconds!r}")
    started = time.perf_counter()
    wl = _as_workload(workload)
    with tempfile.TemporaryDirectory(prefix="d1bench-verify-", dir=workdir) as tmp:
        before_db = copy_corpus(db_path, Path(tmp) / "before.sqlite")
        after_db = copy_corpus(db_path, Path(tmp) / "after.sqlite")
        apply_sql(after_db, migration_sql)
        plans = _plans(db_path, wl, before_db, after_db, seed)
        same_values = _run_values(after_db, wl, priced or {}, max_seconds=max_seconds)
        runs = sequential(before_db, after_db, wl, first=requests, cap=cap, seed=seed,
                          target_rse=target_rse, progress=progress, corpus=Path(db_path),
                          max_seconds=max_seconds)
    frame = _compare(runs, plans, predicted, min_effect, same_values)
    frame.attrs.update(runs.totals())
    frame.attrs["seconds"] = time.perf_counter() - started
    frame.attrs["requests"] = requests
    frame.attrs["requests_replayed"] = runs.spent
    frame.attrs["rounds"] = runs.rounds
    frame.attrs["stopped"] = runs.stopped
    frame.attrs["unmeasured"] = runs.unmeasured()
    frame.attrs["max_seconds"] = max_seconds
    frame.attrs["target_rse"] = target_rse
    frame.attrs["min_effect"] = min_effect
    known = frame["rows_read_error"].dropna()
    frame.attrs["fidelity"] = float((known.abs() <= FIDELITY_TOLERANCE).mean()) if len(known) \
        else float("nan")
    return frame


def _as_workload(workload: Any) -> Any:
    if isinstance(workload, (str, os.PathLike)):
        from d1bench.workload import load_workload

        return load_workload(workload)
    return getattr(workload, "workload", workload)


def _plans(db_path: Any, wl: Any, before_db: Path, after_db: Path,
           seed: int) -> dict[str, tuple[list[str], list[str]]]:
    """Each template's real plan on both copies, with one drawn set of values."""
    from d1bench.advisor.preparation import bind_params

    params, _ = bind_params(wl, Path(db_path), seed, 1)
    first = {n: (params.get(n) or [()])[0] for n in wl.templates}
    sqls = {n: t.sql for n, t in wl.templates.items()}
    b, a = real_plans(before_db, sqls, first), real_plans(after_db, sqls, first)
    return {n: (b[n], a[n]) for n in sqls}


def fidelity(db_path: str | os.PathLike[str], workload: Any, advice: Any, *,
             workdir: str | os.PathLike[str] | None = None, on: str = "sqlite") -> pd.DataFrame:
    """Predicted against measured rows read per template, after building ``advice``.

    The advice is built on a copy of ``db_path`` and each template run once with
    each of the values its prediction averaged over (``advice.priced``), so the
    two figures differ only by the what-if model's error.  ``on`` says what
    measures:

    * ``"sqlite"``: the SQLite target's estimate of D1's count (no Node needed;
      itself an estimate, off by up to a third on a few plans with the advised
      indexes, see ``benchmarks/rows_read_fidelity.py --advised``);
    * ``"local-d1"``: a local D1 (Miniflare) holding the built copy counts the
      rows itself, and the SQLite estimate is reported beside it.

    One row per template: ``template``, ``rows_read_predicted``,
    ``rows_read_measured``, ``error`` (predicted / measured - 1), ``within``
    (``|error| <= FIDELITY_TOLERANCE``); on local D1 also
    ``rows_read_sqlite_estimate`` and ``estimate_error`` (the estimate against
    D1's count).  ``attrs``: ``fidelity`` (the share of templates within),
    ``measured_on``, and on local D1 ``fidelity_against_estimate`` (the share
    within of the estimate instead of D1's count), ``estimate_within`` (the
    share of templates whose estimate is within the tolerance of D1's count) and
    ``d1_failed_values`` (values D1 refused, left out of the means, by template).
    """
    from d1bench.errors import UsageError

    if on not in ("sqlite", "local-d1"):
        raise UsageError(f"fidelity is measured on 'sqlite' or 'local-d1', not {on!r}")
    wl = _as_workload(workload)
    with tempfile.TemporaryDirectory(prefix="d1bench-fidelity-", dir=workdir) as tmp:
        built = copy_corpus(db_path, Path(tmp) / "built.sqlite")
        apply_sql(built, advice.migration_sql)
        estimated = _run_values(built, wl, advice.priced)
        failed: dict[str, int] = {}
        if on == "local-d1":
            from d1bench.advisor.on_d1 import run_values_on_d1

            counted = run_values_on_d1(built, wl, advice.priced, Path(tmp) / "d1", failed)
        else:
            counted = estimated
    rows = []
    for row in advice.templates.itertuples():
        if row.template not in counted:
            continue
        predicted, measured = float(row.rows_read_after), counted[row.template]
        err = _error(predicted, measured)
        entry = {"template": row.template, "rows_read_predicted": predicted,
                 "rows_read_measured": measured, "error": err,
                 "within": bool(abs(err) <= FIDELITY_TOLERANCE)}
        if on == "local-d1":
            estimate = estimated.get(row.template, float("nan"))
            entry.update(rows_read_sqlite_estimate=estimate,
                         estimate_error=_error(estimate, measured))
        rows.append(entry)
    columns = ["template", "rows_read_predicted", "rows_read_measured", "error", "within"]
    if on == "local-d1":
        columns += ["rows_read_sqlite_estimate", "estimate_error"]
    frame = pd.DataFrame(rows, columns=columns)
    attrs: dict[str, Any] = {"measured_on": on}
    if on == "local-d1":
        against = [abs(_error(p, e)) <= FIDELITY_TOLERANCE for p, e in
                   zip(frame["rows_read_predicted"], frame["rows_read_sqlite_estimate"])]
        attrs.update(d1_failed_values=failed, fidelity_against_estimate=_share(pd.Series(against)),
                     estimate_within=_share(frame["estimate_error"].abs() <= FIDELITY_TOLERANCE))
    frame.attrs.update(fidelity=_share(frame["within"]), **attrs)
    return frame


def _share(flags: pd.Series) -> float:
    """The share of true values (NaN when there are none)."""
    return float(flags.astype(bool).mean()) if len(flags) else float("nan")


def _run_values(db: Path, wl: Any, priced: Mapping[str, Sequence[Sequence[Any]]], *,
                max_seconds: float | None = None) -> dict[str, float]:
    """Mean rows read of each template over the given values, run once each on ``db``
    (inside a savepoint rolled back at the end: a write template's values leave it as it was).

    With ``max_seconds``: every template runs its first value, then the rest go template
    by template, cheapest first, while the time lasts; a template stops early once three
    values read the same rows to 1% (its mean is known: a brute-force search reads its
    262 million rows whatever the vector, at half a minute a run at a million papers).
    """
    from d1bench.errors import TargetError
    from d1bench.targets.sqlite import SQLiteTarget

    started = time.monotonic()
    todo = {n: list(t) for n, t in priced.items() if n in wl.templates and t}
    counts: dict[str, list[float]] = {n: [] for n in todo}
    spent: dict[str, float] = dict.fromkeys(todo, 0.0)
    conn = SQLiteTarget(db).connect()

    def run(name: str, values: Sequence[Any]) -> None:
        t0 = time.monotonic()
        try:
            read = conn.execute(wl.templates[name].sql, list(values)).meta.rows_read
        except TargetError:
            read = None  # a constraint a drawn value breaks: that value says nothing
        spent[name] += time.monotonic() - t0
        if read is not None:
            counts[name].append(float(read))

    try:
        with conn.rolled_back():
            if max_seconds is None:
                for name, tuples in todo.items():
                    for values in tuples:
                        run(name, values)
            else:
                for name, tuples in todo.items():
                    run(name, tuples[0])
                for name in sorted(todo, key=lambda n: (spent[n], n)):
                    for done, values in enumerate(todo[name][1:], start=1):
                        if _steady(counts[name]) or (time.monotonic() - started
                                                     + spent[name] / done > max_seconds):
                            break
                        run(name, values)
    finally:
        conn.close()
    return {n: sum(c) / len(c) for n, c in counts.items() if c}


def _steady(counts: Sequence[float]) -> bool:
    """Three values or more, all within 1% of their mean."""
    if len(counts) < 3:
        return False
    mean = sum(counts) / len(counts)
    return max(counts) - min(counts) <= 0.01 * max(abs(mean), 1.0)


def _compare(runs: Rounds, plans: dict, predicted: pd.DataFrame | None,
             min_effect: float, same_values: Mapping[str, float]) -> pd.DataFrame:
    from d1bench.analysis import mann_whitney

    pred = {} if predicted is None else dict(zip(predicted["template"], predicted["rows_read_after"]))
    rows = []
    for name in sorted(set(runs.before["template"]) | set(runs.after["template"])):
        b = runs.before[runs.before["template"] == name]
        a = runs.after[runs.after["template"] == name]
        rb, ra = _mean(b["rows_read"]), _mean(a["rows_read"])
        wb, wa = _mean(b["rows_written"]), _mean(a["rows_written"])
        x, y = b["service_ms"].to_numpy(float), a["service_ms"].to_numpy(float)
        p50b = float(np.median(x)) if len(x) else float("nan")
        p50a = float(np.median(y)) if len(y) else float("nan")
        effect = p50a / p50b - 1 if p50b > 0 and len(y) else float("nan")
        plan_b, plan_a = plans.get(name, ([], []))
        untouched = plan_b == plan_a and _same(rb, ra) and _same(wb, wa, 0.0)
        p, direction = mann_whitney(x, y) if len(x) and len(y) else (float("nan"), "no data")
        if untouched:
            # same plan, same rows read and written: the index set cannot have moved
            # it, whatever the clock says on a shared machine
            change = "unchanged plan"
        elif direction == "no data":
            change = "no data"
        elif p < WORSE_LATENCY and abs(effect) > min_effect:
            change = direction
        elif p < WORSE_LATENCY:
            change = f"under the minimum effect ({effect:+.0%})"
        else:
            change = "not significant"
        why = []
        if ra > rb * (1 + WORSE_READS) + 1:
            why.append(f"reads {rb:,.1f} -> {ra:,.1f} rows")
        if change == "slower":
            why.append(f"slower: p50 {p50b:.3f} -> {p50a:.3f} ms ({effect:+.0%}, "
                       f"Mann-Whitney p = {p:.3g})")
        predicted_after = pred.get(name, float("nan"))
        rows.append({
            "template": name, "executions_before": len(b), "executions_after": len(a),
            "rows_read_before": rb, "rows_read_after": ra, "rows_read_predicted": predicted_after,
            "ms_before": _mean(b["service_ms"]), "ms_after": _mean(a["service_ms"]),
            "p50_before_ms": p50b, "p50_after_ms": p50a, "latency_change": change,
            "p_value": p, "rows_written_before": wb, "rows_written_after": wa,
            "worse": bool(why), "why": "; ".join(why),
            "rows_read_rse_before": _rse(b["rows_read"]), "rows_read_rse_after": _rse(a["rows_read"]),
            "rows_read_same_values": same_values.get(name, float("nan")),
            "rows_read_error": _error(predicted_after, same_values.get(name, float("nan"))),
            "latency_effect": effect, "plan_changed": plan_b != plan_a,
        })
    return pd.DataFrame(rows, columns=VERIFY_COLUMNS)


def _error(predicted: float, measured: float) -> float:
    """Relative error of a prediction (0 when both are zero, NaN when unknown)."""
    if math.isnan(predicted) or math.isnan(measured):
        return float("nan")
    if measured == 0:
        return 0.0 if predicted < 0.5 else float("inf")
    return predicted / measured - 1


def _mean(values: pd.Series) -> float:
    return float(values.mean()) if len(values) else float("nan")


def _same(a: float, b: float, rows: float = 1.0) -> bool:
    """Equal within ``rows`` rows or 1%."""
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= max(rows, 0.01 * max(abs(a), abs(b)))


def _rse(values: pd.Series) -> float:
    """Relative standard error of the mean (0 for a constant, inf when it cannot be told)."""
    n = len(values)
    if n < 2:
        return float("inf")
    mean = float(values.mean())
    sd = float(values.std(ddof=1))
    if sd == 0:
        return 0.0
    return sd / (abs(mean) * math.sqrt(n)) if mean else float("inf")
