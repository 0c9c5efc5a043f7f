"""What a replay will send, and when, decided before the clock starts.

Drawing units and arrival times up front keeps the random number generators
out of the timed path and makes a run reproducible: the same seed gives the
same units in the same order at the same intended times, whatever the target
does.  Open loop only: a closed loop has no intended times, only a sequence of
units, which :class:`Schedule` grows in chunks when a duration-bound run needs more.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["SPIN_NS", "SWITCH_INTERVAL_S", "Schedule", "arrivals", "precise_timers",
           "sleep_until"]

#: How long before an intended start a worker stops sleeping and spins.  With
#: the timer slack at 1 ns (:func:`precise_timers`) a sleep ends 5-50 µs late;
#: spinning longer would only hold a core (and, between yields, the GIL).
#: A spin of 300 µs, as before, was worse on a busy machine: each
#: ``sched_yield`` there hands the core to another process for a whole time slice.
SPIN_NS = 50_000

#: CPython's GIL switch interval during a run (its default is 5 ms).  A worker
#: whose statement has finished needs the GIL to build its rows and return;
#: while another thread runs Python code (a worker between requests, the
#: progress line), it waits until that thread blocks or this interval passes.
SWITCH_INTERVAL_S = 0.0001

_PR_SET_TIMERSLACK = 29  # linux/prctl.h
_prctl: list[Any] = []


def precise_timers() -> bool:
    """Make the calling thread's sleeps end on time; ``True`` if they now do.

    Linux lets a sleeping thread wake up to its "timer slack" late (50 µs by
    default) to batch wake-ups; a schedule counted in microseconds sets it
    to 1 ns for the worker threads that follow it (threads of their own,
    which end with the run).  Elsewhere this does nothing.
    """
    if not sys.platform.startswith("linux"):
        return False
    if not _prctl:
        try:
            import ctypes

            _prctl.append(ctypes.CDLL(None, use_errno=True).prctl)
        except (OSError, AttributeError):
            _prctl.append(None)
    prctl = _prctl[0]
    return prctl is not None and prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0) == 0


def arrivals(rate: float, arrival: str, *, seed: int, until_s: float | None = None,
             count: int | None = None) -> list[int]:
    """Intended start times in ns from the run's start, for an open-loop schedule.

    ``poisson`` draws exponential gaps (a memoryless stream of independent
    users); ``fixed`` sends every ``1/rate`` seconds.  The schedule stops at
    ``until_s`` seconds or after ``count`` arrivals, whichever comes first.

    >>> arrivals(4, "fixed", seed=0, count=3)
    [0, 250000000, 500000000]
    >>> len(arrivals(100, "poisson", seed=1, until_s=10)) in range(900, 1100)
    True
    """
    if until_s is None and count is None:
        raise ValueError("arrivals() needs until_s or count")
    gap_s = 1.0 / rate
    if arrival == "fixed":
        n = count if count is not None else int(np.ceil((until_s or 0.0) * rate))  # one is set
        times = np.arange(n, dtype=np.float64) * gap_s
    else:
        rng = np.random.default_rng(seed)
        # Enough gaps to pass until_s almost always; the loop below draws more if not.
        expected = until_s * rate if until_s is not None else 0.0
        n = count if count is not None else int(expected * 1.2 + 10 * np.sqrt(expected) + 10)
        gaps = rng.exponential(gap_s, max(n - 1, 0))
        times = np.concatenate([[0.0], np.cumsum(gaps)]) if n else np.empty(0)
        while until_s is not None and count is None and times[-1] < until_s:
            more = times[-1] + np.cumsum(rng.exponential(gap_s, n))
            times = np.concatenate([times, more])
    if until_s is not None:
        times = times[times < until_s]
    return (times * 1e9).astype(np.int64).tolist()


@dataclass(slots=True)
class Schedule:
    """The units of a replay, drawn in order from one seeded generator.

    For a ``query`` unit the single statement is taken from its generator at
    draw time, so the timed path only runs it: ``calls[i]`` is
    ``(template_name, sql, params)``; for a ``session`` it is ``None`` and the
    session's steps are produced while it runs (they depend on earlier rows).

    Attributes:
        draw: the bound workload's ``draw``.
        rng: the generator units are drawn from.
        names, kinds: each unit's name and kind.
        calls: each query unit's statement, or ``None`` for a session.
        sessions: unit index -> the session unit, to run its steps.
        intended: open-loop start times (ns from run start); empty for closed loop.
    """

    draw: Callable[[random.Random], Any]
    rng: random.Random
    names: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    calls: list[tuple[str, str, Any] | None] = field(default_factory=list)
    sessions: dict[int, Any] = field(default_factory=dict)
    intended: list[int] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def extend(self, n: int) -> None:
        """Draw ``n`` more units."""
        for _ in range(n):
            self.append(self.draw(self.rng))

    def append(self, unit: Any) -> None:
        """Add one drawn unit (a top-up draws it by name, :meth:`extend` by weight)."""
        index = len(self.calls)
        self.names.append(unit.name)
        self.kinds.append(unit.kind)
        if unit.kind == "query":
            call = next(unit.steps())
            self.calls.append((call.template.name, call.template.sql, call.params))
        else:
            self.sessions[index] = unit
            self.calls.append(None)

    def ensure(self, index: int) -> None:
        """Make unit ``index`` exist (closed loop, duration-bound), doubling as needed.

        Called from worker threads: the lock keeps the draws in one order.
        """
        with self._lock:
            while index >= len(self.calls):
                self.extend(max(1_000, len(self.calls)))

    def sample_params(self) -> dict[str, Any]:
        """The first drawn parameters of each query template, to explain its plan with."""
        out: dict[str, Any] = {}
        for call in self.calls:
            if call is not None and call[0] not in out:
                out[call[0]] = call[2]
        return out


def sleep_until(deadline_ns: int, stop: threading.Event,
                _perf: Callable[[], int] = time.perf_counter_ns,
                _yield: Callable[[], None] = os.sched_yield) -> bool:
    """Sleep until ``perf_counter_ns() >= deadline_ns``; return ``False`` if stopped first.

    Coarse sleep on the event (so Ctrl-C wakes the worker), then spin with
    ``sched_yield``, which releases the GIL so other workers' results are not
    held up by the spinning one.
    """
    remaining = deadline_ns - _perf() - SPIN_NS
    if remaining > 0 and stop.wait(remaining / 1e9):
        return False
    while _perf() < deadline_ns:
        _yield()
    return True
