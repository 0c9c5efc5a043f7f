"""D1's bill for one template under one plan: rows read, and rows written.

Rows read are predicted from EXPLAIN QUERY PLAN and the corpus's statistics,
counted the way workerd counts them (measured on a local D1 with this
workbench; see ``d1.md``):

* a table scan reads every row; an index or rowid search reads one row per
  positioning plus one per entry it steps through; looking the table row up
  after an index entry is not counted, for a rowid table and for a WITHOUT
  ROWID one alike, so a covering index saves time, not rows, unless it changes
  the plan; an equality seek on a unique key that finds nothing reads nothing;
* an IN list is read as a b-tree of its own, one row per value; a skip-scan
  seeks once per distinct value of the key it skips;
* foreign-key checks and ``CHECK (col IN (...))`` constraints, which no plan
  shows, are added by :mod:`~d1bench.advisor.foreign`;
* rows that go through a temporary b-tree (ORDER BY, GROUP BY, DISTINCT sorts)
  are counted again; ``COUNT(*)`` counts every entry of the b-tree it counts;
* a plan that needs no sort stops early at its LIMIT.

How many entries a step goes through comes from :class:`~d1bench.advisor.stats.Stats`:
exact counts for equality and IS NULL (with the template's own parameter
values), the sample for everything else.

Rows written: one per row, plus one per index entry inserted (a partial index
only for the rows it holds); an UPDATE writes an index only when it changes one
of its keys; deleting index entries is free.  Those rules come from the same
measurements.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from d1bench.advisor.planwalk import Walker
from d1bench.advisor.query import ROWID, Pred, QueryInfo, Ref
from d1bench.advisor.stats import Stats
from d1bench.sql.catalog import Catalog, IndexDef
from d1bench.sql.session import PlanStep

__all__ = ["CostModel", "Prediction"]



@dataclass(frozen=True, slots=True)
class Prediction:
    """Predicted D1 usage of one execution of a template.

    Attributes:
        rows_read: rows read, as D1 counts them.
        rows_written: rows written (index entries included).
        rows_out: rows the statement produces (or changes, for writes).
        full_scans: tables scanned whole.
    """

    rows_read: float
    rows_written: float = 0.0
    rows_out: float = 0.0
    full_scans: tuple[str, ...] = ()


class CostModel:
    """Predicts :class:`Prediction` from a plan, a template and its parameter values."""

    def __init__(self, catalog: Catalog, stats: Stats) -> None:
        self.catalog = catalog
        self.stats = stats
        self._fractions: dict[tuple, float] = {}

    # --- fractions of a table --------------------------------------------------------
    def fraction(self, ref: Ref, preds: Sequence[Pred], params: Mapping[str, Any]) -> float:
        """Fraction of ``ref``'s table rows satisfying all of ``preds`` (local ones only)."""
        if not preds:
            return 1.0
        key = (ref.name, ref.alias, tuple(sorted(p.sql for p in preds)),
               tuple(sorted((k, _hashable(v)) for k, v in params.items()
                            if any(k in p.params for p in preds))))
        if key in self._fractions:
            return self._fractions[key]
        exact, rest = [], []
        for p in preds:
            (exact if self._exactable(p) else rest).append(p)
        n = self.stats.row_count(ref.name)
        frac = 1.0
        if exact:
            frac = self._exact_fraction(ref, exact, params)
        if rest and frac > 0:
            size = self.stats.sample_size(ref.name)
            rest_sql = [p.sql for p in rest if p.value != "subquery"]
            cond = None
            if exact and rest_sql:
                both = self.stats.sample_fraction(ref.name, ref.alias, [p.sql for p in exact] + rest_sql, params)
                base = self.stats.sample_fraction(ref.name, ref.alias, [p.sql for p in exact], params)
                if both is not None and base is not None and base * size >= 20:
                    cond = both / base
            if cond is None and rest_sql:
                cond = self.stats.sample_fraction(ref.name, ref.alias, rest_sql, params)
            if cond is None:
                cond = 0.3 ** len(rest_sql) if rest_sql else 1.0
            if cond == 0 and size and rest_sql:
                # nothing in the sample: count on the corpus itself (once per values),
                # rather than guess half a sampled row
                counted = self.stats.corpus_fraction(ref.name, ref.alias, rest_sql, params)
                cond = counted if counted is not None else 0.5 / size
            frac *= cond
            if any(p.value == "subquery" for p in rest):
                frac *= 0.5
        frac = min(max(frac, 0.0), 1.0)
        if n and frac * n < 1e-6:
            frac = 0.0
        self._fractions[key] = frac
        return frac

    @staticmethod
    def _exactable(p: Pred) -> bool:
        return p.key is not None and (
            (p.op == "eq" and p.value in ("param", "literal"))
            or (p.op == "in" and p.value == "param")
            or p.op == "isnull")

    def _exact_fraction(self, ref: Ref, preds: Sequence[Pred], params: Mapping[str, Any]) -> float:
        import numpy as np

        n = self.stats.row_count(ref.name)
        if n == 0:
            return 0.0
        mask = np.ones(n, dtype=bool)
        for p in preds:
            series = self.stats.values(ref.name, p.key)
            if p.op == "isnull":
                mask &= series.isna().to_numpy()
                continue
            if p.op == "eq" and p.value == "literal":
                values = [p.literal]
            else:
                values = [params.get(name) for name in p.params]
            values = [v for v in values if v is not None]
            if not values:
                return 0.0
            if isinstance(values[0], str) and len(series) and not isinstance(series.iloc[0], str):
                values = values + [_number(v) for v in values]
            mask &= series.isin(values).to_numpy()
        return float(mask.sum()) / n

    def rows_per_key(self, table: str, key: str) -> float:
        if key == ROWID:
            return 1.0
        return self.stats.rows_per_key(table, key)

    # --- plans ----------------------------------------------------------------------------
    def estimate(self, info: QueryInfo, plan: Sequence[PlanStep], params: Mapping[str, Any],
                 indexes: Mapping[str, IndexDef]) -> Prediction:
        """Predicted usage of one execution of ``info`` under ``plan``."""
        walker = Walker(self, info, params, indexes)
        block = walker.run(plan)
        written = 0.0
        out = block.out
        read = block.read
        if info.statement in ("insert", "update", "delete") and info.write_table:
            from d1bench.advisor.foreign import fk_reads

            written = self.rows_written(info, out, indexes.values())
            changed = 1.0 if info.statement == "insert" and not info.refs else out
            loops = [r.detail for r in plan if r.detail.startswith(("SCAN ", "SEARCH "))]
            single = changed <= 1 and len(loops) == 1 and loops[0].endswith("(rowid=?)")
            existing = {**{i.name: i for i in self.catalog.indexes if i.origin != "c"}, **indexes}
            read += fk_reads(self.catalog, self.stats, info, changed, existing.values(), single)
        return Prediction(rows_read=read, rows_written=written, rows_out=out,
                        full_scans=tuple(block.full_scans))

    def rows_written(self, info: QueryInfo, changed: float, indexes: Any) -> float:
        """Rows written by one execution of a write, given the indexes on its table."""
        table = info.write_table
        td = self.catalog.table(table)
        # a WITHOUT ROWID table is its primary-key b-tree: that is the row, not an extra entry
        on_table = [i for i in indexes if i.table == table
                    and not (i.origin == "pk" and td is not None and td.without_rowid)]
        if info.statement == "insert":
            rows = 1.0 if not info.refs else max(changed, 0.0)
            per_row = 1.0 + sum(self.index_share(i) for i in on_table)
            return rows * per_row
        if info.statement == "update":
            touched = [i for i in on_table if _touches(i, info.set_columns)]
            return changed * (1.0 + sum(self.index_share(i) for i in touched))
        return changed

    def index_share(self, index: IndexDef) -> float:
        """Fraction of the table's rows an index holds (1 unless partial)."""
        if index.where is None:
            return 1.0
        n = self.stats.row_count(index.table)
        return self.stats.entries(index.table, index.where) / n if n else 1.0


def _touches(index: IndexDef, columns: frozenset[str]) -> bool:
    lower = {c.lower() for c in columns}
    for k in index.keys:
        if any(re.search(rf"\b{re.escape(c)}\b", k.expr.lower()) for c in lower):
            return True
    return bool(index.where) and any(re.search(rf"\b{re.escape(c)}\b", index.where.lower())
                                     for c in lower)


def _number(v: Any) -> Any:
    try:
        return int(v)
    except (TypeError, ValueError):
        try:
            return float(v)
        except (TypeError, ValueError):
            return v


def _hashable(v: Any) -> Any:
    return v if isinstance(v, (str, int, float, type(None))) else repr(v)
