"""Before the clock starts and after it stops: the SQLite target's statement analyses and estimates.

A target that estimates rows itself (``defers_estimates``) has its workers'
connections switched to the deferred mode, and every template's SQL analysed
on each of them (through the user's analysis cache) before the first send;
after the run the pending estimates are worked out, off the timed path.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from d1bench.targets.base import Target

if TYPE_CHECKING:
    from d1bench.targets.sqlite import SQLiteTarget

__all__ = ["analysis_store", "calibration_draws", "finish", "prepare"]


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


def calibration_draws(bound: Any, seed: int) -> dict[str, list[Any]]:
    """Parameter sets per template to calibrate its counting on, drawn as a run draws them.

    From a generator of their own, so the run's units are the same with or
    without a calibration.
    """
    from d1bench.targets.rowcount.counting import AGREE

    rng = random.Random(f"calibration:{seed}")
    return {name: [bound.draw_params(name, rng) for _ in range(AGREE)]
            for name in bound.workload.templates}


def prepare(target: Target, conns: Sequence[Any], workload: Any, samples: Mapping[str, Any], *,
            estimate: bool, corpus: Mapping[str, Any] | None,
            calibration: Mapping[str, Sequence[Any]] | None = None
            ) -> tuple[dict[str, Any], Any | None]:
    """Defer estimates on ``conns`` and analyse every template on each.

    ``calibration`` (template -> parameter sets, :func:`calibration_draws`)
    also calibrates each template's counting, once for all ``conns``, so that
    the run collects counters only for templates whose estimate uses them.
    Returns what the trace says, and the analysis cache (for :func:`finish`).
    """
    # Both abilities are declared by the target protocol: ask it, do not probe.
    if not target.defers_estimates:
        exact = target.exact_rows_read
        return {"rows": "reported by the database" if exact else "not measured",
                "estimated": False}, None
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
            draws = (calibration or {}).get(template.name, ()) if estimating else ()
            conn.prepare(template.sql, params, store, draws)
    verdicts = {t.name: sqlite.verdicts.get(t.sql) for t in workload.templates.values()}
    return {
        "rows": "estimated after the run" if estimating else "not estimated (--no-estimate)",
        "estimated": estimating,
        "analysed": sqlite.analyses - before,
        "from_cache": store.hits if store is not None else 0,
        # Whose executions collect SQLite's counters on the timed path, and whose do not.
        "counted": sorted(name for name, v in verdicts.items() if v),
        "uncounted": sorted(name for name, v in verdicts.items() if v is False),
        "prepare_s": round(time.perf_counter() - start, 4),
    }, store


def finish(conns: Sequence[Any], info: dict[str, Any], *, progress: bool = False,
           store: Any | None = None) -> None:
    """Work out the pending estimates of every connection (the run is over).

    A progress bar when there are many; Ctrl-C stops the estimating (the
    executions not reached keep null rows read, and ``info`` says so) but
    not the writing of the trace.  With ``store``, the analyses of the
    connection that estimated most are stored again, with the systems their
    estimates solved (so the next run on the corpus need not solve them).
    """
    if not info.get("estimated"):
        return
    start = time.perf_counter()
    counts = [conn.pending_estimates for conn in conns]
    total = sum(counts)
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
    if store is not None and total and not info.get("estimates_interrupted"):
        conns[counts.index(max(counts))].save_analyses(store)
    info["estimates"] = done
    info["estimate_s"] = round(time.perf_counter() - start, 4)
