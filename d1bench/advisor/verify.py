"""Proof by replay: build the advised set on a copy of the corpus and measure again.

Two copies of the corpus are made: one as it is, one with the migration
applied (its drops, its creates and its ``PRAGMA optimize``).  The same
workload, with the same seed (so the same units and parameter values), is
replayed on each, one statement at a time, and the measured rows read and
latency are compared template by template: rows read by their means, latency
by a Mann-Whitney U test on response times (``d1bench.analysis.compare``).  A
template that got worse is flagged: a what-if prediction is only a prediction.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = [
    "VERIFY_COLUMNS",
    "WORSE_LATENCY",
    "WORSE_READS",
    "apply_sql",
    "copy_corpus",
    "index_bytes",
    "measure",
    "real_plans",
    "verify",
]

VERIFY_COLUMNS = ["template", "executions_before", "executions_after", "rows_read_before",
                  "rows_read_after", "rows_read_predicted", "ms_before", "ms_after",
                  "p50_before_ms", "p50_after_ms", "latency_change", "p_value",
                  "rows_written_before", "rows_written_after", "worse", "why"]

#: Rows read per execution may grow by this fraction (plus one row) before a template is "worse".
WORSE_READS = 0.05
#: A latency change counts when the Mann-Whitney U test on response times says so at this level.
WORSE_LATENCY = 0.05


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


def real_plans(db_path: str | os.PathLike[str], templates: dict[str, str],
               params: dict[str, Sequence[Any]]) -> dict[str, list[str]]:
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
           predicted: pd.DataFrame | None = None, workdir: str | os.PathLike[str] | None = None
           ) -> pd.DataFrame:
    """Measured before/after per template of applying ``migration_sql`` (see module docstring).

    The frame's ``attrs`` hold the weighted totals: ``rows_read_per_unit_before`` /
    ``_after`` and ``rows_written_per_unit_before`` / ``_after`` (sums over
    templates of executions times mean, divided by units replayed), and ``seconds``.
    """
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="d1bench-verify-", dir=workdir) as tmp:
        before_db = copy_corpus(db_path, Path(tmp) / "before.sqlite")
        after_db = copy_corpus(db_path, Path(tmp) / "after.sqlite")
        apply_sql(after_db, migration_sql)
        before = measure(before_db, workload, requests=requests, seed=seed, progress=progress)
        after = measure(after_db, workload, requests=requests, seed=seed, progress=progress)
    from d1bench.analysis import compare

    # the copies hold the same data: only the index set differs, which is the point
    latency = compare(before.attrs["trace"], after.attrs["trace"], alpha=WORSE_LATENCY,
                      force=True).set_index("template")
    rows = []
    pred = {} if predicted is None else dict(zip(predicted["template"], predicted["rows_read_after"]))
    for name in sorted(set(before.index) | set(after.index)):
        b = before.loc[name] if name in before.index else None
        a = after.loc[name] if name in after.index else None
        rb = float(b["rows_read"]) if b is not None else float("nan")
        ra = float(a["rows_read"]) if a is not None else float("nan")
        mb = float(b["ms"]) if b is not None else float("nan")
        ma = float(a["ms"]) if a is not None else float("nan")
        lat = latency.loc[name] if name in latency.index else None
        change = str(lat["change"]) if lat is not None else "no data"
        why = []
        if ra > rb * (1 + WORSE_READS) + 1:
            why.append(f"reads {rb:,.1f} -> {ra:,.1f} rows")
        if change == "slower" and lat is not None:
            why.append(f"slower: p50 {lat['p50_before_ms']:.3f} -> {lat['p50_after_ms']:.3f} ms "
                       f"(Mann-Whitney p = {lat['p_value']:.3g})")
        rows.append({
            "template": name,
            "executions_before": int(b["executions"]) if b is not None else 0,
            "executions_after": int(a["executions"]) if a is not None else 0,
            "rows_read_before": rb, "rows_read_after": ra,
            "rows_read_predicted": pred.get(name, float("nan")),
            "ms_before": mb, "ms_after": ma,
            "p50_before_ms": float(lat["p50_before_ms"]) if lat is not None else float("nan"),
            "p50_after_ms": float(lat["p50_after_ms"]) if lat is not None else float("nan"),
            "latency_change": change,
            "p_value": float(lat["p_value"]) if lat is not None else float("nan"),
            "rows_written_before": float(b["rows_written"]) if b is not None else float("nan"),
            "rows_written_after": float(a["rows_written"]) if a is not None else float("nan"),
            "worse": bool(why), "why": "; ".join(why),
        })
    frame = pd.DataFrame(rows, columns=VERIFY_COLUMNS)
    frame.attrs.update(_totals(before, "before"))
    frame.attrs.update(_totals(after, "after"))
    frame.attrs["seconds"] = time.perf_counter() - started
    frame.attrs["requests"] = requests
    return frame


def _totals(m: pd.DataFrame, label: str) -> dict[str, float]:
    units = max(m.attrs.get("units", 1), 1)
    return {
        f"rows_read_per_unit_{label}": float((m["executions"] * m["rows_read"]).sum()) / units,
        f"rows_written_per_unit_{label}": float((m["executions"] * m["rows_written"]).sum()) / units,
        f"ms_per_unit_{label}": float((m["executions"] * m["ms"]).sum()) / units,
    }
