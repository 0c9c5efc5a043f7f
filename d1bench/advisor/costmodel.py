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
only for the rows it holds: for a one-row INSERT ... VALUES, whether its own values
meet the index's WHERE); an UPDATE writes an index only when it changes one
of its keys; deleting index entries is free.  Those rules come from the same
measurements.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from d1bench.advisor.masks import Masks, as_number, exactable
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


#: Rows kept by a template's equality predicates up to which the rest of its predicates
#: are counted among exactly those rows on the corpus (one rowid seek each), rather than
#: taken from the sample as if independent of them.
EXACT_AMONG_ROWS = 50_000


#: Largest table whose ordered scans with a LIMIT are counted row by row.
EXACT_SCAN_ROWS = 2_000_000


class CostModel:
    """Predicts :class:`Prediction` from a plan, a template and its parameter values."""

    def __init__(self, catalog: Catalog, stats: Stats) -> None:
        self.catalog = catalog
        self.stats = stats
        self._fractions: dict[tuple, float] = {}
        self._joins: dict[tuple, tuple[float, float, list[Pred]] | None] = {}
        self._inserted: dict[str, str | None] = {}  # statement text -> the row it inserts
        self.masks = Masks(stats)

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
        n = self.stats.row_count(ref.name)
        mask, exact, rest = self.masks.counted(ref, preds, params)
        frac = 1.0 if mask is None else (float(mask.sum()) / n if n else 0.0)
        if rest and frac > 0:
            size = self.stats.sample_size(ref.name)
            rest_sql = [p.sql for p in rest if p.value != "subquery"]
            cond = None
            among = False
            if mask is not None and rest_sql and mask.sum() <= EXACT_AMONG_ROWS:
                # few rows pass the exact part: count the rest among exactly those rows
                # (a device's readings in one day are not the day's share of its readings)
                cond = self.stats.fraction_among(ref.name, ref.alias, mask, rest_sql, params)
                among = cond is not None
            if cond is None and exact and rest_sql:
                both = self.stats.sample_fraction(ref.name, ref.alias, [p.sql for p in exact] + rest_sql, params)
                base = self.stats.sample_fraction(ref.name, ref.alias, [p.sql for p in exact], params)
                if both is not None and base is not None and base * size >= 20:
                    cond = both / base
            if cond is None and rest_sql:
                cond = self.stats.sample_fraction(ref.name, ref.alias, rest_sql, params)
            if cond is None:
                cond = 0.3 ** len(rest_sql) if rest_sql else 1.0
            if cond == 0 and size and rest_sql and not among:
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

    def exactable(self, p: Pred) -> bool:
        """Whether ``p`` is counted exactly from every row's values whatever its values
        (equality with a bound or literal value, IN a list of bound values, IS NULL)."""
        return exactable(p)

    def join_fanout(self, inner: Ref, inner_key: str, inner_preds: Sequence[Pred], outer: Ref,
                    outer_key: str, outer_preds: Sequence[Pred],
                    params: Mapping[str, Any]) -> tuple[float, float, list[Pred]] | None:
        """Through a join of ``outer`` to ``inner`` on the keys: (rows of ``inner`` per
        outer row, the share of outer rows that find one, the predicates of
        ``inner_preds`` that count includes).  Outer rows are those the countable
        predicates of ``outer_preds`` keep; inner rows are counted among those the
        countable ones of ``inner_preds`` keep (:class:`~d1bench.advisor.masks.Masks`).

        Counted from every row's values, not from the average rows per key: a join from
        a specialty's papers to the reads of each paper meets the papers people read
        (most papers were never read), and a per-key average of the readers' table
        misses that by half.  ``None`` when ``outer`` is not a stored table.
        """
        if outer.kind != "table" or self.stats.row_count(outer.name) == 0:
            return None
        key = ("join", inner.name, inner_key, tuple(sorted(p.sql for p in inner_preds)),
               outer.name, outer_key, tuple(sorted(p.sql for p in outer_preds)),
               tuple(sorted((k, _hashable(v)) for k, v in params.items()
                            if any(k in p.params for p in [*outer_preds, *inner_preds]))))
        if key not in self._joins:
            self._joins[key] = self._fanout(inner, inner_key, inner_preds, outer, outer_key,
                                            outer_preds, params)
        return self._joins[key]

    def _fanout(self, inner: Ref, inner_key: str, inner_preds: Sequence[Pred], outer: Ref,
                outer_key: str, outer_preds: Sequence[Pred],
                params: Mapping[str, Any]) -> tuple[float, float, list[Pred]] | None:
        mask, _done, _rest = self.masks.counted(outer, outer_preds, params)
        values = self.stats.values(outer.name, outer_key)
        if mask is not None:
            if not mask.any():
                return None  # no outer row: the loop never runs, whatever its fan-out
            values = values[mask]
        # NULL outer keys join nothing, but they are outer rows all the same
        rows = float(len(values))
        chosen = values.dropna()
        inner_mask, applied, _rest = self.masks.counted(inner, inner_preds, params)
        inner_values = self.stats.values(inner.name, inner_key)
        freq = (inner_values if inner_mask is None else inner_values[inner_mask]) \
            .value_counts(dropna=False) if applied else self.stats.frequencies(inner.name, inner_key)
        if not len(chosen) or not len(freq):
            return 0.0, 0.0, applied
        counts = chosen.map(freq).fillna(0.0)
        if not counts.any() and isinstance(chosen.iloc[0], str):
            counts = chosen.map(as_number).map(freq).fillna(0.0)
        return float(counts.sum()) / rows, float((counts > 0).sum()) / rows, applied

    def scan_until(self, ref: Ref, keys: Sequence[str], desc: bool, preds: Sequence[Pred],
                   params: Mapping[str, Any], wanted: float) -> float | None:
        """Rows a scan of ``ref``'s table in the order of ``keys`` (then rowid; rowid
        alone when ``keys`` is empty), backwards when ``desc``, reads until ``wanted``
        rows have passed ``preds``: the whole table when fewer pass.

        Which rows pass is counted on the corpus, so a filter whose rows cluster in
        the scan's order (a label search over a label index stops at the labels
        that match, not after a uniform share of the table) is priced as it runs.
        ``None`` when the order cannot be reproduced here (a WITHOUT ROWID table,
        values of mixed types in a key, or SQLite refusing a predicate).
        """
        table = ref.name
        n = self.stats.row_count(table)
        if n == 0 or n > EXACT_SCAN_ROWS:
            return None
        mask, _done, rest = self.masks.counted(ref, preds, params)
        # predicates the masks answer need no scan of the corpus; the others do
        passing = mask if mask is not None and not rest else \
            self.stats.passing(table, ref.alias, [p.sql for p in preds], params)
        order = self.stats.order(table, tuple(keys))
        if passing is None or order is None:
            return None
        hits = passing[order[::-1] if desc else order]
        total = int(hits.sum())
        need = max(int(-(-wanted // 1)), 1)
        if total < need:
            return float(n)
        import numpy as np

        return float(np.searchsorted(np.cumsum(hits), need) + 1)

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

            written = self.rows_written(info, out, indexes.values(), params)
            changed = 1.0 if info.statement == "insert" and not info.refs else out
            loops = [r.detail for r in plan if r.detail.startswith(("SCAN ", "SEARCH "))]
            single = changed <= 1 and len(loops) == 1 and loops[0].endswith("(rowid=?)")
            existing = {**{i.name: i for i in self.catalog.indexes if i.origin != "c"}, **indexes}
            read += fk_reads(self.catalog, self.stats, info, changed, existing.values(), single)
        return Prediction(rows_read=read, rows_written=written, rows_out=out,
                        full_scans=tuple(block.full_scans))

    def rows_written(self, info: QueryInfo, changed: float, indexes: Any,
                     params: Mapping[str, Any] | None = None) -> float:
        """Rows written by one execution of a write, given the indexes on its table.

        A one-row ``INSERT ... VALUES`` writes a partial index's entry when its own
        values (``params`` bound) meet the index's WHERE; other writes, the share of
        the table's rows the index holds."""
        table = info.write_table
        td = self.catalog.table(table) if table is not None else None
        # a WITHOUT ROWID table is its primary-key b-tree: that is the row, not an extra entry
        on_table = [i for i in indexes if i.table == table
                    and not (i.origin == "pk" and td is not None and td.without_rowid)]
        if info.statement == "insert":
            rows = 1.0 if not info.refs else max(changed, 0.0)
            row = None
            if not info.refs:
                if info.text not in self._inserted:
                    self._inserted[info.text] = _inserted_row(info, self.catalog,
                                                              self.stats.conn)
                row = self._inserted[info.text]
            per_row = 1.0 + sum(self._holds(i, row, params) for i in on_table)
            return rows * per_row
        if info.statement == "update":
            touched = [i for i in on_table if _touches(i, info.set_columns)]
            return changed * (1.0 + sum(self.index_share(i) for i in touched))
        return changed

    def _holds(self, index: IndexDef, row: str | None, params: Mapping[str, Any] | None) -> float:
        """Entries of ``index`` an inserted ``row`` (a one-row SELECT) writes."""
        if index.where is None or row is None:
            return self.index_share(index)
        import apsw

        try:
            (hit,) = next(iter(self.stats.conn.execute(
                f"SELECT ({index.where}) FROM ({row})", dict(params or {}))))
        except (apsw.Error, StopIteration):
            return self.index_share(index)
        return 1.0 if hit else 0.0

    def index_share(self, index: IndexDef) -> float:
        """Fraction of the table's rows an index holds (1 unless partial)."""
        if index.where is None:
            return 1.0
        n = self.stats.row_count(index.table)
        return self.stats.entries(index.table, index.where) / n if n else 1.0


def _inserted_row(info: QueryInfo, catalog: Any, conn: Any) -> str | None:
    """The row a one-row ``INSERT ... VALUES`` writes, as a one-row SELECT naming every
    column of its table (a column left out takes its declared default, or NULL);
    ``None`` for any other insert."""
    from sqlglot import exp

    tree, td = info.tree, catalog.table(info.write_table or "")
    if not isinstance(tree, exp.Insert) or td is None or not isinstance(tree.this, exp.Schema):
        return None
    values = tree.expression
    if not isinstance(values, exp.Values) or len(values.expressions) != 1:
        return None
    names = [c.name.lower() for c in tree.this.expressions]
    given = values.expressions[0].expressions
    if len(names) != len(given):
        return None
    by_name = dict(zip(names, (v.sql("sqlite") for v in given), strict=True))
    defaults = {r[1]: r[4] for r in conn.execute(f"PRAGMA table_info(\"{td.name}\")")
                if r[4] is not None}
    cols = []
    for col in td.columns:
        value = by_name.get(col.lower(), defaults.get(col, "NULL"))
        if col == td.rowid_alias and col.lower() not in by_name:
            value = f"(SELECT coalesce(max(rowid), 0) + 1 FROM {td.name})"
        cols.append(f'{value} AS "{col}"')
    return "SELECT " + ", ".join(cols)


def _touches(index: IndexDef, columns: frozenset[str]) -> bool:
    lower = {c.lower() for c in columns}
    for k in index.keys:
        if any(re.search(rf"\b{re.escape(c)}\b", k.expr.lower()) for c in lower):
            return True
    where = (index.where or "").lower()
    return bool(where) and any(re.search(rf"\b{re.escape(c)}\b", where) for c in lower)


def _hashable(v: Any) -> Any:
    return v if isinstance(v, (str, int, float, type(None))) else repr(v)
