"""``describe_corpus``: what a corpus file is, for trace metadata and reports."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from pathlib import Path
from typing import Any

import apsw

from d1bench._atomic import write_atomic
from d1bench.errors import UsageError

__all__ = ["content_digest", "describe_corpus", "open_readonly"]


def open_readonly(path: str | os.PathLike[str]) -> apsw.Connection:
    """A read-only APSW connection to a checked SQLite file (see :mod:`d1bench.dbfile`)."""
    from d1bench.dbfile import open_readonly as _open

    return _open(path)


_DIGEST_FORMAT = 1


def _stamp(path: Path) -> list[Any]:
    """What changes when a database file's content may have: its own and its WAL's size and mtime."""
    stamp: list[Any] = []
    for f in (path, Path(f"{path}-wal")):
        try:
            st = f.stat()
        except FileNotFoundError:
            stamp.append(None)
            continue
        stamp.append([st.st_size, st.st_mtime_ns, st.st_ino])
    return stamp


def _rows_digest(conn: apsw.Connection) -> str:
    """blake2b over every real table's name and rows, in key order (indexes left out).

    Indexes, ``sqlite_stat1`` and the page layout do not count, so a copy of the
    corpus under another index set has the same digest; one changed row
    changes it.  Virtual tables are skipped: their content is in their shadow
    tables, which are hashed like any other.
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(f"d1bench content digest {_DIGEST_FORMAT}".encode())
    tables = conn.execute(
        "SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND coalesce(sql, '') NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name").fetchall()
    for name, sql in tables:
        quoted = str(name).replace('"', '""')
        h.update(b"\x00" + repr((name, sql)).encode())
        try:
            cursor = conn.execute(f'SELECT rowid, * FROM "{quoted}"')
        except apsw.SQLError:  # WITHOUT ROWID: its primary key orders the scan
            cursor = conn.execute(f'SELECT * FROM "{quoted}"')
        while chunk := list(itertools.islice(cursor, 4096)):
            h.update(repr(chunk).encode())
    return h.hexdigest()


def content_digest(path: str | os.PathLike[str], *, cache: bool = True) -> str:
    """A digest of a database's content (:func:`_rows_digest`), cached per file state.

    Reading every row takes about a second per 20,000 papers, so the result
    is kept in the user's cache folder under the file's path, size, mtime and
    inode (and its WAL's): the second call on an unchanged file is a lookup.

    >>> import apsw, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); db = apsw.Connection(str(d / "a.db"))
    >>> _ = db.execute("CREATE TABLE t (x); INSERT INTO t VALUES (1)")
    >>> before = content_digest(d / "a.db", cache=False)
    >>> _ = db.execute("UPDATE t SET x = 2")
    >>> content_digest(d / "a.db", cache=False) != before
    True
    """
    from d1bench._paths import cache_dir

    p = Path(path).resolve()
    stamp = _stamp(p)
    key = hashlib.sha256(str(p).encode()).hexdigest()[:32]
    store = cache_dir() / "digests" / f"{key}.json"
    if cache:
        try:
            saved = json.loads(store.read_text())
            if saved.get("stamp") == stamp and saved.get("format") == _DIGEST_FORMAT:
                return str(saved["digest"])
        except (OSError, ValueError, AttributeError, KeyError):
            pass
    conn = open_readonly(p)
    try:
        digest = _rows_digest(conn)
    finally:
        conn.close()
    if cache and _stamp(p) == stamp:  # not changed while it was read
        try:
            store.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(store, json.dumps({"format": _DIGEST_FORMAT, "stamp": stamp,
                                            "digest": digest}), force=True)
        except (OSError, UsageError):
            pass  # a cache is a shortcut
    return digest


def describe_corpus(path: str | os.PathLike[str], *, digest: str | None = None) -> dict[str, Any]:
    """Identify a corpus: papers, seed, as_of, digest, file bytes and row counts.

    ``digest`` is :func:`content_digest`: it covers every table's rows (not the
    indexes), so it changes when the data do and is the same for the corpus
    under any index set (pass it when it is already known).  For a corpus made
    by d1bench the rest comes from its ``corpus_meta`` table (with the recipe's
    own fingerprint as ``generator_digest``).  For any other SQLite database,
    ``papers`` is the row count of its ``papers`` table (if any), ``seed`` and
    ``as_of`` are None.
    """
    p = Path(path)
    if digest is None:
        digest = content_digest(p)
    conn = open_readonly(p)
    try:
        tables = [name for (name,) in conn.execute(
            "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table' "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        meta: dict[str, str] = {}
        if "corpus_meta" in tables:
            meta = {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM corpus_meta")}
        if meta.get("generator") == "d1bench" and "digest" in meta:
            counts = json.loads(meta.get("row_counts", "{}"))
            return {
                "path": str(p),
                "generator": "d1bench",
                "generator_version": meta.get("generator_version"),
                "papers": int(meta["papers"]),
                "seed": int(meta["seed"]),
                "as_of": meta.get("as_of"),
                "digest": digest,
                "digest_of": "content",
                "generator_digest": meta["digest"],
                "file_bytes": p.stat().st_size,
                "row_counts": counts,
            }
        counts = {name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchall()[0][0]
                  for name in tables}
    finally:
        conn.close()
    return {
        "path": str(p),
        "generator": None,
        "generator_version": None,
        "papers": counts.get("papers"),
        "seed": None,
        "as_of": None,
        "digest": digest,
        "digest_of": "content",
        "file_bytes": p.stat().st_size,
        "row_counts": counts,
    }
