"""``describe_corpus``: what a corpus file is, for trace metadata and reports."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import apsw

__all__ = ["describe_corpus", "open_readonly"]


def open_readonly(path: str | os.PathLike[str]) -> apsw.Connection:
    """A read-only APSW connection to a checked SQLite file (see :mod:`d1bench.dbfile`)."""
    from d1bench.dbfile import open_readonly as _open

    return _open(path)


def describe_corpus(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Identify a corpus: papers, seed, as_of, digest, file bytes and row counts.

    For a corpus made by d1bench these come from its ``corpus_meta`` table.  For any
    other SQLite database, ``papers`` is the row count of its ``papers`` table (if
    any), ``seed`` and ``as_of`` are None, and ``digest`` fingerprints the schema
    and the row counts of its tables (cheap, and it changes when they do).
    """
    p = Path(path)
    conn = open_readonly(p)
    try:
        tables = [name for (name,) in conn.execute(
            "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table' "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        meta: dict[str, str] = {}
        if "corpus_meta" in tables:
            meta = dict(conn.execute("SELECT key, value FROM corpus_meta").fetchall())
        if meta.get("generator") == "d1bench" and "digest" in meta:
            counts = json.loads(meta.get("row_counts", "{}"))
            return {
                "path": str(p),
                "generator": "d1bench",
                "generator_version": meta.get("generator_version"),
                "papers": int(meta["papers"]),
                "seed": int(meta["seed"]),
                "as_of": meta.get("as_of"),
                "digest": meta["digest"],
                "file_bytes": p.stat().st_size,
                "row_counts": counts,
            }
        counts = {name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchall()[0][0]
                  for name in tables}
        schema_sql = conn.execute("SELECT type, name, coalesce(sql, '') FROM sqlite_schema "
                                  "ORDER BY type, name").fetchall()
    finally:
        conn.close()
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps([schema_sql, sorted(counts.items())]).encode())
    return {
        "path": str(p),
        "generator": None,
        "generator_version": None,
        "papers": counts.get("papers"),
        "seed": None,
        "as_of": None,
        "digest": h.hexdigest(),
        "file_bytes": p.stat().st_size,
        "row_counts": counts,
    }
