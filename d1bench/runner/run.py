"""``replay()``: set a run up, drive the engine, and keep what it recorded as a trace."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import math
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

from d1bench.errors import UsageError
from d1bench.runner.engine import (
    DROPPED,
    Control,
    Row,
    WorkerRows,
    async_main,
    thread_worker,
)
from d1bench.runner.metadata import describe_plans, run_metadata
from d1bench.runner.prepare import finish, prepare
from d1bench.runner.recorder import Progress, full_rows, rows_to_table
from d1bench.runner.schedule import Schedule, arrivals
from d1bench.trace import Trace, check_output_path, write_trace

__all__ = [
    "DEFAULT_ASYNC_WORKERS",
    "DEFAULT_DURATION",
    "DEFAULT_RATE",
    "DEFAULT_WORKERS",
    "DRAIN_S",
    "replay",
]

#: Open loop at 100 requests a second for 10 s when the caller names neither.
DEFAULT_RATE = 100.0
DEFAULT_DURATION = 10.0
#: Open-loop worker threads (SQLite): enough to absorb a few slow queries without lag.
DEFAULT_WORKERS = 8
#: Requests in flight at once on the asyncio path (HTTP targets).
DEFAULT_ASYNC_WORKERS = 32
#: After Ctrl-C, how long in-flight requests get to finish before the trace is written anyway.
DRAIN_S = 10.0
#: Closed loop bound by duration: units drawn before the clock starts (more are drawn as needed).
_CLOSED_CHUNK = 10_000


def _positive(name: str, value: Any, *, integer: bool = False, zero_ok: bool = False) -> None:
    if value is None:
        return
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or not math.isfinite(value) \
            or value < 0 or (value == 0 and not zero_ok):
        kind = "a whole number" if integer else "a number"
        bound = ">= 0" if zero_ok else "> 0"
        raise UsageError(f"{name} must be {kind} {bound}, got {value!r}")


def _resolve_workload(workload: Any, bind_conn: Any, seed: int) -> tuple[Any, Any]:
    """(workload, bound workload) from a name, a path, a Workload or a BoundWorkload."""
    if isinstance(workload, (str, os.PathLike)):
        from d1bench.workload import load_workload

        workload = load_workload(workload)
    if hasattr(workload, "draw"):
        return getattr(workload, "workload", workload), workload
    return workload, workload.bind(bind_conn, seed)


def replay(workload: Any, target: Any, *, rate: float | None = None, arrival: str = "poisson",
           concurrency: int | None = None, duration: float | None = None,
           requests: int | None = None, warmup: float = 0.0, warmup_requests: int = 0,
           seed: int = 0, trace_path: str | os.PathLike[str] | None = None, progress: bool = True,
           bind_conn: Any = None, workers: int | None = None,
           corpus: str | os.PathLike[str] | None = None, force: bool = False,
           overrun: float | None = None, allow_writes: bool | None = None,
           estimate: bool = True, in_place: bool = False) -> Trace:
    """Replay a workload against a target and record every statement it sends.

    Open loop (the default, ``rate`` units a second, ``arrival`` ``"poisson"`` or
    ``"fixed"``): the intended start of every unit and the unit itself are drawn
    before the clock starts, and a slow response never delays the next send.
    When every worker is busy a unit waits, and that wait (its schedule lag) is
    part of its response time, so a stall shows in every request it delays
    instead of once (coordinated omission).  Closed loop (``concurrency=N``): N
    workers send back to back; this measures capacity and hides stalls.

    Args:
        workload: ``"medical"``, a workload file, a ``Workload`` or a bound one.
        target: a :class:`~d1bench.targets.base.Target` or a target URL
            (``sqlite:PATH``).
        rate: units per second (open loop). Default 100 when neither ``rate``
            nor ``concurrency`` is given.
        arrival: ``"poisson"`` (exponential gaps) or ``"fixed"``.
        concurrency: closed loop with this many workers (excludes ``rate``).
        duration: seconds to run after warm-up (default 10 when ``requests``
            is not given either).
        requests: units to run after warm-up (a session is one unit and several
            rows); with ``duration`` too, whichever ends first.
        warmup: seconds at the start whose units are recorded with
            ``warmup=True`` and left out of summaries and histograms.
        warmup_requests: or, the number of units at the start that are warm-up
            (on top of ``requests``; ``duration`` counts from the first unit
            after them).
        seed: seeds the arrival times, the units drawn and workload binding.
        trace_path: write the trace here (atomically; refuses an existing file
            unless ``force``).
        progress: show a live line on stderr.
        bind_conn: connection the workload's samplers draw values through
            (default: a connection of ``target``); a local copy of the corpus
            saves round trips to D1.
        workers: open loop: threads (or requests in flight on the asyncio
            path). Default 8 threads, 32 in flight.
        corpus: the corpus file the target holds, described in the trace's
            metadata (found by itself for a ``sqlite:`` target).
        force: overwrite ``trace_path``.
        overrun: open loop with ``duration``: seconds past the schedule's end
            after which units not yet sent are recorded as ``dropped`` instead
            of sent (default 10% of the schedule, at least 1 s).
        allow_writes: send the workload's writes to a D1 target (default: what
            the target was opened with).  A workload that writes is refused
            before anything is sent otherwise; a SQLite file always takes them.
        estimate: SQLite: estimate D1's rows read and written (after the run,
            never on the timed path).  ``False`` gives raw speed, with
            ``rows_read``/``rows_written`` left null; the trace's
            ``meta["estimate"]`` says which.
        in_place: SQLite: let a workload's writes change the database itself.
            By default a workload that writes runs on a snapshot of the file
            (removed afterwards) and one that only reads opens it read-only, so
            a replay never changes the user's database and every replay of a
            corpus starts from the same data.

    Returns the :class:`~d1bench.trace.Trace`: one row per statement sent
    (session steps each have theirs), with the run's metadata and histograms.

    Ctrl-C stops the run: nothing more is sent, requests in flight get
    ``DRAIN_S`` seconds to finish, and the trace of what completed is returned
    (and written) with ``meta["interrupted"] = True``.
    """
    if rate is not None and concurrency is not None:
        raise UsageError("give either rate (open loop) or concurrency (closed loop), not both")
    if arrival not in ("poisson", "fixed"):
        raise UsageError(f"arrival must be 'poisson' or 'fixed', got {arrival!r}")
    _positive("rate", rate)
    _positive("concurrency", concurrency, integer=True)
    _positive("duration", duration)
    _positive("requests", requests, integer=True)
    _positive("warmup", warmup, zero_ok=True)
    _positive("warmup_requests", warmup_requests, integer=True, zero_ok=True)
    if warmup and warmup_requests:
        raise UsageError("give warm-up in seconds or in requests, not both")
    _positive("workers", workers, integer=True)
    _positive("overrun", overrun, zero_ok=True)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UsageError(f"seed must be a whole number, got {seed!r}")
    open_loop = concurrency is None
    if open_loop and rate is None:
        rate = DEFAULT_RATE
    if duration is None and requests is None:
        duration = DEFAULT_DURATION
    if trace_path is not None:
        trace_path = check_output_path(trace_path, force=force)
    if corpus is not None:
        from d1bench.dbfile import check_database

        check_database(corpus)
    owned = isinstance(target, str)
    if owned:
        from d1bench.targets import open_target

        target = open_target(target)
    try:
        return _replay(workload, target, rate=rate, arrival=arrival, concurrency=concurrency,
                       duration=duration, requests=requests, warmup=warmup,
                       warmup_requests=warmup_requests, seed=seed,
                       trace_path=trace_path, progress=progress, bind_conn=bind_conn,
                       workers=workers, corpus=corpus, force=force, overrun=overrun,
                       allow_writes=allow_writes, estimate=estimate, in_place=in_place)
    finally:
        if owned:
            target.close()


def _schedule(plan: Schedule, open_loop: bool, *, rate: float | None, arrival: str,
              duration: float | None, requests: int | None, warmup: float,
              warmup_requests: int, seed: int) -> float:
    """Draw the run's units (and, open loop, their intended times) before the clock starts.

    Returns the warm-up in seconds (open loop: ``warmup_requests`` turned into
    the intended time of the first measured unit).
    """
    if not open_loop:
        # Closed loop: the count is known only when requests bound the run without timed warm-up.
        known = requests is not None and not warmup
        plan.extend(requests + warmup_requests if requests is not None and known
                    else _CLOSED_CHUNK)
        return warmup
    assert rate is not None
    if warmup_requests:
        # The same seed draws the same first arrivals, so this is the run's k-th arrival time.
        warmup = arrivals(rate, arrival, seed=seed, count=warmup_requests + 1)[-1] / 1e9
    until = None if duration is None else warmup + duration
    count = requests
    if requests is not None and warmup:
        count = requests + len(arrivals(rate, arrival, seed=seed, until_s=warmup))
    plan.intended = arrivals(rate, arrival, seed=seed, until_s=until, count=count)
    plan.extend(len(plan.intended))
    return warmup


def _replay(workload: Any, target: Any, *, rate: float | None, arrival: str,
            concurrency: int | None, duration: float | None, requests: int | None,
            warmup: float, warmup_requests: int, seed: int, trace_path: Path | None,
            progress: bool, bind_conn: Any,
            workers: int | None, corpus: Any, force: bool, overrun: float | None,
            allow_writes: bool | None, estimate: bool, in_place: bool) -> Trace:
    open_loop = concurrency is None
    use_async = bool(getattr(target, "supports_async", False))
    n_workers = concurrency or workers or (DEFAULT_ASYNC_WORKERS if use_async else DEFAULT_WORKERS)
    # Open loop may still queue several requests on such a target: that queue is what it measures.
    if n_workers > 1 and not getattr(target, "supports_concurrency", True) and not open_loop:
        raise UsageError(f"target {target.url} runs one statement at a time: concurrency must be 1")
    conns: list[Any] = []
    snapshot = None
    try:
        target.health()  # auth, database, schema: fail before drawing anything
        conns.append(target.connect())
        if getattr(target, "defers_estimates", False):
            conns[0].defer_estimates(estimate=False)  # binding the samplers needs no rows read
        wl, bound = _resolve_workload(workload, bind_conn or conns[0], seed)
        if getattr(target, "kind", None) in ("d1", "d1-local", "d1-worker"):
            from d1bench.targets.d1 import guard_read_only

            own = getattr(target, "allow_writes", False)
            if allow_writes and not own:
                # The target's connections enforce its own setting on every statement, so
                # allowing writes here alone would only turn each write into an error.
                raise UsageError(f"{target.url}: open the target with allow_writes=True to "
                                 "replay writes (CLI: --allow-writes)")
            guard_read_only(wl, own if allow_writes is None else allow_writes, target=target)
        plan = Schedule(bound.draw, random.Random(seed))
        warmup_s = _schedule(plan, open_loop, rate=rate, arrival=arrival, duration=duration,
                             requests=requests, warmup=warmup, warmup_requests=warmup_requests,
                             seed=seed)
        samples = plan.sample_params()
        plans = describe_plans(conns[0], wl, samples)
        meta = run_metadata(target, wl, corpus=corpus, seed=seed, schedule={
            "mode": "open" if open_loop else "closed", "arrival": arrival if open_loop else None,
            "rate": rate, "concurrency": concurrency, "workers": n_workers,
            "engine": "asyncio" if use_async else "threads", "duration": duration,
            "requests": requests, "warmup": warmup, "warmup_requests": warmup_requests,
            "units_scheduled": len(plan.intended) if open_loop else None,
        }, plans=plans)
        run_target, snapshot = _database_for_run(target, wl, in_place)
        meta["database"] = _database_meta(snapshot, in_place, run_target)
        if run_target is not target:
            # The binding connection stays open on the original (read only from here on).
            conns.extend(run_target.connect() for _ in range(n_workers))
            workers_conns = conns[1:]
        else:
            if not use_async:
                conns.extend(target.connect() for _ in range(n_workers - 1))
            workers_conns = conns
        meta["estimate"] = prepare(run_target, [] if use_async else workers_conns, wl, samples,
                                   estimate=estimate, corpus=meta.get("corpus"))
        ctl = Control(plan, open_loop, warmup_ns=int(warmup_s * 1e9),
                      warmup_units=warmup_requests,
                      chain_bookmarks=getattr(target, "supports_sessions", False)
                      and getattr(target, "session", "none") != "none")
        if not open_loop:
            ctl.measured_limit = requests
            if duration is not None:
                ctl.duration_ns = int(duration * 1e9)
        drop_after = None
        if open_loop and duration is not None and requests is None:
            span = warmup_s + duration
            drop_after = span + (overrun if overrun is not None else max(1.0, 0.1 * span))
        rows, interrupted, elapsed_ns = _run(target, workers_conns, ctl, n_workers, use_async,
                                             progress, drop_after=drop_after)
        finish(workers_conns, meta["estimate"], progress=progress)
    finally:
        for conn in conns:
            conn.close()
        if snapshot is not None:
            snapshot.remove()
    meta.update(interrupted=interrupted, elapsed_s=elapsed_ns / 1e9, statements=len(rows),
                errors=sum(1 for r in rows if r[9] is not None),
                dropped=sum(1 for r in rows if r[9] is not None and r[9][0] == DROPPED),
                units_started=len({r[0] for r in rows}))
    table = rows_to_table(rows, plan, ctl.t0, ctl.warmup_ns, ctl.warmup_units, plans)
    trace = Trace.from_rows(table, meta)
    if trace_path is not None:
        trace = dataclasses.replace(trace, path=write_trace(trace, trace_path, force=force))
    return trace


def _database_for_run(target: Any, workload: Any, in_place: bool) -> tuple[Any, Any]:
    """The SQLite target the workers use, and the snapshot behind it (if any).

    A workload that may write runs on a snapshot of the file; one that only
    reads opens it read-only (so a write-protected file or folder replays
    fine).  ``in_place`` uses the target as it is; non-SQLite targets always are.
    """
    if in_place or getattr(target, "kind", None) != "sqlite" or not hasattr(target, "sibling"):
        return target, None
    if not any(t.is_write for t in workload.templates.values()):
        return target.sibling(readonly=True), None
    from d1bench.runner.snapshot import make_snapshot

    snapshot = make_snapshot(target.path)
    return target.sibling(snapshot.path), snapshot


def _database_meta(snapshot: Any, in_place: bool, run_target: Any) -> dict[str, Any]:
    """What the trace says about the database the workers ran on."""
    if snapshot is not None:
        return {"on": "snapshot", "method": snapshot.method,
                "snapshot_s": round(snapshot.seconds, 4)}
    if getattr(run_target, "kind", None) != "sqlite":
        return {"on": "target"}
    return {"on": "original, in place" if in_place else "original, read-only"}


def _run(target: Any, conns: list[Any], ctl: Control, n_workers: int, use_async: bool,
         progress: bool, *, drop_after: float | None) -> tuple[list[Row], bool, int]:
    """Start the workers, watch them from this thread, and stop them on Ctrl-C.

    Returns every recorded row, whether the run was interrupted, and its
    length in ns.  Only the calling (main) thread receives KeyboardInterrupt,
    which is why it is the one that waits and watches.
    """
    lists = [WorkerRows(-1 if use_async else k) for k in range(1 if use_async else n_workers)]
    finished = threading.Event()
    remaining = [len(lists)]
    lock = threading.Lock()

    def run_worker(k: int) -> None:
        try:
            if use_async:
                asyncio.run(async_main(target, ctl, n_workers, lists[0]))
            else:
                thread_worker(conns[k], ctl, lists[k])
        finally:
            with lock:
                remaining[0] -= 1
                if remaining[0] == 0:
                    finished.set()

    threads = [threading.Thread(target=run_worker, args=(k,), name=f"d1bench-replay-{k}",
                                daemon=True) for k in range(len(lists))]
    # Open loop: start the clock a little ahead so no worker is still starting at the first send.
    ctl.t0 = time.perf_counter_ns() + (20_000_000 if ctl.open_loop else 0)
    if ctl.duration_ns is not None and not ctl.warmup_units:
        # Closed loop: a run bound by time ends `duration` after warm-up; warm-up counted in
        # units starts that clock when the first measured unit is claimed (see the engine).
        ctl.deadline_ns = ctl.t0 + ctl.warmup_ns + ctl.duration_ns
    if drop_after is not None:
        ctl.drop_ns = ctl.t0 + int(drop_after * 1e9)
    label = "replay " + ("open" if ctl.open_loop else "closed")
    bar = Progress(lists, ctl.plan, ctl.t0, ctl.open_loop, label=label) if progress else None
    interrupted = False
    # A full garbage collection walks every object the process holds (pandas, DuckDB...) and
    # pauses all threads for milliseconds: freeze what exists and collect nothing during the
    # run.  The timed path makes no reference cycles, so memory does not grow for lack of it.
    gc_enabled = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        try:
            for t in threads:
                t.start()
            while not finished.wait(0.5):
                if bar is not None:
                    bar.tick()
        except KeyboardInterrupt:
            interrupted = True
            ctl.halt()
            deadline = time.monotonic() + DRAIN_S
            try:
                for t in threads:
                    if t.is_alive():
                        t.join(max(0.0, deadline - time.monotonic()))
            except KeyboardInterrupt:
                pass  # a second Ctrl-C: stop waiting for stragglers, keep what completed
    finally:
        end = time.perf_counter_ns()
        ctl.halt()
        if gc_enabled:
            gc.enable()
        gc.unfreeze()
    if bar is not None:
        bar.close()
    if ctl.failure is not None and not isinstance(ctl.failure, KeyboardInterrupt):
        raise ctl.failure
    if isinstance(ctl.failure, KeyboardInterrupt):
        interrupted = True
    rows = full_rows(lists, ctl.plan, ctl.t0, ctl.open_loop)
    return rows, interrupted, max(0, end - ctl.t0)
