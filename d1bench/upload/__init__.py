"""Load a corpus (schema, rows, FTS index) into a D1 database, within D1's limits.

``upload(db_path, target)`` copies a d1bench corpus into any target that runs
SQL (a local D1, Cloudflare D1), so the same data can be replayed there:

1. the schema: ``d1bench.schema`` tables and the FTS table, then, after the
   rows, the secondary indexes the source database has now, the FTS triggers
   and the views (``IF NOT EXISTS`` throughout, so a second run is harmless);
2. the rows, table by table in ``d1bench.schema.TABLES`` order (parents before
   children: D1 enforces foreign keys), in rowid order, as multi-row
   ``INSERT OR IGNORE`` statements sent several to a request;
3. the full-text index, built from ``papers`` (see below);
4. a check that every table holds as many rows as the source.

The summary also says what D1 billed for it (``rows_read``/``rows_written``
from each statement's meta): a row written costs a thousand rows read, and
every index entry is a row written.

Staying inside D1's limits: statements bind at most 100 parameters and stay
under 100,000 bytes (see :mod:`d1bench.upload.packing`); a request carries at
most ``max_statements`` statements and about ``max_request_bytes`` of JSON, so
it ends well within D1's 30 s per request.  A value over 2,000,000 bytes is
refused before anything is sent.

Resuming: each request is one atomic D1 batch and rows go in rowid order, so
the target's ``max(rowid)`` per table says exactly where an interrupted upload
stopped; the next run continues from there (``INSERT OR IGNORE`` guards
against anything sent twice).

The FTS index: ``INSERT INTO papers_fts(papers_fts) VALUES('rebuild')``
indexes every paper in one statement, and D1 bills it as one row written; but
it must finish within D1's 30 s per statement.  It took 1.3 s for 20,000
papers on a local D1 here (about 65 us a paper), so somewhere near 400,000
papers it would not, and the seed's million papers need about a minute.  Up
to ``fts_rebuild_max`` papers (default 50,000, a wide margin) the upload
rebuilds; beyond, it empties the index (``'delete-all'``) and refills it with
``INSERT INTO papers_fts(rowid, ...) SELECT ... FROM papers WHERE id > lo AND
id <= hi`` in ranges sized to take about ``fts_seconds`` each, which works at
any size and is billed one row written per paper.  Papers are loaded with the
FTS triggers absent (indexing row by row is much slower), and the triggers
are created only once the index is whole: their presence marks a finished
index, so an interrupted run rebuilds it from the start.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from d1bench.errors import D1benchError, UsageError
from d1bench.schema import TABLES, ddl, split_statements
from d1bench.targets.base import Connection, Result, Target
from d1bench.upload.packing import (
    MAX_PARAMS,
    MAX_STATEMENT_BYTES,
    MAX_VALUE_BYTES,
    StatementPacker,
    Table,
    describe_table,
    quote,
)

__all__ = ["MAX_PARAMS", "MAX_STATEMENT_BYTES", "MAX_VALUE_BYTES", "UploadError", "upload"]

_FTS_TABLE = "papers_fts"
_FTS_TRIGGER_PREFIX = "papers_fts_after_"
_SCHEMA = "(schema)"  # summary rows that are steps, not tables
_CHECKS = "(checks)"
_COUNTS = ("rows_source", "rows_uploaded", "rows_target", "rows_read", "rows_written")

BatchHook = Callable[[str, int], None]


class UploadError(D1benchError):
    """Row counts differ between source and target after an upload.

    ``frame`` is the per-table summary :func:`upload` would have returned.
    """

    def __init__(self, message: str, frame: pd.DataFrame) -> None:
        super().__init__(message)
        self.frame = frame


def upload(db_path: str | Path, target: Target | str, *, batch_rows: int | None = None,
           progress: bool = True, resume: bool = True, max_statements: int = 50,
           max_request_bytes: int = 1_000_000, fts_seconds: float = 2.0,
           fts_rebuild_max: int = 50_000, on_batch: BatchHook | None = None) -> pd.DataFrame:
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
        fts_rebuild_max: most papers indexed by one 'rebuild' statement; more
            are indexed in id ranges.
        fts_seconds: aimed duration of one id range's request.
        on_batch: called as ``on_batch(table, n)`` after the n-th request of a
            table committed (for progress reporting, and to test interruptions).

    Returns:
        A DataFrame indexed by table: ``rows_source``, ``rows_uploaded`` (rows
        this run inserted), ``rows_target`` (counted at the end), ``rows_read``
        and ``rows_written`` (what D1 billed for this run; ``<NA>`` if the
        target does not say), ``seconds``, ``ok``.  Three more rows: the FTS
        index ``papers_fts`` (papers indexed), ``(schema)`` (DDL, secondary
        indexes, ANALYZE) and ``(checks)`` (resume and count queries).

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
                          fts_rebuild_max=fts_rebuild_max, on_batch=on_batch)
    if batch_rows is not None and batch_rows < 1:
        raise UsageError(f"batch_rows={batch_rows}: must be at least 1")
    source = _open_source(Path(db_path))
    try:
        tables = [describe_table(source, Path(db_path), name) for name in TABLES]
        conn = _writer(target)
        try:
            return _Upload(source, tables, conn, batch_rows, progress, resume, max_statements,
                           max_request_bytes, fts_seconds, fts_rebuild_max, on_batch).run()
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
    from d1bench.dbfile import open_readonly

    return open_readonly(path)


def _send(conn: Connection, statements: list[tuple[str, list[Any]]]) -> list[Result]:
    """Run ``statements`` as one atomic request when the connection can, else one by one."""
    batch = getattr(conn, "execute_batch", None)
    if batch is not None:
        return list(batch(statements))
    return [conn.execute(sql, params) for sql, params in statements]


class _Step:
    """What one step of the upload did: rows inserted, D1's billed rows, time."""

    def __init__(self) -> None:
        self.inserted = 0
        self.rows_read: int | None = None
        self.rows_written: int | None = None
        self.seconds = 0.0

    def bill(self, results: Sequence[Result]) -> None:
        for result in results:
            for name in ("rows_read", "rows_written"):
                value = getattr(result.meta, name)
                if value is not None:
                    setattr(self, name, (getattr(self, name) or 0) + value)


class _Upload:
    def __init__(self, source: Any, tables: list[Table], conn: Connection,
                 batch_rows: int | None, progress: bool, resume: bool, max_statements: int,
                 max_request_bytes: int, fts_seconds: float, fts_rebuild_max: int,
                 on_batch: BatchHook | None) -> None:
        self.source, self.tables, self.conn = source, tables, conn
        self.batch_rows, self.progress, self.resume = batch_rows, progress, resume
        self.max_statements, self.max_request_bytes = max_statements, max_request_bytes
        self.fts_seconds, self.fts_rebuild_max = fts_seconds, fts_rebuild_max
        self.on_batch = on_batch
        self.steps: dict[str, _Step] = {}

    def _run(self, step: str, sql: str, params: Sequence[Any] = ()) -> Result:
        started = time.perf_counter()
        result = self.conn.execute(sql, params)
        record = self.steps.setdefault(step, _Step())
        record.bill([result])
        record.seconds += time.perf_counter() - started
        return result

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self._run(_CHECKS, sql, params).rows
        return rows[0][0] if rows else None

    def run(self) -> pd.DataFrame:
        from tqdm.auto import tqdm

        from d1bench.progress import tqdm_disable

        for statement in split_statements(ddl("tables", "fts")):
            self._run(_SCHEMA, statement)
        done = {t.name: self._one(f"SELECT max(rowid) FROM {quote(t.name)}") for t in self.tables}
        if not self.resume:
            busy = [name for name, last in done.items() if last is not None]
            if busy:
                raise UsageError(f"target already holds rows in {', '.join(busy)}: "
                                 "upload with resume, or into an empty database")
        todo = {t.name: self.source.execute(
            f"SELECT count(*) FROM {quote(t.name)} WHERE rowid > ?", (done[t.name] or 0,)
        ).fetchall()[0][0] for t in self.tables}
        triggers = self._fts_triggers()
        if todo["papers"] and triggers:
            # Row-by-row indexing is slow: load papers without the triggers and
            # rebuild the index after (the triggers' absence marks it unfinished).
            for name in triggers:
                self._run(_SCHEMA, f"DROP TRIGGER IF EXISTS {quote(name)}")
            triggers = []
        with tqdm(total=sum(todo.values()), unit="rows", disable=tqdm_disable(self.progress),
                  desc="upload", dynamic_ncols=True) as bar:
            for table in self.tables:
                step = self.steps.setdefault(table.name, _Step())
                started = time.perf_counter()
                bar.set_description(table.name)
                if todo[table.name]:
                    self._copy(table, done[table.name] or 0, step, bar)
                step.seconds = time.perf_counter() - started
        if not triggers:
            self._build_fts(self.steps.setdefault(_FTS_TABLE, _Step()))
        # Secondary indexes after the rows: one sorted build instead of a b-tree
        # insert per row (D1 bills the same index entries either way).
        for statement in split_statements(ddl("triggers") + "\n" + self._index_sql()
                                          + "\n" + ddl("views")):
            self._run(_SCHEMA, statement)
        if self._source_analyzed():
            self._run(_SCHEMA, "ANALYZE")
        return self._verify()

    def _copy(self, table: Table, after: int, step: _Step, bar: Any) -> None:
        cols = ", ".join(quote(c) for c in table.columns)
        cursor = self.source.execute(
            f"SELECT rowid, {cols} FROM {quote(table.name)} WHERE rowid > ? ORDER BY rowid",
            (after,))
        pack = StatementPacker(table, self.batch_rows, self.max_statements, self.max_request_bytes)
        requests = 0

        def flush() -> None:
            nonlocal requests
            statements, rows = pack.take()
            try:
                results = _send(self.conn, statements)
            except D1benchError as exc:
                exc.add_note(f"upload stopped in table {table.name} after {step.inserted:,} "
                             "new rows; run it again to resume")
                raise
            changes = [r.meta.changes for r in results]
            step.inserted += sum(changes) if None not in changes else rows
            step.bill(results)
            requests += 1
            bar.update(rows)
            if self.on_batch is not None:
                self.on_batch(table.name, requests)

        for row in cursor:
            if pack.add(row):
                flush()
        while pack.pending:
            flush()

    def _fts_triggers(self) -> list[str]:
        rows = self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE ?",
            [_FTS_TRIGGER_PREFIX + "%"]).rows
        return [row[0] for row in rows]

    def _build_fts(self, step: _Step) -> None:
        """Index every paper: one 'rebuild' when small, else refill in id ranges."""
        ids = [row[0] for row in self.source.execute("SELECT id FROM papers ORDER BY id")]
        step.inserted = len(ids)
        if len(ids) <= self.fts_rebuild_max:
            self._run(_FTS_TABLE, f"INSERT INTO {_FTS_TABLE} ({_FTS_TABLE}) VALUES ('rebuild')")
            return
        columns = [row[1] for row in self.source.execute(f"PRAGMA table_info({_FTS_TABLE})")]
        cols = ", ".join(quote(c) for c in columns)
        fill = (f"INSERT INTO {_FTS_TABLE} (rowid, {cols}) SELECT id, {cols} FROM papers "
                "WHERE id > {lo} AND id <= {hi}")
        self._run(_FTS_TABLE, f"INSERT INTO {_FTS_TABLE} ({_FTS_TABLE}) VALUES ('delete-all')")
        chunk, i, lo = 500, 0, ids[0] - 1
        while i < len(ids):
            end = min(i + chunk, len(ids))
            started = time.perf_counter()
            self._run(_FTS_TABLE, fill.format(lo=int(lo), hi=int(ids[end - 1])))
            took = max(time.perf_counter() - started, 1e-3)
            i, lo = end, ids[end - 1]
            # Aim the next range at fts_seconds, growing or shrinking at most 4x.
            factor = min(max(self.fts_seconds / took, 0.25), 4.0)
            chunk = int(min(max(chunk * factor, 100), 50_000))

    def _index_sql(self) -> str:
        names = ", ".join("?" for _ in self.tables)
        rows = self.source.execute(
            "SELECT sql FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL "
            f"AND tbl_name IN ({names}) ORDER BY name", [t.name for t in self.tables])
        create = re.compile(r"(?is)^\s*CREATE\s+(UNIQUE\s+)?INDEX\s+(?!IF\s+NOT\s+EXISTS)")
        return "\n".join(
            create.sub(lambda m: f"CREATE {m.group(1) or ''}INDEX IF NOT EXISTS ", sql) + ";"
            for (sql,) in rows)

    def _source_analyzed(self) -> bool:
        found = self.source.execute(
            "SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_stat1'").fetchall()
        return bool(found) and bool(self.source.execute(
            "SELECT 1 FROM sqlite_stat1 LIMIT 1").fetchall())

    def _verify(self) -> pd.DataFrame:
        records = []
        for table in self.tables:
            quoted = quote(table.name)
            source_rows = self.source.execute(f"SELECT count(*) FROM {quoted}").fetchall()[0][0]
            target_rows = self._one(f"SELECT count(*) FROM {quoted}")
            records.append((table.name, source_rows, target_rows, source_rows == target_rows))
        records += [(_FTS_TABLE, None, None, True), (_SCHEMA, None, None, True),
                    (_CHECKS, None, None, True)]
        frame = pd.DataFrame.from_records([
            {"table": name, "rows_source": source, "rows_uploaded": step.inserted,
             "rows_target": target, "rows_read": step.rows_read,
             "rows_written": step.rows_written, "seconds": step.seconds, "ok": ok}
            for name, source, target, ok in records
            for step in [self.steps.get(name, _Step())]
        ]).set_index("table")
        frame = frame.astype({column: "Int64" for column in _COUNTS} | {"seconds": float,
                                                                          "ok": bool})
        bad = frame[~frame["ok"]]
        if len(bad):
            detail = ", ".join(f"{name}: {int(r.rows_target)} of {int(r.rows_source)}"
                               for name, r in bad.iterrows())
            raise UploadError(f"row counts differ after upload ({detail})", frame)
        return frame
