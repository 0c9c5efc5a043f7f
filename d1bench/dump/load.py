"""``d1bench import``: a SQL dump (``wrangler d1 export``, ``sqlite3 .dump``) into
a new SQLite file.

Statements are split in Python (:mod:`d1bench.dump.parse`), and each run of
rows for one table is inserted a few hundred rows a statement, all in one transaction,
into a temporary file that is renamed into place only when every statement
succeeded.  Syncing is off and the journal in memory while loading: the file
is not the user's until the rename, so a crash loses only the temporary file.
"""

from __future__ import annotations

import os
import queue
import re
import sqlite3
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from d1bench.dump.parse import parse_insert
from d1bench.errors import UsageError

__all__ = ["ImportInfo", "import_dump"]

#: Rows per multi-row INSERT, and its size at most: past a few hundred rows a
#: longer statement no longer saves time, and a failing run is replayed sooner.
BATCH_ROWS = 500
BATCH_BYTES = 1_000_000
#: Batches read ahead of the writer at most (memory stays a few MB).
QUEUE_DEPTH = 16

# Statements a dump carries for a shell session that mean nothing inside our
# single transaction (D1's dumps have none; sqlite3 .dump wraps its rows in them).
_SKIP = re.compile(r"^\s*(BEGIN(\s+(DEFERRED|IMMEDIATE|EXCLUSIVE))?(\s+TRANSACTION)?|COMMIT|END"
                   r"(\s+TRANSACTION)?|PRAGMA\s+foreign_keys\s*=\s*\w+)\s*;\s*$", re.IGNORECASE)
_VIRTUAL = re.compile(r"^\s*CREATE\s+VIRTUAL\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?"
                      r"(\"(?:[^\"]|\"\")*\"|\S+?)\s+USING\s+fts5\s*\((.*)\)\s*;\s*$",
                      re.IGNORECASE | re.DOTALL)
_EXTERNAL = re.compile(r"(?:^|,)\s*content\s*=\s*('(?:[^']|'')+'|\"[^\"]+\"|[A-Za-z_]\w*)",
                       re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ImportInfo:
    """What :func:`import_dump` wrote.

    Attributes:
        path: the SQLite file.
        row_counts: rows inserted per table, in the order tables appeared.
        statements: statements read from the dump.
        seconds: wall time of the whole import.
        rebuilt: FTS5 external-content tables rebuilt from their content tables.
        foreign_key_violations: rows ``PRAGMA foreign_key_check`` reports (D1
            would refuse them: it always enforces foreign keys).
    """

    path: Path
    row_counts: Mapping[str, int]
    statements: int
    seconds: float
    rebuilt: tuple[str, ...] = ()
    foreign_key_violations: int = 0
    bytes: int = field(default=0)

    @property
    def rows(self) -> int:
        """Rows inserted in all."""
        return sum(self.row_counts.values())


class _Writer:
    """The one thread that touches the database: runs each item the reader
    queues, in order, and keeps the row counts.

    Rows are grouped, not parsed into Python values: SQLite's tokenizer reads
    the literals of a few-hundred-row ``VALUES`` list in C, measured 3 to 4
    times faster than the same rows parsed in Python and bound through
    ``executemany``, and exactly as SQLite itself reads each ``INSERT``
    (``replace(...)``, ``X'..'``, any expression).  Reading the dump and
    inserting overlap, since SQLite releases the GIL while it works.  A run of
    rows that fails is replayed a row at a time to name the line at fault.
    """

    def __init__(self, conn: sqlite3.Connection, source: str) -> None:
        self.conn = conn
        self.source = source
        self.counts: Counter[str] = Counter()
        self.order: list[str] = []
        self.fts_external: list[str] = []
        self.error: BaseException | None = None
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_DEPTH)
        self.thread = threading.Thread(target=self._run, name="d1bench-import", daemon=True)

    def fail(self, line: int, exc: Exception, sql: str) -> UsageError:
        shown = " ".join(sql.split())
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        return UsageError(f"{self.source}:{line}: {exc} (in {shown})")

    def put(self, item: Any) -> None:
        if self.error is not None:
            raise _Stop
        self.queue.put(item)

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.error is not None:
                continue  # drain: the reader stops at its next put
            try:
                if item[0] == "rows":
                    self._rows(*item[1:])
                else:
                    self._plain(*item[1:])
            except BaseException as exc:  # noqa: BLE001 - handed to the reader thread
                self.error = exc

    def _rows(self, head: str, table: str, first: int, rows: list[str]) -> None:
        conn = self.conn
        if table not in self.counts:
            self.order.append(table)
            self.counts[table] += 0
        conn.execute("SAVEPOINT batch")
        try:
            inserted = conn.execute(head[:-1] + "(" + "),(".join(rows) + ")").rowcount
        except sqlite3.Error:
            conn.execute("ROLLBACK TO batch")
            inserted = 0
            for n, values in enumerate(rows):
                sql = f"{head}{values});"
                try:
                    inserted += conn.execute(sql).rowcount
                except sqlite3.Error as exc:
                    raise self.fail(first + n, exc, sql) from None
        conn.execute("RELEASE batch")
        self.counts[table] += inserted

    def _plain(self, line: int, sql: str) -> None:
        if _SKIP.match(sql):
            return
        m = _VIRTUAL.match(sql)
        if m and _EXTERNAL.search(m.group(2)) and not re.search(
                r"content\s*=\s*''", m.group(2), re.IGNORECASE):
            self.fts_external.append(m.group(1))
        try:
            cursor = self.conn.execute(sql)
        except sqlite3.Error as exc:
            raise self.fail(line, exc, sql) from None
        parsed = parse_insert(sql)
        if parsed is not None and cursor.rowcount > 0:
            table = parsed[0].table
            if table not in self.counts:
                self.order.append(table)
            self.counts[table] += cursor.rowcount


class _Stop(Exception):
    """The writer failed; its error is raised instead."""


def _read(lines: Any, writer: _Writer) -> int:
    """Split the dump and queue its work; returns the number of statements.

    The loop is written out rather than built from :func:`statements` and a
    method per row: at a million rows every call per line shows in the time.
    Rows of a run are consecutive lines, so the first line number is enough to
    name any of them.
    """
    head, table, hl = "", "", 0
    rows: list[str] = []
    first = size = count = 0
    pending: list[str] = []
    start = 0
    put = writer.put

    def flush() -> None:
        nonlocal rows, size
        if rows:
            put(("rows", head, table, first, rows))
            rows, size = [], 0

    for n, raw in enumerate(lines, 1):
        if not pending:
            if head and raw.startswith(head) and raw.endswith(");\n") and not raw.count("'") % 2:
                if not rows:
                    first = n
                elif first + len(rows) != n:  # a skipped line broke the run
                    flush()
                    first = n
                rows.append(raw[hl:-3])
                size += len(raw)
                count += 1
                if len(rows) >= BATCH_ROWS or size >= BATCH_BYTES:
                    flush()
                continue
            line = raw.rstrip("\r\n")
            stripped = line.strip()
            if not stripped or stripped.startswith("--"):
                continue
            start = n
        else:
            line = raw.rstrip("\r\n")
        pending.append(line)
        if not line.rstrip().endswith(";"):
            continue
        text = "\n".join(pending)
        if not sqlite3.complete_statement(text):
            continue
        pending = []
        sql = text.strip()
        count += 1
        flush()
        parsed = parse_insert(sql)
        if parsed is not None and not parsed[0].table.lower().startswith("sqlite_"):
            ins, values = parsed
            head, table, hl = ins.head, ins.table, len(ins.head)
            rows, first, size = [values], start, len(sql)
        else:
            head = ""
            put(("sql", start, sql))
    flush()
    if pending and "\n".join(pending).strip():
        count += 1
        put(("sql", start, "\n".join(pending).strip()))
    return count


def import_dump(dump: str | os.PathLike[str], out: str | os.PathLike[str], *,
                force: bool = False, progress: bool = True) -> ImportInfo:
    """Load the SQL dump ``dump`` into a new SQLite database at ``out``.

    A ``wrangler d1 export`` dump and ``sqlite3 .dump`` output both load:
    quoted identifiers, column lists, ``replace(..,'\\n',char(10))`` strings,
    ``X'..'`` blobs, ``PRAGMA defer_foreign_keys``, virtual tables (an FTS5
    table over external content is rebuilt once its content is loaded).  Any
    statement that fails raises :class:`~d1bench.errors.UsageError` naming the
    dump's line, and nothing is written; ``out`` is replaced only with
    ``force``.
    """
    from d1bench._atomic import publish
    from d1bench.corpus.build import check_destination

    src = Path(dump)
    if not src.is_file():
        raise UsageError(f"{src}: no such dump file")
    path = check_destination(out, force)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.importing")
    tmp.unlink(missing_ok=True)
    started = time.perf_counter()
    size = src.stat().st_size
    # the writer thread owns the connection; this thread only opens and closes it
    conn = sqlite3.connect(tmp, isolation_level=None, check_same_thread=False)
    writer = _Writer(conn, str(src))
    try:
        # MEMORY, not OFF: a failing batch must roll back to its savepoint
        conn.execute("PRAGMA journal_mode=MEMORY")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN")
        writer.thread.start()
        try:
            with open(src, encoding="utf-8", newline="") as fh, _Progress(size, progress) as bar:
                n_statements = _read(bar.lines(fh), writer)
        except _Stop:
            pass
        except UnicodeDecodeError as exc:
            raise UsageError(f"{src}: not UTF-8 text ({exc.reason})") from None
        finally:
            writer.queue.put(None)
            writer.thread.join()
        if writer.error is not None:
            raise writer.error
        for name in writer.fts_external:
            conn.execute(f"INSERT INTO {name}({name}) VALUES('rebuild')")
        violations = len(conn.execute("PRAGMA foreign_key_check").fetchall())
        conn.execute("COMMIT")
        conn.close()
        publish(tmp, path, force=force)
    finally:
        conn.close()
        tmp.unlink(missing_ok=True)
    counts = {t: writer.counts[t] for t in writer.order}
    return ImportInfo(path, counts, n_statements, time.perf_counter() - started,
                      tuple(n.strip('"') for n in writer.fts_external), violations, size)


class _Progress:
    """A byte-count progress bar on stderr over the dump's lines (tqdm), or none."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled, self.bar = total, enabled, None

    def __enter__(self) -> Self:
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, unit="B", unit_scale=True, desc="import",
                            file=sys.stderr, leave=False)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()

    def lines(self, fh: Any) -> Any:
        if self.bar is None:
            yield from fh
            return
        done = 0
        for i, line in enumerate(fh):
            done += len(line)
            if i % 20_000 == 0:
                self.bar.update(done - self.bar.n)
            yield line
        self.bar.update(done - self.bar.n)
