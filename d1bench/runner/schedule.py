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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["SPIN_NS", "Schedule", "arrivals", "sleep_until"]

#: How long before an intended start a worker stops sleeping and spins.  Linux
#: oversleeps ``time.sleep`` by 50-100 µs (timer slack), so 300 µs of spinning
#: lands on time while costing at most 30% of a core at 1,000 requests a second.
SPIN_NS = 300_000


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
