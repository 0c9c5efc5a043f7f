"""Loading generated rows into a fresh SQLite file, fast, with the schema D1 will run.

The PRAGMAs below belong to this loading connection only and are not part of the
schema (D1 refuses most of them): no rollback journal and no fsync while
loading, since a half-written file is deleted anyway, and a large page cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import apsw

from d1bench import schema

__all__ = ["LOAD_PRAGMAS", "CorpusWriter"]

#: Page cache while loading, in KiB (SQLite's negative cache_size unit).
CACHE_KIB = 256 * 1024

LOAD_PRAGMAS = (
    "PRAGMA journal_mode = OFF",
    "PRAGMA synchronous = OFF",
    "PRAGMA locking_mode = EXCLUSIVE",
    f"PRAGMA cache_size = -{CACHE_KIB}",
    "PRAGMA temp_store = MEMORY",
    "PRAGMA foreign_keys = OFF",
)

#: VM steps between progress callbacks while the full-text index is built.
PROGRESS_STEPS = 10_000

#: FTS5 keeps this many bytes of new index entries in memory before writing a
#: segment (its default is 1 MiB).  Fewer, larger segments mean far less merging:
#: the index builds in about two thirds of the time.  The setting is dropped again
#: afterwards, so the file carries FTS5's defaults.
FTS_HASHSIZE = 64 * 1024 * 1024


class CorpusWriter:
    """One bulk load into ``path``: tables first, rows, then the FTS index, triggers, views.

    Everything happens in one transaction; nothing is usable until :meth:`finish`.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.conn = apsw.Connection(str(self.path))
        for pragma in LOAD_PRAGMAS:
            self.conn.execute(pragma)
        schema.create_schema(self.conn, "tables", "fts")
        self._insert = {}
        for table in schema.TABLES:
            columns = self.conn.execute(f"PRAGMA table_info({table})").fetchall()
            marks = ", ".join("?" * len(columns))
            self._insert[table] = f"INSERT INTO {table} VALUES ({marks})"
        self.conn.execute("BEGIN")

    def insert(self, table: str, rows: Iterable[tuple]) -> None:
        """Append rows (tuples in the table's column order)."""
        self.conn.executemany(self._insert[table], rows)

    def build_fts(self, tick: Callable[[], None] | None = None) -> None:
        """Index every paper in ``papers_fts`` at once ('rebuild').

        ``tick`` is called every :data:`PROGRESS_STEPS` VM steps; an exception it
        raises (Ctrl-C included) stops the build.
        """
        if tick is not None:
            def handler() -> bool:
                tick()
                return False
            self.conn.set_progress_handler(handler, PROGRESS_STEPS)
        try:
            self.conn.execute("INSERT INTO papers_fts (papers_fts, rank) VALUES ('hashsize', ?)",
                              (FTS_HASHSIZE,))
            self.conn.execute("INSERT INTO papers_fts (papers_fts) VALUES ('rebuild')")
            # the loading connection keeps its setting; the file goes back to the default
            self.conn.execute("DELETE FROM papers_fts_config WHERE k = 'hashsize'")
        finally:
            self.conn.set_progress_handler(None)

    def finish(self, meta: Iterable[tuple[str, str]]) -> None:
        """Triggers, views and ``corpus_meta``; commit and close."""
        schema.create_schema(self.conn, "triggers", "views")
        self.insert("corpus_meta", meta)
        self.conn.execute("COMMIT")
        self.close()

    def close(self) -> None:
        """Close without committing (what is left of the file is garbage)."""
        self.conn.close()
