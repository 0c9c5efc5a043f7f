"""The timed path: worker threads (SQLite) or an asyncio loop (HTTP targets) that send units.

Every worker appends one tuple per executed statement to lists of its own (no
lock, no dict, no DataFrame on the timed path);
:func:`d1bench.runner.recorder.full_rows` turns them into full rows after the
run.  A single-query unit, by far the most common, is recorded as a short row
and everything else is derived later from the plan::

    short: (unit_index, sent_ns, done_ns, rows_returned, meta)
           (unit_index, sent_ns, done_ns, -1, (error_class, message, attempts))
    full:  (unit_index, step, worker, template, intended_ns, sent_ns, done_ns,
            rows_returned, meta, error)

Times are absolute ``perf_counter_ns``; ``meta`` is the target's
:class:`~d1bench.targets.base.Meta`; ``error`` is ``None`` or
``(error_class, message, attempts)``.  Session steps, dropped units and the
asyncio path write full rows.

Open loop: workers claim the next unit from a shared counter, sleep until its
intended time and send it.  A unit whose time has come while every worker is
busy waits for the first free one, and that wait is its schedule lag, part of
its response time; a slow response never moves anyone's intended time.
Closed loop: workers claim the next unit as soon as they are free; its
intended time is the moment it is sent.
A top-up (``Control.topup_from``): after the open-loop mix, one worker sends
the top-up's units back to back, each intended when it is sent.  At the mix's
rate they would take what the mix takes per unit, hours when the open loop
runs a unit every twenty seconds (a million papers without indexes).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from d1bench.errors import TargetError
from d1bench.runner.schedule import Schedule, precise_timers, sleep_until
from d1bench.targets.base import Target

__all__ = ["DROPPED", "Control", "Outcome", "Row", "WorkerRows", "async_main", "session_steps",
           "thread_worker"]

Row = tuple[Any, ...]

_NEVER = 1 << 62

#: ``error_class`` of a unit never sent because the schedule's end (plus grace) had passed.
DROPPED = "dropped"
_DROP_MESSAGE = "not sent: the schedule's end had passed"


@dataclass(slots=True)
class WorkerRows:
    """What one worker recorded: short rows (single queries) and full rows (the rest)."""

    worker: int
    short: list[Row] = field(default_factory=list)
    full: list[Row] = field(default_factory=list)


@dataclass(slots=True)
class Control:
    """State the workers share, set up before the clock starts.

    Attributes:
        plan: the units (and, open loop, their intended times).
        open_loop: follow ``plan.intended``; otherwise back to back.
        t0: ``perf_counter_ns`` at the run's start.
        warmup_ns: units starting before ``t0 + warmup_ns`` are warm-up.
        warmup_units: and so are the first ``warmup_units`` units.
        duration_ns: closed loop: how long the measured part runs.
        measured_limit: closed loop: stop after this many measured units.
        deadline_ns: closed loop: claim nothing after this time; :meth:`halt` sets it to 0
            (one attribute read per request, where an Event would cost a method call).
        drop_ns: open loop: a unit still unsent at this time is recorded as dropped.
        stop: set by Ctrl-C, a worker's crash, or the end of a closed-loop run.
        failure: the first unexpected exception a worker raised.
        chain_bookmarks: the target carries D1 sessions: each step of a simulated
            user's session sends the bookmark the previous step returned.
        topup_from: open loop: units from this index on are a top-up, sent back to
            back by one worker once the mix has been sent (their intended times are
            filled in as they go); ``None``: no top-up.
    """

    plan: Schedule
    open_loop: bool
    t0: int = 0
    warmup_ns: int = 0
    warmup_units: int = 0
    duration_ns: int | None = None
    measured_limit: int | None = None
    drop_ns: int | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    failure: BaseException | None = None
    deadline_ns: int = _NEVER
    chain_bookmarks: bool = False
    topup_from: int | None = None
    claim: Callable[[], int] = field(default_factory=lambda: itertools.count().__next__)
    measured: Callable[[], int] = field(default_factory=lambda: itertools.count().__next__)

    def halt(self, failure: BaseException | None = None) -> None:
        """Stop every worker: nothing more is claimed; requests in flight complete."""
        if failure is not None and self.failure is None:
            self.failure = failure
        self.deadline_ns = 0
        self.stop.set()


def _error(exc: BaseException) -> tuple[str, str, int]:
    if not isinstance(exc, TargetError):
        # Keep the type so that a driver bug is not mistaken for a database error.
        return "other", f"{type(exc).__name__}: {exc}", 1
    return exc.error_class, exc.message, exc.attempts


def thread_worker(conn: Any, ctl: Control, out: WorkerRows) -> None:
    """Run units on ``conn`` until the plan is exhausted or ``ctl.stop`` is set."""
    try:
        if ctl.open_loop:
            precise_timers()
        (_open_loop if ctl.open_loop else _closed_loop)(conn, ctl, out)
    except BaseException as exc:  # noqa: BLE001 - handed to the main thread
        ctl.halt(exc)


# The two loops below bind everything to locals and record as little as they can:
# their own cost per request is what benchmarks/replay_overhead.py measures.

def _open_loop(conn: Any, ctl: Control, out: WorkerRows) -> None:
    execute = conn.execute
    append = out.short.append
    perf = time.perf_counter_ns
    calls = ctl.plan.calls
    intended = ctl.plan.intended
    n = len(intended) if ctl.topup_from is None else ctl.topup_from
    claim = ctl.claim
    stop = ctl.stop
    stopped = stop.is_set
    t0 = ctl.t0
    drop_ns = ctl.drop_ns if ctl.drop_ns is not None else _NEVER
    while not stopped():
        i = claim()
        if i >= n:
            if out.worker == 0 and n < len(intended):
                _topup(conn, ctl, out, n)
            return
        due = t0 + intended[i]
        if not sleep_until(due, stop):
            return
        if drop_ns <= perf():
            _drop(i, due, ctl, out)
            continue
        call = calls[i]
        if call is None:
            _run_session(i, due, execute, ctl, out)
            continue
        sql, params = call[1], call[2]
        sent = perf()
        try:
            result = execute(sql, params)
        except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
            append((i, sent, perf(), -1, _error(exc)))
        else:
            append((i, sent, perf(), len(result.rows), result.meta))


def _topup(conn: Any, ctl: Control, out: WorkerRows, first: int) -> None:
    """The top-up's units, back to back on this worker; each is intended when it is sent."""
    execute, append, perf = conn.execute, out.short.append, time.perf_counter_ns
    plan, t0 = ctl.plan, ctl.t0
    # Not before the mix's last unit is due: the other workers may still be waiting to send it.
    if first and not sleep_until(t0 + plan.intended[first - 1], ctl.stop):
        return
    for i in range(first, len(plan.intended)):
        if ctl.stop.is_set():
            return
        sent = perf()
        plan.intended[i] = sent - t0
        call = plan.calls[i]
        if call is None:
            _run_session(i, sent, execute, ctl, out)
            continue
        try:
            result = execute(call[1], call[2])
        except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
            append((i, sent, perf(), -1, _error(exc)))
        else:
            append((i, sent, perf(), len(result.rows), result.meta))


def _closed_loop(conn: Any, ctl: Control, out: WorkerRows) -> None:
    execute = conn.execute
    append = out.short.append
    perf = time.perf_counter_ns
    calls = ctl.plan.calls
    claim = ctl.claim
    limit = ctl.measured_limit
    # Without timed warm-up the limit applies to the claim counter itself; with it, to units
    # claimed once warm-up is over (counted by ctl.measured).
    warm_end = ctl.t0 + ctl.warmup_ns if ctl.warmup_ns and limit is not None else None
    index_limit = limit + ctl.warmup_units if limit is not None and warm_end is None else _NEVER
    n = min(len(calls), index_limit)  # one comparison per request covers both bounds
    measured = ctl.measured
    measured_limit = limit if limit is not None else _NEVER  # set whenever warm_end is
    # Warm-up in units and a duration: the clock starts with the first measured unit.
    duration_ns = ctl.duration_ns or 0
    first_measured = ctl.warmup_units if ctl.warmup_units and duration_ns else _NEVER
    while True:
        sent = perf()
        if sent >= ctl.deadline_ns:
            return
        i = claim()
        if i >= n:
            if i >= index_limit:
                return
            ctl.plan.ensure(i)  # drawing more units is the client's pause, not a request's lag
            n = min(len(calls), index_limit)
            sent = perf()
        if i == first_measured:  # min(): never undo a halt() that came in meanwhile
            ctl.deadline_ns = min(ctl.deadline_ns, sent + duration_ns)
        # Counted only now that its start time, which decides warm-up or not, is final.
        if warm_end is not None and sent >= warm_end and measured() >= measured_limit:
            return
        call = calls[i]
        if call is None:
            _run_session(i, sent, execute, ctl, out)
            continue
        sql, params = call[1], call[2]
        try:
            result = execute(sql, params)
        except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
            append((i, sent, perf(), -1, _error(exc)))
        else:
            append((i, sent, perf(), len(result.rows), result.meta))


def _drop(i: int, due: int, ctl: Control, out: WorkerRows | list[Row]) -> None:
    now = time.perf_counter_ns()
    call = ctl.plan.calls[i]
    rows = out.full if isinstance(out, WorkerRows) else out
    worker = out.worker if isinstance(out, WorkerRows) else -1
    rows.append((i, 0, worker, call[0] if call else ctl.plan.names[i], due, now, now, 0, None,
                 (DROPPED, _DROP_MESSAGE, 0)))


#: What an engine sends a session after each step: (sent_ns, done_ns, result, exception).
Outcome = tuple[int, int, Any, BaseException | None]


#: What a session asks its engine to send: (sql, params, keyword options for ``execute``).
Request = tuple[str, Any, dict[str, Any] | None]


def session_steps(i: int, due: int, ctl: Control, worker: int,
                  append: Callable[[Row], None]) -> Generator[Request, Outcome, None]:
    """One simulated user's statements back to back; each step is intended when the last ended.

    The one home of a session's logic, for both engines: it yields each
    step's ``(sql, params, options)``, and the engine sends back what it observed,
    ``(sent_ns, done_ns, result, exception)``, timed by the engine itself (so
    nothing of this generator runs inside a step's timing, and the SQLite
    hot path has no await or callback).  A failed step ends the session
    (later steps would use its rows): the session's generator is closed, as
    the workload protocol says.  A stop request ends it between steps: the
    step in flight completes.
    """
    steps = ctl.plan.sessions[i].steps()
    try:
        call = next(steps)
    except StopIteration:
        return
    step, intended = 0, due
    # With D1 sessions, each step carries the bookmark the previous one returned;
    # otherwise no options at all, so the SQLite hot path stays a plain call.
    chain: dict[str, Any] | None = {"bookmark": None} if ctl.chain_bookmarks else None
    while True:
        template = call.template
        sent, done, result, exc = yield template.sql, call.params, chain
        if exc is not None:
            append((i, step, worker, template.name, intended, sent, done, 0, None, _error(exc)))
            steps.close()
            return
        append((i, step, worker, template.name, intended, sent, done, len(result.rows),
                result.meta, None))
        if chain is not None:
            chain = {"bookmark": result.meta.extra.get("bookmark") or chain["bookmark"]}
        if ctl.stop.is_set():
            steps.close()
            return
        try:
            call = steps.send(result)
        except StopIteration:
            return
        step, intended = step + 1, done


def _run_session(i: int, due: int, execute: Callable[..., Any], ctl: Control,
                 out: WorkerRows) -> None:
    """Drive :func:`session_steps` on a worker thread."""
    perf = time.perf_counter_ns
    driver = session_steps(i, due, ctl, out.worker, out.full.append)
    try:
        sql, params, options = next(driver)
        while True:
            sent = perf()
            try:
                result = execute(sql, params) if options is None else execute(sql, params, **options)
            except Exception as exc:  # noqa: BLE001 - the session records it and ends
                sql, params, options = driver.send((sent, perf(), None, exc))
            else:
                sql, params, options = driver.send((sent, perf(), result, None))
    except StopIteration:
        return


# --- asyncio path (HTTP targets): many requests in flight on one thread ---------------------

async def _async_unit(i: int, due: int, slot: int, target: Any, ctl: Control,
                      append: Callable[[Row], None]) -> None:
    perf = time.perf_counter_ns
    call = ctl.plan.calls[i]
    if call is not None:
        template, sql, params = call
        sent = perf()
        try:
            result = await target.execute_async(sql, params)
        except Exception as exc:  # noqa: BLE001
            append((i, 0, slot, template, due, sent, perf(), 0, None, _error(exc)))
        else:
            append((i, 0, slot, template, due, sent, perf(), len(result.rows), result.meta, None))
        return
    driver = session_steps(i, due, ctl, slot, append)
    try:
        sql, params, options = next(driver)
        while True:
            sent = perf()
            try:
                result = await target.execute_async(sql, params, **(options or {}))
            except Exception as exc:  # noqa: BLE001 - the session records it and ends
                sql, params, options = driver.send((sent, perf(), None, exc))
            else:
                sql, params, options = driver.send((sent, perf(), result, None))
    except StopIteration:
        return


async def _async_sleep_until(deadline_ns: int, stop: threading.Event) -> bool:
    # Short naps so a stop request (set from the main thread) is seen within 50 ms.
    while True:
        if stop.is_set():
            return False
        remaining = deadline_ns - time.perf_counter_ns()
        if remaining <= 0:
            return True
        await asyncio.sleep(min(remaining / 1e9, 0.05))


def _claim_closed(ctl: Control) -> tuple[int, int] | None:
    """Closed loop on the asyncio path: the next unit and its (intended = now) time."""
    now = time.perf_counter_ns()
    if now >= ctl.deadline_ns:
        return None
    i = ctl.claim()
    if i >= len(ctl.plan.calls):
        ctl.plan.ensure(i)
        now = time.perf_counter_ns()
    if ctl.duration_ns is not None and ctl.warmup_units and i == ctl.warmup_units:
        ctl.deadline_ns = min(ctl.deadline_ns, now + ctl.duration_ns)
    if ctl.measured_limit is not None and i >= ctl.warmup_units \
            and now >= ctl.t0 + ctl.warmup_ns and ctl.measured() >= ctl.measured_limit:
        return None
    return i, now


async def async_main(target: Target, ctl: Control, workers: int, out: WorkerRows) -> None:
    """Drive ``target.execute_async`` with at most ``workers`` requests in flight."""
    append = out.full.append
    try:
        if not ctl.open_loop:
            async def closed(slot: int) -> None:
                while not ctl.stop.is_set():
                    claimed = _claim_closed(ctl)
                    if claimed is None:
                        return
                    await _async_unit(claimed[0], claimed[1], slot, target, ctl, append)
            await asyncio.gather(*(closed(s) for s in range(workers)))
            return
        free = asyncio.Semaphore(workers)
        tasks: set[asyncio.Task[None]] = set()

        def finished(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            free.release()

        intended = ctl.plan.intended
        mix = len(intended) if ctl.topup_from is None else ctl.topup_from
        for i, offset in enumerate(intended[:mix]):
            due = ctl.t0 + offset
            if not await _async_sleep_until(due, ctl.stop):
                break
            await free.acquire()  # every slot busy: this unit's lag grows while it waits
            if ctl.stop.is_set():
                free.release()
                break
            if ctl.drop_ns is not None and due < ctl.drop_ns <= time.perf_counter_ns():
                _drop(i, due, ctl, out.full)
                free.release()
                continue
            task = asyncio.create_task(_async_unit(i, due, -1, target, ctl, append))
            tasks.add(task)
            task.add_done_callback(finished)
        if tasks:
            await asyncio.gather(*tasks)
        for i in range(mix, len(intended)):  # the top-up, back to back (module docstring)
            if ctl.stop.is_set():
                break
            due = time.perf_counter_ns()
            intended[i] = due - ctl.t0
            await _async_unit(i, due, -1, target, ctl, append)
    except BaseException as exc:  # noqa: BLE001 - handed to the main thread
        ctl.halt(exc)
    finally:
        # An HTTP target keeps a connection pool per event loop: close this loop's before it ends.
        await target.aclose()
