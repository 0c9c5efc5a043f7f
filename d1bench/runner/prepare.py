"""Before the clock starts and after it stops: the statement analyses and estimates of a target
that works rows read out itself (the SQLite target).

A target that estimates rows itself (``defers_estimates``) has its workers'
connections switched to the deferred mode, and every template's SQL analysed
on each of them (through the user's analysis cache) before the first send;
after the run the pending estimates are worked out, off the timed path.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from d1bench.targets.base import Connection, Params, Target

if TYPE_CHECKING:
    from d1bench.workload.model import BoundWorkload, Workload

__all__ = ["calibration_draws", "finish", "prepare"]


def calibration_draws(bound: BoundWorkload, seed: int) -> dict[str, list[Params]]:
    """Parameter sets per template to calibrate its counting on, drawn as a run draws them.

    From a generator of their own, so the run's units are the same with or
    without a calibration.
    """
    from d1bench.targets.rowcount.counting import AGREE

    rng = random.Random(f"calibration:{seed}")
    return {name: [bound.draw_params(name, rng) for _ in range(AGREE)]
            for name in bound.workload.templates}


def prepare(target: Target, conns: Sequence[Connection], workload: Workload,
            samples: Mapping[str, Params], *, estimate: bool,
            corpus: Mapping[str, Any] | None,
            calibration: Mapping[str, Sequence[Params]] | None = None) -> dict[str, Any]:
    """Defer estimates on ``conns`` and analyse every template on each; returns what the trace says.

    ``calibration`` (template -> parameter sets, :func:`calibration_draws`)
    also calibrates each template's counting, so that the run collects
    counters only for templates whose estimate uses them.
    """
    # Both abilities are declared by the target protocol: ask it, do not probe.
    if not target.defers_estimates:
        exact = target.exact_rows_read
        return {"rows": "reported by the database" if exact else "not measured",
                "estimated": False}
    # A template met only inside sessions has no sample: NULLs give the same plan.
    statements = [(t.sql, samples.get(t.name) or (None,) * len(t.params))
                  for t in workload.templates.values()]
    by_sql = {t.sql: t.name for t in workload.templates.values()}
    draws = {t.sql: (calibration or {}).get(t.name, ()) for t in workload.templates.values()}
    info = target.prepare_estimates(conns, statements, estimate=estimate, corpus=corpus,
                                    calibration=draws)
    for key in ("counted", "uncounted"):
        if key in info:
            info[key] = sorted(by_sql.get(sql, sql) for sql in info[key])
    return info


def finish(conns: Sequence[Connection], info: dict[str, Any], *, progress: bool = False) -> None:
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
