"""The walk behind :func:`d1bench.advisor.query.analyze`: scopes, references, columns.

One pass over the sqlglot tree: every SELECT (and the WHERE of an UPDATE or
DELETE) becomes a scope; every FROM/JOIN source a reference (tables, views, FTS5
tables, CTEs, derived tables, table-valued functions such as json_each); every
column is resolved to the reference it belongs to, in its own scope or an
enclosing one (which makes the scope correlated).  Views are walked from their
own SQL, since SQLite plans them inside the query.  Conjuncts are classified by
:class:`~d1bench.advisor.predicates.PredicateMixin`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from d1bench.advisor.predicates import ROWID, Pred, PredicateMixin
from d1bench.advisor.scopes import Ref, Scope
from d1bench.sql.catalog import Catalog
from d1bench.sql.parsing import (
    ParseFailure,
    canonical_key,
    indexable_expression,
    literal_value,
    number_placeholders,
    parse_statement,
)

__all__ = ["QueryInfoBuilder", "Unsupported"]


class Unsupported(Exception):
    """A statement shape the walk cannot follow; the template keeps the message as its error."""


@dataclass
class _RefB:
    index: int
    name: str
    alias: str
    scope: int
    kind: str
    columns: set[str] = field(default_factory=set)
    left_join: bool = False
    out_columns: set[str] | None = None  # derived tables / CTEs: their output names


class QueryInfoBuilder(PredicateMixin):
    """Collects scopes, references and conjuncts while walking one statement."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.refs: list[_RefB] = []
        self.scopes: list[Scope] = []
        self.preds: list[Pred] = []
        self.kind = "other"
        self.write_table: str | None = None
        self.set_columns: set[str] = set()
        self.uses_fts = False
        self.star = False
        self.ctes: dict[str, list[str] | None] = {}

    # --- results -----------------------------------------------------------
    def final_refs(self) -> list[Ref]:
        return [Ref(r.index, r.name, r.alias, r.scope, r.kind, frozenset(r.columns), r.left_join)
                for r in self.refs]

    def final_scopes(self) -> list[Scope]:
        return list(self.scopes)

    # Scopes are the frozen records themselves, replaced as the walk learns more.
    def _set(self, scope: int, **changes: Any) -> None:
        self.scopes[scope] = replace(self.scopes[scope], **changes)

    def _append(self, scope: int, name: str, item: Any) -> None:
        self._set(scope, **{name: (*getattr(self.scopes[scope], name), item)})

    # --- statements ----------------------------------------------------------
    def statement(self, tree: Any) -> None:
        from sqlglot import exp

        self._ctes(tree)
        if isinstance(tree, exp.Query):
            self.kind = "select"
            self.query(tree, None, "main")
        elif isinstance(tree, exp.Insert):
            self.kind = "insert"
            self.write_table = self._table_name(tree.this)
            source = tree.expression
            if isinstance(source, exp.Query):
                self.query(source, None, "main")
        elif isinstance(tree, exp.Update | exp.Delete):
            self.kind = "update" if isinstance(tree, exp.Update) else "delete"
            table = tree.this
            self.write_table = self._table_name(table)
            if isinstance(tree, exp.Update):
                for assignment in tree.expressions:
                    if isinstance(assignment, exp.EQ) and isinstance(assignment.this, exp.Column):
                        self.set_columns.add(assignment.this.name)
            scope = self._new_scope(None, "main")
            self._add_source(scope, table)
            where = tree.args.get("where")
            if isinstance(tree, exp.Update):
                for assignment in tree.expressions:
                    self._columns_in(scope, assignment.expression)
            if where is not None:
                self._conditions(scope, where.this, None)
        else:
            self.kind = "other"

    def _table_name(self, node: Any) -> str | None:
        from sqlglot import exp

        if isinstance(node, exp.Schema):
            node = node.this
        if isinstance(node, exp.Table):
            return node.name.lower()
        return None

    def _ctes(self, tree: Any) -> None:
        from sqlglot import exp

        with_ = tree.args.get("with") or tree.args.get("with_")
        if with_ is None:
            return
        for cte in with_.expressions:
            name = cte.alias_or_name.lower()
            columns = [c.name for c in cte.args["alias"].columns] if cte.args.get("alias") \
                and cte.args["alias"].columns else None
            self.ctes[name] = columns
            query = cte.this
            if isinstance(query, exp.Query):
                self.query(query, None, "cte", name=name)

    # --- queries ---------------------------------------------------------------
    def query(self, node: Any, parent: int | None, role: str, name: str | None = None) -> list[int]:
        """Walk a SELECT or compound; return the scopes made."""
        from sqlglot import exp

        if isinstance(node, exp.Subquery):
            return self.query(node.this, parent, role, name)
        if isinstance(node, exp.SetOperation):
            out = self.query(node.this, parent, role, name)
            out += self.query(node.expression, parent, role, name)
            return out
        if not isinstance(node, exp.Select):
            return []
        scope = self._new_scope(parent, role, name)
        sources = []
        from_ = node.args.get("from") or node.args.get("from_")
        if from_ is not None:
            sources.append((from_.this, None))
        for join in node.args.get("joins") or []:
            sources.append((join.this, join))
        for source, join in sources:
            ref = self._add_source(scope, source, left=bool(join is not None and
                                                            (join.side or "").upper() == "LEFT"))
            if join is not None and join.args.get("on") is not None and ref is not None:
                self._conditions(scope, join.args["on"], ref)
            if join is not None and join.args.get("using"):
                for ident in join.args["using"]:
                    self._using(scope, ref, ident.name)
        where = node.args.get("where")
        if where is not None:
            self._conditions(scope, where.this, None)
        aliases = {}
        for projection in node.expressions:
            if isinstance(projection, exp.Alias):
                aliases[projection.alias.lower()] = projection.this
            self._columns_in(scope, projection)
        self._set(scope, distinct=bool(node.args.get("distinct")))
        group = node.args.get("group")
        if group is not None:
            for term in group.expressions:
                ref, key = self._order_key(scope, term, aliases, node.expressions)
                self._append(scope, "group_by", (ref, key))
                self._columns_in(scope, term)
        having = node.args.get("having")
        if having is not None:
            self._columns_in(scope, having)
        order = node.args.get("order")
        if order is not None:
            for term in order.expressions:
                inner = term.this if isinstance(term, exp.Ordered) else term
                ref, key = self._order_key(scope, inner, aliases, node.expressions)
                self._append(scope, "order_by", (ref, key, bool(term.args.get("desc"))))
                self._columns_in(scope, inner)
        self._set(scope, limit=self._limit_value(node.args.get("limit")),
                  offset=self._limit_value(node.args.get("offset")))
        if group is None and any(self._has_aggregate(p) for p in node.expressions):
            self._set(scope, aggregate=True)
        return [scope]

    def _has_aggregate(self, node: Any) -> bool:
        from sqlglot import exp

        for agg in node.find_all(exp.AggFunc):
            if agg.find_ancestor(exp.Select) is node.find_ancestor(exp.Select) or \
                    agg.find_ancestor(exp.Select) is node.parent:
                return True
        return False

    def _limit_value(self, node: Any) -> Any:
        from sqlglot import exp

        if node is None:
            return None
        value = node.expression if isinstance(node, exp.Limit | exp.Offset) else node
        if isinstance(value, exp.Placeholder):
            return value.name
        ok, lit = literal_value(value)
        return lit if ok and isinstance(lit, int) else None

    def _view(self, scope: int, sql: str, alias: str) -> None:
        """Walk a view's SELECT as a derived scope: SQLite plans it inside the query."""
        from sqlglot import exp

        try:
            tree = parse_statement(number_placeholders(sql)[0])
        except ParseFailure:
            return
        body = tree.expression if isinstance(tree, exp.Create) else None
        if isinstance(body, exp.Query):
            self.query(body, scope, "derived", name=alias)

    def _new_scope(self, parent: int | None, role: str, name: str | None = None) -> int:
        index = len(self.scopes)
        self.scopes.append(Scope(index, parent, role=role, name=name))
        return index

    def _add_source(self, scope: int, source: Any, left: bool = False) -> int | None:
        from sqlglot import exp

        index = len(self.refs)
        if isinstance(source, exp.Subquery | exp.Query):
            alias = source.alias_or_name.lower() if hasattr(source, "alias_or_name") else ""
            alias = alias or f"(subquery-{index})"
            self.query(source, scope, "derived", name=alias)
            index = len(self.refs)
            outs = set()
            body = source.this if isinstance(source, exp.Subquery) else source
            if isinstance(body, exp.Select):
                outs = {p.alias_or_name.lower() for p in body.expressions}
            self.refs.append(_RefB(index, alias, alias, scope, "subquery", left_join=left,
                                   out_columns=outs))
        elif isinstance(source, exp.Table):
            if isinstance(source.this, exp.Anonymous | exp.Func):
                fn = source.this
                name = (fn.name if isinstance(fn, exp.Anonymous) else fn.sql_name()).lower()
                alias = source.alias_or_name.lower() if source.alias else name
                self.refs.append(_RefB(index, name, alias, scope, "function", left_join=left))
                for arg in fn.args.values():
                    for a in arg if isinstance(arg, list) else [arg]:
                        if isinstance(a, exp.Expression):
                            self._columns_in(scope, a, skip_ref=index)
            else:
                name = source.name.lower()
                alias = (source.alias or source.name).lower()
                if name in self.ctes:
                    kind = "cte"
                    outs = {c.lower() for c in self.ctes[name] or []}
                    self.refs.append(_RefB(index, name, alias, scope, kind, left_join=left,
                                           out_columns=outs or None))
                else:
                    table = self.catalog.table(name)
                    if table is None:
                        kind = "unknown"
                    elif table.kind == "view":
                        kind = "view"
                        self._view(scope, table.sql, alias)
                        index = len(self.refs)
                    elif table.is_fts:
                        kind = "fts"
                    elif table.kind == "virtual":
                        kind = "virtual"
                    else:
                        kind = "table"
                    self.refs.append(_RefB(index, name, alias, scope, kind, left_join=left))
        else:
            return None
        self._append(scope, "refs", index)
        return index

    # --- columns -------------------------------------------------------------
    def _resolve(self, scope: int, col: Any) -> tuple[int | None, str | None, bool]:
        """(ref, key, outer) for a Column node seen in ``scope``."""
        name = col.name
        qualifier = (col.table or "").lower()
        sc: int | None = scope
        outer = False
        while sc is not None:
            s = self.scopes[sc]
            refs = [self.refs[i] for i in s.refs]
            if qualifier:
                for r in refs:
                    if r.alias == qualifier or (r.alias == r.name and r.name == qualifier):
                        return r.index, self._key_name(r, name), outer
            else:
                hits = [r for r in refs if self._has_column(r, name)]
                if len(hits) == 1 or (hits and sc != scope):
                    return hits[0].index, self._key_name(hits[0], name), outer
                if len(hits) > 1:
                    return hits[0].index, self._key_name(hits[0], name), outer
                fts = [r for r in refs if r.kind == "fts" and r.alias == name.lower()]
                if fts:
                    return fts[0].index, name.lower(), outer
            sc = s.parent
            outer = True
        return None, None, False

    def _has_column(self, ref: _RefB, name: str) -> bool:
        lname = name.lower()
        if ref.kind in ("table", "view", "fts", "virtual"):
            table = self.catalog.table(ref.name)
            if table is None:
                return False
            if lname in ("rowid", "oid", "_rowid_") and not table.without_rowid:
                return True
            return lname in {c.lower() for c in table.columns}
        if ref.kind == "function":
            return lname in ("key", "value", "type", "atom", "id", "parent", "fullkey", "path")
        if ref.out_columns is None:
            return False
        return lname in ref.out_columns

    def _key_name(self, ref: _RefB, name: str) -> str:
        lname = name.lower()
        if ref.kind == "table":
            table = self.catalog.table(ref.name)
            if table is not None:
                if lname in ("rowid", "oid", "_rowid_") or \
                        (table.rowid_alias and lname == table.rowid_alias.lower()):
                    return ROWID
                for c in table.columns:
                    if c.lower() == lname:
                        return c
        return name

    def _columns_in(self, scope: int, node: Any, skip_ref: int | None = None) -> None:
        """Note every column ``node`` needs; walk nested subqueries as their own scopes."""
        from sqlglot import exp

        if node is None:
            return
        for sub in list(self._direct_subqueries(node)):
            self.query(sub, scope, "subquery")
        for col in node.find_all(exp.Column):
            if self._inside_subquery(col, node):
                continue
            if isinstance(col.this, exp.Star):
                ref = self._lookup_alias(scope, (col.table or "").lower())
                if ref is not None:
                    self.refs[ref].columns.add("*")
                self.star = True
                continue
            ref, key, outer = self._resolve(scope, col)
            if ref is not None and ref != skip_ref:
                self.refs[ref].columns.add(key if key != ROWID else ROWID)
                if outer:
                    self._set(scope, correlated=True)
        for star in node.find_all(exp.Star):
            # count(*) needs no column; t.* was handled with the columns above
            if isinstance(star.parent, exp.Count | exp.Column) or self._inside_subquery(star, node):
                continue
            self.star = True
            for i in self.scopes[scope].refs:
                self.refs[i].columns.add("*")

    def _lookup_alias(self, scope: int, alias: str) -> int | None:
        for i in self.scopes[scope].refs:
            if self.refs[i].alias == alias:
                return i
        return None

    def _direct_subqueries(self, node: Any):
        """Queries nested in ``node`` that are not nested in another query within it."""
        from sqlglot import exp

        if isinstance(node, exp.Query) and node is not None:
            yield node
            return
        for child in node.iter_expressions():
            if isinstance(child, exp.Query):
                yield child
            elif isinstance(child, exp.Subquery):
                yield child.this
            else:
                yield from self._direct_subqueries(child)

    @staticmethod
    def _inside_subquery(node: Any, top: Any) -> bool:
        from sqlglot import exp

        if node is top:
            return False
        p = node.parent
        while p is not None and p is not top:
            if isinstance(p, exp.Query):
                return True
            p = p.parent
        return False

    def _order_key(self, scope: int, term: Any, aliases: dict, projections: list) -> tuple[int, str]:
        from sqlglot import exp

        node = term
        ok, value = literal_value(node)
        if ok and isinstance(value, int) and 1 <= value <= len(projections):
            node = projections[value - 1]
            node = node.this if isinstance(node, exp.Alias) else node
        elif isinstance(node, exp.Column) and not node.table and node.name.lower() in aliases:
            target = aliases[node.name.lower()]
            ref, _key, _ = self._resolve(scope, node)
            if ref is None or not isinstance(target, exp.Column):
                node = target
        if isinstance(node, exp.Column):
            ref, key, outer = self._resolve(scope, node)
            if ref is not None and not outer:
                return ref, key or node.name
        elif indexable_expression(node):
            col = node.this
            ref, _key, outer = self._resolve(scope, col)
            if ref is not None and not outer:
                return ref, canonical_key(node)
        return -1, node.sql("sqlite")
