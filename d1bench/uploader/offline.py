"""Rows written straight into a local D1's own SQLite file: the upload's fast path.

A local D1 is a Durable Object whose database is a plain SQLite file in
Miniflare's persist directory (:func:`d1bench.targets.d1.local.sqlite_file`).
Through the Worker, every row travels as JSON and is inserted by a statement:
20,000 papers (186,000 rows) took 23 s here, so a million papers would take
about 20 minutes.  Copied by SQLite from the source file into that file,
the same rows take a few minutes.

What keeps the result indistinguishable for a replay (``tests/test_upload_offline.py``
compares schema, rows and D1's own ``rows_read`` for a whole workload):

* every CREATE still goes through D1, before and after this step, so D1's
  authorizer judges the DDL and the schema comes out in the same order as from
  statements; only table rows and the FTS index are written here, while
  workerd is stopped (:meth:`~d1bench.targets.d1.local.LocalD1.paused`);
* the rows are copied by SQLite itself, values and types unchanged; an FTS5
  index over external content is copied from the source's shadow tables when
  both define it alike and the copy passes ``integrity-check``
  (:mod:`d1bench.uploader.fts_copy`), else filled from its rows;
* what D1 would refuse is refused here too, before that table's rows are
  written: a value over 2,000,000 bytes, a row whose foreign key has no parent;
* secondary indexes, triggers, views and ANALYZE are run by D1 afterwards,
  so the planner's statistics are D1's own, then the usual row-count check.

D1 bills nothing for rows written this way, so the summary's ``rows_read`` and
``rows_written`` are ``<NA>`` for those steps.  Remote D1 never takes this path:
only a target whose ``offline_file()`` gives a file offers it, and only a local
D1 this process runs does.

Resuming works as after statements: each chunk of rows commits on its own, in
rowid order, and the file stays in WAL mode (workerd's), so a killed process
loses only the chunk in flight and the next run continues from ``max(rowid)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import quote as quote_uri

import apsw

from d1bench.errors import UsageError
from d1bench.sql.limits import MAX_VALUE_BYTES
from d1bench.uploader.fts import fill_fts
from d1bench.uploader.fts_copy import copy_fts
from d1bench.uploader.packing import Table, quote
from d1bench.uploader.source import FtsTable

__all__ = ["CHUNK_ROWS", "OfflineLoad"]

#: Rows per committed chunk: what a kill loses, and about what the WAL holds at once.
CHUNK_ROWS = 50_000
#: FTS5's in-memory buffer while one range is indexed (its default is 1 MiB):
#: fewer, larger segments, less merging.  Dropped again afterwards.
FTS_HASHSIZE = 64 * 1024 * 1024
_CACHE_KIB = 256 * 1024
_MAX_ROWID = 2**63 - 1


class OfflineLoad:
    """One connection to a paused local D1's file, with the source attached read-only."""

    def __init__(self, path: Path, source_path: Path, *, chunk_rows: int | None = None) -> None:
        self.chunk_rows = chunk_rows or CHUNK_ROWS
        self.source_path = source_path
        self.conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE
                                    | apsw.SQLITE_OPEN_URI)
        # No fsync: a killed process loses nothing the OS already holds, and a
        # power cut during an upload means uploading again anyway.
        for pragma in ("PRAGMA synchronous = OFF", f"PRAGMA cache_size = -{_CACHE_KIB}",
                       "PRAGMA temp_store = MEMORY", "PRAGMA foreign_keys = OFF"):
            self.conn.execute(pragma)
        uri = "file:" + quote_uri(str(source_path.resolve())) + "?mode=ro"
        self.conn.execute("ATTACH ? AS src", (uri,))

    def _one(self, sql: str, params: Sequence[object] = ()) -> object:
        row = self.conn.execute(sql, params).fetchone()
        return row[0] if row else None

    def check_parents(self, table: Table) -> None:
        """Refuse the table if a row's foreign key finds no parent (D1 enforces them)."""
        name = quote(table.name)
        if not self.conn.execute(f"PRAGMA src.foreign_key_list({name})").fetchall():
            return
        try:
            bad = self.conn.execute(f"PRAGMA src.foreign_key_check({name})").fetchone()
        except apsw.SQLError as exc:  # e.g. a foreign key to columns without a unique index
            raise UsageError(f"{self.source_path}: table {table.name}: {exc}") from None
        if bad is not None:
            raise UsageError(f"{self.source_path}: table {table.name} rowid {bad[1]} refers to a "
                             f"{bad[2]} row that does not exist; D1 enforces foreign keys "
                             "and would refuse it")

    def _check_values(self, table: Table, lo: int, hi: int) -> None:
        sizes = [f"length(CAST({quote(c)} AS BLOB))" for c in table.columns]
        wide = " OR ".join(f"{s} > {MAX_VALUE_BYTES}" for s in sizes)
        row = self.conn.execute(
            f"SELECT rowid, max({', '.join(sizes)}, 0) FROM src.{quote(table.name)} "
            f"WHERE rowid > ? AND rowid <= ? AND ({wide}) LIMIT 1", (lo, hi)).fetchone()
        if row is not None:
            raise UsageError(f"{table.name} rowid {row[0]}: a value of {row[1]:,} bytes, over "
                             f"D1's {MAX_VALUE_BYTES:,}")

    def copy(self, table: Table, after: int, on_chunk: Callable[[int], None]) -> float:
        """Copy the rows after ``after`` (rowid, or rows already sent in key order);
        call ``on_chunk(rows)`` after each commit; return the longest chunk's seconds."""
        name = quote(table.name)
        cols = ", ".join(quote(c) for c in table.columns)
        head = f"INSERT OR IGNORE INTO main.{name} "
        if table.key:
            started = time.perf_counter()
            keys = ", ".join(quote(c) for c in table.key)
            with self.conn:
                self.conn.execute(f"{head}({cols}) SELECT {cols} FROM src.{name} "
                                  f"ORDER BY {keys} LIMIT -1 OFFSET ?", (after,))
                inserted = self.conn.changes()
            on_chunk(inserted)
            return time.perf_counter() - started
        both = f"rowid, {cols}" if table.explicit_rowid else cols
        insert = (f"{head}({both}) SELECT {both} FROM src.{name} "
                  "WHERE rowid > ? AND rowid <= ? ORDER BY rowid")
        slowest, lo = 0.0, after
        while True:
            first = self._one(f"SELECT min(rowid) FROM src.{name} WHERE rowid > ?", (lo,))
            if first is None:
                return slowest
            assert isinstance(first, int)
            hi = min(first - 1 + self.chunk_rows, _MAX_ROWID)
            started = time.perf_counter()
            self._check_values(table, lo, hi)
            with self.conn:
                self.conn.execute(insert, (lo, hi))
                inserted = self.conn.changes()
            slowest = max(slowest, time.perf_counter() - started)
            on_chunk(inserted)
            if hi == _MAX_ROWID:
                return slowest
            lo = hi

    def index_fts(self, fts: FtsTable, ids: Sequence[int], *, rebuild_max: int,
                  seconds: float) -> tuple[str, float, float]:
        """Copy the source's index of ``fts`` (:func:`~d1bench.uploader.fts_copy.copy_fts`),
        else fill it.  Return ``"copy"`` or ``"fill: <why not copied>"``, the longest
        writing statement's seconds and the integrity-check's (one statement over the
        whole index, run on the file: D1 never sees it)."""
        refusal, slowest, check_s = copy_fts(self.conn, fts.name)
        if refusal is None:
            return "copy", slowest, check_s
        took = self.fill_fts(fts, ids, rebuild_max=rebuild_max, seconds=seconds)
        return f"fill: {refusal}", max(slowest, took), check_s

    def fill_fts(self, fts: FtsTable, ids: Sequence[int], *, rebuild_max: int,
                 seconds: float) -> float:
        """Index ``fts`` in ranges as D1 would (:func:`~d1bench.uploader.fts.fill_fts`)."""
        name = quote(fts.name)
        self.conn.execute(f"INSERT INTO main.{name} ({name}, rank) VALUES ('hashsize', ?)",
                          (FTS_HASHSIZE,))
        try:
            return fill_fts(fts, ids, self.conn.execute, rebuild_max=rebuild_max,
                            seconds=seconds)
        finally:
            self.conn.execute(f"DELETE FROM main.{quote(fts.name + '_config')} "
                              "WHERE k = 'hashsize'")

    def close(self) -> None:
        """Detach, fold the WAL into the file (workerd then starts from a clean file), close."""
        try:
            self.conn.execute("DETACH src")
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self.conn.close()
