"""Where a migration writes while it builds: a SQLite file aside, or a D1 database.

Each write of rows carries the copy's progress (the last key copied) in the
same transaction: a SQLite transaction, or one atomic D1 batch.  So after an
interruption the progress table says exactly which rows are in, and the copy
continues after that key with nothing sent twice.

The progress lives in the table ``_d1bench_migration`` of the database being
built; it is dropped once the migration has been validated.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from d1bench.migrator.digest import MASK, batch_digest, table_digest
from d1bench.uploader.packing import quote

__all__ = ["STATE_TABLE", "D1Sink", "RowKeys", "SQLiteSink", "Sink"]

STATE_TABLE = "_d1bench_migration"
_STATE_DDL = (f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (item TEXT PRIMARY KEY, "
              "last_key TEXT, rows INTEGER NOT NULL DEFAULT 0, done INTEGER NOT NULL DEFAULT 0)")
_STATE_UPSERT = (f"INSERT INTO {STATE_TABLE} (item, last_key, rows, done) VALUES (?, ?, ?, ?) "
                 "ON CONFLICT (item) DO UPDATE SET last_key = excluded.last_key, "
                 "rows = excluded.rows, done = excluded.done")


class RowKeys(Protocol):
    """The source key of each row of a batch (``None``: the table has none), by position.

    A protocol rather than a sequence so that the copy can work a key out only
    when a sink asks for it.
    """

    def __len__(self) -> int: ...

    def __getitem__(self, i: int, /) -> Sequence[Any] | None: ...


def _key_json(key: Sequence[Any] | None) -> str | None:
    return None if key is None else json.dumps(list(key), default=str)


class Sink:
    """The database a migration builds (SQLite file or D1); subclasses say how to write."""

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def run(self, statements: Sequence[str]) -> None:
        raise NotImplementedError

    def write(self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]],
              keys: RowKeys, total: int) -> None:
        """Insert ``rows`` and record progress (``keys[i]`` is row i's source key) atomically."""
        raise NotImplementedError

    def user_tables(self) -> list[str]:
        rows = self.query("SELECT name FROM sqlite_master WHERE type = 'table' "
                          "AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' "
                          f"AND name <> '{STATE_TABLE}'")
        return sorted(r[0] for r in rows)

    def state(self) -> dict[str, tuple[Any, int, bool]]:
        """item -> (last key or None, rows copied, done); empty when nothing was started."""
        self.run([_STATE_DDL])
        out = {}
        for item, last, rows, done in self.query(f"SELECT item, last_key, rows, done "
                                                 f"FROM {STATE_TABLE}"):
            out[item] = (None if last is None else json.loads(last), int(rows), bool(done))
        return out

    def mark(self, item: str, last_key: Sequence[Any] | None, rows: int, done: bool) -> None:
        self.run_params([self.mark_statement(item, last_key, rows, done)])

    @staticmethod
    def mark_statement(item: str, last_key: Sequence[Any] | None, rows: int,
                       done: bool) -> tuple[str, list[Any]]:
        """The statement recording ``item``'s progress, to run with other writes."""
        return _STATE_UPSERT, [item, _key_json(last_key), rows, int(done)]

    def run_params(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        raise NotImplementedError

    def read(self, table: str, columns: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """Every row of ``table`` (``columns`` in order), in no particular order."""
        raise NotImplementedError

    def digest(self, table: str, columns: Sequence[str]) -> tuple[int, int]:
        """(rows, checksum) of ``table`` (see :func:`~d1bench.migrator.copy.row_digest`)."""
        return table_digest(self.read(table, columns))

    def close(self) -> None:
        pass


class SQLiteSink(Sink):
    """A SQLite file being built aside, consistent whenever the copy is killed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # A rollback journal undoes a transaction a killed process left half done (what
        # resuming needs) and writes each page once, where WAL writes it twice;
        # synchronous=OFF survives a killed process, not a power cut.
        self.conn.execute("PRAGMA journal_mode = DELETE")
        self.conn.execute("PRAGMA synchronous = OFF")
        self.conn.execute("PRAGMA cache_size = -65536")  # 64 MB: key b-trees stay in memory

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, tuple(params)).fetchall()

    def run(self, statements: Sequence[str]) -> None:
        self.run_params([(s, ()) for s in statements])

    def run_params(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        self.conn.execute("BEGIN")
        try:
            for sql, params in statements:
                self.conn.execute(sql, tuple(params))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def write(self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]],
              keys: RowKeys, total: int) -> None:
        sql = (f"INSERT INTO {quote(table)} ({', '.join(quote(c) for c in columns)}) "
               f"VALUES ({', '.join('?' * len(columns))})")
        self.conn.execute("BEGIN")
        try:
            self.conn.executemany(sql, rows)
            self.conn.execute(_STATE_UPSERT, (table, _key_json(keys[-1]), total, 0))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def read(self, table: str, columns: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        cur = self.conn.execute(f"SELECT {', '.join(quote(c) for c in columns)} "
                                f"FROM {quote(table)}")
        while rows := cur.fetchmany(10_000):
            yield from rows

    def digest(self, table: str, columns: Sequence[str]) -> tuple[int, int]:
        """(rows, checksum) of ``table``, hashed batch by batch."""
        cur = self.conn.execute(f"SELECT {', '.join(quote(c) for c in columns)} "
                                f"FROM {quote(table)}")
        count = total = 0
        while rows := cur.fetchmany(10_000):
            count += len(rows)
            total = (total + batch_digest(rows)) & MASK
        return count, total

    def finish(self) -> None:
        """Drop the progress table: the file is then the migrated database, nothing more."""
        self.conn.execute(f"DROP TABLE IF EXISTS {STATE_TABLE}")

    def close(self) -> None:
        self.conn.close()


class D1Sink(Sink):
    """A D1 database (local or remote) through a target connection that may write.

    Rows go as multi-row INSERTs within D1's statement limits
    (:class:`~d1bench.uploader.packing.StatementPacker`), each request one atomic
    batch that starts with ``PRAGMA defer_foreign_keys = on`` (D1 always
    enforces foreign keys) and ends with the progress update.
    """

    def __init__(self, conn: Any, batch_rows: int | None = None) -> None:
        self.conn = conn  # a D1 connection that may write: it has execute_batch
        self.batch_rows = batch_rows

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        # D1's JSON results carry a BLOB as a list of byte values.
        return [tuple(bytes(v) if isinstance(v, list) else v for v in row)
                for row in self.conn.execute(sql, list(params)).rows]

    def run(self, statements: Sequence[str]) -> None:
        self.run_params([(s, []) for s in statements])

    def run_params(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        self.conn.execute_batch([("PRAGMA defer_foreign_keys = on", []),
                                 *[(s, list(p)) for s, p in statements]])

    def write(self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]],
              keys: RowKeys, total: int) -> None:
        from d1bench.uploader.packing import StatementPacker, Table

        packer = StatementPacker(Table(table, tuple(columns), explicit_rowid=False),
                                 self.batch_rows, max_statements=50, max_request_bytes=900_000)
        copied = total - len(rows)  # rows of this table in before this call
        pending: list[Sequence[Any] | None] = []  # keys of rows added, not yet sent
        for i, row in enumerate(rows):
            pending.append(keys[i])
            if packer.add((i, *row)):
                copied = self._flush(packer, table, pending, copied)
        while packer.pending:
            copied = self._flush(packer, table, pending, copied)

    def _flush(self, packer: Any, table: str, pending: list[Sequence[Any] | None],
               copied: int) -> int:
        statements, count = packer.take()
        last = pending[count - 1]
        del pending[:count]  # a row left in an open statement waits for the next request
        self.run_params([*statements, (_STATE_UPSERT, [table, _key_json(last), copied + count, 0])])
        return copied + count

    def read(self, table: str, columns: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        cols = ", ".join(quote(c) for c in columns)
        last = None
        while True:  # by rowid pages: one response per page stays small
            where = "" if last is None else f"WHERE rowid > {last} "
            rows = self.query(f"SELECT rowid, {cols} FROM {quote(table)} {where}"
                              "ORDER BY rowid LIMIT 5000")
            if not rows:
                return
            last = rows[-1][0]
            for row in rows:
                yield tuple(row[1:])
