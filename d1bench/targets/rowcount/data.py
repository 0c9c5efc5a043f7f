"""Facts about a database the estimator asks for, cached across connections.

Table sizes (a full scan visits them all), ``count(*)`` of an FTS5 MATCH (the
rows its loop yields), and sorted samples of columns (how many rows a WHERE
term rejects).  Each costs one query the first time it is asked for, outside
the timed region of the request that asked, and a dictionary lookup after.
Writes during a run make them drift: :meth:`DataFacts.forget` starts afresh.
"""

from __future__ import annotations

import bisect
from typing import Any

__all__ = ["SAMPLE_ROWS", "DataFacts"]

SAMPLE_ROWS = 20_000  #: values kept per sampled column


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sort_key(value: Any) -> tuple[int, Any]:
    """SQLite's order across storage classes: NULL < numbers < text < blobs."""
    if isinstance(value, (int, float)):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    if isinstance(value, bytes):
        return (3, value)
    return (0, 0)


def _with_affinity(value: Any, keys: list) -> Any:
    """Convert a bound value as SQLite would to compare it with the column's values."""
    if not keys:
        return value
    column_is_text = keys[len(keys) // 2][0] == 2
    if column_is_text and isinstance(value, (int, float)):
        return str(value)
    if not column_is_text and isinstance(value, str):
        try:
            return float(value) if "." in value else int(value)
        except ValueError:
            return value
    return value


class DataFacts:
    """Caches of table sizes, FTS5 match counts and column samples.

    Plain dicts: connections in several threads only ever add keys, and a
    fact computed twice is the same fact.
    """

    def __init__(self) -> None:
        self._table_rows: dict[str, int] = {}
        self._fts_counts: dict[tuple[str, Any], int | None] = {}
        self._samples: dict[tuple[str, int], tuple[list, int, int] | None] = {}
        self._present: dict[tuple[str, int, Any], bool | None] = {}

    def forget(self) -> None:
        """Drop everything (after bulk changes, or a schema change)."""
        self._present.clear()
        self._table_rows.clear()
        self._fts_counts.clear()
        self._samples.clear()

    def table_rows(self, db: Any, table: str) -> int | None:
        """Rows in ``table`` (``None`` if it cannot be counted)."""
        import apsw

        rows = self._table_rows.get(table)
        if rows is None:
            try:
                rows = db.execute(f"SELECT count(*) FROM {_quote(table)}").fetchall()[0][0]
            except apsw.Error:
                return None
            self._table_rows[table] = rows
        return rows

    def fts_count(self, db: Any, table: str, expr: Any) -> int | None:
        """Rows of FTS5 ``table`` matching ``expr`` (``None`` for a bad expression)."""
        import apsw

        key = (table, expr)
        if key not in self._fts_counts:
            try:
                count = db.execute(f"SELECT count(*) FROM {_quote(table)} WHERE {_quote(table)} "
                                   "MATCH ?", (expr,)).fetchall()[0][0]
            except apsw.Error:
                count = None
            if len(self._fts_counts) > 100_000:
                self._fts_counts.clear()
            self._fts_counts[key] = count
        return self._fts_counts[key]

    def rejected_rows(self, db: Any, table: str, colno: int, opcode: str, col_is_p3: bool,
                      p5: int, value: Any) -> float | None:
        """How many rows of ``table`` a compare opcode on column ``colno`` jumps on.

        The compare is SQLite's: ``opcode`` (``Eq``, ``Ne``, ``Lt``, ``Le``,
        ``Gt``, ``Ge``, ``IsNull``, ``NotNull``) with the column as its P3
        operand (``col_is_p3``) or its P1, ``p5`` its flags (NULLs jump with
        ``SQLITE_JUMPIFNULL``; ``SQLITE_NULLEQ`` makes it ``IS``).  Estimated
        from a sorted sample of the column: a binary search per call.
        """
        if opcode == "Exists":  # not a compare: is the value in the column at all?
            present = self.present(db, table, colno, value)
            return None if present is None else float(present)
        sample = self._column_sample(db, table, colno)
        rows = self.table_rows(db, table)
        if sample is None or rows is None:
            return None
        keys, nulls, n = sample
        if n == 0:
            return 0.0
        if opcode == "IsNull":
            return rows * nulls / n
        if opcode == "NotNull":
            return rows * (n - nulls) / n
        null_jumps = bool(p5 & 0x10)  # SQLITE_JUMPIFNULL
        if value is None:
            if p5 & 0x80:  # SQLITE_NULLEQ: IS / IS NOT
                return rows * (nulls if opcode == "Eq" else n - nulls) / n
            return float(rows) if null_jumps else 0.0
        if not col_is_p3:  # the value is on the left: mirror the operator
            opcode = {"Lt": "Gt", "Le": "Ge", "Gt": "Lt", "Ge": "Le"}.get(opcode, opcode)
        key = _sort_key(_with_affinity(value, keys))
        lo, hi = bisect.bisect_left(keys, key), bisect.bisect_right(keys, key)
        below, equal, above = lo, hi - lo, len(keys) - hi
        jumping = {"Lt": below, "Le": below + equal, "Gt": above, "Ge": above + equal,
                   "Eq": equal, "Ne": below + above}.get(opcode)
        if jumping is None:
            return None
        if null_jumps:
            jumping += nulls
        return rows * jumping / n

    def present(self, db: Any, table: str, colno: int, value: Any) -> bool | None:
        """Does some row of ``table`` hold ``value`` in column ``colno``?  Asked of the
        table itself (an index answers it), since a sample misses most values of a key."""
        import apsw

        key = (table, colno, value)
        if key not in self._present:
            try:
                cols = db.execute(f"PRAGMA table_info({_quote(table)})").fetchall()
                name = next(c[1] for c in cols if c[0] == colno)
                found = bool(db.execute(f"SELECT 1 FROM {_quote(table)} WHERE {_quote(name)} = ? "
                                        "LIMIT 1", (value,)).fetchall())
            except (apsw.Error, StopIteration):
                found = None
            if len(self._present) > 100_000:
                self._present.clear()
            self._present[key] = found
        return self._present[key]

    def _column_sample(self, db: Any, table: str, colno: int) -> tuple[list, int, int] | None:
        import apsw

        key = (table, colno)
        if key in self._samples:
            return self._samples[key]
        sample = None
        try:
            cols = db.execute(f"PRAGMA table_info({_quote(table)})").fetchall()
            name = next(c[1] for c in cols if c[0] == colno)
            rows = self.table_rows(db, table) or 0
            step = max(1, -(-rows // SAMPLE_ROWS))
            try:
                values = [r[0] for r in db.execute(
                    f"SELECT {_quote(name)} FROM {_quote(table)} WHERE rowid % ? = 0", (step,))]
            except apsw.SQLError:  # WITHOUT ROWID
                values = [r[0] for r in db.execute(
                    f"SELECT {_quote(name)} FROM {_quote(table)} LIMIT ?", (SAMPLE_ROWS,))]
            nulls = sum(v is None for v in values)
            keys = sorted(_sort_key(v) for v in values if v is not None)
            sample = (keys, nulls, len(values))
        except (apsw.Error, StopIteration):
            sample = None
        self._samples[key] = sample
        return sample
