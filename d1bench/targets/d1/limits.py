"""D1's per-statement limits, checked before a request leaves the machine.

A statement D1 would refuse costs a round trip, counts against the rate
limit and, worse, fails deep inside a replay with a SQLite message that does
not name the template.  Checking here fails at once and says which template.

What is checked (d1.md, "Limits"): bound parameters per statement (100),
statement length (100,000 bytes), one value (2,000,000 bytes), LIKE/GLOB
patterns (50 bytes) when the pattern is a literal, a bound value or a
concatenation of those, and the PRAGMAs and statements D1 refuses.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from d1bench.errors import TargetError, UsageError
from d1bench.sql.limits import MAX_PARAMS, MAX_PATTERN_BYTES, MAX_SQL_BYTES, MAX_VALUE_BYTES

__all__ = [
    "StatementShape",
    "check_statement",
    "check_workload_limits",
    "statement_shape",
]



@dataclass(frozen=True, slots=True)
class StatementShape:
    """What the limits need to know about one SQL text, computed once per text.

    Attributes:
        sql_bytes: UTF-8 length of the text.
        placeholders: the parameter count SQLite would ask for.
        problems: D1 refusals found in the text (PRAGMAs, transactions, ...).
        patterns: LIKE/GLOB patterns as ``(literal_bytes, param_indexes)``:
            the pattern's length is the literal part plus those parameters.
    """

    sql_bytes: int
    placeholders: int
    problems: tuple[str, ...]
    patterns: tuple[tuple[int, tuple[int, ...]], ...]


_PLACEHOLDER = re.compile(r"\?(\d*)")


def _numbered(sql: str) -> tuple[str, int]:
    """Rewrite ``?``/``?NNN`` as ``:pN`` (N = SQLite's 1-based number) for sqlglot."""
    import sqlglot
    from sqlglot.tokens import TokenType

    tokens = sqlglot.tokenize(sql, read="sqlite")
    edits: list[tuple[int, int, str]] = []
    largest = 0
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.token_type == TokenType.PLACEHOLDER and tok.text == "?":
            end = tok.end
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            if (nxt is not None and nxt.token_type == TokenType.NUMBER
                    and nxt.start == tok.end + 1 and nxt.text.isdigit()):
                number = int(nxt.text)
                end = nxt.end
                i += 1
            else:
                number = largest + 1
            largest = max(largest, number)
            edits.append((tok.start, end + 1, f":p{number}"))
        i += 1
    for start, stop, text in reversed(edits):
        sql = sql[:start] + text + sql[stop:]
    return sql, largest


def _pattern_parts(node: Any) -> tuple[int, tuple[int, ...]] | None:
    from sqlglot import exp

    if isinstance(node, exp.Paren):
        return _pattern_parts(node.this)
    if isinstance(node, exp.Literal) and node.is_string:
        return len(node.this.encode("utf-8")), ()
    if isinstance(node, exp.Placeholder) and str(node.this).startswith("p"):
        return 0, (int(str(node.this)[1:]) - 1,)
    if isinstance(node, exp.DPipe):
        left, right = _pattern_parts(node.this), _pattern_parts(node.expression)
        if left is None or right is None:
            return None
        return left[0] + right[0], left[1] + right[1]
    return None  # a column or an expression: its length is known only at run time


def _patterns(sql: str) -> tuple[tuple[int, tuple[int, ...]], ...]:
    import sqlglot
    from sqlglot import exp

    if not re.search(r"(?i)\b(LIKE|GLOB)\b", sql):
        return ()
    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        text, _ = _numbered(sql)
        trees = sqlglot.parse(text, read="sqlite")
    except Exception:  # noqa: BLE001 - sqlglot cannot read it: D1 will still say "pattern too complex"
        return ()
    finally:
        logger.setLevel(level)
    found = []
    for tree in trees:
        if tree is None:
            continue
        for node in tree.find_all(exp.Like, exp.ILike, exp.Glob):
            parts = _pattern_parts(node.expression)
            if parts is not None:
                found.append(parts)
    return tuple(found)


@lru_cache(maxsize=4096)
def statement_shape(sql: str) -> StatementShape:
    """Analyse ``sql`` once; every later send of the same text reuses the answer.

    >>> s = statement_shape("SELECT * FROM papers WHERE title LIKE '%' || ? || '%' AND id = ?2")
    >>> (s.placeholders, s.patterns)
    (2, ((2, (0,)),))
    """
    from d1bench.schema import d1_problems
    from d1bench.sql.text import scan_placeholders

    return StatementShape(
        sql_bytes=len(sql.encode("utf-8")),
        placeholders=scan_placeholders(sql).count,
        problems=tuple(d1_problems(sql)),
        patterns=_patterns(sql),
    )


def _value_bytes(value: Any) -> int:
    if isinstance(value, str):
        # a str of n characters is at most 4n UTF-8 bytes: skip the encode for short ones
        return len(value) if len(value) * 4 <= MAX_VALUE_BYTES else len(value.encode("utf-8"))
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value)
    return 8


def _pattern_value_bytes(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, bytes | bytearray):
        return len(value)
    return len(str(value))


def check_statement(sql: str, params: Sequence[Any] = (), *, template: str | None = None) -> None:
    """Raise ``TargetError(error_class="limit")`` if D1 would refuse this statement.

    >>> check_statement("SELECT ?", [1])
    >>> check_statement("SELECT * FROM t WHERE a LIKE ?", ["x" * 51], template="search")
    Traceback (most recent call last):
    ...
    d1bench.errors.TargetError: [limit] template 'search': LIKE/GLOB pattern of 51 bytes \
(parameter 1); D1 allows 50
    """
    shape = statement_shape(sql)
    problem = None
    if shape.sql_bytes > MAX_SQL_BYTES:
        problem = f"statement of {shape.sql_bytes:,} bytes; D1 allows {MAX_SQL_BYTES:,}"
    elif len(params) > MAX_PARAMS or shape.placeholders > MAX_PARAMS:
        n = max(len(params), shape.placeholders)
        problem = f"{n} bound parameters; D1 allows {MAX_PARAMS} per statement"
    elif shape.problems:
        problem = "D1 refuses it: " + "; ".join(shape.problems)
    else:
        for i, value in enumerate(params):
            size = _value_bytes(value)
            if size > MAX_VALUE_BYTES:
                problem = (f"parameter {i + 1} is {size:,} bytes; D1 allows "
                           f"{MAX_VALUE_BYTES:,} per value")
                break
        else:
            for literal, indexes in shape.patterns:
                size = literal + sum(_pattern_value_bytes(value)
                                     for i in indexes if i < len(params))
                if size > MAX_PATTERN_BYTES:
                    which = (" (parameter " + ", ".join(str(i + 1) for i in indexes) + ")"
                             if indexes else " (literal)")
                    problem = (f"LIKE/GLOB pattern of {size} bytes{which}; "
                               f"D1 allows {MAX_PATTERN_BYTES}")
                    break
    if problem is not None:
        where = f"template {template!r}: " if template else ""
        raise TargetError(f"{where}{problem}", error_class="limit", retryable=False, attempts=0)


def check_workload_limits(workload: Any) -> None:
    """Check every template's text (not its values) against D1's limits.

    Raises :class:`~d1bench.errors.UsageError` naming the templates at fault.
    """
    from d1bench.targets.d1.guard import _templates

    faults = []
    for name, template in _templates(workload):
        sql = getattr(template, "sql", template)
        try:
            check_statement(sql, (), template=name)
        except TargetError as exc:
            faults.append(exc.message)
    if faults:
        raise UsageError("D1 would refuse: " + "; ".join(faults))
