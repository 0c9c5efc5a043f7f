"""What a template asks of each table it touches.

:func:`analyze` reads one statement with sqlglot and returns a
:class:`QueryInfo`: the table references of each ``SELECT`` scope, the
conjuncts that constrain each reference (equality, range, IN, IS NULL, LIKE,
MATCH, joins), ORDER BY / GROUP BY keys, LIMIT, and what a write changes.
Candidate generation, the cost model and the lint all start from it, so the
three read a template alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from d1bench.advisor.builder import QueryInfoBuilder, Unsupported
from d1bench.advisor.predicates import ALL_COLUMNS, ROWID, Pred
from d1bench.advisor.scopes import Ref, Scope
from d1bench.sql.catalog import Catalog
from d1bench.sql.parsing import ParseFailure, number_placeholders, parse_statement

__all__ = ["ALL_COLUMNS", "ROWID", "Pred", "QueryInfo", "Ref", "Scope", "analyze"]

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

    def json_loops(self) -> list[tuple[str, str]]:
        """(table, column) for each ``json_each``/``json_tree`` over a stored table's column.

        Such a loop steps through every element of the column's JSON for every
        row it is given, and D1 counts each step: no index can make it shorter.
        """
        from sqlglot import exp

        out: list[tuple[str, str]] = []
        if self.tree is None:
            return out
        for table in self.tree.find_all(exp.Table):
            fn = table.this
            if not isinstance(fn, exp.Anonymous) or fn.name.lower() not in ("json_each", "json_tree"):
                continue
            for col in fn.find_all(exp.Column):
                owner = next((r for r in self.refs if r.alias == (col.table or "").lower()
                              and r.kind == "table"), None)
                if owner is not None:
                    out.append((owner.name, col.name))
        return list(dict.fromkeys(out))

    def preds_of(self, ref: int) -> list[Pred]:
        return [p for p in self.preds if p.ref == ref]

    def refs_of(self, scope: int) -> list[Ref]:
        return [self.refs[i] for i in self.scopes[scope].refs]


def analyze(sql: str, catalog: Catalog) -> QueryInfo:
    """Read ``sql`` against ``catalog``; a statement sqlglot cannot read keeps its error.

    >>> import apsw
    >>> from d1bench.sql.catalog import read_catalog
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
    builder = QueryInfoBuilder(catalog)
    try:
        builder.statement(tree)
    except Unsupported as exc:
        return QueryInfo(sql=sql, text=text, n_params=n_params, tree=tree, error=str(exc))
    return QueryInfo(
        sql=sql, text=text, n_params=n_params, statement=builder.kind,
        refs=tuple(builder.final_refs()), scopes=tuple(builder.final_scopes()),
        preds=tuple(builder.preds), write_table=builder.write_table,
        set_columns=frozenset(builder.set_columns), uses_fts=builder.uses_fts,
        star=builder.star, tree=tree)
