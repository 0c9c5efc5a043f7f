"""Conjuncts, one by one: what each WHERE or ON term asks of which table.

A mixin of :class:`d1bench.advisor.query._Builder`: it needs the builder's
scopes and references to resolve columns, and returns :class:`Pred` values.
Equality, IN, IS NULL and ranges on one key of one reference are what an index
can seek on (*sargable*); an equality between two references is a join; a key
wrapped in a function is sargable only for an expression index on exactly that
expression; LIKE only with a literal prefix on a NOCASE column (or GLOB).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from d1bench.sql.catalog import Catalog
from d1bench.sql.parsing import (
    canonical_key,
    indexable_expression,
    literal_value,
    render_predicate,
    terms,
)

__all__ = ["ALL_COLUMNS", "ROWID", "Pred", "PredicateMixin"]

#: In :attr:`Ref.columns`, the query needs every column of the reference (``*``).
ALL_COLUMNS = "*"
#: The key of a rowid (or INTEGER PRIMARY KEY) constraint.
ROWID = "rowid"



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


class PredicateMixin:
    """Classifies conjuncts for :class:`d1bench.advisor.query._Builder`."""

    if TYPE_CHECKING:
        # What the mixin uses of the builder it is mixed into (builder.py imports this
        # module, so naming its types here would be a circle): for the type checker only.
        preds: list[Pred]
        scopes: list[Any]
        refs: list[Any]
        catalog: Catalog

        def _set(self, scope: int, **changes: Any) -> None: ...
        def _columns_in(self, scope: int, node: Any, skip_ref: int | None = None) -> None: ...
        def _has_column(self, ref: Any, name: str) -> bool: ...
        def _resolve(self, scope: int, col: Any) -> tuple[int | None, str | None, bool]: ...
        @staticmethod
        def _inside_subquery(node: Any, top: Any) -> bool: ...

    def _conditions(self, scope: int, node: Any, join_ref: int | None) -> None:
        from sqlglot import exp

        for c in terms(node, exp.And):
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
        wraps = tuple(sorted({_sqlite_name(f) for f in node.find_all(exp.Func)
                              if f.find(exp.Column) is not None} - {""}))
        return refs, outer, key, wraps

    def _classify(self, scope: int, c: Any) -> Pred:
        from sqlglot import exp

        params = tuple(sorted({p.name for p in c.find_all(exp.Placeholder)}))
        sql = render_predicate(c)
        base: dict[str, Any] = {"sql": sql, "params": params}
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
                self._set(scope, correlated=True)
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
            listed = tuple(literal_value(v)[1] for v in node.expressions) if value == "literal" else None
            return Pred(ref=min(lrefs) if lrefs else -1, key=lkey, op=op, value=value, literal=listed,
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
            self._set(scope, correlated=True)
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

    def _or(self, scope: int, node: Any, base: dict[str, Any]) -> Pred:
        from sqlglot import exp

        disjuncts = terms(node, exp.Or)
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

    # Typed as Any: a dict of sqlglot's expression classes is more than mypy can infer here.
    swap: dict[type, Any] = {exp.GT: exp.LT, exp.LT: exp.GT, exp.GTE: exp.LTE, exp.LTE: exp.GTE}
    cls = swap.get(type(node), type(node))
    return cls(this=node.expression, expression=node.this)


#: sqlglot's names for functions whose SQLite name differs ("" for its own wrappers).
_SQLITE_NAMES = {"substring": "substr", "timetostr": "strftime", "strtotime": "strftime",
                 "tsordstotimestamp": "", "tsordstodate": "", "pow": "pow", "power": "pow"}


def _sqlite_name(func: Any) -> str:
    """The name SQLite knows a function by (``json_extract``, ``substr``, ``date``...)."""
    from sqlglot import exp

    if isinstance(func, exp.Anonymous):
        return func.name.lower()
    if isinstance(func, exp.JSONExtractScalar):
        return "json_extract" if func.args.get("json_subtype") else "->>"
    if isinstance(func, exp.JSONExtract):
        return "->"
    name = func.sql_name().lower()
    return _SQLITE_NAMES.get(name, name)
