"""Walking a plan: EXPLAIN QUERY PLAN rows in, rows read per execution out.

A plan is a tree of blocks (the main query, each subquery, CTE and compound
part); within a block the SCAN/SEARCH rows are the loops of a nested-loop join,
outermost first.  Each loop reads, per execution of the loops outside it, one
row per positioning plus one per entry it steps through, and passes on the rows
that satisfy the predicates on its table; :class:`~d1bench.advisor.costmodel.CostModel`
says how many.  Sorts add the rows they sort, automatic indexes their build
once, correlated subqueries their cost once per outer row, and a block that
needs no sort stops at its LIMIT.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from d1bench.advisor.planlines import Loop, Selectivity, conjuncts, parse_loop, stripped
from d1bench.advisor.query import ROWID, Pred, QueryInfo, Ref
from d1bench.sql.catalog import IndexDef
from d1bench.sql.session import PlanStep

__all__ = ["JSON_EACH_ROWS", "RECURSION_FANOUT_LEVELS", "Loop", "Selectivity", "Walker", "parse_loop"]

#: Elements a json_each() call is assumed to step through when the data cannot say.
JSON_EACH_ROWS = 16
#: Levels a recursive CTE is assumed to expand beyond its first (its depth is a parameter).
RECURSION_FANOUT_LEVELS = 1
_EQ_OPS = ("eq", "in", "isnull")
#: Distinct values assumed for a GROUP BY term that is not a plain column (date(x)...).
_UNKNOWN_GROUPS = 30


@dataclass
class _Block:
    read: float = 0.0
    out: float = 1.0
    blocked: bool = False
    sorted_rows: float = 0.0
    once: float = 0.0  # part of `read` paid once per statement (automatic indexes)
    full_scans: list[str] = field(default_factory=list)


class Walker:
    """Walks one plan tree, block by block, accumulating rows read."""

    def __init__(self, model: Selectivity, info: QueryInfo, params: Mapping[str, Any],
                 indexes: Mapping[str, IndexDef]) -> None:
        self.m = model
        self.info = info
        self.params = params
        self.indexes = indexes
        self.derived: dict[str, float] = {}
        self.used: set[int] = set()
        self.last: tuple[Ref, list[Pred]] | None = None  # the table loop() last walked
        self.flow: dict[int, float] = {}  # rows out of the loops so far, by reference

    def run(self, plan: Sequence[PlanStep]) -> _Block:
        self.children: dict[int, list[PlanStep]] = {}
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

    def block(self, rows: list[PlanStep], outer: set[int], scope: int | None) -> _Block:
        b = _Block()
        cur = 1.0
        grouped = False
        scans: list[tuple[Loop, Ref | None, list[Pred]]] = []  # this block's loops
        done = set(outer)
        loop_read = 0.0
        late_read = 0.0
        lazy: dict[str, float] = {}  # materialised subqueries not yet reached by a loop
        for row in rows:
            d = row.detail
            kids = self.children.get(row.id, [])
            loop = parse_loop(d)
            if loop is not None:
                cost = lazy.pop(loop.alias.lower(), None)
                if cost is not None:
                    b.read += cost * _reached(cur)
                    b.once += cost * _reached(cur)
                self.build = 0.0
                self.last = None
                visited, out, full = self.loop(loop, done)
                scans.append((loop, *self.last) if self.last else (loop, None, []))
                loop_read += cur * visited
                # an automatic index is built once per statement, when a row first needs it
                b.read += self.build * _reached(cur)
                b.once += self.build * _reached(cur)
                cur *= out
                if self.last is not None:
                    self.flow[self.last[0].index] = cur
                if full:
                    b.full_scans.append(full)
                continue
            if d.startswith("USE TEMP B-TREE FOR GROUP BY"):
                b.blocked = True
                b.sorted_rows += _sorted(cur)
                cur = self._groups(scope, cur)
                grouped = True
                continue
            if d.startswith(("USE TEMP B-TREE FOR ORDER BY", "USE TEMP B-TREE FOR DISTINCT",
                             "USE TEMP B-TREE FOR RIGHT PART OF ORDER BY",
                             "USE TEMP B-TREE FOR LAST TERM OF ORDER BY",
                             "USE TEMP B-TREE FOR LAST")):
                b.blocked = True
                s_ = self.info.scopes[scope] if scope is not None and scope < len(self.info.scopes) \
                    else None
                # groups that stream out of an index in order are sorted as groups, not rows
                b.sorted_rows += _sorted(self._groups(scope, cur) if s_ is not None
                                         and s_.group_by and not grouped else cur)
                continue
            if d.startswith("USE TEMP B-TREE"):
                continue  # count(DISTINCT) and the like: inserts, not reads
            if d.startswith(("MATERIALIZE ", "CO-ROUTINE ")):
                name = d.split(" ", 1)[1].strip()
                sub = self.cte(kids, name, done)
                self.derived[name.lower()] = sub.out
                if d.startswith("MATERIALIZE "):
                    # built the first time a row reaches its loop (OP_Once): paid with
                    # the odds that one does, settled when the loop is met below
                    lazy[name.lower()] = sub.read
                    continue
                b.read += sub.read
                b.once += sub.read
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
        for cost in lazy.values():  # used somewhere no loop of this block shows
            b.read += cost
            b.once += cost
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
                exact = self._ordered_scan(scans, s, limit + offset) if fraction < 1.0 else None
                if exact is not None:
                    # the rows that pass may sit anywhere in the scan's order: counted
                    fraction = exact / loop_read if loop_read > 0 else 1.0
            if s.aggregate:
                cur = 1.0
            elif limit is not None:
                cur = min(cur, float(limit))
        b.read += (loop_read + late_read) * fraction + b.sorted_rows
        b.out = cur
        return b

    def _ordered_scan(self, scans: list[tuple[Loop, Ref | None, list[Pred]]], scope: Any,
                      wanted: float) -> float | None:
        """Rows read by a block that is one scan of a table (in rowid or index order) with
        a filter, stopping at its LIMIT: the position of the ``wanted``-th passing row,
        counted from the data (``None`` for any other block)."""
        if len(scans) != 1 or scope.group_by or scope.aggregate:
            return None
        loop, ref, preds = scans[0]
        if ref is None or ref.kind != "table" or loop.kind != "scan" or not preds \
                or loop.access not in ("table", "index", "covering"):
            return None
        if loop.access == "table":
            keys: list[str] = []
        else:
            index = self.indexes.get(loop.index) if loop.index else None
            if index is None or index.where:
                return None
            keys = [k.expr for k in index.keys]
        desc = bool(scope.order_by) and scope.order_by[0][2]
        return self.m.scan_until(ref, keys, desc, preds, self.params, wanted)

    def _groups(self, scope: int | None, rows: float) -> float:
        """Groups a GROUP BY makes of ``rows`` rows: at most the product of its keys' distinct
        counts, each no more than the rows its table gave (a tenant's 311 projects grouped
        by project id make 311 groups, not one per project of every tenant)."""
        if scope is None or scope >= len(self.info.scopes):
            return rows
        product = 1.0
        for ref_i, key in self.info.scopes[scope].group_by:
            ref = self.info.refs[ref_i] if 0 <= ref_i < len(self.info.refs) else None
            values = float(self.m.stats.distinct(ref.name, [key])) \
                if ref is not None and ref.kind == "table" else float(_UNKNOWN_GROUPS)
            product *= max(min(values, self.flow.get(ref_i, values)), 1.0)
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

    def cte(self, kids: list[PlanStep], name: str, outer: set[int]) -> _Block:
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
        # the rows of the last level leave the queue without running the step: its
        # depth test (`level < ?`) sits on the queue's loop and stops them there
        stepped = max(queue - level, first.out) if RECURSION_FANOUT_LEVELS else queue
        total = first.read + again.once + stepped * per_row + queue
        return _Block(read=total, out=queue, once=total)

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
        # `a.k = b.k` holds only where a.k IS NOT NULL: that conjunct is the join's own
        keys_joined = {key for _p, key in joins}
        local = [p for p in local if not (p.op == "notnull" and p.key in keys_joined)]
        self.last = (ref, local)
        # the first join's fan-out is counted over the rows this table's exact
        # predicates keep (a project's open tasks, not its tasks times the open share)
        join_factor, applied = 1.0, []
        for i, (p, key) in enumerate(joins):
            per_row, _found, used = self._fanout(ref, p, key, local if i == 0 else [])
            join_factor *= per_row / n if n else 0.0
            applied += used
        out_frac = self.m.fraction(ref, [p for p in local if p not in applied], self.params)
        out = n * out_frac * join_factor
        done.add(ref.index)
        if loop.access == "rowid":
            eq = [c for c in loop.constraints if c[1] == "="]
            if eq:
                k = self._in_count(ref, ROWID)
                out = min(out, k)
                # one seek per value, plus a step through the IN list's own b-tree for each
                return (2.0 * k if k > 1 else 1.0), out, None
            used = [p for p in local if p.key == ROWID and p.op == "range"]
            matches = n * self.m.fraction(ref, used, self.params)
            return 1.0 + matches, min(out, matches), None
        if loop.kind == "scan":
            # a scan reads each entry, and an empty one still reads one (its Rewind)
            if loop.access in ("index", "covering") and loop.index:
                index = self.indexes.get(loop.index)
                entries = float(self.m.stats.entries(table, index.where)) if index else n
                return max(entries, 1.0), out, None if index and index.where else table
            return max(n, 1.0), out, table
        # SEARCH through an index (or an automatic one)
        index = self.indexes.get(loop.index) if loop.index else None
        if index is None and loop.access == "index" and loop.index is None:
            # "USING PRIMARY KEY": a WITHOUT ROWID table's own b-tree, unique on its keys
            index = next((i for i in self.m.catalog.indexes_on(table) if i.origin == "pk"), None)
        keys = [k.expr for k in index.keys] if index is not None else [c for c, _ in loop.constraints]
        used_local: list[Pred] = []
        factor = 1.0
        seeks = 1.0
        found = 1.0  # share of seeks that find an entry (a join's keys may miss)
        seek_joins: list[tuple[Pred, str]] = []  # join keys the index seeks on
        for pos, (_col, op) in enumerate(loop.constraints):
            if pos >= len(keys):
                break
            key = keys[pos]
            if op == "any":
                # skip-scan: one seek per distinct value of the key, every one of them
                seeks *= max(float(self.m.stats.distinct(table, [key])), 1.0)
                continue
            if op == "=":
                matched = next((p for p in local if p.key == key and p.op in _EQ_OPS), None)
                if matched is not None:
                    used_local.append(matched)
                    if matched.op == "in":
                        k = _listed(matched)
                        seeks = seeks * k + (k if k > 1 else 0.0)  # the IN list is read too
                    continue
                joined = next((jp for jp, jk in joins if jk == key), None)
                if joined is not None:
                    seek_joins.append((joined, key))
                    continue
                outer = next((p for p in self.info.preds_of(ref.index)
                              if p.key == key and p.value == "outer"), None)
                if outer is not None:
                    factor *= self.m.rows_per_key(table, key) / n if n else 0.0
                    continue
                factor *= self.m.rows_per_key(table, key) / n if n else 0.0
            else:
                rng = [p for p in local if p.key == key and p.op in ("range", "like")]
                used_local += [p for p in rng if p not in used_local]
        if index is not None and index.where:
            used_local += [p for p in local if p not in used_local and
                           stripped(p.sql) in conjuncts(index.where)]
        applied = []
        for i, (p, key) in enumerate(seek_joins):
            # entries the seek steps through: counted over the rows that also meet the
            # other keys it seeks on (and a partial index's WHERE), not multiplied by them
            per_row, share, used = self._fanout(ref, p, key, used_local if i == 0 else [])
            factor *= per_row / n if n else 0.0
            found = min(found, share)
            applied += used
        matches = n * self.m.fraction(ref, [p for p in used_local if p not in applied],
                                      self.params) * factor
        if loop.access == "automatic":
            self.build = n  # built from a scan of the table, once per statement
        out = min(out, matches)
        # an equality on every key of a UNIQUE index finds its row without stepping on
        unique_hit = index is not None and index.unique and len(loop.constraints) == len(keys) \
            and all(op == "=" for _c, op in loop.constraints)
        # ... and an equality seek that finds nothing is not billed (measured on local D1),
        # unique or not: a join whose keys often miss pays only for the seeks that hit
        equality_only = all(op == "=" for _c, op in loop.constraints)
        if equality_only and not seek_joins and matches == 0 and \
                all(self.m.exactable(p) for p in used_local):
            found = 0.0  # the values are known to find nothing (counted, not sampled)
        if unique_hit:
            visited = min(seeks, matches)
        elif equality_only and found < 1.0:
            visited = seeks * found + matches
        else:
            visited = seeks + matches
        return visited, out, table if loop.access == "automatic" else None

    def _fanout(self, ref: Ref, p: Pred, key: str,
                inner: Sequence[Pred]) -> tuple[float, float, list[Pred]]:
        """Through the join ``p`` on ``ref``'s ``key``: (rows of ``ref`` per outer row that
        also meet the countable ones of ``inner``, share of outer rows that find one, the
        predicates of ``inner`` that count includes).  Counted from the data when the
        outer side is a stored table; else the average rows per key, every seek finding
        one, and no predicate included."""
        other, other_key = (p.other_ref, p.other_key) if p.ref == ref.index else (p.ref, p.key)
        outer = self.info.refs[other] if other is not None and 0 <= other < len(self.info.refs) \
            else None
        if outer is not None and other_key is not None:
            local, _ = self._preds(outer, set())
            got = self.m.join_fanout(ref, key, inner, outer, other_key, local, self.params)
            if got is not None:
                return got
        return self.m.rows_per_key(ref.name, key), 1.0, []

    def _in_count(self, ref: Ref, key: str) -> float:
        p = next((p for p in self.info.preds_of(ref.index) if p.key == key and p.op == "in"), None)
        return _listed(p) if p is not None else 1.0

    def _preds(self, ref: Ref, done: set[int]) -> tuple[list[Pred], list[tuple[Pred, str]]]:
        local: list[Pred] = []
        joins: list[tuple[Pred, str]] = []
        for p in self.info.preds:
            if p.op == "join":
                if p.ref == ref.index and p.other_ref in done and p.key is not None:
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


def _reached(rows: float) -> float:
    """Odds that at least one row reaches a loop expecting ``rows`` (Poisson), which is
    when a lazily built subquery or automatic index gets built.

    >>> round(_reached(0.1), 3), round(_reached(5.0), 3)
    (0.095, 0.993)
    """
    import math

    return 1.0 - math.exp(-max(rows, 0.0))


def _sorted(rows: float) -> float:
    """Rows read back from a sorter given ``rows`` expected rows: one per row, and the
    positioning (``SorterSort``) counts one even when the sorter is empty: the chance
    of that (Poisson) is added.

    >>> _sorted(0.0), round(_sorted(1000.0), 3)
    (1.0, 1000.0)
    """
    return rows + 1.0 - _reached(rows)


def _listed(p: Pred) -> float:
    """Values an IN list holds (each one is a seek)."""
    if p.value == "literal" and isinstance(p.literal, tuple):
        return float(max(len(p.literal), 1))
    return float(max(len(p.params), 1)) if p.value == "param" else 1.0
