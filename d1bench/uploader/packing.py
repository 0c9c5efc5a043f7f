"""Rows into INSERT statements and requests that D1 accepts.

D1 refuses a statement with more than 100 bound parameters or 100,000 bytes
of SQL, and a string or BLOB over 2,000,000 bytes.  :class:`StatementPacker`
turns one table's rows into multi-row ``INSERT OR IGNORE`` statements within
those limits and groups them into requests of bounded size.

Almost every value is bound, so that all full statements of a table share one
text (cheap for the client's read-only guard to check, and for SQLite to
prepare).  Written as SQL literals instead: BLOBs (JSON has no bytes),
infinities (JSON has none) and integers beyond 2**53, which would lose digits
as JSON numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from d1bench.errors import UsageError
from d1bench.sql.limits import MAX_PARAMS, MAX_VALUE_BYTES
from d1bench.sql.limits import MAX_SQL_BYTES as MAX_STATEMENT_BYTES

__all__ = ["LITERAL", "MAX_PARAMS", "MAX_STATEMENT_BYTES", "MAX_VALUE_BYTES", "StatementPacker",
           "Table", "describe_table", "quote", "sql_value"]

# Headroom under the statement limit for the INSERT's own text.
_STATEMENT_BUDGET = MAX_STATEMENT_BYTES - 5_000
_EXACT_INT = 2**53
LITERAL = object()  # marks a value written into the SQL text, not bound


def quote(name: str) -> str:
    """An SQL identifier, quoted.

    >>> quote('a"b')
    '"a""b"'
    """
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True, slots=True)
class Table:
    """A table to copy: its name, columns, and whether its rowid must be sent.

    ``key`` is the primary key of a WITHOUT ROWID table (empty otherwise): such
    a table is copied, and resumed, in key order.
    """

    name: str
    columns: tuple[str, ...]
    explicit_rowid: bool  # no INTEGER PRIMARY KEY alias: send the rowid itself
    key: tuple[str, ...] = ()


def describe_table(source: Any, path: Path, name: str) -> Table:
    """Read ``name``'s columns from the source database (an APSW connection)."""
    info = list(source.execute(f"PRAGMA table_info({quote(name)})"))
    if not info:
        raise UsageError(f"{path}: no table {name!r}")
    columns = tuple(row[1] for row in info)
    pks = [row for row in info if row[5]]
    alias = len(pks) == 1 and pks[0][2].upper() == "INTEGER"
    return Table(name, columns, explicit_rowid=not alias)


def sql_value(value: Any, where: str) -> tuple[str, Any | None, int]:
    """SQL text for ``value``, the parameter to bind (:data:`LITERAL` if none), and its size.

    >>> sql_value(7, "t")[:2], sql_value(2**60, "t")[0], sql_value(b"\\x01", "t")[0]
    (('?', 7), '1152921504606846976', "X'01'")
    """
    if value is None:
        return "?", None, 4
    if isinstance(value, bool | int):
        value = int(value)
        if abs(value) > _EXACT_INT:
            text = str(value)
            return text, LITERAL, len(text)
        return "?", value, 20
    if isinstance(value, float):
        if math.isinf(value):
            return ("9e999" if value > 0 else "-9e999"), LITERAL, 6
        return "?", value, 24
    if isinstance(value, str):
        size = len(value.encode("utf-8"))
        if size > MAX_VALUE_BYTES:
            raise UsageError(f"{where}: {size:,} bytes of text, over D1's {MAX_VALUE_BYTES:,}")
        return "?", value, size + size // 8 + 2  # JSON escaping
    if isinstance(value, bytes | bytearray | memoryview):
        blob = bytes(value)
        if len(blob) > MAX_VALUE_BYTES:
            raise UsageError(f"{where}: {len(blob):,}-byte BLOB, over D1's {MAX_VALUE_BYTES:,}")
        text = f"X'{blob.hex()}'"
        return text, LITERAL, len(text)
    raise UsageError(f"{where}: cannot send a {type(value).__name__} value")


class StatementPacker:
    """Packs rows of one table into multi-row INSERTs, and INSERTs into requests.

    ``add`` says when a request is full; ``take`` then hands it over.  A
    request holds at most ``max_statements`` statements: when the last one
    cannot be closed without passing that, it waits for the next request.
    """

    def __init__(self, table: Table, batch_rows: int | None, max_statements: int,
                 max_request_bytes: int) -> None:
        cols = (("rowid",) if table.explicit_rowid else ()) + table.columns
        self.head = (f"INSERT OR IGNORE INTO {quote(table.name)} "
                     f"({', '.join(quote(c) for c in cols)}) VALUES ")
        self.table = table
        self.batch_rows = batch_rows
        self.max_statements = max(1, max_statements)
        self.max_request_bytes = max_request_bytes
        self._closed: list[tuple[str, list[Any], int, int]] = []  # sql, params, rows, bytes
        self._closed_rows = 0
        self._closed_bytes = 0
        self._rows: list[str] = []
        self._params: list[Any] = []
        self._sql_bytes = len(self.head)
        self._param_bytes = 0

    @property
    def pending(self) -> bool:
        """Rows are waiting to be taken."""
        return bool(self._closed or self._rows)

    def add(self, row: Sequence[Any]) -> bool:
        """Add one source row (rowid first); True when a request is full: call :meth:`take`."""
        rowid = row[0]
        values = row if self.table.explicit_rowid else row[1:]
        where = f"{self.table.name} rowid {rowid}"
        parts, params, param_bytes = [], [], 0
        for value in values:
            text, param, nbytes = sql_value(value, where)
            parts.append(text)
            if param is not LITERAL:
                params.append(param)
            param_bytes += nbytes
        rendered = "(" + ",".join(parts) + ")"
        if len(params) > MAX_PARAMS or len(self.head) + len(rendered) > _STATEMENT_BUDGET:
            raise UsageError(f"{where}: one row needs {len(params)} parameters and "
                             f"{len(rendered):,} bytes of SQL, over D1's statement limits")
        if (len(self._params) + len(params) > MAX_PARAMS
                or self._sql_bytes + len(rendered) + 1 > _STATEMENT_BUDGET):
            self._close_statement()
        self._rows.append(rendered)
        self._params.extend(params)
        self._param_bytes += param_bytes
        self._sql_bytes += len(rendered) + 1
        rows = self._closed_rows + len(self._rows)
        return (len(self._closed) >= self.max_statements
                or self._closed_bytes + self._sql_bytes + self._param_bytes
                >= self.max_request_bytes
                or (self.batch_rows is not None and rows >= self.batch_rows))

    def _close_statement(self) -> None:
        if self._rows:
            sql = self.head + ",".join(self._rows)
            size = self._sql_bytes + self._param_bytes
            self._closed.append((sql, self._params, len(self._rows), size))
            self._closed_rows += len(self._rows)
            self._closed_bytes += size
        self._rows, self._params, self._sql_bytes, self._param_bytes = [], [], len(self.head), 0

    def take(self) -> tuple[list[tuple[str, list[Any]]], int]:
        """One request's statements and its row count; call while :attr:`pending`."""
        if len(self._closed) < self.max_statements:
            self._close_statement()
        cut = self.max_statements
        chosen, self._closed = self._closed[:cut], self._closed[cut:]
        rows = sum(item[2] for item in chosen)
        self._closed_rows -= rows
        self._closed_bytes -= sum(item[3] for item in chosen)
        return [(sql, params) for sql, params, _, _ in chosen], rows
