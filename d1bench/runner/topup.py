"""Topping up rare templates after a replay's mix, so each has enough runs for its percentiles.

A replay bound by duration draws units by weight: at a million papers a
30-second run sends a few hundred units, and a template of weight 1 in 100
runs two or three times.  A p99 of three runs is its maximum, not a
percentile.  ``min_executions=N`` keeps the mix as drawn and then appends
targeted units of every template that ran fewer than N times in the measured
part, until each has N (or its cap: a template that takes seconds a run is
capped explicitly, and the trace says so).  The top-up is sent back to back
by one worker once the mix has been sent, each unit intended when it is sent:
at the mix's own rate, 300 top-up units at a million papers (one unit every 17
seconds without indexes) would take an hour and a half.  Its executions then
wait for no queue, and a trace says how many there were.

The rule the notebooks use to choose N, and to mark a percentile that has too
few runs, is :func:`d1bench.claims.runs_needed`: a percentile is taken as
measured when at least five runs lie beyond it (p50 10, p95 100, p99 500).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from typing import Any

__all__ = ["describe_topup", "plan_topup"]

def plan_topup(names: list[str], kinds: list[str], first_measured: int, drawable: list[str],
               minimum: int, caps: Mapping[str, int] | None, rng: random.Random) -> list[str]:
    """The unit names to append after the mix, interleaved in a seeded order.

    ``names``/``kinds`` are the scheduled units, of which those from index
    ``first_measured`` on are measured.  Every template in ``drawable``
    (the query templates with a positive weight; sessions are not topped up,
    their steps depend on rows not read yet) that the measured part runs
    fewer than ``min(minimum, caps[t])`` times gets the difference.

    >>> plan_topup(["a", "a", "b"], ["query"] * 3, 0, ["a", "b", "c"], 2, {"c": 1},
    ...            random.Random(0))
    ['b', 'c']
    """
    caps = dict(caps or {})
    counts = Counter(n for n, k in zip(names[first_measured:], kinds[first_measured:])
                     if k == "query")
    extra: list[str] = []
    for name in drawable:
        want = min(minimum, caps.get(name, minimum))
        extra.extend([name] * max(0, want - counts.get(name, 0)))
    # Interleaved so a slow template's runs are spread over the top-up, not queued at its end.
    rng.shuffle(extra)
    return extra


def describe_topup(extra: list[str], minimum: int, caps: Mapping[str, int] | None) -> dict[str, Any]:
    """What the trace's schedule metadata says about a top-up."""
    return {"min_executions": minimum, "topup_caps": dict(caps or {}),
            "topup_units": len(extra), "topup": dict(sorted(Counter(extra).items())),
            "topup_mode": "closed loop, one worker, after the mix"}
