"""The cost of a template, and of the workload, under a configuration of indexes.

Glues the what-if planner to the cost model, per template, with two caches:
whether an index can matter to a template at all (its table and keys), and the
template's cost under the set of indexes that can.  A configuration change on
one table therefore costs nothing for templates that never read it.  A third
cache is keyed by the plan: most relevant sets leave a read's plan as it was
(an index on a column it filters by, that SQLite does not pick), and a read's
predicted usage depends only on its plan and the indexes the plan names, so
the cost model walks each distinct plan of a template once.  Evaluators may
share one memo of a read's usage per plan and parameter tuple: the advice is
priced on more values than it was searched on, the first ones the same.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from d1bench.advisor.costmodel import CostModel, Prediction
from d1bench.advisor.foreign import child_keys, serves_child
from d1bench.advisor.query import ALL_COLUMNS, ROWID, QueryInfo
from d1bench.advisor.whatif import WhatIf
from d1bench.sql.catalog import Catalog, IndexDef
from d1bench.sql.session import PlanStep

__all__ = ["Case", "CaseCost", "Evaluator"]


@dataclass
class Case:
    """One template as the advisor sees it.

    Attributes:
        name: the template's name.
        info: what :func:`~d1bench.advisor.query.analyze` read from it.
        weight: executions per unit of workload (its frequency).
        params: parameter tuples drawn for it (the first plans it).
    """

    name: str
    info: QueryInfo
    weight: float
    params: list[tuple[Any, ...]]
    keys: dict[str, set[str]] = field(default_factory=dict)
    needed: dict[str, set[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.params:
            self.params = [tuple([None] * self.info.n_params)]
        for ref in self.info.refs:
            if ref.kind != "table":
                continue
            self.needed.setdefault(ref.name, set()).update(ref.columns)
            self.keys.setdefault(ref.name, set()).update(c for c in ref.columns if c != ALL_COLUMNS)
        for p in self.info.preds:
            if p.key is not None and 0 <= p.ref < len(self.info.refs):
                self.keys.setdefault(self.info.refs[p.ref].name, set()).add(p.key)
            if p.other_key is not None and p.other_ref is not None:
                self.keys.setdefault(self.info.refs[p.other_ref].name, set()).add(p.other_key)
        for s in self.info.scopes:
            for r, k, _d in s.order_by:
                if r >= 0:
                    self.keys.setdefault(self.info.refs[r].name, set()).add(k)
            for r, k in s.group_by:
                if r >= 0:
                    self.keys.setdefault(self.info.refs[r].name, set()).add(k)

    @property
    def named(self) -> list[dict[str, Any]]:
        return [{f"p{i + 1}": v for i, v in enumerate(p)} for p in self.params]


@dataclass(frozen=True, slots=True)
class CaseCost:
    """A template's predicted usage per execution under one configuration.

    ``error`` holds SQLite's refusal when it could not plan the template.
    """

    rows_read: float
    rows_written: float
    plan: tuple[PlanStep, ...] = ()
    error: str | None = None

    def total(self, write_weight: float) -> float:
        return self.rows_read + write_weight * self.rows_written


class Evaluator:
    """Costs of templates under configurations, cached."""

    def __init__(self, cases: Sequence[Case], whatif: WhatIf, model: CostModel,
                 catalog: Catalog, write_weight: float,
                 memo: dict[tuple, Prediction] | None = None) -> None:
        self.cases = {c.name: c for c in cases}
        self.whatif = whatif
        self.model = model
        self.catalog = catalog
        self.write_weight = write_weight
        self._relevant: dict[tuple[str, str], bool] = {}
        self._costs: dict[tuple[str, frozenset], CaseCost] = {}
        self._by_plan: dict[tuple[str, tuple[PlanStep, ...]], CaseCost] = {}
        #: a read's usage per (template, plan, parameter tuple): pass it to another
        #: Evaluator over the same templates, corpus and cost model to share it
        self.memo: dict[tuple, Prediction] = {} if memo is None else memo
        self._by_table: dict[str, list[str]] = {}
        # the child tables a write's foreign-key checks read (no plan shows them)
        self._fk: dict[str, list[Any]] = {c.name: child_keys(catalog, c.info) for c in cases}
        for c in cases:
            for table in c.info.tables | {fk.table for fk in self._fk[c.name]}:
                self._by_table.setdefault(table, []).append(c.name)

    def cases_on(self, table: str) -> list[str]:
        """Templates that read or write ``table``."""
        return self._by_table.get(table, [])

    def relevant(self, case: Case, index: IndexDef) -> bool:
        """Can ``index`` change ``case``'s plan or its writes?"""
        # names are unique per shape (see naming.Namer), and cheap to hash
        key = (case.name, index.name)
        hit = self._relevant.get(key)
        if hit is None:
            hit = self._relevant[key] = self._decide(case, index) or any(
                serves_child(fk, index) for fk in self._fk.get(case.name, ()))
        return hit

    def fk_served(self, case: Case, config: Iterable[IndexDef]) -> list[IndexDef]:
        """The indexes of ``config`` that ``case``'s foreign-key checks seek on."""
        fks = self._fk.get(case.name, ())
        return [i for i in config if any(serves_child(fk, i) for fk in fks)]

    @staticmethod
    def _decide(case: Case, index: IndexDef) -> bool:
        info = case.info
        if index.table not in info.tables:
            return False
        if info.write_table == index.table and (
                info.statement == "insert"
                or (info.statement == "update" and _mentions(index, info.set_columns))):
            return True
        needed = case.needed.get(index.table)
        if needed is None:
            return False
        keys = case.keys.get(index.table, set())
        if any(k.expr in keys for k in index.keys):
            return True
        # a covering scan (COUNT(*) takes the smallest index)
        return ALL_COLUMNS not in needed and \
            {c for c in needed if c != ROWID} <= set(index.columns)

    def relevant_set(self, case: Case, config: Iterable[IndexDef]) -> list[IndexDef]:
        """The indexes of ``config`` that can matter to ``case``."""
        tables = case.info.tables | {fk.table for fk in self._fk.get(case.name, ())}
        return [i for i in config if i.table in tables and self.relevant(case, i)]

    def cost(self, case: Case, config: Iterable[IndexDef]) -> CaseCost:
        """``case``'s predicted usage per execution under ``config`` (cached)."""
        rel = self.relevant_set(case, config)
        key = (case.name, frozenset(i.name for i in rel))
        hit = self._costs.get(key)
        if hit is not None:
            return hit
        info = case.info
        indexes = {i.name: i for i in self.catalog.indexes if i.origin != "c"}
        indexes.update({i.name: i for i in rel})
        if info.error is not None:
            result = CaseCost(0.0, 0.0, (), info.error)
        else:
            try:
                plan = self.whatif.plan(case.name, info.sql, case.params[0], rel)
            except ValueError as exc:
                result = CaseCost(0.0, 0.0, (), str(exc))
            else:
                # A write's usage also depends on every index of its table and on the
                # ones its foreign-key checks seek on, which no plan names.
                by_plan = (case.name, plan) if info.statement == "select" else None
                hit = self._by_plan.get(by_plan) if by_plan is not None else None
                if hit is not None:
                    result = hit
                else:
                    ests = [self._estimate(case, plan, values, named, indexes, by_plan is not None)
                            for values, named in zip(case.params, case.named, strict=True)]
                    result = CaseCost(sum(e.rows_read for e in ests) / len(ests),
                                      sum(e.rows_written for e in ests) / len(ests), plan)
                    if by_plan is not None:
                        self._by_plan[by_plan] = result
        self._costs[key] = result
        return result

    def _estimate(self, case: Case, plan: tuple[PlanStep, ...], values: tuple[Any, ...],
                  named: dict[str, Any], indexes: dict[str, IndexDef], read: bool) -> Prediction:
        if not read:
            return self.model.estimate(case.info, plan, named, indexes)
        key = (case.name, plan, _hashable(values))
        hit = self.memo.get(key)
        if hit is None:
            hit = self.memo[key] = self.model.estimate(case.info, plan, named, indexes)
        return hit

    def weighted(self, case: Case, config: Iterable[IndexDef]) -> float:
        """The case's share of the workload's cost under ``config``."""
        return case.weight * self.cost(case, config).total(self.write_weight)

    def total(self, config: Sequence[IndexDef], names: Iterable[str] | None = None) -> float:
        """Weighted cost of the workload (or of ``names`` only) under ``config``."""
        chosen = self.cases.values() if names is None else [self.cases[n] for n in names]
        return sum(self.weighted(c, config) for c in chosen)


def _hashable(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Parameter values as a dictionary key (a list bound as JSON, say, by its text)."""
    return tuple(v if isinstance(v, (str, int, float, bytes, type(None))) else repr(v)
                 for v in values)


def _mentions(index: IndexDef, columns: Iterable[str]) -> bool:
    text = " ".join(k.expr for k in index.keys) + " " + (index.where or "")
    return any(re.search(rf"(?i)\b{re.escape(c)}\b", text) for c in columns)

