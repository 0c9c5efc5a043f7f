"""D1's bill for one template under one plan: rows read, and rows written.

Rows read are predicted from EXPLAIN QUERY PLAN and the corpus's statistics,
counted the way workerd counts them (measured on a local D1 with this
workbench; see ``d1.md``):

* a table scan reads every row; an index or rowid search reads one row per
  positioning plus one per entry it steps through; looking the table row up
  after an index entry is not counted, so a covering index saves time, not rows;
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
from dataclasses import dataclass, field
from typing import Any

from d1bench.advisor.catalog import Catalog, IndexDef
from d1bench.advisor.query import ROWID, Pred, QueryInfo, Ref
from d1bench.advisor.stats import Stats
from d1bench.advisor.whatif import PlanRow

__all__ = ["JSON_EACH_ROWS", "RECURSION_FANOUT_LEVELS", "CostModel", "Estimate", "Loop", "parse_loop"]

#: Elements a json_each() call is assumed to step through when the data cannot say.
JSON_EACH_ROWS = 16
#: Levels a recursive CTE is assumed to expand beyond its first (its depth is a parameter).
RECURSION_FANOUT_LEVELS = 1
#: Rows an FTS5 MATCH is assumed to return when it cannot be run.
_EQ_OPS = ("eq", "in", "isnull")
#: Distinct values assumed for a GROUP BY term that is not a plain column (date(x)...).
_UNKNOWN_GROUPS = 30


@dataclass(frozen=True, slots=True)
class Loop:
    """One SCAN/SEARCH line of a plan, taken apart."""

    kind: str           # scan, search
    alias: str
    access: str         # table, index, covering, rowid, automatic, virtual, subquery
    index: str | None
    constraints: tuple[tuple[str, str], ...]  # (column text, operator)
    virtual_idx: str | None = None


_LOOP = re.compile(
    r"^(?P<kind>SCAN|SEARCH) (?P<alias>\S+)(?: AS \S+)?"
    r"(?: USING (?:"
    r"(?P<cov>COVERING |AUTOMATIC COVERING |AUTOMATIC PARTIAL COVERING |AUTOMATIC PARTIAL |AUTOMATIC )?"
    r"INDEX(?: (?P<index>[^\s(]+))?"
    r"|(?P<pk>INTEGER PRIMARY KEY|PRIMARY KEY)"
    r"))?"
    r"(?: \((?P<cons>.*)\))?")


def parse_loop(detail: str) -> Loop | None:
    """Take an EXPLAIN QUERY PLAN loop line apart (``None`` for other lines).

    >>> parse_loop("SEARCH t USING INDEX t_ab (a=? AND b>?)").constraints
    (('a', '='), ('b', '>'))
    >>> parse_loop("SEARCH u USING COVERING INDEX ix (<expr>=? AND b<?)").constraints
    (('<expr>', '='), ('b', '<'))
    >>> parse_loop("SCAN p USING COVERING INDEX i").access
    'covering'
    >>> parse_loop("SEARCH p USING INTEGER PRIMARY KEY (rowid=?)").access
    'rowid'
    """
    detail = detail.replace(" LEFT-JOIN", "").replace(" RIGHT-JOIN", "")
    if detail.startswith("SCAN ") and " VIRTUAL TABLE INDEX " in detail:
        alias = detail.split(" ")[1]
        return Loop("scan", alias, "virtual", None, (), detail.split(" VIRTUAL TABLE INDEX ", 1)[1])
    m = _LOOP.match(detail)
    if m is None:
        return None
    cov = (m.group("cov") or "").strip()
    if m.group("pk"):
        access = "rowid" if m.group("pk").startswith("INTEGER") else "index"
    elif "AUTOMATIC" in cov:
        access = "automatic"
    elif m.group("index") or cov:
        access = "covering" if cov == "COVERING" else "index"
    else:
        access = "table"
    constraints = []
    for part in (m.group("cons") or "").split(" AND "):
        part = part.strip()
        if not part or part.startswith("ANY("):
            continue
        expr = part.startswith("<expr>")
        mm = re.match(r"^(.*?)(=|>=|<=|>|<)\?$", part[len("<expr>"):] if expr else part)
        if mm:
            constraints.append(("<expr>" if expr else mm.group(1), mm.group(2)))
    return Loop(m.group("kind").lower(), m.group("alias"), access, m.group("index"),
                tuple(constraints))


@dataclass(frozen=True, slots=True)
class Estimate:
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


@dataclass
class _Block:
    read: float = 0.0
    out: float = 1.0
    blocked: bool = False
    sorted_rows: float = 0.0
    once: float = 0.0  # part of `read` paid once per statement (automatic indexes)
    full_scans: list[str] = field(default_factory=list)


class CostModel:
    """Predicts :class:`Estimate` from a plan, a template and its parameter values."""

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
            if cond == 0 and size:
                cond = 0.5 / size
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
    def estimate(self, info: QueryInfo, plan: Sequence[PlanRow], params: Mapping[str, Any],
                 indexes: Mapping[str, IndexDef]) -> Estimate:
        """Predicted usage of one execution of ``info`` under ``plan``."""
        walker = _Walker(self, info, params, indexes)
        block = walker.run(plan)
        written = 0.0
        out = block.out
        read = block.read
        if info.statement in ("insert", "update", "delete") and info.write_table:
            written = self.rows_written(info, out, indexes.values())
            if info.statement == "insert":
                # D1 enforces foreign keys: each new row looks its parents up
                parents = sum(1 for fk in self.catalog.foreign_keys if fk.table == info.write_table)
                read += parents * (1.0 if not info.refs else out)
        return Estimate(rows_read=read, rows_written=written, rows_out=out,
                        full_scans=tuple(block.full_scans))

    def rows_written(self, info: QueryInfo, changed: float, indexes: Any) -> float:
        """Rows written by one execution of a write, given the indexes on its table."""
        table = info.write_table
        on_table = [i for i in indexes if i.table == table]
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


class _Walker:
    """Walks one plan tree, block by block, accumulating rows read."""

    def __init__(self, model: CostModel, info: QueryInfo, params: Mapping[str, Any],
                 indexes: Mapping[str, IndexDef]) -> None:
        self.m = model
        self.info = info
        self.params = params
        self.indexes = indexes
        self.derived: dict[str, float] = {}
        self.used: set[int] = set()

    def run(self, plan: Sequence[PlanRow]) -> _Block:
        self.children: dict[int, list[PlanRow]] = {}
        for row in plan:
            self.children.setdefault(row.parent, []).append(row)
        main = self._main_scope()
        return self.block(self.children.get(0, []), set(), main)

    def _main_scope(self) -> int | None:
        mains = [s.index for s in self.info.scopes if s.role == "main"]
        return mains[-1] if mains else None

    def _scope_named(self, name: str) -> int | None:
        for s in self.info.scopes:
            if s.name == name.lower():
                return s.index
        return None

    def _ref(self, alias: str) -> Ref | None:
        alias = alias.lower()
        hits = [r for r in self.info.refs if r.alias == alias]
        if not hits:
            return None
        for r in hits:
            if r.index not in self.used:
                self.used.add(r.index)
                return r
        return hits[-1]

    def block(self, rows: list[PlanRow], outer: set[int], scope: int | None) -> _Block:
        b = _Block()
        cur = 1.0
        grouped = False
        done = set(outer)
        loop_read = 0.0
        late_read = 0.0
        for row in rows:
            d = row.detail
            kids = self.children.get(row.id, [])
            loop = parse_loop(d)
            if loop is not None:
                self.build = 0.0
                visited, out, full = self.loop(loop, done)
                loop_read += cur * visited
                b.read += self.build  # an automatic index is built once per statement
                b.once += self.build
                cur *= out
                if full:
                    b.full_scans.append(full)
                continue
            if d.startswith("USE TEMP B-TREE FOR GROUP BY"):
                b.blocked = True
                b.sorted_rows += cur
                cur = self._groups(scope, cur)
                grouped = True
                continue
            if d.startswith(("USE TEMP B-TREE FOR ORDER BY", "USE TEMP B-TREE FOR DISTINCT",
                             "USE TEMP B-TREE FOR RIGHT PART OF ORDER BY",
                             "USE TEMP B-TREE FOR LAST TERM OF ORDER BY",
                             "USE TEMP B-TREE FOR LAST")):
                b.blocked = True
                b.sorted_rows += cur
                continue
            if d.startswith("USE TEMP B-TREE"):
                continue  # count(DISTINCT) and the like: inserts, not reads
            if d.startswith(("MATERIALIZE ", "CO-ROUTINE ")):
                name = d.split(" ", 1)[1].strip()
                sub = self.cte(kids, name, done)
                b.read += sub.read
                b.once += sub.read
                self.derived[name.lower()] = sub.out
                continue
            if d.startswith(("CORRELATED SCALAR SUBQUERY", "CORRELATED LIST SUBQUERY")):
                sub = self.block(kids, done, None)
                late_read += cur * (sub.read - sub.once)
                b.read += sub.once
                b.once += sub.once
                continue
            if d.startswith(("SCALAR SUBQUERY", "LIST SUBQUERY", "EXISTS SUBQUERY")):
                sub = self.block(kids, done, None)
                b.read += sub.read + sub.out  # the IN list's own b-tree is read too
                b.once += sub.read + sub.out
                continue
            if d.startswith("MULTI-INDEX OR"):
                total_v, total_o = 0.0, 0.0
                for part in kids:
                    sub = self.block(self.children.get(part.id, []), done, None)
                    total_v += sub.read
                    total_o += sub.out
                loop_read += cur * total_v
                cur *= total_o
                continue
            if d.startswith(("COMPOUND QUERY", "UNION ALL", "UNION USING", "LEFT-MOST SUBQUERY",
                             "EXCEPT", "INTERSECT")):
                sub = self.block(kids, done, None)
                b.read += sub.read
                cur = sub.out if d.startswith("COMPOUND") else cur
                continue
            if kids:  # SETUP, RECURSIVE STEP outside a CTE, anything new: count what is inside
                sub = self.block(kids, done, None)
                b.read += sub.read
        # aggregates without GROUP BY return one row; an unsorted plan stops at its LIMIT
        s = self.info.scopes[scope] if scope is not None and scope < len(self.info.scopes) else None
        fraction = 1.0
        if s is not None:
            if s.aggregate or s.group_by:
                b.blocked = True
            if s.group_by and not grouped:
                cur = self._groups(scope, cur)
            limit = self._value(s.limit)
            offset = self._value(s.offset) or 0
            if limit is not None and not b.blocked and cur > 0:
                fraction = min(1.0, (limit + offset) / cur)
            if s.aggregate:
                cur = 1.0
            elif limit is not None:
                cur = min(cur, float(limit))
        b.read += (loop_read + late_read) * fraction + b.sorted_rows
        b.out = cur
        return b

    def _groups(self, scope: int | None, rows: float) -> float:
        """Groups a GROUP BY makes of ``rows`` rows: at most the product of its keys' distinct counts."""
        if scope is None or scope >= len(self.info.scopes):
            return rows
        product = 1.0
        for ref_i, key in self.info.scopes[scope].group_by:
            ref = self.info.refs[ref_i] if 0 <= ref_i < len(self.info.refs) else None
            if ref is not None and ref.kind == "table":
                product *= max(self.m.stats.distinct(ref.name, [key]), 1)
            else:
                product *= _UNKNOWN_GROUPS
        return max(min(rows, product), 1.0) if rows >= 1 else rows

    def _value(self, v: Any) -> float | None:
        if v is None:
            return None
        if isinstance(v, str):
            v = self.params.get(v)
        try:
            return float(v) if v is not None else None
        except (TypeError, ValueError):
            return None

    def cte(self, kids: list[PlanRow], name: str, outer: set[int]) -> _Block:
        setup = next((k for k in kids if k.detail == "SETUP"), None)
        step = next((k for k in kids if k.detail == "RECURSIVE STEP"), None)
        scope = self._scope_named(name)
        if setup is None or step is None:
            return self.block(kids, outer, scope)
        first = self.block(self.children.get(setup.id, []), outer, None)
        self.derived[name.lower()] = 1.0  # the step reads the queue one row at a time
        again = self.block(self.children.get(step.id, []), outer, None)
        queue = first.out
        level = first.out
        for _ in range(RECURSION_FANOUT_LEVELS):
            level *= again.out
            queue += level
        queue = min(queue, 1e7)
        per_row = again.read - again.once
        return _Block(read=first.read + again.once + queue * per_row + queue, out=queue,
                      once=first.read + again.once + queue * per_row + queue)

    # --- one loop ---------------------------------------------------------------------
    def loop(self, loop: Loop, done: set[int]) -> tuple[float, float, str | None]:
        """(rows read per execution, rows out per execution, table scanned whole)."""
        ref = self._ref(loop.alias)
        if loop.access == "virtual":
            return self.virtual(loop, ref, done)
        if ref is None or ref.kind in ("cte", "subquery", "view", "unknown"):
            rows = self.derived.get(loop.alias.lower())
            if rows is None and ref is not None and ref.kind == "view":
                rows = 1000.0
            rows = 1.0 if rows is None else rows
            if ref is not None:
                done.add(ref.index)
            if loop.kind == "search":
                if loop.access == "automatic":
                    self.build = rows
                return 1.0 + 1.0, 1.0, None
            if ref is not None:
                done.add(ref.index)
            return rows, rows, None
        table = ref.name
        n = float(self.m.stats.row_count(table))
        local, joins = self._preds(ref, done)
        out_frac = self.m.fraction(ref, local, self.params)
        join_factor = 1.0
        for p, key in joins:
            join_factor *= self.m.rows_per_key(table, key) / n if n else 0.0
        out = n * out_frac * join_factor
        done.add(ref.index)
        if loop.access == "rowid":
            eq = [c for c in loop.constraints if c[1] == "="]
            if eq:
                visited = 1.0
                out = min(out, 1.0 * self._in_count(ref, ROWID))
                return visited * self._in_count(ref, ROWID), out, None
            used = [p for p in local if p.key == ROWID and p.op == "range"]
            matches = n * self.m.fraction(ref, used, self.params)
            return 1.0 + matches, min(out, matches), None
        if loop.kind == "scan":
            if loop.access in ("index", "covering") and loop.index:
                index = self.indexes.get(loop.index)
                entries = float(self.m.stats.entries(table, index.where)) if index else n
                return entries, out, None if index and index.where else table
            return n, out, table
        # SEARCH through an index (or an automatic one)
        index = self.indexes.get(loop.index) if loop.index else None
        keys = [k.expr for k in index.keys] if index is not None else [c for c, _ in loop.constraints]
        used_local: list[Pred] = []
        factor = 1.0
        seeks = 1.0
        for pos, (_col, op) in enumerate(loop.constraints):
            if pos >= len(keys):
                break
            key = keys[pos]
            if op == "=":
                p = next((p for p in local if p.key == key and p.op in _EQ_OPS), None)
                if p is not None:
                    used_local.append(p)
                    if p.op == "in":
                        seeks *= max(len(p.params), 1)
                    continue
                jp = next((jk for jp, jk in joins if jk == key), None)
                if jp is not None:
                    factor *= self.m.rows_per_key(table, key) / n if n else 0.0
                    continue
                p = next((p for p in self.info.preds_of(ref.index) if p.key == key and p.value == "outer"), None)
                if p is not None:
                    factor *= self.m.rows_per_key(table, key) / n if n else 0.0
                    continue
                factor *= self.m.rows_per_key(table, key) / n if n else 0.0
            else:
                rng = [p for p in local if p.key == key and p.op in ("range", "like")]
                used_local += [p for p in rng if p not in used_local]
        if index is not None and index.where:
            used_local += [p for p in local if p not in used_local and
                           _stripped(p.sql) in _conjuncts(index.where)]
        matches = n * self.m.fraction(ref, used_local, self.params) * factor
        if loop.access == "automatic":
            self.build = n  # built from a scan of the table, once per statement
        out = min(out, matches)
        # an equality on every key of a UNIQUE index finds its row without stepping on
        unique_hit = index is not None and index.unique and len(loop.constraints) == len(keys) \
            and all(op == "=" for _c, op in loop.constraints)
        visited = seeks if unique_hit else seeks + matches
        return visited, out, table if loop.access == "automatic" else None

    def _in_count(self, ref: Ref, key: str) -> float:
        p = next((p for p in self.info.preds_of(ref.index) if p.key == key and p.op == "in"), None)
        return float(max(len(p.params), 1)) if p is not None and p.value == "param" else 1.0

    def _preds(self, ref: Ref, done: set[int]) -> tuple[list[Pred], list[tuple[Pred, str]]]:
        local: list[Pred] = []
        joins: list[tuple[Pred, str]] = []
        for p in self.info.preds:
            if p.op == "join":
                if p.ref == ref.index and p.other_ref in done:
                    joins.append((p, p.key))
                elif p.other_ref == ref.index and p.ref in done and p.other_key is not None:
                    joins.append((p, p.other_key))
                continue
            if p.ref != ref.index or p.refs - {ref.index}:
                continue
            if p.op == "match" or p.value in ("column", "outer"):
                continue
            local.append(p)
        return local, joins

    def virtual(self, loop: Loop, ref: Ref | None, done: set[int]) -> tuple[float, float, str | None]:
        if ref is not None:
            done.add(ref.index)
        if ref is not None and ref.kind == "fts":
            match = next((p for p in self.info.preds if p.op == "match" and ref.index in p.refs), None)
            query = self.params.get(match.params[0]) if match is not None and match.params else None
            if query is None:
                rows = max(self.m.stats.row_count(ref.name) / 100.0, 1.0)
            else:
                rows = float(self.m.stats.fts_matches(ref.name, query))
            # a MATCH returns its rows; a lookup by rowid alone reads one
            if match is None:
                return 1.0, 1.0, None
            return rows + 1.0, rows, None
        return float(JSON_EACH_ROWS), float(JSON_EACH_ROWS), None


def _stripped(sql: str) -> str:
    return re.sub(r"\b\w+\.", "", sql).strip().lower()


def _conjuncts(where: str) -> set[str]:
    return {part.strip().lower() for part in re.split(r"(?i)\s+AND\s+", where)}

