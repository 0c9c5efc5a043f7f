"""``replay()``: set a run up, drive the engine, and keep what it recorded as a trace."""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import gc
import os
import random
import sys
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

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
from d1bench.runner.options import DEFAULT_DURATION, DEFAULT_RATE, ReplayOptions
from d1bench.runner.prepare import calibration_draws, finish, prepare
from d1bench.runner.recorder import Progress, full_rows, rows_to_table
from d1bench.runner.schedule import SWITCH_INTERVAL_S, Schedule, arrivals
from d1bench.runner.topup import describe_topup, plan_topup
from d1bench.targets.base import Connection, Target
from d1bench.trace import Trace, check_output_path, write_trace

if TYPE_CHECKING:
    from d1bench.runner.snapshot import Snapshot
    from d1bench.workload.loader import WorkloadSource
    from d1bench.workload.model import BoundWorkload, Workload

#: What replay takes as a workload: a shipped name, a file, a workload or a bound one.
WorkloadLike: TypeAlias = "WorkloadSource | BoundWorkload"

__all__ = [
    "DEFAULT_ASYNC_WORKERS",
    "DEFAULT_DURATION",
    "DEFAULT_RATE",
    "DEFAULT_WORKERS",
    "DRAIN_S",
    "ReplayOptions",
    "WorkloadLike",
    "replay",
]

#: Open-loop worker threads (SQLite): enough to absorb a few slow queries without lag.
DEFAULT_WORKERS = 8
#: Requests in flight at once on the asyncio path (HTTP targets).
DEFAULT_ASYNC_WORKERS = 32
#: After Ctrl-C, how long in-flight requests get to finish before the trace is written anyway.
DRAIN_S = 10.0
#: Closed loop bound by duration: units drawn before the clock starts (more are drawn as needed).
_CLOSED_CHUNK = 10_000


def _resolve_workload(workload: WorkloadLike, bind_conn: Connection,
                      seed: int) -> tuple[Workload, BoundWorkload]:
    """(workload, bound workload) from a name, a path, a Workload or a BoundWorkload."""
    from d1bench.workload.model import BoundWorkload

    if isinstance(workload, (str, os.PathLike)):
        from d1bench.workload import load_workload

        workload = load_workload(workload)
    if isinstance(workload, BoundWorkload):
        return workload.workload, workload
    return workload, workload.bind(bind_conn, seed)


def replay(workload: WorkloadLike, target: Target | str,
           options: ReplayOptions | None = None, *, rate: float | None = None,
           arrival: Literal["poisson", "fixed"] = "poisson", concurrency: int | None = None,
           duration: float | None = None, requests: int | None = None, warmup: float = 0.0,
           warmup_requests: int = 0, seed: int = 0,
           trace_path: str | os.PathLike[str] | None = None, progress: bool = True,
           bind_conn: Connection | None = None, workers: int | None = None,
           corpus: str | os.PathLike[str] | None = None, force: bool = False,
           overrun: float | None = None, allow_writes: bool | None = None,
           estimate: bool = True, in_place: bool = False, min_executions: int | None = None,
           topup_caps: Mapping[str, int] | None = None) -> Trace:
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
        options: every keyword below but ``bind_conn`` as one
            :class:`~d1bench.runner.options.ReplayOptions`; keywords given as
            well (other than their defaults) take its place.
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
        min_executions: open loop: after the mix, append targeted units of
            every query template (of positive weight) that the measured part
            ran fewer than this many times, sent back to back by one worker
            once the mix is sent, until it has them: a run sized by the runs
            its percentiles need, not by time alone (see
            :mod:`d1bench.runner.topup` for the rule).  The trace's
            ``meta["schedule"]["topup"]`` counts what was added.
        topup_caps: template -> at most this many executions from the top-up
            (a template taking seconds a run), so the run's length stays bounded.

    Returns the :class:`~d1bench.trace.Trace`: one row per statement sent
    (session steps each have theirs), with the run's metadata and histograms.

    Ctrl-C stops the run: nothing more is sent, requests in flight get
    ``DRAIN_S`` seconds to finish, and the trace of what completed is returned
    (and written) with ``meta["interrupted"] = True``.
    """
    # Typed by the keywords above; held as Any only on the way into ReplayOptions.
    given: dict[str, Any] = {
        "rate": rate, "arrival": arrival, "concurrency": concurrency, "duration": duration,
        "requests": requests, "warmup": warmup, "warmup_requests": warmup_requests,
        "seed": seed, "trace_path": trace_path, "progress": progress, "workers": workers,
        "corpus": corpus, "force": force, "overrun": overrun, "allow_writes": allow_writes,
        "estimate": estimate, "in_place": in_place, "min_executions": min_executions,
        "topup_caps": topup_caps}
    if options is None:
        opts = ReplayOptions(**given)
    else:
        changed = {f.name: given[f.name] for f in dataclasses.fields(ReplayOptions)
                   if given[f.name] != f.default}
        opts = dataclasses.replace(options, **changed) if changed else options
    if opts.trace_path is not None:
        opts = dataclasses.replace(
            opts, trace_path=check_output_path(opts.trace_path, force=opts.force))
    if opts.corpus is not None:
        from d1bench.dbfile import check_database

        check_database(opts.corpus)
    if isinstance(target, str):
        from d1bench.targets import open_target

        with open_target(target) as opened:
            return _replay(workload, opened, opts, bind_conn)
    return _replay(workload, target, opts, bind_conn)


def _schedule(plan: Schedule, opts: ReplayOptions, bound: BoundWorkload) -> tuple[float, dict]:
    """Draw the run's units (and, open loop, their intended times) before the clock starts.

    Returns the warm-up in seconds (open loop: ``warmup_requests`` turned into
    the intended time of the first measured unit) and what a top-up added.
    """
    requests, warmup, warmup_requests = opts.requests, opts.warmup, opts.warmup_requests
    if not opts.open_loop:
        # Closed loop: the count is known only when requests bound the run without timed warm-up.
        known = requests is not None and not warmup
        plan.extend(requests + warmup_requests if requests is not None and known
                    else _CLOSED_CHUNK)
        return warmup, {}
    rate, arrival, seed = opts.rate, opts.arrival, opts.seed
    assert rate is not None  # ReplayOptions fills it in for an open loop
    if warmup_requests:
        # The same seed draws the same first arrivals, so this is the run's k-th arrival time.
        warmup = arrivals(rate, arrival, seed=seed, count=warmup_requests + 1)[-1] / 1e9
    until = None if opts.duration is None else warmup + opts.duration
    count = requests
    if requests is not None and warmup:
        count = requests + len(arrivals(rate, arrival, seed=seed, until_s=warmup))
    plan.intended = arrivals(rate, arrival, seed=seed, until_s=until, count=count)
    plan.extend(len(plan.intended))
    if opts.min_executions is None:
        return warmup, {}
    unknown = sorted(set(opts.topup_caps or {}) - set(bound.workload.templates))
    if unknown:
        raise UsageError(f"topup cap for unknown template(s) {', '.join(unknown)}; the workload "
                         f"has {', '.join(bound.workload.templates)}")
    first = bisect.bisect_left(plan.intended, int(warmup * 1e9))
    drawable = [n for n in bound.drawn_names if n in bound.workload.templates]
    # Its own generator: the mix (and so a run without top-up) stays what the seed drew.
    rng = random.Random(f"topup-{seed}")
    extra = plan_topup(plan.names, plan.kinds, first, drawable, opts.min_executions,
                       opts.topup_caps, rng)
    # Sent back to back by one worker after the mix (see the engine): their intended times are
    # filled in as they are sent; until then they are the mix's last.
    last = plan.intended[-1] if plan.intended else 0
    plan.intended.extend(last for _ in extra)
    for name in extra:
        plan.append(bound.draw_unit(name, rng))
    return warmup, describe_topup(extra, opts.min_executions, opts.topup_caps)


def _replay(workload: WorkloadLike, target: Target, opts: ReplayOptions,
            bind_conn: Connection | None) -> Trace:
    open_loop, use_async = opts.open_loop, target.supports_async
    n_workers = (opts.concurrency or opts.workers
                 or (DEFAULT_ASYNC_WORKERS if use_async else DEFAULT_WORKERS))
    # Open loop may still queue several requests on such a target: that queue is what it measures.
    if n_workers > 1 and not target.supports_concurrency and not open_loop:
        raise UsageError(f"target {target.url} runs one statement at a time: concurrency must be 1")
    conns: list[Connection] = []
    snapshot = None
    try:
        target.health()  # auth, database, schema: fail before drawing anything
        conns.append(target.connect())
        if target.defers_estimates:
            conns[0].defer_estimates(estimate=False)  # binding the samplers needs no rows read
        wl, bound = _resolve_workload(workload, bind_conn or conns[0], opts.seed)
        target.check_writes(wl, opts.allow_writes)
        plan = Schedule(bound.draw, random.Random(opts.seed))
        warmup_s, topup = _schedule(plan, opts, bound)
        samples = plan.sample_params()
        plans = describe_plans(conns[0], wl, samples)
        meta = run_metadata(target, wl, corpus=opts.corpus, seed=opts.seed, schedule={
            "mode": "open" if open_loop else "closed",
            "arrival": opts.arrival if open_loop else None,
            "rate": opts.rate, "concurrency": opts.concurrency, "workers": n_workers,
            "engine": "asyncio" if use_async else "threads", "duration": opts.duration,
            "requests": opts.requests, "warmup": opts.warmup,
            "warmup_requests": opts.warmup_requests,
            "units_scheduled": len(plan.intended) if open_loop else None, **topup,
        }, plans=plans)
        run_target, snapshot = _database_for_run(target, wl, opts.in_place)
        meta["database"] = _database_meta(snapshot, opts.in_place, run_target)
        if run_target is not target:
            # The binding connection stays open on the original (read only from here on).
            conns.extend(run_target.connect() for _ in range(n_workers))
            workers_conns = conns[1:]
        elif use_async:
            workers_conns = conns
        else:
            # Not the binding connection: the samplers' statements it cached hold lookaside
            # memory that the workload's statements would then allocate without.
            conns.extend(target.connect() for _ in range(n_workers))
            workers_conns = conns[1:]
        meta["estimate"] = prepare(run_target, [] if use_async else workers_conns, wl, samples,
                                   estimate=opts.estimate, corpus=meta.get("corpus"),
                                   calibration=calibration_draws(bound, opts.seed))
        topup_units = int(topup.get("topup_units") or 0)
        ctl = Control(plan, open_loop, warmup_ns=int(warmup_s * 1e9),
                      warmup_units=opts.warmup_requests,
                      chain_bookmarks=target.supports_sessions and target.session != "none",
                      topup_from=len(plan.intended) - topup_units if topup_units else None)
        if not open_loop:
            ctl.measured_limit = opts.requests
            if opts.duration is not None:
                ctl.duration_ns = int(opts.duration * 1e9)
        drop_after = None
        if open_loop and opts.duration is not None and opts.requests is None:
            # A top-up runs past `duration`: its units are as due as the mix's.
            span = max(warmup_s + opts.duration, plan.intended[-1] / 1e9 if plan.intended else 0)
            drop_after = span + (opts.overrun if opts.overrun is not None
                                 else max(1.0, 0.1 * span))
        rows, interrupted, elapsed_ns = _run(target, workers_conns, ctl, n_workers, use_async,
                                             opts.progress, drop_after=drop_after)
        finish(workers_conns, meta["estimate"], progress=opts.progress)
    finally:
        for conn in conns:
            conn.close()
        if snapshot is not None:
            snapshot.remove()
    # A row is (unit, step, worker, template, intended, sent, done, returned, meta, error).
    errors = [error for *_, error in rows if error is not None]
    meta.update(interrupted=interrupted, elapsed_s=elapsed_ns / 1e9, statements=len(rows),
                errors=len(errors), dropped=sum(1 for error in errors if error[0] == DROPPED),
                units_started=len({unit for unit, *_ in rows}))
    meta["service_time"] = ("the statement's own call" if target.times_statements
                            else "the client's round trip")
    table = rows_to_table(rows, plan, ctl.t0, ctl.warmup_ns, ctl.warmup_units, plans,
                          statement_timing=target.times_statements)
    trace = Trace.from_rows(table, meta)
    if opts.trace_path is not None:
        trace = dataclasses.replace(
            trace, path=write_trace(trace, opts.trace_path, force=opts.force))
    return trace


def _database_for_run(target: Target, workload: Workload,
                      in_place: bool) -> tuple[Target, Snapshot | None]:
    """The SQLite target the workers use, and the snapshot behind it (if any).

    A workload that may write runs on a snapshot of the file; one that only
    reads opens it read-only (so a write-protected file or folder replays
    fine).  ``in_place`` uses the target as it is; targets that are not a local
    file (``local_file``) always are.
    """
    path = target.corpus_path()
    if in_place or not target.local_file or path is None:
        return target, None
    if not any(t.is_write for t in workload.templates.values()):
        return target.sibling(readonly=True), None
    from d1bench.runner.snapshot import make_snapshot

    snapshot = make_snapshot(path)
    return target.sibling(snapshot.path), snapshot


def _database_meta(snapshot: Snapshot | None, in_place: bool,
                   run_target: Target) -> dict[str, Any]:
    """What the trace says about the database the workers ran on."""
    if snapshot is not None:
        return {"on": "snapshot", "method": snapshot.method,
                "snapshot_s": round(snapshot.seconds, 4)}
    if not run_target.local_file:
        return {"on": "target"}
    return {"on": "original, in place" if in_place else "original, read-only"}


def _run(target: Target, conns: list[Connection], ctl: Control, n_workers: int, use_async: bool,
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
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(min(switch_interval, SWITCH_INTERVAL_S))
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
        sys.setswitchinterval(switch_interval)
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
