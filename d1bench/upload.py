"""Load a corpus (schema, rows, FTS index) into a D1 database, within D1's limits.

``upload(db_path, target)`` copies a d1bench corpus into any target that runs
SQL (a local D1, Cloudflare D1), so the same data can be replayed there:

1. the schema: ``d1bench.schema`` tables and the FTS table, then, after the
   rows, the secondary indexes the source database has now, the FTS triggers
   and the views (``IF NOT EXISTS`` throughout, so a second run is harmless);
2. the rows, table by table in ``d1bench.schema.TABLES`` order (parents before
   children: D1 enforces foreign keys), in rowid order, as multi-row
   ``INSERT OR IGNORE`` statements sent several to a request;
3. the full-text index, filled from ``papers`` in id ranges (see below);
4. a check that every table holds as many rows as the source.

Staying inside D1's limits: a statement binds at most 100 parameters (all
values are bound but BLOBs, infinities and integers beyond 2**53, which JSON
cannot carry exactly and which are written as SQL literals instead) and stays
under 100,000 bytes; a request carries at most
``max_statements`` statements and about ``max_request_bytes`` of JSON, so it
ends well within D1's 30 s per request.  A value over 2,000,000 bytes is
refused before anything is sent.

Resuming: each request is one atomic D1 batch and rows go in rowid order, so
the target's ``max(rowid)`` per table says exactly where an interrupted upload
stopped; the next run continues from there (``INSERT OR IGNORE`` guards
against anything sent twice).

The FTS index: ``INSERT INTO papers_fts(papers_fts) VALUES('rebuild')`` reads
and indexes every paper in one statement, which on D1 must finish within the
30 s statement limit; past some tens of thousands of papers it would not.  So
the index is emptied (``'delete-all'``) and refilled by ``INSERT INTO
papers_fts(rowid, ...) SELECT ... FROM papers WHERE id > lo AND id <= hi``
in ranges sized to take about ``fts_seconds`` each.  Papers are loaded with the
FTS triggers absent (indexing row by row is much slower), and the triggers are
created only once the index is whole: their presence marks a finished index,
so an interrupted run rebuilds it from the start.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from d1bench.errors import D1benchError, UsageError
from d1bench.schema import TABLES, ddl, split_statements
from d1bench.targets.base import Connection, Result, Target

__all__ = ["MAX_PARAMS", "MAX_STATEMENT_BYTES", "MAX_VALUE_BYTES", "UploadError", "upload"]

#: D1's limits (see the reference notes on D1): bound parameters per statement,
#: bytes per statement, bytes per string or BLOB value.
MAX_PARAMS = 100
MAX_STATEMENT_BYTES = 100_000
MAX_VALUE_BYTES = 2_000_000

# Headroom under the statement limit for the INSERT's own text.
_STATEMENT_BUDGET = MAX_STATEMENT_BYTES - 5_000
_FTS_TABLE = "papers_fts"
_EXACT_INT = 2**53
_LITERAL = object()  # marks a value written into the SQL text, not bound
_FTS_TRIGGER_PREFIX = "papers_fts_after_"

BatchHook = Callable[[str, int], None]


class UploadError(D1benchError):
    """Row counts differ between source and target after an upload.

    ``frame`` is the per-table summary :func:`upload` would have returned.
    """

    def __init__(self, message: str, frame: pd.DataFrame) -> None:
        super().__init__(message)
        self.frame = frame


@dataclass(frozen=True, slots=True)
class _Table:
    name: str
    columns: tuple[str, ...]
    explicit_rowid: bool  # no INTEGER PRIMARY KEY alias: send the rowid itself


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def upload(db_path: str | Path, target: Target | str, *, batch_rows: int | None = None,
           progress: bool = True, resume: bool = True, max_statements: int = 50,
           max_request_bytes: int = 1_000_000, fts_seconds: float = 2.0,
           on_batch: BatchHook | None = None) -> pd.DataFrame:
    """Copy the corpus at ``db_path`` into ``target``; return one row per table.

    Args:
        db_path: a d1bench corpus (SQLite file), read only.
        target: a :class:`~d1bench.targets.base.Target` or a target spec
            (``d1-local``, ``d1://ACCOUNT/DATABASE``), opened and closed here.
            Writes are implied: the upload's connection allows them.
        batch_rows: at most this many rows per request (default: as many as
            ``max_statements`` and ``max_request_bytes`` allow).
        progress: show a progress bar on stderr.
        resume: continue where an earlier, interrupted upload stopped; when
            False the target's tables must be empty.
        max_statements, max_request_bytes: the size of one request.
        fts_seconds: aimed duration of one FTS index request.
        on_batch: called as ``on_batch(table, n)`` after the n-th request of a
            table committed (for progress reporting, and to test interruptions).

    Returns:
        A DataFrame indexed by table: ``rows_source``, ``rows_uploaded`` (rows
        this run inserted), ``rows_target`` (counted at the end), ``seconds``,
        ``ok``.  The FTS step adds the row ``papers_fts`` (papers indexed).

    Raises:
        UploadError: a table's row count differs from the source's.
        UsageError: the source is not a d1bench corpus, or a value is over D1's limits.
    """
    if isinstance(target, str):
        from d1bench.targets import open_target

        with open_target(target) as opened:
            return upload(db_path, opened, batch_rows=batch_rows, progress=progress,
                          resume=resume, max_statements=max_statements,
                          max_request_bytes=max_request_bytes, fts_seconds=fts_seconds,
                          on_batch=on_batch)
    if batch_rows is not None and batch_rows < 1:
        raise UsageError(f"batch_rows={batch_rows}: must be at least 1")
    source = _open_source(Path(db_path))
    try:
        tables = [_describe(source, Path(db_path), name) for name in TABLES]
        conn = _writer(target)
        try:
            return _Upload(source, tables, conn, batch_rows, progress, resume, max_statements,
                           max_request_bytes, fts_seconds, on_batch).run()
        finally:
            conn.close()
    finally:
        source.close()


def _writer(target: Target) -> Connection:
    """A connection that may write, whatever read-only guard the target applies by default."""
    import inspect

    params = inspect.signature(target.connect).parameters
    if "allow_writes" in params:
        return target.connect(allow_writes=True)
    return target.connect()


def _open_source(path: Path) -> Any:
    import apsw

    if not path.is_file():
        raise UsageError(f"{path}: no such corpus file")
    return apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)


def _describe(source: Any, path: Path, name: str) -> _Table:
    info = list(source.execute(f"PRAGMA table_info({_quote(name)})"))
    if not info:
        raise UsageError(f"{path}: table {name!r} is missing: not a d1bench corpus "
                         f"(create one with `d1bench generate`)")
    columns = tuple(row[1] for row in info)
    pks = [row for row in info if row[5]]
    alias = len(pks) == 1 and pks[0][2].upper() == "INTEGER"
    return _Table(name, columns, explicit_rowid=not alias)


def _literal_or_param(value: Any, where: str) -> tuple[str, Any | None, int]:
    """SQL text for ``value``, the parameter to bind (or None), and its size in bytes.

    Almost everything is bound, so that full statements of one table share one
    text (cheap to check and to prepare).  The exceptions are written as
    literals: BLOBs (JSON has no bytes), infinities (JSON has none), and
    integers beyond 2**53, which would lose digits as JSON numbers.
    """
    if value is None:
        return "?", None, 4
    if isinstance(value, bool | int):
        value = int(value)
        if abs(value) > _EXACT_INT:
            text = str(value)
            return text, _LITERAL, len(text)
        return "?", value, 20
    if isinstance(value, float):
        if math.isinf(value):
            return ("9e999" if value > 0 else "-9e999"), _LITERAL, 6
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
        return text, _LITERAL, len(text)
    raise UsageError(f"{where}: cannot send a {type(value).__name__} value")


class _Statements:
    """Packs rows of one table into multi-row INSERTs, and INSERTs into requests.

    ``add`` says when a request is full; ``take`` then hands it over.  A
    request holds at most ``max_statements`` statements: when the last one
    cannot be closed without passing that, it waits for the next request.
    """

    def __init__(self, table: _Table, batch_rows: int | None, max_statements: int,
                 max_request_bytes: int) -> None:
        cols = (("rowid",) if table.explicit_rowid else ()) + table.columns
        self.head = (f"INSERT OR IGNORE INTO {_quote(table.name)} "
                     f"({', '.join(_quote(c) for c in cols)}) VALUES ")
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
            text, param, nbytes = _literal_or_param(value, where)
            parts.append(text)
            if param is not _LITERAL:
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
        chosen, self._closed = self._closed[:self.max_statements], self._closed[self.max_statements:]
        rows = sum(item[2] for item in chosen)
        self._closed_rows -= rows
        self._closed_bytes -= sum(item[3] for item in chosen)
        return [(sql, params) for sql, params, _, _ in chosen], rows


def _send(conn: Connection, statements: list[tuple[str, list[Any]]]) -> list[Result]:
    """Run ``statements`` as one atomic request when the connection can, else one by one."""
    batch = getattr(conn, "execute_batch", None)
    if batch is not None:
        return list(batch(statements))
    return [conn.execute(sql, params) for sql, params in statements]


class _Upload:
    def __init__(self, source: Any, tables: list[_Table], conn: Connection,
                 batch_rows: int | None, progress: bool, resume: bool, max_statements: int,
                 max_request_bytes: int, fts_seconds: float, on_batch: BatchHook | None) -> None:
        self.source, self.tables, self.conn = source, tables, conn
        self.batch_rows, self.progress, self.resume = batch_rows, progress, resume
        self.max_statements, self.max_request_bytes = max_statements, max_request_bytes
        self.fts_seconds, self.on_batch = fts_seconds, on_batch

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self.conn.execute(sql, params).rows
        return rows[0][0] if rows else None

    def run(self) -> pd.DataFrame:
        from tqdm.auto import tqdm

        for statement in split_statements(ddl("tables", "fts")):
            self.conn.execute(statement)
        done = {t.name: self._one(f"SELECT max(rowid) FROM {_quote(t.name)}") for t in self.tables}
        if not self.resume:
            busy = [name for name, last in done.items() if last is not None]
            if busy:
                raise UsageError(f"target already holds rows in {', '.join(busy)}: "
                                 "upload with resume, or into an empty database")
        todo = {t.name: self.source.execute(
            f"SELECT count(*) FROM {_quote(t.name)} WHERE rowid > ?", (done[t.name] or 0,)
        ).fetchall()[0][0] for t in self.tables}
        triggers = self._fts_triggers()
        if todo["papers"] and triggers:
            # Row-by-row indexing is slow: load papers without the triggers and
            # rebuild the index after (the triggers' absence marks it unfinished).
            for name in triggers:
                self.conn.execute(f"DROP TRIGGER IF EXISTS {_quote(name)}")
            triggers = []
        summary = {}
        with tqdm(total=sum(todo.values()), unit="rows", disable=not self.progress,
                  desc="upload", dynamic_ncols=True) as bar:
            for table in self.tables:
                started = time.perf_counter()
                bar.set_description(table.name)
                inserted = self._copy(table, done[table.name] or 0, bar) if todo[table.name] else 0
                summary[table.name] = {"rows_uploaded": inserted,
                                       "seconds": time.perf_counter() - started}
        started = time.perf_counter()
        indexed = 0 if triggers else self._build_fts()
        for statement in split_statements(ddl("triggers") + "\n" + self._index_sql()
                                          + "\n" + ddl("views")):
            self.conn.execute(statement)
        if self._source_analyzed():
            self.conn.execute("ANALYZE")
        fts_seconds = time.perf_counter() - started
        return self._verify(summary, indexed, fts_seconds)

    def _copy(self, table: _Table, after: int, bar: Any) -> int:
        cols = ", ".join(_quote(c) for c in table.columns)
        cursor = self.source.execute(
            f"SELECT rowid, {cols} FROM {_quote(table.name)} WHERE rowid > ? ORDER BY rowid",
            (after,))
        pack = _Statements(table, self.batch_rows, self.max_statements, self.max_request_bytes)
        inserted = requests = 0

        def flush() -> None:
            nonlocal inserted, requests
            statements, rows = pack.take()
            if not statements:
                return
            try:
                results = _send(self.conn, statements)
            except D1benchError as exc:
                exc.add_note(f"upload stopped in table {table.name} after {inserted:,} new rows; "
                             "run it again to resume")
                raise
            changes = [r.meta.changes for r in results]
            inserted += sum(changes) if None not in changes else rows
            requests += 1
            bar.update(rows)
            if self.on_batch is not None:
                self.on_batch(table.name, requests)

        for row in cursor:
            if pack.add(row):
                flush()
        while pack.pending:
            flush()
        return inserted

    def _fts_triggers(self) -> list[str]:
        rows = self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE ?",
            [_FTS_TRIGGER_PREFIX + "%"]).rows
        return [row[0] for row in rows]

    def _build_fts(self) -> int:
        """Empty the FTS index and refill it from ``papers`` in id ranges of about fts_seconds."""
        columns = [row[1] for row in self.source.execute(f"PRAGMA table_info({_FTS_TABLE})")]
        cols = ", ".join(_quote(c) for c in columns)
        fill = (f"INSERT INTO {_FTS_TABLE} (rowid, {cols}) SELECT id, {cols} FROM papers "
                "WHERE id > {lo} AND id <= {hi}")
        self.conn.execute(f"INSERT INTO {_FTS_TABLE} ({_FTS_TABLE}) VALUES ('delete-all')")
        ids = [row[0] for row in self.source.execute("SELECT id FROM papers ORDER BY id")]
        chunk, i, lo = 500, 0, None
        while i < len(ids):
            hi = ids[min(i + chunk, len(ids)) - 1]
            low = ids[i] - 1 if lo is None else lo
            started = time.perf_counter()
            self.conn.execute(fill.format(lo=int(low), hi=int(hi)))
            took = max(time.perf_counter() - started, 1e-3)
            i, lo = min(i + chunk, len(ids)), hi
            # Aim the next range at fts_seconds, growing or shrinking at most 4x.
            chunk = int(min(max(chunk * min(max(self.fts_seconds / took, 0.25), 4.0), 100), 50_000))
        return len(ids)

    def _index_sql(self) -> str:
        names = ", ".join("?" for _ in self.tables)
        rows = self.source.execute(
            "SELECT sql FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL "
            f"AND tbl_name IN ({names}) ORDER BY name", [t.name for t in self.tables])
        out = []
        for (sql,) in rows:
            out.append(re.sub(r"(?is)^\s*CREATE\s+(UNIQUE\s+)?INDEX\s+(?!IF\s+NOT\s+EXISTS)",
                              lambda m: f"CREATE {m.group(1) or ''}INDEX IF NOT EXISTS ", sql) + ";")
        return "\n".join(out)

    def _source_analyzed(self) -> bool:
        found = self.source.execute(
            "SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_stat1'").fetchall()
        return bool(found) and bool(self.source.execute(
            "SELECT 1 FROM sqlite_stat1 LIMIT 1").fetchall())

    def _verify(self, summary: dict[str, dict[str, float]], indexed: int,
                fts_seconds: float) -> pd.DataFrame:
        records = []
        for table in self.tables:
            quoted = _quote(table.name)
            source_rows = self.source.execute(f"SELECT count(*) FROM {quoted}").fetchall()[0][0]
            target_rows = self._one(f"SELECT count(*) FROM {quoted}")
            records.append({"table": table.name, "rows_source": source_rows,
                            **summary[table.name], "rows_target": target_rows,
                            "ok": source_rows == target_rows})
        records.append({"table": _FTS_TABLE, "rows_source": None, "rows_uploaded": indexed,
                        "seconds": fts_seconds, "rows_target": None, "ok": True})
        frame = pd.DataFrame.from_records(records).set_index("table")
        frame = frame[["rows_source", "rows_uploaded", "rows_target", "seconds", "ok"]].astype(
            {"rows_source": "Int64", "rows_uploaded": "Int64", "rows_target": "Int64",
             "seconds": float, "ok": bool})
        bad = frame[~frame["ok"]]
        if len(bad):
            detail = ", ".join(f"{name}: {int(r.rows_target)} of {int(r.rows_source)}"
                               for name, r in bad.iterrows())
            raise UploadError(f"row counts differ after upload ({detail})", frame)
        return frame
