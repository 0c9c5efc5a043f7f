"""The advice as frames: proposed indexes, every template with its reason, drops.

Every template that gets nothing says why, in words a reader can act on:
it already uses the primary key, an index already serves it, FTS serves it,
it has no sargable predicate, the best index for it saves less than it costs
in writes, the budget ran out, or it saves less than the stopping threshold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from d1bench.advisor.candidates import Candidate
from d1bench.advisor.evaluate import Case, Evaluator
from d1bench.advisor.select import Selection, _uses
from d1bench.advisor.stats import Stats
from d1bench.sql.catalog import IndexDef

__all__ = ["DROP_COLUMNS", "INDEX_COLUMNS", "REASONS", "TEMPLATE_COLUMNS", "Frames", "build_frames"]

INDEX_COLUMNS = ["name", "table", "columns", "where", "sql", "templates", "rows_read_before",
                 "rows_read_after", "bytes", "rows_written_per_insert", "reason"]
TEMPLATE_COLUMNS = ["template", "weight", "statement", "rows_read_before", "rows_read_after",
                    "rows_written_before", "rows_written_after", "plan_before", "plan_after",
                    "indexes", "reason"]
DROP_COLUMNS = ["name", "table", "columns", "sql", "reason", "rows_written_per_insert"]

#: The fixed openings of the reasons a template gets nothing (tests assert on them).
REASONS = {
    "parse": "SQL does not parse",
    "plan": "SQLite cannot plan it",
    "unused": "never run by the workload (weight 0)",
    "insert": "an INSERT reads no rows an index could save; indexes only add to its writes",
    "pk": "already uses the primary key",
    "existing": "already served by",
    "fts": "FTS serves it",
    "nosarg": "no sargable predicate",
    "noplan": "no candidate index changes its plan",
    "write": "saves less than its write cost",
    "budget": "over the storage budget",
    "gain": "saves less than the stopping threshold",
}


@dataclass
class Frames:
    indexes: pd.DataFrame
    templates: pd.DataFrame
    drops: pd.DataFrame
    added: list[IndexDef]
    summary: dict[str, Any] = field(default_factory=dict)


def _plan_text(plan: Sequence[Any]) -> str:
    return " | ".join(r.detail for r in plan)


def build_frames(ev: Evaluator, sel: Selection, candidates: Mapping[tuple, Candidate],
                 base: Sequence[IndexDef], stats: Stats, budget: float | None,
                 min_gain: float) -> Frames:
    before = {n: ev.cost(c, base) for n, c in ev.cases.items()}
    after = {n: ev.cost(c, sel.config) for n, c in ev.cases.items()}
    added = sorted(sel.added, key=lambda i: (i.table, i.name))
    used_by: dict[str, list[str]] = {i.name: [] for i in added}
    for name, cost in after.items():
        details = [r.detail for r in cost.plan]
        checked = {i.name for i in ev.fk_served(ev.cases[name], sel.config)}
        for idx in added:
            if _uses(details, idx.name) or idx.name in checked:
                used_by[idx.name].append(name)
    index_rows = []
    for idx in added:
        served = used_by[idx.name]
        rb = sum(ev.cases[n].weight * before[n].rows_read for n in served)
        ra = sum(ev.cases[n].weight * after[n].rows_read for n in served)
        share = ev.model.index_share(idx)
        index_rows.append({
            "name": idx.name, "table": idx.table, "columns": [k.sql for k in idx.keys],
            "where": idx.where, "sql": idx.create_sql() + ";", "templates": served,
            "rows_read_before": rb, "rows_read_after": ra, "bytes": stats.index_bytes(idx),
            "rows_written_per_insert": share,
            "reason": _index_reason(idx, served, rb, ra, share, stats, before, after),
        })
    template_rows = []
    remaining = None if budget is None else budget - sum(stats.index_bytes(i) for i in added)
    for name, case in ev.cases.items():
        b, a = before[name], after[name]
        mine = [i.name for i in added if name in used_by[i.name]]
        reason = "" if mine else _template_reason(ev, case, sel, candidates, remaining, min_gain)
        template_rows.append({
            "template": name, "weight": case.weight, "statement": case.info.statement,
            "rows_read_before": b.rows_read, "rows_read_after": a.rows_read,
            "rows_written_before": b.rows_written, "rows_written_after": a.rows_written,
            "plan_before": _plan_text(b.plan), "plan_after": _plan_text(a.plan),
            "indexes": mine, "reason": reason,
        })
    drop_rows = [{
        "name": idx.name, "table": idx.table, "columns": [k.sql for k in idx.keys],
        "sql": f"DROP INDEX IF EXISTS {idx.name};", "reason": why,
        "rows_written_per_insert": ev.model.index_share(idx),
    } for idx, why in sel.dropped]
    w = {n: c.weight for n, c in ev.cases.items()}
    summary = {
        "rows_read_before": sum(w[n] * before[n].rows_read for n in w),
        "rows_read_after": sum(w[n] * after[n].rows_read for n in w),
        "rows_written_before": sum(w[n] * before[n].rows_written for n in w),
        "rows_written_after": sum(w[n] * after[n].rows_written for n in w),
        "cost_before": sel.cost_before, "cost_after": sel.cost_after,
        "index_bytes": float(sum(stats.index_bytes(i) for i in added)),
        "indexes": len(added), "drops": len(sel.dropped),
        "pruned": [f"{i.name}: {why}" for i, why in sel.pruned],
    }
    indexes = pd.DataFrame(index_rows, columns=INDEX_COLUMNS)
    # a full index has no predicate: None, not NaN
    indexes["where"] = indexes["where"].astype(object).where(indexes["where"].notna(), None)
    return Frames(indexes,
                  pd.DataFrame(template_rows, columns=TEMPLATE_COLUMNS),
                  pd.DataFrame(drop_rows, columns=DROP_COLUMNS), added, summary)


def _index_reason(idx: IndexDef, served: list[str], rb: float, ra: float, share: float,
                  stats: Stats, before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """How the index serves its templates, in the planner's words, and what it costs."""
    uses = []
    for name in served:
        old = [r.detail for r in before[name].plan]
        new = [r.detail for r in after[name].plan]
        step = next((d for d in new if _uses([d], idx.name)), "")
        sorts = sum(d.startswith("USE TEMP B-TREE") for d in old) - \
            sum(d.startswith("USE TEMP B-TREE") for d in new)
        how = step.split(" USING ", 1)[-1] if step else \
            f"its foreign-key check on {idx.table}.{idx.keys[0].expr} seeks instead of scanning"
        if sorts > 0:
            how += ", no sort"
        uses.append(f"{name} ({how})")
    text = (f"serves {'; '.join(uses) or 'no template'}: weighted rows read "
            f"{_num(rb)} -> {_num(ra)}; +{share:.2f} row written per insert into {idx.table}")
    if idx.where:
        n = stats.row_count(idx.table)
        text += f"; partial, holds {stats.entries(idx.table, idx.where):,} of {n:,} rows"
    if any(not k.is_column for k in idx.keys):
        text += "; expression index (the query must spell the expression the same way)"
    return text


def _template_reason(ev: Evaluator, case: Case, sel: Selection,
                     candidates: Mapping[tuple, Candidate], remaining: float | None,
                     min_gain: float) -> str:
    info = case.info
    if info.error is not None:
        return f"{REASONS['parse']}: {info.error}"
    now = ev.cost(case, sel.config)
    if now.error is not None:
        return f"{REASONS['plan']}: {now.error}"
    if case.weight <= 0:
        return REASONS["unused"]
    if info.statement == "insert" and not info.refs:
        return REASONS["insert"]
    details = [r.detail for r in now.plan]
    loops = [d for d in details if d.startswith(("SCAN ", "SEARCH "))]
    scans = [d for d in loops if d.startswith("SCAN ") and " VIRTUAL TABLE " not in d
             and " USING " not in d and _is_table_scan(case, d)]
    if loops and not scans:
        named = [d.split(" USING INDEX ")[1].split(" ")[0] for d in loops
                 if " USING INDEX " in d or " USING COVERING INDEX " in d
                 if " USING INDEX " in d]
        named += [d.split(" USING COVERING INDEX ")[1].split(" ")[0] for d in loops
                  if " USING COVERING INDEX " in d]
        fts = any(" VIRTUAL TABLE INDEX " in d and ":M" in d for d in loops)
        if fts and info.uses_fts:
            return REASONS["fts"]
        if named:
            return f"{REASONS['existing']} {', '.join(dict.fromkeys(named))}"
        if all("PRIMARY KEY" in d or " VIRTUAL TABLE " in d for d in loops):
            return REASONS["pk"]
    mine = [c for c in candidates.values() if case.name in c.templates]
    if not mine:
        if info.uses_fts and not scans:
            return REASONS["fts"]
        return f"{REASONS['nosarg']}{_why_not_sargable(info)}"
    # the best candidate alone, on top of the final set: why was it not taken?
    best = None
    for cand in mine:
        trial = [i for i in sel.config if i.shape != cand.index.shape] + [cand.index]
        saved = case.weight * (now.rows_read - ev.cost(case, trial).rows_read)
        writes = 0.0
        for other in ev.cases.values():
            if other.info.write_table == cand.index.table:
                writes += other.weight * ev.write_weight * (
                    ev.cost(other, trial).rows_written - ev.cost(other, sel.config).rows_written)
        # the candidate that saves the most reads speaks for the template
        if best is None or (saved, best[1] - writes) > (best[0], 0.0):
            best = (saved, writes, cand.index)
    assert best is not None
    saved, writes, idx = best
    if saved <= 0:
        return f"{REASONS['noplan']} (the planner keeps {loops[0] if loops else 'its plan'})"
    if saved <= writes:
        return (f"{REASONS['write']}: {idx.name} would save {_num(saved)} weighted rows read "
                f"and cost {_num(writes)} in rows written (times the write weight)")
    if remaining is not None and ev.model.stats.index_bytes(idx) > remaining:
        return f"{REASONS['budget']}: {idx.name} needs {ev.model.stats.index_bytes(idx):,.0f} bytes"
    return (f"{REASONS['gain']}: {idx.name} would save {_num(saved - writes)} weighted rows, "
            f"under {min_gain:.1%} of the workload's cost")


def _num(x: float) -> str:
    """A figure for a sentence: whole numbers when large, three significant digits when small.

    >>> _num(12345.6), _num(0.01234), _num(2.5)
    ('12,346', '0.0123', '2.5')
    """
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _is_table_scan(case: Case, detail: str) -> bool:
    alias = detail.split(" ")[1].lower()
    return any(r.alias == alias and r.kind == "table" for r in case.info.refs)


def _why_not_sargable(info: Any) -> str:
    notes = [f"json_each over {t}.{c} steps every element of every row, which no index shortens"
             for t, c in info.json_loops()]
    for p in info.preds:
        if p.op == "like" and not p.sargable:
            notes.append("LIKE with a wildcard or case-insensitive match")
        elif p.op == "or":
            notes.append("OR across columns")
        elif p.wraps and p.op in ("other", "eq", "range") and not p.sargable:
            notes.append(f"{'/'.join(p.wraps)}() over a column")
    # No pointer to lint here: lint says the same only where one of its rules fires.
    return f" ({'; '.join(dict.fromkeys(notes))})" if notes else ""
