"""What a template asks of each table it touches.

:func:`analyze` reads one statement with sqlglot and returns a
:class:`QueryInfo`: the table references of each ``SELECT`` scope, the
conjuncts that constrain each reference (equality, range, IN, IS NULL, LIKE,
MATCH, joins), ORDER BY / GROUP BY keys, LIMIT, and what a write changes.
Candidate generation, the cost model and the lint all start from it, so the
three read a template alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from d1bench.advisor.catalog import Catalog
from d1bench.advisor.parsing import (
    ParseFailure,
    canonical_key,
    indexable_expression,
    literal_value,
    number_placeholders,
    parse_statement,
    render_predicate,
)

__all__ = ["ALL_COLUMNS", "ROWID", "Pred", "QueryInfo", "Ref", "Scope", "analyze"]

#: In :attr:`Ref.columns`, the query needs every column of the reference (``*``).
ALL_COLUMNS = "*"
#: The key of a rowid (or INTEGER PRIMARY KEY) constraint.
ROWID = "rowid"

#: Operators an index can seek on.  ``eq`` and ``in`` and ``isnull`` pin a key;
#: ``range`` bounds it.
SARGABLE = frozenset({"eq", "in", "isnull", "range", "join"})


@dataclass(frozen=True, slots=True)
class Pred:
    """One conjunct of a WHERE or ON clause.

    Attributes:
        ref: the reference it constrains (index into :attr:`QueryInfo.refs`).
        key: the column or canonical expression it constrains, or ``None``.
        op: ``eq``, ``in``, ``isnull``, ``range``, ``notnull``, ``like``, ``match``,
            ``join`` (equality with a column of another reference), ``or``, ``other``.
        value: what the key is compared with: ``param``, ``literal``, ``column``,
            ``outer`` (a column of an enclosing query), ``subquery``, ``expr``, ``none``.
        sql: the conjunct as SQLite text, placeholders as ``:pN``.
        literal: the constant, when ``value == "literal"``.
        other_ref: for joins, the reference on the other side.
        other_key: for joins, the other side's column.
        bounds: 2 for BETWEEN, else 1.
        refs: every reference of the same scope the conjunct mentions.
        params: placeholder names it uses.
        sargable: an index on ``key`` can seek on it.
        expression: ``key`` is an expression (json_extract, lower), not a column.
        wraps: functions applied to a column on the compared side (lint evidence).
    """

    ref: int
    key: str | None
    op: str
    value: str
    sql: str
    literal: Any = None
    other_ref: int | None = None
    other_key: str | None = None
    bounds: int = 1
    refs: frozenset[int] = frozenset()
    params: tuple[str, ...] = ()
    sargable: bool = False
    expression: bool = False
    wraps: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Ref:
    """A table, view, CTE, subquery or table-valued function named in a FROM clause.

    Attributes:
        index: its position in :attr:`QueryInfo.refs`.
        name: the table (or CTE / function) name, lower-case.
        alias: the name the query (and EXPLAIN QUERY PLAN) calls it by.
        scope: the scope it belongs to.
        kind: ``table``, ``view``, ``fts``, ``virtual``, ``cte``, ``subquery``, ``function``.
        columns: the columns the query needs from it (``*`` for all).
        left_join: it is the right side of a LEFT JOIN.
    """

    index: int
    name: str
    alias: str
    scope: int
    kind: str
    columns: frozenset[str] = frozenset()
    left_join: bool = False


@dataclass(frozen=True, slots=True)
class Scope:
    """One SELECT (or the WHERE of an UPDATE/DELETE).

    Attributes:
        index: its position in :attr:`QueryInfo.scopes`.
        parent: the enclosing scope, if it is a subquery.
        refs: its references.
        order_by: ``(ref, key, desc)`` per ORDER BY term; ref is -1 when the
            term is not a key of one reference (bm25, a computed distance).
        group_by: ``(ref, key)`` per GROUP BY term, ref -1 as above.
        limit / offset: an int, a placeholder name, or ``None``.
        aggregate: aggregates without GROUP BY (one output row).
        distinct: SELECT DISTINCT.
        correlated: mentions columns of an enclosing scope.
        role: ``main``, ``cte``, ``derived``, ``subquery``, ``compound``.
        name: the CTE or alias name for ``cte``/``derived`` scopes.
    """

    index: int
    parent: int | None
    refs: tuple[int, ...] = ()
    order_by: tuple[tuple[int, str, bool], ...] = ()
    group_by: tuple[tuple[int, str], ...] = ()
    limit: Any = None
    offset: Any = None
    aggregate: bool = False
    distinct: bool = False
    correlated: bool = False
    role: str = "main"
    name: str | None = None


@dataclass(frozen=True, slots=True, eq=False)
class QueryInfo:
    """Everything :func:`analyze` learnt about one statement.

    Attributes:
        sql: the template's text as given.
        text: the text with placeholders renamed ``:pN``.
        n_params: how many parameters SQLite expects.
        statement: ``select``, ``insert``, ``update``, ``delete`` or ``other``.
        refs / scopes / preds: see :class:`Ref`, :class:`Scope`, :class:`Pred`.
        write_table: the table an INSERT/UPDATE/DELETE writes.
        set_columns: the columns an UPDATE assigns.
        uses_fts: a MATCH on an FTS5 table.
        star: ``SELECT *`` or ``t.*`` somewhere.
        tree: the sqlglot tree (read-only).
        error: why it could not be read, when it could not.
    """

    sql: str
    text: str = ""
    n_params: int = 0
    statement: str = "other"
    refs: tuple[Ref, ...] = ()
    scopes: tuple[Scope, ...] = ()
    preds: tuple[Pred, ...] = ()
    write_table: str | None = None
    set_columns: frozenset[str] = frozenset()
    uses_fts: bool = False
    star: bool = False
    tree: Any = None
    error: str | None = None

    @property
    def tables(self) -> frozenset[str]:
        """Real tables it reads or writes."""
        names = {r.name for r in self.refs if r.kind == "table"}
        if self.write_table:
            names.add(self.write_table)
        return frozenset(names)

    def preds_of(self, ref: int) -> list[Pred]:
        return [p for p in self.preds if p.ref == ref]

    def refs_of(self, scope: int) -> list[Ref]:
        return [self.refs[i] for i in self.scopes[scope].refs]


def analyze(sql: str, catalog: Catalog) -> QueryInfo:
    """Read ``sql`` against ``catalog``; a statement sqlglot cannot read keeps its error.

    >>> import apsw
    >>> from d1bench.advisor.catalog import read_catalog
    >>> db = apsw.Connection(":memory:")
    >>> _ = db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a, b)")
    >>> q = analyze("SELECT b FROM t WHERE a = ? ORDER BY b DESC LIMIT 5", read_catalog(db))
    >>> [(p.key, p.op, p.value) for p in q.preds], q.scopes[0].order_by, q.scopes[0].limit
    ([('a', 'eq', 'param')], ((0, 'b', True),), 5)
    """
    text, n_params = number_placeholders(sql)
    try:
        tree = parse_statement(text)
    except ParseFailure as exc:
        return QueryInfo(sql=sql, text=text, n_params=n_params, error=str(exc))
    builder = _Builder(catalog)
    try:
        builder.statement(tree)
    except _Unsupported as exc:
        return QueryInfo(sql=sql, text=text, n_params=n_params, tree=tree, error=str(exc))
    return QueryInfo(
        sql=sql, text=text, n_params=n_params, statement=builder.kind,
        refs=tuple(builder.final_refs()), scopes=tuple(builder.final_scopes()),
        preds=tuple(builder.preds), write_table=builder.write_table,
        set_columns=frozenset(builder.set_columns), uses_fts=builder.uses_fts,
        star=builder.star, tree=tree)


class _Unsupported(Exception):
    pass


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


@dataclass
class _ScopeB:
    index: int
    parent: int | None
    refs: list[int] = field(default_factory=list)
    order_by: list[tuple[int, str, bool]] = field(default_factory=list)
    group_by: list[tuple[int, str]] = field(default_factory=list)
    limit: Any = None
    offset: Any = None
    aggregate: bool = False
    distinct: bool = False
    correlated: bool = False
    role: str = "main"
    name: str | None = None


_FUNCTION_WRAPS = ("json_extract", "lower", "upper", "substr", "substring", "date", "datetime",
                   "strftime", "julianday", "trim", "ltrim", "rtrim", "length", "coalesce",
                   "ifnull", "cast", "abs", "round", "replace", "instr", "unixepoch")


class _Builder:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.refs: list[_RefB] = []
        self.scopes: list[_ScopeB] = []
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
        return [Scope(s.index, s.parent, tuple(s.refs), tuple(s.order_by), tuple(s.group_by),
                      s.limit, s.offset, s.aggregate, s.distinct, s.correlated, s.role, s.name)
                for s in self.scopes]

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
        s = self.scopes[scope]
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
        s.distinct = bool(node.args.get("distinct"))
        group = node.args.get("group")
        if group is not None:
            for term in group.expressions:
                ref, key = self._order_key(scope, term, aliases, node.expressions)
                s.group_by.append((ref, key))
                self._columns_in(scope, term)
        having = node.args.get("having")
        if having is not None:
            self._columns_in(scope, having)
        order = node.args.get("order")
        if order is not None:
            for term in order.expressions:
                inner = term.this if isinstance(term, exp.Ordered) else term
                ref, key = self._order_key(scope, inner, aliases, node.expressions)
                s.order_by.append((ref, key, bool(term.args.get("desc"))))
                self._columns_in(scope, inner)
        s.limit = self._limit_value(node.args.get("limit"))
        s.offset = self._limit_value(node.args.get("offset"))
        if group is None and any(self._has_aggregate(p) for p in node.expressions):
            s.aggregate = True
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
        self.scopes.append(_ScopeB(index, parent, role=role, name=name))
        return index

    def _add_source(self, scope: int, source: Any, left: bool = False) -> int | None:
        from sqlglot import exp

        s = self.scopes[scope]
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
        s.refs.append(index)
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
                    self.scopes[scope].correlated = True
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

    # --- conditions -------------------------------------------------------------
    def _conditions(self, scope: int, node: Any, join_ref: int | None) -> None:
        from sqlglot import exp

        conjuncts = []
        stack = [node]
        while stack:
            e = stack.pop()
            if isinstance(e, exp.Paren):
                stack.append(e.this)
            elif isinstance(e, exp.And):
                stack.append(e.expression)
                stack.append(e.this)
            else:
                conjuncts.append(e)
        for c in conjuncts:
            self._columns_in(scope, c)
            self.preds.append(self._classify(scope, c))

    def _using(self, scope: int, ref: int | None, column: str) -> None:
        if ref is None:
            return
        others = [i for i in self.scopes[scope].refs if i != ref and self._has_column(self.refs[i], column)]
        if others:
            self.preds.append(Pred(ref=ref, key=column, op="join", value="column",
                                   sql=f"{self.refs[ref].alias}.{column} = {self.refs[others[0]].alias}.{column}",
                                   other_ref=others[0], other_key=column,
                                   refs=frozenset({ref, others[0]}), sargable=True))
            self.refs[ref].columns.add(column)

    def _side(self, scope: int, node: Any) -> tuple[set[int], bool, str | None, tuple[str, ...]]:
        """(refs of this scope it mentions, mentions outer columns, key if it is one, wrapping functions)."""
        from sqlglot import exp

        refs: set[int] = set()
        outer = False
        for col in node.find_all(exp.Column):
            if self._inside_subquery(col, node):
                continue
            ref, _key, is_outer = self._resolve(scope, col)
            if ref is None:
                continue
            if is_outer:
                outer = True
            else:
                refs.add(ref)
        key = None
        if isinstance(node, exp.Column):
            ref, k, is_outer = self._resolve(scope, node)
            if ref is not None and not is_outer:
                key = k
        elif indexable_expression(node):
            key = canonical_key(node)
        wraps = tuple(sorted({(f.sql_name() if not isinstance(f, exp.Anonymous) else f.name).lower()
                              for f in node.find_all(exp.Func)
                              if f.find(exp.Column) is not None}))
        return refs, outer, key, wraps

    def _classify(self, scope: int, c: Any) -> Pred:
        from sqlglot import exp

        params = tuple(sorted({p.name for p in c.find_all(exp.Placeholder)}))
        sql = render_predicate(c)
        base = {"sql": sql, "params": params}
        if isinstance(c, exp.Match):
            refs, _o, _k, _w = self._side(scope, c.this)
            self.uses_fts = True
            ref = min(refs) if refs else -1
            return Pred(ref=ref, key=None, op="match", value="param" if params else "literal",
                        refs=frozenset(refs), **base)
        negated = False
        node = c
        if isinstance(node, exp.Not) and not (isinstance(node.this, exp.Is)
                                              and isinstance(node.this.expression, exp.Null)):
            negated, node = True, node.this
            while isinstance(node, exp.Paren):
                node = node.this
        if isinstance(node, exp.Or):
            return self._or(scope, node, base)
        comparisons = (exp.EQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NEQ, exp.Is, exp.Like,
                       exp.ILike, exp.Glob, exp.In, exp.Between)
        if isinstance(node, exp.Not) and isinstance(node.this, exp.Is):
            refs, outer, key, wraps = self._side(scope, node.this.this)
            ref = min(refs) if len(refs) == 1 else (min(refs) if refs else -1)
            return Pred(ref=ref, key=key, op="notnull", value="none", refs=frozenset(refs),
                        wraps=wraps, expression=key is not None and not _is_plain(key), **base)
        if not isinstance(node, comparisons):
            refs, outer, key, wraps = self._side(scope, node)
            if outer:
                self.scopes[scope].correlated = True
            value = "subquery" if node.find(exp.Query) is not None else "expr"
            return Pred(ref=min(refs) if refs else -1, key=None, op="other", value=value,
                        refs=frozenset(refs), wraps=wraps, **base)
        left = node.this
        right = node.args.get("expression")
        lrefs, louter, lkey, lwraps = self._side(scope, left)
        if isinstance(node, exp.In):
            query = node.args.get("query")
            if query is not None:
                value = "subquery"
            else:
                vals = node.expressions
                value = "literal" if all(literal_value(v)[0] for v in vals) else "param"
            op = "other" if negated else "in"
            return Pred(ref=min(lrefs) if lrefs else -1, key=lkey, op=op, value=value,
                        refs=frozenset(lrefs), sargable=op == "in" and lkey is not None and len(lrefs) == 1,
                        expression=lkey is not None and not _is_plain(lkey), wraps=lwraps, **base)
        if isinstance(node, exp.Between):
            vrefs = set()
            for bound in (node.args.get("low"), node.args.get("high")):
                if bound is not None:
                    r, _o, _k, _w = self._side(scope, bound)
                    vrefs |= r
            ok = lkey is not None and len(lrefs) == 1 and not vrefs and not negated
            return Pred(ref=min(lrefs) if lrefs else -1, key=lkey, op="range" if ok else "other",
                        value="param" if params else "literal", bounds=2,
                        refs=frozenset(lrefs | vrefs), sargable=ok,
                        expression=lkey is not None and not _is_plain(lkey), wraps=lwraps, **base)
        rrefs, router, rkey, rwraps = self._side(scope, right) if right is not None else (set(), False, None, ())
        if louter or router:
            self.scopes[scope].correlated = True
        # put the key of one reference on the left
        if (lkey is None or len(lrefs) != 1) and rkey is not None and len(rrefs) == 1 and not isinstance(
                node, exp.Like | exp.ILike | exp.Glob | exp.Is):
            left, right = right, left
            lrefs, rrefs, lkey, rkey, louter, router, lwraps, rwraps = \
                rrefs, lrefs, rkey, lkey, router, louter, rwraps, lwraps
            node = _flip(node)
        ref = min(lrefs) if lrefs else -1
        wraps = tuple(sorted(set(lwraps) | set(rwraps)))
        if lkey is None or len(lrefs) != 1:
            return Pred(ref=ref, key=None, op="other", value="expr", refs=frozenset(lrefs | rrefs),
                        wraps=wraps, **base)
        is_expr = not _is_plain(lkey)
        if rrefs - lrefs:
            other = min(rrefs - lrefs)
            if isinstance(node, exp.EQ) and rkey is not None and not negated:
                return Pred(ref=ref, key=lkey, op="join", value="column", other_ref=other,
                            other_key=rkey, refs=frozenset(lrefs | rrefs), sargable=True,
                            expression=is_expr, wraps=wraps, **base)
            return Pred(ref=ref, key=lkey, op="other", value="column", other_ref=other,
                        refs=frozenset(lrefs | rrefs), wraps=wraps, **base)
        if rrefs:
            return Pred(ref=ref, key=lkey, op="other", value="expr", refs=frozenset(lrefs),
                        wraps=wraps, **base)
        ok, lit = literal_value(right) if right is not None else (False, None)
        if right is not None and right.find(exp.Query) is not None:
            value = "subquery"
        elif louter or router:
            value = "outer"
        elif ok:
            value = "literal"
        elif isinstance(right, exp.Placeholder):
            value = "param"
        else:
            value = "expr"
        if negated:
            return Pred(ref=ref, key=lkey, op="other", value=value, refs=frozenset(lrefs),
                        wraps=wraps, expression=is_expr, **base)
        if isinstance(node, exp.Is):
            op = "isnull" if isinstance(right, exp.Null) else "other"
            return Pred(ref=ref, key=lkey, op=op, value="none", refs=frozenset(lrefs),
                        sargable=op == "isnull", wraps=wraps, expression=is_expr, **base)
        if isinstance(node, exp.Like | exp.ILike | exp.Glob):
            table = self.catalog.table(self.refs[ref].name) if ref >= 0 else None
            prefix_ok = isinstance(node, exp.Glob) or (table is not None and lkey in table.nocase)
            lit_prefix = ok and isinstance(lit, str) and lit[:1] not in ("%", "_", "*", "?", "[", "")
            return Pred(ref=ref, key=lkey, op="like", value=value, literal=lit if ok else None,
                        refs=frozenset(lrefs), sargable=bool(prefix_ok and lit_prefix),
                        wraps=wraps, expression=is_expr, **base)
        if isinstance(node, exp.EQ):
            return Pred(ref=ref, key=lkey, op="eq", value=value, literal=lit if ok else None,
                        refs=frozenset(lrefs), sargable=value != "expr" or not params,
                        wraps=wraps, expression=is_expr, **base)
        if isinstance(node, exp.NEQ):
            return Pred(ref=ref, key=lkey, op="other", value=value, literal=lit if ok else None,
                        refs=frozenset(lrefs), wraps=wraps, expression=is_expr, **base)
        return Pred(ref=ref, key=lkey, op="range", value=value, literal=lit if ok else None,
                    refs=frozenset(lrefs), sargable=True, wraps=wraps, expression=is_expr, **base)

    def _or(self, scope: int, node: Any, base: dict) -> Pred:
        from sqlglot import exp

        disjuncts = []
        stack = [node]
        while stack:
            e = stack.pop()
            if isinstance(e, exp.Paren):
                stack.append(e.this)
            elif isinstance(e, exp.Or):
                stack += [e.expression, e.this]
            else:
                disjuncts.append(e)
        keys = set()
        refs: set[int] = set()
        all_eq = True
        for d in disjuncts:
            r, _outer, _k, _w = self._side(scope, d)
            refs |= r
            if isinstance(d, exp.EQ):
                lr, _lo, lk, _lw = self._side(scope, d.this)
                rr, _ro, rk, _rw = self._side(scope, d.expression)
                key = lk if lk is not None and len(lr) == 1 and not rr else (
                    rk if rk is not None and len(rr) == 1 and not lr else None)
                keys.add(key)
                all_eq = all_eq and key is not None
            else:
                all_eq = False
                keys.add(_k if _k else None)
                if isinstance(d, exp.Is | exp.Not) or d.find(exp.Column) is None:
                    keys.add(None)
        ref = min(refs) if refs else -1
        if all_eq and len(keys) == 1 and len(refs) == 1:
            return Pred(ref=ref, key=next(iter(keys)), op="in", value="param" if base["params"] else "literal",
                        refs=frozenset(refs), sargable=True, **base)
        key_text = ",".join(sorted(str(k) for k in keys))
        return Pred(ref=ref, key=None, op="or", value="expr", literal=key_text,
                    refs=frozenset(refs), **base)


def _is_plain(key: str) -> bool:
    return key.replace("_", "a").isalnum()


def _flip(node: Any) -> Any:
    from sqlglot import exp

    swap = {exp.GT: exp.LT, exp.LT: exp.GT, exp.GTE: exp.LTE, exp.LTE: exp.GTE}
    cls = swap.get(type(node), type(node))
    return cls(this=node.expression, expression=node.this)
