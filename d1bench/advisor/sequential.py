"""Replaying until every template's mean rows read is known: the stopping rule of ``--verify``.

A fixed number of units sees a rare template once or twice, and one execution
says nothing about its mean.  So the replay runs in rounds on both copies with
the same seed (so both see the same units, values and writes):

1. the whole workload, ``first`` units: this also gives each template's
   executions per unit, which weight the totals;
2. then, while some template's mean rows read (before or after) has a relative
   standard error above ``target_rse``, or fewer than ``MIN_EXECUTIONS``
   executions, a round of only those templates, each as many times as its
   spread says it still needs (``(sd / mean / target)^2`` executions in all);
   templates that only run inside a session (their values come from a
   previous step's rows) get more units of the whole workload instead;
3. until ``cap`` units have been replayed on each copy, or ``max_seconds`` have
   passed: a round that would not fit in the time left is cut to what fits,
   each template's executions costed at its mean response time so far (at a
   million papers, a template without indexes takes seconds a run).

Each template's executions per unit, which weight the totals, are the
workload's own frequencies, not the first round's counts (a template run once
a hundred units would be weighed by chance in a short first round); only a
step looping over a previous step's rows is counted in the first round, since
its executions depend on the rows.

Rows read on SQLite are the target's estimate of D1's count: deterministic for a
given plan and values, so the spread is the spread of the values drawn.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd

__all__ = ["MAX_ROUNDS", "MIN_EXECUTIONS", "STOPPED", "Rounds", "needed", "sequential"]

#: Executions of a template before its spread is trusted at all.
MIN_EXECUTIONS = 5
#: Rounds after the first, at most (each round replays what the last one left unknown).
MAX_ROUNDS = 8
_COLUMNS = ["template", "unit", "rows_read", "rows_written", "service_ms"]
_clock = time.monotonic  # the time limit's clock
#: Why the rounds ended (``Rounds.stopped``), in words.
STOPPED = {"known": "every mean known", "cap": "the most units replayed",
           "time": "the time limit reached", "rounds": "the most rounds run"}


@dataclass
class Rounds:
    """Every measured execution of the replays on both copies.

    Attributes:
        before / after: one row per successful execution (``template``,
            ``rows_read``, ``rows_written``, ``service_ms``).
        per_unit: executions of each template per unit (see the module docstring).
        spent: units replayed on each copy, all rounds together.
        rounds: rounds run (the first included).
        stopped: why the rounds ended: ``"known"`` (every mean known within
            the target), ``"cap"`` (units), ``"time"`` (``max_seconds``) or
            ``"rounds"`` (``MAX_ROUNDS``).
    """

    before: pd.DataFrame
    after: pd.DataFrame
    per_unit: dict[str, float] = field(default_factory=dict)
    spent: int = 0
    rounds: int = 0
    stopped: str = ""

    def unmeasured(self) -> list[str]:
        """Templates the workload runs that no round executed on both copies."""
        ran = set(self.before["template"]) & set(self.after["template"])
        return sorted(n for n, rate in self.per_unit.items() if rate > 0 and n not in ran)

    def totals(self) -> dict[str, float]:
        """Per unit of workload, before and after: rows read, rows written and ms."""
        out = {}
        for label, frame in (("before", self.before), ("after", self.after)):
            means = frame.groupby("template")[["rows_read", "rows_written", "service_ms"]].mean()
            for col, key in (("rows_read", "rows_read"), ("rows_written", "rows_written"),
                             ("service_ms", "ms")):
                out[f"{key}_per_unit_{label}"] = float(sum(
                    rate * float(means[col].get(name, 0.0)) for name, rate in self.per_unit.items()))
        return out


def needed(values: pd.Series, target_rse: float) -> int:
    """More executions a template needs for its mean to be known within ``target_rse``.

    >>> needed(pd.Series([10.0] * 6), 0.05)
    0
    >>> needed(pd.Series([10.0, 30.0] * 3), 0.05)  # sd/mean = 0.55: 120 in all, and a tenth
    126
    >>> needed(pd.Series([], dtype=float), 0.05)
    5
    """
    n = len(values)
    more = _more(values, target_rse, n) if n >= 2 else 0
    return max(MIN_EXECUTIONS - n, more)


def _more(values: pd.Series, target_rse: float, n: int) -> int:
    mean, sd = float(values.mean()), float(values.std(ddof=1))
    if sd == 0 or mean == 0:
        return 0
    if sd / (abs(mean) * math.sqrt(n)) <= target_rse:
        return 0
    # a tenth more than the spread so far asks for: the spread itself is an estimate
    want = math.ceil(1.1 * (sd / abs(mean) / target_rse) ** 2)
    return max(want - n, 1)


def _frame(trace: Any, offset: int) -> pd.DataFrame:
    f = trace.measured
    f = f[f["error_class"].isna()]
    return pd.DataFrame({"template": f["template"].to_numpy(),
                         "unit": f["unit_index"].to_numpy() + offset,
                         "rows_read": f["rows_read"].astype(float).to_numpy(),
                         "rows_written": f["rows_written"].astype(float).to_numpy(),
                         "service_ms": f["service_ms"].astype(float).to_numpy()}, columns=_COLUMNS)


def _pair(dbs: tuple[Path, Path], workload: Any, units: int, seed: int, progress: bool,
          offset: int, corpus: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    from d1bench.runner import replay

    out = []
    for db in dbs:
        # The copies hold the corpus's rows under other indexes: its content digest is theirs,
        # known already, where hashing each new copy's rows takes minutes at a million papers.
        trace = replay(workload, f"sqlite:{db}", concurrency=1, requests=units, seed=seed,
                       progress=progress, corpus=corpus)
        out.append(_frame(trace, offset))
    return out[0], out[1]


def _standalone(template: Any) -> bool:
    """Can the template run alone (none of its values come from a previous step's rows)?"""
    return all(spec.kind != "from_row" for spec in template.params)


def _subset(workload: Any, counts: dict[str, int]) -> Any:
    """The workload reduced to ``counts``' templates, drawn in proportion to the counts."""
    import hashlib

    templates = {n: replace(workload.templates[n], weight=float(c)) for n, c in counts.items()}
    writes = sum(c for n, c in counts.items() if templates[n].is_write)
    share = writes / sum(counts.values())
    digest = hashlib.sha256(f"{workload.digest}|subset={sorted(counts.items())}".encode()).hexdigest()
    return replace(workload, templates=MappingProxyType(templates), sessions=MappingProxyType({}),
                   write_weight=share, digest=digest)


def sequential(before_db: Path, after_db: Path, workload: Any, *, first: int, cap: int,
               seed: int, target_rse: float, progress: bool = False,
               corpus: Path | None = None, max_seconds: float | None = None) -> Rounds:
    """Replay on both copies until every template's mean rows read is known (module docstring).

    ``corpus``: the file both copies were made from (its rows, under other indexes), named
    as the traces' corpus.  ``max_seconds``: the rounds after the first end within this
    many seconds of it (each cut to what fits; the first round always runs whole).
    """
    dbs = (before_db, after_db)
    before, after = _pair(dbs, workload, first, seed, progress, 0, corpus)
    started = _clock()  # the limit counts from here: the first round runs whole
    runs = Rounds(before, after, _per_unit(workload, before, first), first, 1)
    live = {n for n, f in workload.template_frequencies().items() if f > 0}
    for k in range(1, MAX_ROUNDS + 1):
        left = cap - runs.spent
        if left <= 0:
            runs.stopped = "cap"
            break
        want: dict[str, int] = {}
        for name in sorted(live):
            more = max(needed(runs.before.loc[runs.before["template"] == name, "rows_read"], target_rse),
                       needed(runs.after.loc[runs.after["template"] == name, "rows_read"], target_rse))
            if more > 0:
                want[name] = more
        if not want:
            runs.stopped = "known"
            break
        alone = {n: c for n, c in want.items() if _standalone(workload.templates[n])}
        seconds_left = None if max_seconds is None else max_seconds - (_clock() - started)
        if alone:
            if seconds_left is not None:
                alone = _fit(alone, runs, seconds_left)
            units = min(left, sum(alone.values()))
        else:  # only templates inside sessions: more of the whole workload
            units = min(left, runs.spent)
            if seconds_left is not None:
                per_unit = 1.1 * _seconds(runs) / max(runs.spent, 1)
                units = min(units, int(seconds_left / per_unit)) if per_unit > 0 else units
        if units <= 0:
            runs.stopped = "time"
            break
        sub = _subset(workload, alone) if alone else workload
        b, a = _pair(dbs, sub, units, seed + 7919 * k, progress, runs.spent, corpus)
        runs.before = pd.concat([runs.before, b], ignore_index=True)
        runs.after = pd.concat([runs.after, a], ignore_index=True)
        runs.spent += units
        runs.rounds += 1
    else:
        runs.stopped = "rounds"
    return runs


def _per_unit(workload: Any, first_round: pd.DataFrame, units: int) -> dict[str, float]:
    """Executions of each template per unit: the workload's frequencies, except for steps
    that loop over a previous step's rows (counted in the first round: they depend on rows)."""
    model = workload.template_frequencies()
    looped = {step.template for session in workload.sessions.values() for step in session.steps
              if step.for_each_row}
    seen = (first_round.groupby("template").size() / max(units, 1)).to_dict()
    return {n: float(seen.get(n, f) if n in looped else f) for n, f in model.items() if f > 0}


def _seconds(runs: Rounds) -> float:
    """Seconds the statements of every round took on both copies together."""
    return float(runs.before["service_ms"].sum() + runs.after["service_ms"].sum()) / 1e3


def _fit(counts: dict[str, int], runs: Rounds, seconds_left: float) -> dict[str, int]:
    """As many of ``counts``' executions as should end within ``seconds_left``, cheapest first.

    An execution is costed at the template's mean response time on both copies so far, a
    tenth more for the replay's own work (a template not run yet: the mean of all).  The
    cheap templates' means are then known, where cutting every template in proportion
    would leave them all unknown for the sake of one that takes seconds a run.
    """
    overall = _seconds(runs) / max(len(runs.before), 1)
    cost = {}
    for name in counts:
        b = runs.before.loc[runs.before["template"] == name, "service_ms"]
        a = runs.after.loc[runs.after["template"] == name, "service_ms"]
        cost[name] = 1.1 * ((float(b.mean()) + float(a.mean())) / 1e3 if len(b) and len(a)
                            else overall)
    out = {}
    for name in sorted(counts, key=lambda n: (cost[n], n)):
        n = counts[name] if cost[name] <= 0 else min(counts[name], int(seconds_left / cost[name]))
        if n > 0:
            out[name] = n
            seconds_left -= n * cost[name]
    return out
