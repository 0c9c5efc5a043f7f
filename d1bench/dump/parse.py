"""Reading a SQL dump: statements with their line numbers, and the rows of its
INSERTs parsed into Python values without asking SQLite to prepare each one.

A dump of a million rows is a million ``INSERT`` statements; preparing each
costs SQLite more than inserting it, so rows are parsed here and inserted in
bulk with ``executemany``.  The fast path reads the literals dumps write
(integers, reals, ``NULL``, ``'...'`` strings, ``X'..'`` blobs, and
``replace('..','\\n',char(10))``); any other expression in a row is handed to
SQLite as ``SELECT <values>``, so nothing is guessed.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["Insert", "parse_insert", "statements"]


@dataclass(frozen=True, slots=True)
class Insert:
    """The parts of ``INSERT INTO t (cols) VALUES(...)`` that say where rows go.

    Attributes:
        table: the table name, unquoted.
        columns: the column names, unquoted (empty: all, in table order).
        head: the text before the values, which rows of the same table share.
    """

    table: str
    columns: tuple[str, ...]
    head: str


def statements(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """Split a dump into ``(line it starts on, statement text)``.

    A one-line ``INSERT`` with balanced quotes is complete without further
    checks (the common case, a million times over; plain tuples, since even a
    dataclass per row would show in the import's time); anything else is
    accumulated until :func:`sqlite3.complete_statement` says it ends, which
    knows about quotes, comments and trigger bodies.

    >>> list(statements(["CREATE TABLE t(a);\\n", "INSERT INTO t VALUES('x;\\n", "y');\\n"]))
    [(1, 'CREATE TABLE t(a);'), (2, "INSERT INTO t VALUES('x;\\ny');")]
    """
    pending: list[str] = []
    start = 0
    n = 0
    for n, raw in enumerate(lines, 1):
        if not pending and raw.startswith("INSERT INTO ") and raw.endswith(");\n") \
                and raw.count("'") % 2 == 0:
            yield n, raw[:-1]
            continue
        line = raw.rstrip("\r\n")
        if not pending:
            stripped = line.strip()
            if not stripped or stripped.startswith("--"):
                continue
            start = n
        pending.append(line)
        if line.rstrip().endswith(";"):
            text = "\n".join(pending)
            if sqlite3.complete_statement(text):
                yield start, text.strip()
                pending = []
    if pending and "\n".join(pending).strip():
        yield start, "\n".join(pending).strip()


_IDENT = r'(?:"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\]|[A-Za-z_][A-Za-z0-9_$]*)'
_INSERT = re.compile(
    rf"INSERT\s+INTO\s+(?:{_IDENT}\s*\.\s*)?({_IDENT})\s*(\((?:\s*{_IDENT}\s*,?)*\))?\s*VALUES\s*\(",
    re.IGNORECASE)


def _unquote(name: str) -> str:
    if name[:1] == '"':
        return name[1:-1].replace('""', '"')
    if name[:1] in "`[":
        return name[1:-1]
    return name


def parse_insert(sql: str) -> tuple[Insert, str] | None:
    """The target of a single-row ``INSERT ... VALUES(...)`` and its values text,
    or ``None`` for any other statement (multi-row, ``SELECT``, ``ON CONFLICT``...).

    >>> ins, values = parse_insert('INSERT INTO "my t" ("a","b") VALUES(1,\\'x\\');')
    >>> ins.table, ins.columns, values
    ('my t', ('a', 'b'), "1,'x'")
    """
    m = _INSERT.match(sql)
    if m is None or not sql.endswith(");"):
        return None
    cols = tuple(_unquote(c) for c in re.findall(_IDENT, m.group(2))) if m.group(2) else ()
    return Insert(_unquote(m.group(1)), cols, sql[:m.end()]), sql[m.end():-2]
