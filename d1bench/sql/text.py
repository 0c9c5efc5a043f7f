"""What a template's SQL text says before any database sees it.

Two questions are answered here without a database: how many parameters a
statement takes (and whether it uses a placeholder D1 refuses), and whether it
reads or writes.  The first is a small scanner that skips strings, quoted
identifiers and comments; the second asks sqlglot, the parser the lint and
advisor stages use too, so that every stage classifies a statement alike.
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from d1bench.progress import quiet_logger

__all__ = [
    "Placeholders",
    "classify_write",
    "parse_sql",
    "quiet_sqlglot",
    "scan_placeholders",
]


@dataclass(frozen=True, slots=True)
class Placeholders:
    """The parameters a statement's text asks for.

    Attributes:
        count: how many values must be bound (the largest ``?NNN``, or the
            number of plain ``?``), as ``sqlite3_bind_parameter_count`` says.
        named: named placeholders found (``:x``, ``@x``, ``$x``), which D1 refuses.
        trailing: text after the first complete statement, if any (a template
            must hold exactly one statement).
    """

    count: int
    named: tuple[str, ...]
    trailing: str


_IDENT_START = re.compile(r"[A-Za-z_]")
_NAMED = re.compile(r"[:@$][A-Za-z_][A-Za-z0-9_]*")
_NUMBERED = re.compile(r"\?(\d*)")


def scan_placeholders(sql: str) -> Placeholders:
    """Count the parameters of one statement the way SQLite numbers them.

    A plain ``?`` takes the number after the largest one used so far, ``?NNN``
    takes NNN, so ``?, ?5`` asks for 5 values.

    >>> scan_placeholders("SELECT * FROM t WHERE a = ? AND b = '?' -- ?").count
    1
    >>> scan_placeholders("SELECT ?2, ?2").count
    2
    >>> scan_placeholders("SELECT :name").named
    (':name',)
    >>> scan_placeholders("SELECT 1; SELECT 2").trailing
    'SELECT 2'
    """
    i, n = 0, len(sql)
    largest = 0
    named: list[str] = []
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            end = sql.find(ch, i + 1)
            while end != -1 and end + 1 < n and sql[end + 1] == ch:  # doubled quote escapes
                end = sql.find(ch, end + 2)
            i = n if end == -1 else end + 1
        elif ch == "[":
            end = sql.find("]", i + 1)
            i = n if end == -1 else end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end == -1 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end == -1 else end + 2
        elif ch == "?":
            m = _NUMBERED.match(sql, i)
            assert m is not None
            # SQLite gives ?NNN the number NNN, and a bare ? one more than the largest so far
            number = int(m.group(1)) if m.group(1) else largest + 1
            largest = max(largest, number)
            i = m.end()
        elif ch in ":@$" and i + 1 < n and _IDENT_START.match(sql, i + 1):
            # a named placeholder, unless it is part of an identifier like a:b (never in SQL)
            m = _NAMED.match(sql, i)
            assert m is not None
            named.append(m.group(0))
            i = m.end()
        elif ch == ";":
            rest = _strip_comments(sql[i + 1:]).strip()
            return Placeholders(largest, tuple(named), rest)
        else:
            i += 1
    return Placeholders(largest, tuple(named), "")


def _strip_comments(text: str) -> str:
    text = re.sub(r"--[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)


def quiet_sqlglot() -> contextlib.AbstractContextManager[None]:
    """sqlglot's warnings off: it logs one when it falls back to an opaque Command
    (REPLACE INTO, ALTER TABLE), a case the callers handle themselves."""
    return quiet_logger("sqlglot", logging.ERROR)


_NUMBERED_FOR_SQLGLOT = re.compile(r"\?\d+")


@lru_cache(maxsize=4096)
def parse_sql(sql: str) -> Any:
    """Parse one statement with sqlglot (dialect ``sqlite``); raise on failure.

    sqlglot does not know SQLite's ``?NNN`` placeholders, so they are read as
    plain ``?`` (only the shape of the statement matters here).  The result is
    cached: the lint and advisor stages parse the same templates again.
    """
    import sqlglot

    text = _NUMBERED_FOR_SQLGLOT.sub("?", sql)
    with quiet_sqlglot():
        expressions = sqlglot.parse(text, read="sqlite")
    expressions = [e for e in expressions if e is not None]
    if len(expressions) != 1:
        raise ValueError(f"expected one statement, sqlglot found {len(expressions)}")
    return expressions[0]


_WRITE_WORDS = re.compile(
    r"(?is)^\s*(?:WITH\b.*?\)\s*)?(INSERT|UPDATE|DELETE|REPLACE|UPSERT|CREATE|DROP|ALTER|ANALYZE|"
    r"REINDEX|VACUUM|ATTACH|DETACH|BEGIN|COMMIT|END|ROLLBACK|SAVEPOINT|RELEASE)\b")


#: PRAGMAs that SQLite does not call read-only: they write the file or its header.
_WRITING_PRAGMAS = frozenset({"journal_mode", "wal_checkpoint", "incremental_vacuum", "optimize"})
#: PRAGMAs that write only when given a value.
_WRITING_PRAGMA_ASSIGNMENTS = frozenset({"user_version", "application_id", "schema_version"})
_PRAGMA = re.compile(r"(?is)^\s*PRAGMA\s+(?:\w+\s*\.\s*)?(\w+)\s*(=)?")


def _pragma_writes(sql: str) -> bool:
    m = _PRAGMA.match(_strip_comments(sql))
    if m is None:
        return False
    name = m.group(1).lower()
    return name in _WRITING_PRAGMAS or (name in _WRITING_PRAGMA_ASSIGNMENTS and bool(m.group(2)))


def classify_write(sql: str) -> tuple[bool, str | None]:
    """Say whether ``sql`` writes, and why sqlglot could not tell if it could not.

    Reads are queries (SELECT, compound SELECT, VALUES, with or without a WITH
    clause), EXPLAIN and most PRAGMAs; everything else (INSERT, UPDATE, DELETE,
    REPLACE, DDL, ANALYZE, and the PRAGMAs SQLite does not call read-only, such
    as ``journal_mode`` or ``user_version = 3``) writes.
    When sqlglot cannot parse the statement, the first keyword decides and the
    parser's message is returned so a check can report it.

    >>> classify_write("WITH x AS (SELECT 1) SELECT * FROM x")
    (False, None)
    >>> classify_write("REPLACE INTO t (a) VALUES (?)")
    (True, None)
    >>> classify_write("UPDATE papers SET citation_count = citation_count + 1 WHERE id = ?")
    (True, None)
    """
    from sqlglot import exp

    try:
        tree = parse_sql(sql)
    except Exception as exc:  # noqa: BLE001 - sqlglot raises several types; its text matters
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return bool(_WRITE_WORDS.match(_strip_comments(sql))), first_line
    if isinstance(tree, exp.Pragma):
        return _pragma_writes(sql), None
    if isinstance(tree, (exp.Query, exp.Values)):
        return False, None
    if isinstance(tree, exp.Command):
        keyword = str(tree.this or "").upper()
        return keyword not in {"EXPLAIN", "PRAGMA"}, None
    return True, None
