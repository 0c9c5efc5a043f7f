"""SQL text in and out: numbered placeholders, parsing, canonical keys, predicates.

sqlglot reads the templates (dialect ``sqlite``).  Two details make its output
unfit to hand straight back to SQLite, and this module deals with both:

* sqlglot cannot read ``?NNN`` and numbers plain ``?`` nowhere, so every
  placeholder is renamed ``:pN`` (N being the number SQLite gives it) before
  parsing.  A fragment cut out of the tree can then be run with the template's
  own parameter values bound by name.
* Expression indexes and partial indexes only serve a query whose expression
  SQLite judges identical, so keys and predicates are written in one canonical
  SQLite spelling (``json_extract(col, '$.a')``, ``col IS NOT NULL``) rather
  than sqlglot's (``JSON_EXTRACT``, ``NOT col IS NULL``).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from d1bench.sql.text import quiet_sqlglot

__all__ = [
    "ParseFailure",
    "canonical_key",
    "indexable_expression",
    "literal_value",
    "number_placeholders",
    "parse_statement",
    "render_predicate",
    "terms",
]


class ParseFailure(ValueError):
    """sqlglot could not read a statement; the message is its first line."""


def number_placeholders(sql: str) -> tuple[str, int]:
    """Rename SQLite's ``?`` and ``?NNN`` placeholders ``:pN``; return the text and the count.

    Strings, quoted identifiers and comments are left alone.

    >>> number_placeholders("SELECT * FROM t WHERE a = ? AND b = '?' AND c = ?5 AND d = ?")
    ("SELECT * FROM t WHERE a = :p1 AND b = '?' AND c = :p5 AND d = :p6", 6)
    """
    out: list[str] = []
    i, n, largest = 0, len(sql), 0
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            end = sql.find(ch, i + 1)
            while end != -1 and end + 1 < n and sql[end + 1] == ch:
                end = sql.find(ch, end + 2)
            end = n if end == -1 else end + 1
            out.append(sql[i:end])
            i = end
        elif ch == "[":
            end = sql.find("]", i + 1)
            end = n if end == -1 else end + 1
            out.append(sql[i:end])
            i = end
        elif sql.startswith("--", i) or sql.startswith("/*", i):
            close = "\n" if sql.startswith("--", i) else "*/"
            end = sql.find(close, i + 2)
            end = n if end == -1 else end + len(close)
            out.append(sql[i:end])
            i = end
        elif ch == "?":
            m = re.match(r"\?(\d*)", sql[i:])
            assert m is not None
            number = int(m.group(1)) if m.group(1) else largest + 1
            largest = max(largest, number)
            out.append(f":p{number}")
            i += m.end()
        else:
            out.append(ch)
            i += 1
    return "".join(out), largest


@lru_cache(maxsize=8192)
def parse_statement(sql: str) -> Any:
    """Parse one statement whose placeholders are already ``:pN`` (or none).

    Raises :class:`ParseFailure` with sqlglot's first line of complaint.
    The tree is cached: callers must not modify it (copy it first).
    """
    import sqlglot
    from sqlglot.errors import SqlglotError

    try:
        with quiet_sqlglot():
            trees = [t for t in sqlglot.parse(sql, read="sqlite") if t is not None]
    except SqlglotError as exc:
        text = str(exc).strip().splitlines()
        raise ParseFailure(text[0] if text else type(exc).__name__) from None
    if len(trees) != 1:
        raise ParseFailure(f"expected one statement, found {len(trees)}")
    from sqlglot import exp

    if isinstance(trees[0], exp.Command):
        raise ParseFailure(f"sqlglot reads this as an opaque command: {sql.strip()[:40]!r}")
    return trees[0]


def _column_name(node: Any) -> str | None:
    from sqlglot import exp

    if isinstance(node, exp.Column) and isinstance(node.this, exp.Identifier):
        return node.this.this
    return None


def indexable_expression(node: Any) -> bool:
    """An expression an expression index can hold: json_extract/lower/upper of one column.

    >>> from d1bench.sql.parsing import parse_statement as p
    >>> indexable_expression(p("SELECT lower(a) FROM t").expressions[0])
    True
    >>> indexable_expression(p("SELECT lower(a || b) FROM t").expressions[0])
    False
    """
    from sqlglot import exp

    if isinstance(node, exp.JSONExtractScalar) and node.args.get("json_subtype"):
        return _column_name(node.this) is not None and isinstance(node.expression, exp.JSONPath)
    if isinstance(node, exp.Lower | exp.Upper):
        return _column_name(node.this) is not None
    return False


def canonical_key(node: Any) -> str:
    """The canonical text of an index key: a bare column name or a SQLite expression.

    >>> from d1bench.sql.parsing import parse_statement as p
    >>> canonical_key(p("SELECT JSON_EXTRACT(p.conditions, '$[0]') FROM t").expressions[0])
    "json_extract(conditions, '$[0]')"
    >>> canonical_key(p("SELECT LOWER(t.Title) FROM t").expressions[0])
    'lower(Title)'
    """
    from sqlglot import exp

    name = _column_name(node)
    if name is not None:
        return name
    if isinstance(node, exp.JSONExtractScalar) and node.args.get("json_subtype"):
        return f"json_extract({_column_name(node.this) or node.this.sql('sqlite')}, " \
               f"{node.expression.sql('sqlite')})"
    if isinstance(node, exp.Lower | exp.Upper):
        fn = "lower" if isinstance(node, exp.Lower) else "upper"
        return f"{fn}({_column_name(node.this) or node.this.sql('sqlite')})"
    return node.sql("sqlite")


def literal_value(node: Any) -> tuple[bool, Any]:
    """``(True, value)`` when ``node`` is a constant SQLite knows at prepare time."""
    from sqlglot import exp

    if isinstance(node, exp.Null):
        return True, None
    if isinstance(node, exp.Boolean):
        return True, 1 if node.this else 0
    if isinstance(node, exp.Literal):
        if node.is_string:
            return True, node.this
        text = node.this
        try:
            return True, int(text)
        except ValueError:
            return True, float(text)
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and not node.this.is_string:
        ok, value = literal_value(node.this)
        return ok, -value
    return False, None


def _quote(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def terms(node: Any, connective: type[Any]) -> list[Any]:
    """The operands of a chain of ``connective`` (sqlglot's ``exp.And`` or ``exp.Or``),
    left to right, looking through parentheses.

    >>> from sqlglot import exp
    >>> from d1bench.sql.parsing import parse_statement as p
    >>> [t.sql() for t in terms(p("SELECT 1 WHERE a = 1 AND (b = 2 AND (c OR d))").args["where"].this, exp.And)]
    ['a = 1', 'b = 2', 'c OR d']
    """
    from sqlglot import exp

    out = []
    stack = [node]
    while stack:
        e = stack.pop()
        if isinstance(e, exp.Paren):
            stack.append(e.this)
        elif isinstance(e, connective):
            stack += [e.expression, e.this]
        else:
            out.append(e)
    return out


def render_predicate(node: Any, *, strip_tables: bool = False) -> str:
    """A predicate in SQLite's own spelling (``x IS NOT NULL``, lower-case functions).

    ``strip_tables`` drops table qualifiers, as a partial index's WHERE needs.

    >>> from d1bench.sql.parsing import parse_statement as p
    >>> render_predicate(p("SELECT 1 FROM t WHERE t.a IS NOT NULL AND (b = 'x' OR c < :p1)").args["where"].this,
    ...                  strip_tables=True)
    "a IS NOT NULL AND (b = 'x' OR c < :p1)"
    >>> render_predicate(p("SELECT 1 FROM t AS u WHERE u.s IN ('a', 'b')").args["where"].this,
    ...                  strip_tables=True)
    "s IN ('a', 'b')"
    """
    from sqlglot import exp

    def r(e: Any) -> str:
        if isinstance(e, exp.Paren):
            return f"({r(e.this)})"
        if isinstance(e, exp.And):
            return f"{r(e.this)} AND {r(e.expression)}"
        if isinstance(e, exp.Or):
            return f"{r(e.this)} OR {r(e.expression)}"
        if isinstance(e, exp.Not) and isinstance(e.this, exp.Is) and isinstance(e.this.expression, exp.Null):
            return f"{r(e.this.this)} IS NOT NULL"
        if isinstance(e, exp.Is) and isinstance(e.expression, exp.Null):
            return f"{r(e.this)} IS NULL"
        if isinstance(e, exp.Not):
            return f"NOT {r(e.this)}"
        ops = {exp.EQ: "=", exp.NEQ: "<>", exp.GT: ">", exp.GTE: ">=", exp.LT: "<", exp.LTE: "<="}
        for cls, op in ops.items():
            if type(e) is cls:
                return f"{r(e.this)} {op} {r(e.expression)}"
        if isinstance(e, exp.Column):
            name = e.this.sql("sqlite") if isinstance(e.this, exp.Identifier) else e.sql("sqlite")
            if strip_tables or not e.table:
                return name
            return f"{e.args['table'].sql('sqlite')}.{name}"
        ok, value = literal_value(e)
        if ok:
            return _quote(value)
        if indexable_expression(e) and strip_tables:
            return canonical_key(e)
        if strip_tables:  # IN, BETWEEN, LIKE ...: SQLite's spelling, unqualified
            e = e.copy()
            for col in e.find_all(exp.Column):
                col.set("table", None)
        return e.sql("sqlite")
    return r(node)
