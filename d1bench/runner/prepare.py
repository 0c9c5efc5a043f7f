"""Before the clock starts and after it stops: the SQLite target's statement analyses and estimates.

A target that estimates rows itself (``defers_estimates``) has its workers'
connections switched to the deferred mode, and every template's SQL analysed
on each of them (through the user's analysis cache) before the first send;
after the run the pending estimates are worked out, off the timed path.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from d1bench.targets.base import Target

if TYPE_CHECKING:
    from d1bench.targets.sqlite import SQLiteTarget

__all__ = ["analysis_store", "finish", "prepare"]


def analysis_store(target: Any, corpus: Mapping[str, Any] | None) -> Any | None:
    """The analysis cache for ``target``'s database, keyed by its content digest and schema.

    ``None`` when the corpus has no content digest (then every run analyses).
    """
    digest = (corpus or {}).get("digest")
    if not digest or (corpus or {}).get("digest_of") != "content":
        return None
    import hashlib

    import apsw

    from d1bench import __version__
    from d1bench._paths import cache_dir
    from d1bench.targets.rowcount.store import AnalysisStore

    db = apsw.Connection(str(target.path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        schema = db.execute("SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_schema "
                            "ORDER BY type, name").fetchall()
    finally:
        db.close()
    return AnalysisStore(cache_dir(), {
        "corpus": digest, "schema": hashlib.sha256(repr(schema).encode()).hexdigest(),
        "sqlite": apsw.sqlite_lib_version(), "d1bench": __version__,
        "foreign_keys": target.foreign_keys, "counters": target.counters})


def prepare(target: Target, conns: Sequence[Any], workload: Any, samples: Mapping[str, Any], *,
            estimate: bool, corpus: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defer estimates on ``conns`` and analyse every template on each; returns what the trace says."""
    # Both abilities are declared by the target protocol: ask it, do not probe.
    if not target.defers_estimates:
        exact = target.exact_rows_read
        return {"rows": "reported by the database" if exact else "not measured",
                "estimated": False}
    # Only the SQLite target defers its estimates (it declares so); its own knobs follow.
    sqlite = cast("SQLiteTarget", target)
    estimating = estimate and sqlite.estimate_rows
    start = time.perf_counter()
    store = analysis_store(sqlite, corpus) if estimating else None
    before = sqlite.analyses
    for conn in conns:
        conn.defer_estimates(estimate=estimating)
        for template in workload.templates.values():
            params = samples.get(template.name)
            if params is None:
                params = (None,) * len(getattr(template, "params", ()))
            conn.prepare(template.sql, params, store)
    return {
        "rows": "estimated after the run" if estimating else "not estimated (--no-estimate)",
        "estimated": estimating,
        "analysed": sqlite.analyses - before,
        "from_cache": store.hits if store is not None else 0,
        "prepare_s": round(time.perf_counter() - start, 4),
    }


def finish(conns: Sequence[Any], info: dict[str, Any], *, progress: bool = False) -> None:
    """Work out the pending estimates of every connection (the run is over).

    A progress bar when there are many; Ctrl-C stops the estimating (the
    executions not reached keep null rows read, and ``info`` says so) but
    not the writing of the trace.
    """
    if not info.get("estimated"):
        return
    start = time.perf_counter()
    total = sum(conn.pending_estimates for conn in conns)
    bar = None
    if progress and total > 5_000:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="rows-read estimates", unit="exec", leave=False)
    done = 0
    try:
        for conn in conns:
            done += conn.finish_estimates(bar.update if bar is not None else None)
    except KeyboardInterrupt:
        info["estimates_interrupted"] = True
    finally:
        if bar is not None:
            bar.close()
    info["estimates"] = done
    info["estimate_s"] = round(time.perf_counter() - start, 4)
