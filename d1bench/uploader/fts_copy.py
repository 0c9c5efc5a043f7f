"""An FTS5 index copied from the source's shadow tables instead of being rebuilt.

Re-indexing tokenises every row again: for a million papers that was about two
thirds of the offline upload (207 s of 307 s).  The source already holds the
index, and FTS5 keeps it in ordinary tables (``<name>_data`` segments,
``_idx`` their terms, ``_docsize`` token counts, ``_config``), so when both
sides define the table alike those rows can be copied like any others.

The copy is taken only when it cannot differ from an index built on the target:

* the same definition: the ``USING fts5(...)`` arguments (columns, tokenizer,
  prefixes, content mode), the shadow tables' own DDL (detail, columnsize and
  contentless variants change it) and every ``_config`` row (version, rank,
  page size, merge settings) equal on both sides;
* afterwards FTS5's ``integrity-check`` with rank 1 on the target: it tokenises
  the target's content again and checks that the index holds exactly those
  tokens, so a source whose index went stale (rows changed with its triggers
  absent) or a tokenizer that splits differently fails it.  The source cannot
  be checked in place: it is opened read-only, and FTS5 refuses the command there.

Otherwise, or when the check fails, the caller fills the index as before
(:func:`d1bench.uploader.fts.fill_fts`), and :func:`copy_fts` says why.

The segment layout is the source's, not what a rebuild would make; FTS5 reads
the same tokens from it, and ``tests/test_upload_offline.py`` compares D1's
``rows_read`` per statement of a replay with an upload by statements.

Resuming: rows go in key order, each chunk committed, so a killed copy leaves a
prefix of each table.  The next run keeps what it finds only if every row of
it is in the source unchanged (anything else, say a half-done rebuild, is
wiped) and continues after the last key.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import apsw

from d1bench.uploader.packing import quote

__all__ = ["COPY_CHUNK_ROWS", "copy_fts"]

#: Shadow rows per committed chunk: ``_data`` rows are pages of about 4 KB.
COPY_CHUNK_ROWS = 20_000
#: Copied in this order; ``_config`` is not copied but must match.
_PARTS = ("docsize", "content", "idx", "data")


def _args(sql: str | None) -> str | None:
    """The ``USING ...`` part of a CREATE VIRTUAL TABLE, blanks collapsed.

    >>> _args("CREATE VIRTUAL TABLE IF NOT EXISTS t USING fts5(a,\\n   b)")
    'fts5(a, b)'
    """
    m = re.search(r"(?is)\bUSING\s+(.*)$", sql or "")
    return re.sub(r"\s+", " ", m.group(1)).strip() if m else None


class _Side:
    """One schema (``main`` the target, ``src`` the source) as seen by the copy."""

    def __init__(self, conn: Any, schema: str) -> None:
        self.conn, self.schema = conn, schema

    def sql(self, name: str) -> str | None:
        row = self.conn.execute(f"SELECT sql FROM {self.schema}.sqlite_schema "
                                "WHERE lower(name) = lower(?)", (name,)).fetchone()
        return row[0] if row else None

    def rows(self, table: str) -> list[tuple[Any, ...]]:
        return sorted(tuple(r) for r in
                      self.conn.execute(f"SELECT * FROM {self.schema}.{quote(table)}"))


def _difference(conn: Any, name: str) -> str | None:
    """Why the target's FTS5 table ``name`` is not defined as the source's, or None."""
    target, source = _Side(conn, "main"), _Side(conn, "src")
    if _args(target.sql(name)) != _args(source.sql(name)):
        return "its definition differs from the source's"
    for part in (*_PARTS, "config"):
        shadow = f"{name}_{part}"
        if target.sql(shadow) != source.sql(shadow):
            return f"its {shadow} table differs from the source's"
    if target.rows(f"{name}_config") != source.rows(f"{name}_config"):
        return "its settings (_config) differ from the source's"
    return None


def _key(conn: Any, table: str) -> list[str]:
    info = list(conn.execute(f"PRAGMA src.table_info({quote(table)})"))
    return [r[1] for r in sorted(info, key=lambda r: r[5]) if r[5]] or ["rowid"]


def _all_in_source(conn: Any, table: str) -> bool:
    """Every row the target holds is in the source, unchanged (probed by key)."""
    cols = [r[1] for r in conn.execute(f"PRAGMA src.table_info({quote(table)})")]
    key = _key(conn, table)
    same = " AND ".join(f"s.{quote(c)} IS t.{quote(c)}" for c in dict.fromkeys([*key, *cols]))
    row = conn.execute(f"SELECT 1 FROM main.{quote(table)} AS t WHERE NOT EXISTS "
                       f"(SELECT 1 FROM src.{quote(table)} AS s WHERE {same}) LIMIT 1").fetchone()
    return row is None


def _copy_table(conn: Any, table: str, chunk_rows: int, on_chunk: Callable[[], None]) -> float:
    """Copy ``table`` after the target's last key, chunk by chunk; the slowest chunk's seconds."""
    name = quote(table)
    key = _key(conn, table)
    if len(key) > 1:
        # WITHOUT ROWID (``_idx``): a few rows per segment page, one statement.
        started = time.perf_counter()
        with conn:
            conn.execute(f"INSERT OR IGNORE INTO main.{name} SELECT * FROM src.{name}")
        on_chunk()
        return time.perf_counter() - started
    col = quote(key[0])
    slowest = 0.0
    lo = conn.execute(f"SELECT max({col}) FROM main.{name}").fetchone()[0]
    while True:
        after = "" if lo is None else f"WHERE {col} > {int(lo)}"
        hi = conn.execute(f"SELECT {col} FROM src.{name} {after} ORDER BY {col} "
                          "LIMIT 1 OFFSET ?", (chunk_rows - 1,)).fetchone()
        upto = "" if hi is None else f"{'AND' if after else 'WHERE'} {col} <= {int(hi[0])}"
        started = time.perf_counter()
        with conn:
            conn.execute(f"INSERT INTO main.{name} SELECT * FROM src.{name} {after} {upto} "
                         f"ORDER BY {col}")
        slowest = max(slowest, time.perf_counter() - started)
        on_chunk()
        if hi is None:
            return slowest
        lo = hi[0]


def copy_fts(conn: Any, name: str, *, chunk_rows: int = COPY_CHUNK_ROWS,
             on_chunk: Callable[[], None] = lambda: None) -> tuple[str | None, float, float]:
    """Copy the FTS5 index ``name`` from schema ``src`` into ``main`` on ``conn``.

    Returns ``(refusal, slowest, check_s)``: ``refusal`` is None when the index was
    copied and passed ``integrity-check``, else why it was not taken (the target's
    index is then to be filled); ``slowest`` the longest chunk's seconds,
    ``check_s`` the integrity-check's.  ``on_chunk()`` is called after each commit
    (a kill between two loses only the chunk in flight).
    """
    refusal = _difference(conn, name)
    if refusal is not None:
        return refusal, 0.0, 0.0
    present = {r[0].lower() for r in conn.execute("SELECT name FROM src.sqlite_schema")}
    tables = [f"{name}_{p}" for p in _PARTS if f"{name}_{p}".lower() in present]
    if not all(_all_in_source(conn, t) for t in tables):
        # A fresh table's empty structure record, or a rebuild cut short: start over.
        with conn:
            for table in tables:
                conn.execute(f"DELETE FROM main.{quote(table)}")
    slowest = max(_copy_table(conn, t, chunk_rows, on_chunk) for t in tables)
    started = time.perf_counter()
    try:
        conn.execute(f"INSERT INTO main.{quote(name)} ({quote(name)}, rank) "
                     "VALUES ('integrity-check', 1)")
    except apsw.Error as exc:
        return ((f"the copied index fails FTS5's integrity-check ({exc}): the source's "
                 "index does not match its rows"), slowest, time.perf_counter() - started)
    return None, slowest, time.perf_counter() - started
