"""What binding needs to know about a table of any schema: its columns and the
key to probe it by.

Asked through plain SELECTs on ``pragma_table_info`` (D1 authorises
``table_info``), once per table, so that a misspelt column is reported as the
``table.column`` the user wrote, with the columns the table does have, rather
than as SQLite's message about a query the user never saw.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from d1bench.errors import TargetError
from d1bench.sql.catalog import quote_ident
from d1bench.workload.samplers import SamplerError

__all__ = ["Tables", "q"]


#: ``name`` as a quoted SQL identifier (the ground floor's one copy).
q = quote_ident


class Tables:
    """Columns and probe keys of the tables a workload samples, cached.

    Args:
        rows: runs one SELECT and returns its rows (the resolver's counter).
    """

    def __init__(self, rows: Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]) -> None:
        self._rows = rows
        self._info: dict[str, list[tuple[str, int]]] = {}
        self._rowid: dict[str, bool] = {}

    def columns(self, table: str) -> list[tuple[str, int]]:
        """``(name, pk position)`` of each column (position 0: not in the primary key)."""
        if table not in self._info:
            try:
                found = self._rows("SELECT name, pk FROM pragma_table_info(?) ORDER BY cid", [table])
            except TargetError as exc:
                raise SamplerError(f"cannot read the columns of {table}: {exc.message}") from None
            if not found:
                raise SamplerError(f"no table {table} in the database")
            self._info[table] = [(str(n), int(pk)) for n, pk in found]
        return self._info[table]

    def need_column(self, table: str, column: str) -> None:
        """Raise naming ``table.column`` unless the table has it (``rowid`` counts
        when the table has one)."""
        names = [n for n, _ in self.columns(table)]
        if column in names or (column == "rowid" and self.has_rowid(table)):
            return
        lower = {n.lower(): n for n in names}
        if column.lower() in lower:
            return  # SQLite's identifiers are case-insensitive
        raise SamplerError(f"no column {table}.{column} (it has {', '.join(names)})")

    def has_rowid(self, table: str) -> bool:
        """Whether ``table`` has a rowid (not WITHOUT ROWID, not a view)."""
        if table not in self._rowid:
            try:
                self._rows(f"SELECT rowid FROM {q(table)} LIMIT 0", [])
                self._rowid[table] = True
            except TargetError:
                self._rowid[table] = False
        return self._rowid[table]

    def probe_key(self, table: str) -> str:
        """The column to probe random rows by: ``rowid``, else the first column
        of a WITHOUT ROWID table's primary key (composite keys included)."""
        if self.has_rowid(table):
            return "rowid"
        keyed = sorted((pk, n) for n, pk in self.columns(table) if pk > 0)
        if not keyed:
            raise SamplerError(f"{table} has neither a rowid nor a primary key to sample rows by")
        return keyed[0][1]
