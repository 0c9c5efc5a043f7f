"""Choosing the set: greedy Extend over the whole workload, then drops and pruning.

Extend (Schlosser, Kossmann and Boissier, ICDE 2019) grows a configuration one
step at a time.  A step either adds a one-key index or appends one key to an
index already chosen; the step taken is the one that saves the most cost per
extra byte, cost being the workload's weighted D1 usage (rows read, plus rows
written times the write weight).  It stops when the storage budget is spent or
when no step saves at least ``min_gain`` of the current cost.

Here the keys an index may grow by follow the candidates (every step keeps the
index a prefix of some candidate), which keeps the search to indexes some
template asked for.  When no one-key step pays at all (a key that only helps
together with the next one), two-key prefixes, and indexes already chosen grown by
two keys (an ORDER BY on two keys), are tried before giving up.

Afterwards every index is checked alone: a proposed index whose removal costs
less than ``min_gain`` goes, and an existing one that no template uses, or whose
keys begin another index's, is proposed for dropping.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from d1bench.advisor.candidates import Candidate
from d1bench.advisor.evaluate import Evaluator
from d1bench.sql.catalog import IndexDef

__all__ = ["MIN_GAIN", "Selection", "Step", "extend", "merge_prefixes"]

#: Stop when the best step saves less than this fraction of the current cost (Extend's 0.3%).
MIN_GAIN = 0.003
#: ... unless a new index saves at least this share of what the templates it changes cost:
#: one that halves a rare template's rows pays for itself on D1 however small that template
#: is beside a brute-force search no index serves (which sets the scale of MIN_GAIN).
#: A wider key (an index grown by one, a new two-key index) gets no such pass.
MIN_SHARE = 0.1


def _worth(gain: float, floor: float, served: float) -> bool:
    """Is a saving of ``gain`` worth an index, against the workload's threshold ``floor``
    and the weighted cost ``served`` of the templates it changes?"""
    return gain >= floor or (gain > 0 and gain >= MIN_SHARE * served)


@dataclass(frozen=True, slots=True)
class Step:
    """One step Extend took."""

    action: str          # "add" or "extend"
    index: IndexDef
    replaced: IndexDef | None
    gain: float          # weighted cost saved
    extra_bytes: float
    cost_after: float


@dataclass
class Selection:
    """What :func:`extend` decided.

    Attributes:
        config: the final configuration (existing indexes kept, plus new ones).
        added: the new indexes.
        dropped: existing indexes proposed for dropping, with the reason.
        steps: the steps taken, in order.
        cost_before / cost_after: the workload's weighted cost.
        stopped: why the search ended.
    """

    config: list[IndexDef]
    added: list[IndexDef]
    dropped: list[tuple[IndexDef, str]]
    steps: list[Step] = field(default_factory=list)
    cost_before: float = 0.0
    cost_after: float = 0.0
    stopped: str = ""
    pruned: list[tuple[IndexDef, str]] = field(default_factory=list)


def extend(ev: Evaluator, candidates: Mapping[tuple, Candidate], base: Sequence[IndexDef],
           size: Callable[[IndexDef], float], *, budget: float | None = None,
           min_gain: float = MIN_GAIN, max_steps: int = 500, progress: bool = False) -> Selection:
    """Run Extend from ``base`` (the existing indexes) over ``candidates``.

    ``progress`` shows the steps taken and the cost left on stderr.
    """
    import sys

    from tqdm import tqdm

    # None: tqdm shows the bar only when stderr is a terminal
    bar = tqdm(desc="advise: Extend", unit=" step", disable=None if progress else True,
               file=sys.stderr, leave=False)
    prefixes = _prefixes(candidates, base)
    sizes: dict[tuple, float] = {}

    def size_of(idx: IndexDef) -> float:  # asked for every move at every step
        hit = sizes.get(idx.shape)
        if hit is None:
            hit = sizes[idx.shape] = size(idx)
        return hit

    config = list(base)
    added: dict[tuple, IndexDef] = {}
    current = {n: ev.weighted(c, config) for n, c in ev.cases.items()}
    total = sum(current.values())
    # The stopping threshold is relative to the cost indexes can act on: a
    # brute-force template no index serves must not freeze the search.
    actionable = {n for n, c in ev.cases.items()
                  if any(ev.relevant(c, idx) for idx in prefixes.values() if len(idx.keys) == 1)}

    def base_cost() -> float:
        return sum(current[n] for n in actionable)

    cost_before = total
    used_bytes = 0.0
    steps: list[Step] = []
    gains: dict[tuple, tuple[float, set[str], float]] = {}
    stopped = "no step saves anything"
    for _ in range(max_steps):
        best = None
        floor = min_gain * base_cost()
        positive = False
        for widths in ((1,), (2,)):
            for action, new, old in _moves(prefixes, added, widths):
                key = (new.shape, old.shape if old else None)
                if key not in gains:
                    gains[key] = _gain(ev, config, current, new, old)
                gain, _affected_names, served = gains[key]
                if gain <= 0:
                    continue
                extra = size_of(new) - (size_of(old) if old else 0.0)
                if budget is not None and used_bytes + extra > budget:
                    continue
                positive = True
                # a wider key (an index already chosen grown by one, or a new two-key
                # one) must pay at the workload's scale: for a small sort it is bytes on
                # every entry of the table
                one_key = old is None and len(new.keys) == 1
                if not _worth(gain, floor, served if one_key else float("inf")):
                    continue  # Extend only takes steps that save at least min_gain
                ratio = gain / max(extra, 1.0)
                if best is None or ratio > best[0]:
                    best = (ratio, gain, extra, action, new, old)
            if best is not None:
                break  # two-key steps only when no one-key step pays
        if best is None:
            if positive:
                stopped = (f"no step saves {min_gain:.1%} of the cost of the templates "
                           "indexes can serve")
            else:
                stopped = "no step saves anything" if budget is None else \
                    "no step saves anything within the storage budget"
            break
        _ratio, gain, extra, action, new, old = best
        if old is not None:
            config = [i for i in config if i.shape != old.shape]
            del added[old.shape]
        config.append(new)
        added[new.shape] = new
        used_bytes += extra
        _, affected, _served = gains[(new.shape, old.shape if old else None)]
        for n in affected:
            current[n] = ev.weighted(ev.cases[n], config)
        total = sum(current.values())
        steps.append(Step(action, new, old, gain, extra, total))
        bar.update(1)
        bar.set_postfix_str(f"{new.name}, cost {total:,.0f}")
        # gains of moves touching the same templates are stale now
        gains = {k: v for k, v in gains.items() if not (v[1] & affected)}
    else:
        stopped = f"stopped after {max_steps} steps"
    if steps and stopped.startswith("no step "):
        # Said above a table of the steps taken, "no step saves anything" read as
        # if none of them did: it is about the next step.
        stopped = f"after {len(steps)} step(s), no further step " + stopped.removeprefix("no step ")
    bar.close()
    sel = Selection(config=config, added=list(added.values()), dropped=[], steps=steps,
                    cost_before=cost_before, cost_after=total, stopped=stopped)
    for idx, _why in merge_prefixes(sel):
        _keep_order(ev, sel, idx, min_gain * ev.total(sel.config, actionable), candidates)
    _prune(ev, sel, min_gain, actionable)
    _drops(ev, sel, base)
    sel.cost_after = ev.total(sel.config)
    return sel


def _prefixes(candidates: Mapping[tuple, Candidate],
              base: Sequence[IndexDef] = ()) -> dict[tuple, IndexDef]:
    """Every prefix of every candidate not already in ``base``, by shape, each with its name."""
    from d1bench.sql.naming import Namer

    namer = Namer([*base, *(c.index for c in candidates.values())])
    existing = {i.shape for i in base}
    out: dict[tuple, IndexDef] = {}
    for cand in candidates.values():
        idx = cand.index
        for n in range(1, len(idx.keys) + 1):
            keys = idx.keys[:n]
            shape = (idx.table, keys, idx.where)
            if shape not in out and shape not in existing:
                name = idx.name if n == len(idx.keys) else namer.name(idx.table, keys, idx.where)
                out[shape] = IndexDef(idx.table, keys, idx.where, name=name)
    return out


def _moves(prefixes: Mapping[tuple, IndexDef], added: Mapping[tuple, IndexDef],
           widths: tuple[int, ...]):
    """(action, new index, index it replaces) for every step Extend may take."""
    for shape, idx in prefixes.items():
        if shape in added:
            continue
        if len(idx.keys) in widths:
            yield "add", idx, None
        parent = (idx.table, idx.keys[:-1], idx.where)
        if len(idx.keys) >= 2 and parent in added and widths == (1,):
            yield "extend", idx, added[parent]
        # and, when no one-key step pays, an index chosen grown by two keys at once (an
        # ORDER BY on two keys spares its sort only when both are there)
        grand = (idx.table, idx.keys[:-2], idx.where)
        if len(idx.keys) >= 3 and grand in added and widths == (2,):
            yield "extend", idx, added[grand]


def _affected(ev: Evaluator, new: IndexDef, old: IndexDef | None = None) -> set[str]:
    """Templates whose cost can change when ``new`` comes (or replaces ``old``)."""
    return {n for n in ev.cases_on(new.table)
            if ev.relevant(ev.cases[n], new) or (old is not None and ev.relevant(ev.cases[n], old))}


def _gain(ev: Evaluator, config: list[IndexDef], current: Mapping[str, float],
          new: IndexDef, old: IndexDef | None) -> tuple[float, set[str], float]:
    """Weighted cost saved by putting ``new`` in place of ``old`` (or beside it), the
    templates that could notice, and what those whose cost changes cost now."""
    affected = _affected(ev, new, old)
    if not affected:
        return 0.0, affected, 0.0
    trial = [i for i in config if old is None or i.shape != old.shape] + [new]
    change = {n: current[n] - ev.weighted(ev.cases[n], trial) for n in affected}
    served = sum(current[n] for n, d in change.items() if abs(d) > 1e-9 * max(current[n], 1.0))
    return sum(change.values()), affected, served


def _uses(plan_details: Sequence[str], name: str) -> bool:
    return any(f" {name} " in f" {d} " or d.endswith(f" {name}") for d in plan_details)


def _covers(short: IndexDef, long: IndexDef) -> bool:
    """``long`` serves every seek ``short`` serves: same table and predicate, and
    ``short``'s keys begin it (a one-key index in either direction)."""
    if short.shape == long.shape or len(short.keys) >= len(long.keys):
        return False
    if short.is_prefix_of(long):
        return True
    return (len(short.keys) == 1 and short.table == long.table and short.where == long.where
            and short.keys[0].expr == long.keys[0].expr)


def merge_prefixes(sel: Selection) -> list[tuple[IndexDef, str]]:
    """Drop every proposed index whose keys begin another index of the configuration.

    The longer index serves each lookup the shorter one serves and reads the
    same entries, so the shorter one only adds a written row to every insert;
    D1 bills a written row as 1,000 read ones.  Returns what it dropped, also
    recorded in ``sel.pruned``.
    """
    merged = []
    for idx in sorted(sel.added, key=lambda i: len(i.keys)):
        longer = next((o for o in sel.config if _covers(idx, o)), None)
        if longer is None:
            continue
        why = f"prefix-redundant: {longer.name} begins with the same keys"
        sel.config = [i for i in sel.config if i.shape != idx.shape]
        sel.added = [i for i in sel.added if i.shape != idx.shape]
        sel.pruned.append((idx, why))
        merged.append((idx, why))
    return merged


def _keep_order(ev: Evaluator, sel: Selection, merged: IndexDef, floor: float,
                candidates: Mapping[tuple, Candidate]) -> None:
    """Put back a merged prefix with its rowid spelt as a key (a candidate of that shape),
    when the rowid order it gave is worth it: ``(specialty)`` gives ``GROUP BY p.id`` its
    rows in order, which ``(specialty, citation_count)`` beside it does not;
    ``(specialty, id)`` holds the same entries and begins no other index."""
    from d1bench.sql.catalog import Key

    td = ev.catalog.table(merged.table)
    alias = td.rowid_alias if td is not None and not td.without_rowid else None
    if alias is None or any(k.expr == alias for k in merged.keys):
        return
    found = candidates.get((merged.table, (*merged.keys, Key(alias)), merged.where))
    if found is None or any(i.shape == found.index.shape for i in sel.config):
        return
    spelt = found.index
    trial = [*sel.config, spelt]
    gain, served = _saving(ev, _affected(ev, spelt), sel.config, trial)
    if _worth(gain, floor, served):
        sel.config = trial
        sel.added.append(spelt)


def _saving(ev: Evaluator, names: set[str], before: list[IndexDef],
            after: list[IndexDef]) -> tuple[float, float]:
    """(weighted cost ``after`` saves over ``before`` on ``names``, what the templates
    whose cost changes cost ``before``)."""
    changed = [n for n in names
               if ev.weighted(ev.cases[n], after) != ev.weighted(ev.cases[n], before)]
    return ev.total(before, names) - ev.total(after, names), ev.total(before, changed)


def _prune(ev: Evaluator, sel: Selection, min_gain: float, actionable: set[str]) -> None:
    """Remove proposed indexes the final configuration does not need."""
    changed = True
    while changed:
        changed = False
        total = ev.total(sel.config, actionable)
        for idx in sorted(sel.added, key=lambda i: len(i.keys)):
            without = [i for i in sel.config if i.shape != idx.shape]
            names = _affected(ev, idx)  # only these templates can notice
            loss, served = _saving(ev, names, without, sel.config)
            if not _worth(loss, min_gain * total, served):
                why = ("no template's plan uses it once the others exist" if loss <= 0 else
                       f"it saves only {loss:,.0f} weighted rows, under {min_gain:.1%} of the cost")
                sel.config = without
                sel.added = [i for i in sel.added if i.shape != idx.shape]
                sel.pruned.append((idx, why))
                changed = True
                break


def _drops(ev: Evaluator, sel: Selection, base: Sequence[IndexDef]) -> None:
    """Existing indexes to drop: unused by every template, or a prefix of another index."""
    for idx in [i for i in base if i.droppable]:
        longer = next((o for o in sel.config if o.shape != idx.shape and idx.is_prefix_of(o)
                       and not idx.unique), None)
        plans = [ev.cost(c, sel.config).plan for c in ev.cases.values()]
        used = any(_uses([r.detail for r in plan], idx.name) for plan in plans)
        reason = None
        if longer is not None:
            reason = f"prefix-redundant: {longer.name} begins with the same keys"
        elif not used:
            reason = "unused: no template of the workload uses it"
        if reason is None:
            continue
        without = [i for i in sel.config if i.shape != idx.shape]
        if ev.total(without) <= ev.total(sel.config) * (1 + 1e-9):
            sel.config = without
            sel.dropped.append((idx, reason))
