"""The timed path: worker threads (SQLite) or an asyncio loop (HTTP targets) that send units.

Every worker appends one tuple per executed statement to its own list (no lock,
no dict, no DataFrame on the timed path); :mod:`d1bench.replay.recorder` turns
the lists into columns after the run.  A row is::

    (unit_index, step, worker, template, intended_ns, sent_ns, done_ns,
     rows_returned, meta, error)

with absolute ``perf_counter_ns`` times, the target's :class:`Meta` (or
``None``), and ``error`` ``None`` or ``(error_class, message, attempts)``.

Open loop: workers claim the next unit from a shared counter, sleep until its
intended time and send it.  A unit whose time has come while every worker is
busy waits for the first free one, and that wait is its schedule lag, part of
its response time; a slow response never moves anyone's intended time.
Closed loop: workers claim the next unit as soon as they are free; intended
time is the moment they were ready.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from d1bench.replay.schedule import Plan, sleep_until

__all__ = ["DROPPED", "Control", "Row", "async_main", "thread_worker"]

Row = tuple[Any, ...]

_NEVER = 1 << 62

#: ``error_class`` of a unit never sent because the schedule's end (plus grace) had passed.
DROPPED = "dropped"


@dataclass(slots=True)
class Control:
    """State the workers share, set up before the clock starts.

    Attributes:
        plan: the units (and, open loop, their intended times).
        open_loop: follow ``plan.intended``; otherwise back to back.
        t0: ``perf_counter_ns`` at the run's start.
        warmup_ns: units starting before ``t0 + warmup_ns`` are warm-up.
        measured_limit: closed loop: stop after this many measured units.
        stop_ns: closed loop: claim nothing after this time.
        drop_ns: open loop: a unit still unsent at this time is recorded as dropped.
        stop: set by Ctrl-C, a worker's crash, or the end of a closed-loop run.
        failure: the first unexpected exception a worker raised.
    """

    plan: Plan
    open_loop: bool
    t0: int = 0
    warmup_ns: int = 0
    measured_limit: int | None = None
    stop_ns: int | None = None
    drop_ns: int | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    failure: BaseException | None = None
    claim: Callable[[], int] = field(default_factory=lambda: itertools.count().__next__)
    measured: Callable[[], int] = field(default_factory=lambda: itertools.count().__next__)


def _error(exc: BaseException) -> tuple[str, str, int]:
    error_class = getattr(exc, "error_class", None)
    if error_class is None:
        # Not a TargetError: keep the type so a driver bug is not mistaken for a database error.
        return "other", f"{type(exc).__name__}: {exc}", 1
    return error_class, getattr(exc, "message", str(exc)), getattr(exc, "attempts", 1)


def _next_unit(ctl: Control, perf: Callable[[], int]) -> tuple[int, int] | None:
    """Claim the next unit: ``(index, intended_ns)``, or ``None`` when the run is over.

    The asyncio path's way; the threads have the same logic inlined in their loops.
    """
    if ctl.open_loop:
        i = ctl.claim()
        if i >= len(ctl.plan.intended):
            return None
        due = ctl.t0 + ctl.plan.intended[i]
        if not sleep_until(due, ctl.stop):
            return None
        return i, due
    now = perf()
    if ctl.stop_ns is not None and now >= ctl.stop_ns:
        return None
    if ctl.measured_limit is not None and now >= ctl.t0 + ctl.warmup_ns \
            and ctl.measured() >= ctl.measured_limit:
        return None
    i = ctl.claim()
    if i >= len(ctl.plan.calls):
        ctl.plan.ensure(i)  # drawing more units is the client's pause, not a request's lag
        now = perf()
    return i, now


def thread_worker(wid: int, conn: Any, ctl: Control, rows: list[Row]) -> None:
    """Run units on ``conn`` until the plan is exhausted or ``ctl.stop`` is set."""
    try:
        (_open_loop if ctl.open_loop else _closed_loop)(wid, conn, ctl, rows)
    except BaseException as exc:  # noqa: BLE001 - handed to the main thread
        if ctl.failure is None:
            ctl.failure = exc
        ctl.stop.set()


def _open_loop(wid: int, conn: Any, ctl: Control, rows: list[Row]) -> None:
    # Locals, not attributes: this loop's own cost is what the overhead benchmark measures.
    execute = conn.execute
    append = rows.append
    perf = time.perf_counter_ns
    calls = ctl.plan.calls
    intended = ctl.plan.intended
    n = len(intended)
    claim = ctl.claim
    stop = ctl.stop
    stopped = stop.is_set
    t0 = ctl.t0
    drop_ns = ctl.drop_ns if ctl.drop_ns is not None else _NEVER
    while not stopped():
        i = claim()
        if i >= n:
            return
        due = t0 + intended[i]
        if not sleep_until(due, stop):
            return
        call = calls[i]
        if drop_ns <= perf():
            now = perf()
            append((i, 0, wid, call[0] if call else ctl.plan.names[i], due, now, now, 0, None,
                    (DROPPED, "not sent: the schedule's end had passed", 0)))
            continue
        if call is None:
            _run_session(i, due, wid, execute, ctl, append)
            continue
        template, sql, params = call
        sent = perf()
        try:
            result = execute(sql, params)
        except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
            append((i, 0, wid, template, due, sent, perf(), 0, None, _error(exc)))
        else:
            append((i, 0, wid, template, due, sent, perf(), len(result.rows), result.meta, None))


def _closed_loop(wid: int, conn: Any, ctl: Control, rows: list[Row]) -> None:
    execute = conn.execute
    append = rows.append
    perf = time.perf_counter_ns
    calls = ctl.plan.calls
    n = len(calls)
    claim = ctl.claim
    stopped = ctl.stop.is_set
    stop_ns = ctl.stop_ns if ctl.stop_ns is not None else _NEVER
    limit = ctl.measured_limit
    measured = ctl.measured
    warm_end = ctl.t0 + ctl.warmup_ns
    while not stopped():
        # Closed loop has no schedule: a unit is intended the moment its worker is ready.
        sent = perf()
        if sent >= stop_ns or (limit is not None and sent >= warm_end and measured() >= limit):
            return
        i = claim()
        if i >= n:
            ctl.plan.ensure(i)  # drawing more units is the client's pause, not a request's lag
            n = len(calls)
            sent = perf()
        call = calls[i]
        if call is None:
            _run_session(i, sent, wid, execute, ctl, append)
            continue
        template, sql, params = call
        try:
            result = execute(sql, params)
        except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
            append((i, 0, wid, template, sent, sent, perf(), 0, None, _error(exc)))
        else:
            append((i, 0, wid, template, sent, sent, perf(), len(result.rows), result.meta,
                    None))


def _run_session(i: int, due: int, wid: int, execute: Callable[..., Any], ctl: Control,
                 append: Callable[[Row], None]) -> None:
    """One simulated user's statements back to back; each step is intended when the last ended.

    A failed step ends the session (later steps would use its rows).  A stop
    request ends it between steps: the step in flight completes.
    """
    perf = time.perf_counter_ns
    steps = ctl.plan.sessions[i].steps()
    try:
        call = next(steps)
    except StopIteration:
        return
    step, intended = 0, due
    while True:
        template = call.template
        sent = perf()
        try:
            result = execute(template.sql, call.params)
        except Exception as exc:  # noqa: BLE001
            append((i, step, wid, template.name, intended, sent, perf(), 0, None, _error(exc)))
            steps.close()
            return
        done = perf()
        append((i, step, wid, template.name, intended, sent, done, len(result.rows), result.meta,
                None))
        if ctl.stop.is_set():
            steps.close()
            return
        try:
            call = steps.send(result)
        except StopIteration:
            return
        step, intended = step + 1, done


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
    steps = ctl.plan.sessions[i].steps()
    try:
        step_call = next(steps)
    except StopIteration:
        return
    step, intended = 0, due
    while True:
        template = step_call.template
        sent = perf()
        try:
            result = await target.execute_async(template.sql, step_call.params)
        except Exception as exc:  # noqa: BLE001
            append((i, step, slot, template.name, intended, sent, perf(), 0, None, _error(exc)))
            steps.close()
            return
        done = perf()
        append((i, step, slot, template.name, intended, sent, done, len(result.rows),
                result.meta, None))
        if ctl.stop.is_set():
            steps.close()
            return
        try:
            step_call = steps.send(result)
        except StopIteration:
            return
        step, intended = step + 1, done


async def _async_sleep_until(deadline_ns: int, stop: threading.Event) -> bool:
    # Short naps so a stop request (set from the main thread) is seen within 50 ms.
    while True:
        if stop.is_set():
            return False
        remaining = deadline_ns - time.perf_counter_ns()
        if remaining <= 0:
            return True
        await asyncio.sleep(min(remaining / 1e9, 0.05))


async def async_main(target: Any, ctl: Control, workers: int, rows: list[Row]) -> None:
    """Drive ``target.execute_async`` with at most ``workers`` requests in flight."""
    append = rows.append
    perf = time.perf_counter_ns
    try:
        if not ctl.open_loop:
            async def closed(slot: int) -> None:
                while not ctl.stop.is_set():
                    claimed = _next_unit(ctl, perf)
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

        for i, offset in enumerate(ctl.plan.intended):
            due = ctl.t0 + offset
            if not await _async_sleep_until(due, ctl.stop):
                break
            await free.acquire()  # every slot busy: this unit's lag grows while it waits
            if ctl.stop.is_set():
                free.release()
                break
            if ctl.drop_ns is not None and due < ctl.drop_ns <= perf():
                now = perf()
                append((i, 0, -1, ctl.plan.calls[i][0] if ctl.plan.calls[i] else ctl.plan.names[i],
                        due, now, now, 0, None, (DROPPED, "not sent: the schedule's end had passed",
                                                 0)))
                free.release()
                continue
            task = asyncio.create_task(_async_unit(i, due, -1, target, ctl, append))
            tasks.add(task)
            task.add_done_callback(finished)
        if tasks:
            await asyncio.gather(*tasks)
    except BaseException as exc:  # noqa: BLE001 - handed to the main thread
        if ctl.failure is None:
            ctl.failure = exc
        ctl.stop.set()
    finally:
        # An HTTP target keeps a connection pool per event loop: close this loop's before it ends.
        aclose = getattr(target, "aclose", None)
        if aclose is not None:
            await aclose()
