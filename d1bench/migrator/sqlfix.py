"""sqlglot's transpile from PostgreSQL/MySQL to SQLite, with its known faults fixed.

Faults seen (see the migration notes): PostgreSQL's ``E'...'`` escape strings
are parsed as byte strings and come out as nothing at all; ``LEAST``/
``GREATEST`` have lost arguments in some versions; ``x = ANY (ARRAY[...])``
(how PostgreSQL's catalog writes ``x IN (...)``) comes out as an ``ARRAY()``
call SQLite lacks.  Each fix is a rewrite of
the parsed tree before SQLite's text is generated; the result is then run on a
real SQLite by the caller before it is trusted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from d1bench.errors import UsageError

if TYPE_CHECKING:
    from sqlglot import exp

__all__ = ["transpile"]


def _fix(node: exp.Expression) -> exp.Expression:
    from sqlglot import exp

    if isinstance(node, exp.ByteString):
        # PostgreSQL E'' strings: escapes already decoded by the tokenizer.
        return exp.Literal.string(node.this)
    if (isinstance(node, exp.EQ | exp.NEQ) and isinstance(node.expression, exp.Any | exp.All)
            and isinstance(node.expression.this.unnest(), exp.Array)):
        # PostgreSQL stores `x IN (...)` as `x = ANY (ARRAY[...])`, which sqlglot
        # passes through as an ARRAY() call SQLite does not have.
        quantifier = node.expression
        if isinstance(node, exp.EQ) == isinstance(quantifier, exp.Any):
            items = [e.copy() for e in quantifier.this.unnest().expressions]
            found = exp.In(this=node.this.copy(), expressions=items)
            return found if isinstance(node, exp.EQ) else exp.Not(this=found)
    if isinstance(node, exp.Least | exp.Greatest):
        # SQLite's multi-argument min()/max() are LEAST/GREATEST, except that
        # they return NULL when any argument is NULL where PostgreSQL skips it.
        name = "min" if isinstance(node, exp.Least) else "max"
        args = [node.this, *node.expressions]
        return exp.Anonymous(this=name, expressions=[a.copy() for a in args])
    return node


def transpile(sql: str, dialect: str) -> str:
    """``sql`` in ``dialect`` (``postgres`` or ``mysql``) as SQLite SQL.

    >>> transpile("SELECT LEAST(a, b, 3), E'it\\\\'s' FROM t", "postgres")
    "SELECT MIN(a, b, 3), 'it''s' FROM t"
    >>> transpile("x = ANY (ARRAY['a'::text, 'b'::text])", "postgres")
    "x IN (CAST('a' AS TEXT), CAST('b' AS TEXT))"
    """
    import sqlglot
    from sqlglot.errors import SqlglotError

    try:
        tree = sqlglot.parse_one(sql, read=dialect)
        return tree.transform(_fix).sql(dialect="sqlite")
    except SqlglotError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "parse error"
        raise UsageError(f"cannot convert {sql[:60]!r}: {first}") from None
