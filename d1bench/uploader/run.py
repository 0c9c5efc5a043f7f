"""Load any SQLite database (schema, rows, FTS5 indexes) into a D1 database, within D1's limits.

``upload(db_path, target)`` copies a database into any target that runs SQL
(a local D1, Cloudflare D1), so the same data can be replayed there:

1. the schema, read from the source itself (:mod:`d1bench.uploader.source`):
   its tables and FTS5 tables, then, after the rows, its indexes, triggers
   and views (``IF NOT EXISTS`` throughout, so a second run is harmless);
   what D1 refuses (other virtual tables, over 100 columns) is named with
   its fix before anything is sent;
2. the rows, table by table with parents before children (D1 enforces
   foreign keys), in rowid order (key order for WITHOUT ROWID tables), as
   multi-row ``INSERT OR IGNORE`` statements sent several to a request, with
   the source's triggers absent so that nothing fires twice;
3. each FTS5 table over external content, rebuilt from its content (see below);
4. a check that every table holds as many rows as the source.

The summary also says what D1 billed for it (``rows_read``/``rows_written``
from each statement's meta): a row written costs a thousand rows read, and
every index entry is a row written.

Staying inside D1's limits: statements bind at most 100 parameters and stay
under 100,000 bytes (see :mod:`d1bench.uploader.packing`); a request carries at
most ``max_statements`` statements and about ``max_request_bytes`` of JSON, so
it ends well within D1's 30 s per request.  A value over 2,000,000 bytes is
refused before anything is sent.

Resuming: each request is one atomic D1 batch and rows go in rowid order, so
the target's ``max(rowid)`` per table says exactly where an interrupted upload
stopped (for a WITHOUT ROWID table, its row count in key order); the next run
continues from there (``INSERT OR IGNORE`` guards against anything sent twice).

An FTS index (the medical corpus's ``papers_fts``, say) is filled from its
content table in statements that each stay well within D1's 30 s per
statement (:mod:`d1bench.uploader.fts`).  Rows are loaded with the triggers
absent (indexing row by row is much slower), and the triggers are created
only once the indexes are whole: their presence marks a finished upload, so
an interrupted run rebuilds the indexes from the start.

A local D1 that this process runs can take the rows and the FTS index
straight into its SQLite file instead, with every CREATE, index, trigger,
view and ANALYZE still run by D1 (:mod:`d1bench.uploader.offline`, which
says why the result is the same): by default when there are at least
``OFFLINE_MIN_ROWS`` rows to copy, never for remote D1.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from d1bench.errors import D1benchError, UsageError
from d1bench.targets.base import Connection, Result, Target
from d1bench.uploader.fts import fill_fts
from d1bench.uploader.packing import StatementPacker, Table, quote
from d1bench.uploader.source import FtsTable, SourceSchema, read_source_schema

__all__ = ["OFFLINE_MIN_ROWS", "UploadError", "upload"]

#: Fewest rows to copy for which ``offline=None`` writes a local D1's file directly:
#: below it, statements take seconds and the server's restart is not worth it.
OFFLINE_MIN_ROWS = 100_000

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
           fts_rebuild_max: int = 50_000, on_batch: BatchHook | None = None,
           offline: bool | None = None) -> pd.DataFrame:
    """Copy the corpus at ``db_path`` into ``target``; return one row per table.

    Args:
        db_path: any SQLite database file (a d1bench corpus, an imported dump,
            your own), read only.
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
        on_batch: called as ``on_batch(table, n)`` after the n-th request (or
            chunk) of a table committed (for progress reporting, and to test
            interruptions).
        offline: write the rows and FTS index straight into the database file
            of a local D1 this process runs (:mod:`d1bench.uploader.offline`);
            ``None``: when the target allows it and at least
            :data:`OFFLINE_MIN_ROWS` rows are to be copied.  ``True`` on a
            target that does not allow it (remote D1) is refused.

    Returns:
        A DataFrame indexed by table: ``rows_source``, ``rows_uploaded`` (rows
        this run inserted), ``rows_target`` (counted at the end), ``rows_read``
        and ``rows_written`` (what D1 billed for this run; ``<NA>`` if the
        target does not say, or for rows written offline), ``seconds``,
        ``max_statement_s`` (the longest statement, request or offline chunk
        of the step), ``ok``.  ``frame.attrs["path"]`` is ``"offline"`` or
        ``"statements"``; ``frame.attrs["fts"]`` says how each FTS5 index this run
        built was made: ``"fill"`` (indexed from its rows), ``"copy"`` (offline: the
        source's index copied, :mod:`d1bench.uploader.fts_copy`) or ``"fill: "`` and
        why it was not copied; ``frame.attrs["fts_check_s"]`` the seconds of each
        copy's integrity-check (on the file, not a D1 statement, so not in
        ``max_statement_s``).  More rows: one per FTS5
        table over external content (rows indexed), ``(schema)`` (DDL,
        secondary indexes, ANALYZE) and ``(checks)`` (resume and count queries).

    Raises:
        UploadError: a table's row count differs from the source's.
        UsageError: the source holds what D1 refuses (each named with its fix),
            or a value is over D1's limits.
    """
    if isinstance(target, str):
        from d1bench.targets import open_target

        with open_target(target) as opened:
            return upload(db_path, opened, batch_rows=batch_rows, progress=progress,
                          resume=resume, max_statements=max_statements,
                          max_request_bytes=max_request_bytes, fts_seconds=fts_seconds,
                          fts_rebuild_max=fts_rebuild_max, on_batch=on_batch,
                          offline=offline)
    if batch_rows is not None and batch_rows < 1:
        raise UsageError(f"batch_rows={batch_rows}: must be at least 1")
    source = _open_source(Path(db_path))
    try:
        schema = read_source_schema(source, Path(db_path))
        conn = _writer(target)
        try:
            job = _Upload(source, schema, conn, batch_rows, progress, resume, max_statements,
                          max_request_bytes, fts_seconds, fts_rebuild_max, on_batch)
            return job.run(_offline_file(target, offline), Path(db_path), auto=offline is None)
        finally:
            conn.close()
    finally:
        source.close()


def _offline_file(target: Target, offline: bool | None) -> Any:
    """The target's file context when the upload may write it directly, else None."""
    if offline is False:
        return None
    context = target.offline_file()
    if context is None and offline:
        raise UsageError(f"{target.url}: rows can be written directly only into a local D1 "
                         "this process runs; upload with offline=False (statements)")
    return context


def _writer(target: Target) -> Connection:
    """A connection that may write, whatever read-only guard the target applies by default."""
    return target.connect(allow_writes=True)


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
        self.slowest = 0.0

    def bill(self, results: Sequence[Result]) -> None:
        for result in results:
            for name in ("rows_read", "rows_written"):
                value = getattr(result.meta, name)
                if value is not None:
                    setattr(self, name, (getattr(self, name) or 0) + value)


class _Upload:
    def __init__(self, source: Any, schema: SourceSchema, conn: Connection,
                 batch_rows: int | None, progress: bool, resume: bool, max_statements: int,
                 max_request_bytes: int, fts_seconds: float, fts_rebuild_max: int,
                 on_batch: BatchHook | None) -> None:
        self.source, self.schema, self.conn = source, schema, conn
        self.tables = list(schema.tables)
        self.batch_rows, self.progress, self.resume = batch_rows, progress, resume
        self.max_statements, self.max_request_bytes = max_statements, max_request_bytes
        self.fts_seconds, self.fts_rebuild_max = fts_seconds, fts_rebuild_max
        self.on_batch = on_batch
        self.steps: dict[str, _Step] = {}
        self.path = "statements"
        self.fts_ways: dict[str, str] = {}
        self.fts_checks: dict[str, float] = {}

    def _run(self, step: str, sql: str, params: Sequence[Any] = ()) -> Result:
        started = time.perf_counter()
        result = self.conn.execute(sql, params)
        record = self.steps.setdefault(step, _Step())
        record.bill([result])
        took = time.perf_counter() - started
        record.seconds += took
        record.slowest = max(record.slowest, took)
        return result

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self._run(_CHECKS, sql, params).rows
        return rows[0][0] if rows else None

    def _done(self, table: Table) -> int:
        """Where an earlier run stopped: the last rowid sent, or rows sent in key order."""
        if table.key:
            return int(self._one(f"SELECT count(*) FROM {quote(table.name)}") or 0)
        return int(self._one(f"SELECT max(rowid) FROM {quote(table.name)}") or 0)

    def _todo(self, table: Table, done: int) -> int:
        name = quote(table.name)
        if table.key:
            return max(0, self.source.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]
                       - done)
        return self.source.execute(f"SELECT count(*) FROM {name} WHERE rowid > ?",
                                   (done,)).fetchall()[0][0]

    def run(self, offline: Any, source_path: Path, *, auto: bool = False) -> pd.DataFrame:
        """Upload; ``offline`` is the target's file context (None: statements only),
        used only for :data:`OFFLINE_MIN_ROWS` rows or more when ``auto``."""
        from tqdm.auto import tqdm

        from d1bench.progress import tqdm_disable

        for statement in self.schema.creates:
            self._run(_SCHEMA, statement)
        done = {t.name: self._done(t) for t in self.tables}
        if not self.resume:
            busy = [name for name, last in done.items() if last]
            if busy:
                raise UsageError(f"target already holds rows in {', '.join(busy)}: "
                                 "upload with resume, or into an empty database")
        todo = {t.name: self._todo(t, done[t.name]) for t in self.tables}
        wanted = set(self.schema.trigger_names)
        present = [r[0] for r in self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger'").rows if r[0] in wanted]
        # The triggers' presence marks a finished upload: all present and nothing to
        # copy means the FTS indexes are whole already.
        finished = bool(wanted) and len(present) == len(wanted) and not any(todo.values())
        if any(todo.values()):
            # Nothing may fire while rows are copied: a trigger would index row by
            # row (slow) or write rows the copy brings anyway.
            for name in present:
                self._run(_SCHEMA, f"DROP TRIGGER IF EXISTS {quote(name)}")
        fts_todo = [] if finished else [f for f in self.schema.fts if f.content is not None]
        if offline is not None and auto and sum(todo.values()) < OFFLINE_MIN_ROWS:
            offline = None
        self.path = "statements" if offline is None else "offline"
        with tqdm(total=sum(todo.values()), unit="rows", disable=tqdm_disable(self.progress),
                  desc="upload", dynamic_ncols=True) as bar:
            if offline is None:
                self._load(todo, done, fts_todo, bar, None)
            else:
                from d1bench.uploader.offline import OfflineLoad

                with offline as path:
                    load = OfflineLoad(path, source_path)
                    try:
                        self._load(todo, done, fts_todo, bar, load)
                    finally:
                        load.close()
        # Secondary indexes after the rows: one sorted build instead of a b-tree
        # insert per row (D1 bills the same index entries either way).
        for statement in (*self.schema.triggers, *self.schema.indexes, *self.schema.views):
            self._run(_SCHEMA, statement)
        if self._source_analyzed():
            self._run(_SCHEMA, "ANALYZE")
        return self._verify()

    def _load(self, todo: dict[str, int], done: dict[str, int], fts_todo: list[FtsTable],
              bar: Any, load: Any) -> None:
        """The rows, table by table, then the FTS indexes: by statements, or into the file."""
        for table in self.tables:
            step = self.steps.setdefault(table.name, _Step())
            started = time.perf_counter()
            bar.set_description(table.name)
            if todo[table.name] and load is None:
                self._copy(table, done[table.name], step, bar)
            elif todo[table.name]:
                load.check_parents(table)
                chunks = 0

                def chunk(rows: int, table: Table = table, step: _Step = step) -> None:
                    nonlocal chunks
                    chunks += 1
                    step.inserted += rows
                    bar.update(rows)
                    if self.on_batch is not None:
                        self.on_batch(table.name, chunks)

                step.slowest = load.copy(table, done[table.name], chunk)
            step.seconds = time.perf_counter() - started
        for fts in fts_todo:
            step = self.steps.setdefault(fts.name, _Step())
            started = time.perf_counter()
            key, content = quote(fts.content_rowid), quote(fts.content or "")
            ids = [r[0] for r in self.source.execute(f"SELECT {key} FROM {content} ORDER BY 1")]
            step.inserted = len(ids)
            if load is None:
                step.slowest = fill_fts(fts, ids, partial(self._run, fts.name),
                                        rebuild_max=self.fts_rebuild_max,
                                        seconds=self.fts_seconds)
                self.fts_ways[fts.name] = "fill"
            else:
                self.fts_ways[fts.name], step.slowest, self.fts_checks[fts.name] = \
                    load.index_fts(fts, ids, rebuild_max=self.fts_rebuild_max,
                                   seconds=self.fts_seconds)
            step.seconds = time.perf_counter() - started

    def _copy(self, table: Table, after: int, step: _Step, bar: Any) -> None:
        cols = ", ".join(quote(c) for c in table.columns)
        if table.key:
            key = ", ".join(quote(c) for c in table.key)
            cursor = self.source.execute(
                f"SELECT {quote(table.key[0])}, {cols} FROM {quote(table.name)} "
                f"ORDER BY {key} LIMIT -1 OFFSET ?", (after,))
        else:
            cursor = self.source.execute(
                f"SELECT rowid, {cols} FROM {quote(table.name)} WHERE rowid > ? ORDER BY rowid",
                (after,))
        pack = StatementPacker(table, self.batch_rows, self.max_statements, self.max_request_bytes)
        requests = 0

        def flush() -> None:
            nonlocal requests
            statements, rows = pack.take()
            started = time.perf_counter()
            try:
                results = _send(self.conn, statements)
            except D1benchError as exc:
                exc.add_note(f"upload stopped in table {table.name} after {step.inserted:,} "
                             "new rows; run it again to resume")
                raise
            changes = [r.meta.changes for r in results]
            counted = [c for c in changes if c is not None]
            step.inserted += sum(counted) if len(counted) == len(changes) else rows
            step.bill(results)
            step.slowest = max(step.slowest, time.perf_counter() - started)
            requests += 1
            bar.update(rows)
            if self.on_batch is not None:
                self.on_batch(table.name, requests)

        for row in cursor:
            if pack.add(row):
                flush()
        while pack.pending:
            flush()

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
        records += [(f.name, None, None, True) for f in self.schema.fts if f.content is not None]
        records += [(_SCHEMA, None, None, True), (_CHECKS, None, None, True)]
        frame = pd.DataFrame.from_records([
            {"table": name, "rows_source": source, "rows_uploaded": step.inserted,
             "rows_target": target, "rows_read": step.rows_read,
             "rows_written": step.rows_written, "seconds": step.seconds,
             "max_statement_s": step.slowest, "ok": ok}
            for name, source, target, ok in records
            for step in [self.steps.get(name, _Step())]
        ]).set_index("table")
        frame = frame.astype({column: "Int64" for column in _COUNTS}
                             | {"seconds": float, "max_statement_s": float, "ok": bool})
        frame.attrs["path"] = self.path
        frame.attrs["fts"] = dict(self.fts_ways)
        frame.attrs["fts_check_s"] = dict(self.fts_checks)
        bad = frame[~frame["ok"]]
        if len(bad):
            detail = ", ".join(f"{name}: {int(r.rows_target)} of {int(r.rows_source)}"
                               for name, r in bad.iterrows())
            raise UploadError(f"row counts differ after upload ({detail})", frame)
        return frame
