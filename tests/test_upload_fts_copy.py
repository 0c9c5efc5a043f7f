"""The offline upload copies an FTS5 index from the source when both define it alike and
the copy passes integrity-check, else fills it; and a cut-short copy resumes."""

from __future__ import annotations

import shutil
from pathlib import Path

import apsw
import pytest

from d1bench.targets.d1.local import LocalD1, sqlite_file
from d1bench.uploader import upload
from d1bench.uploader.fts_copy import copy_fts

_DOCS = ("CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT);"
         "CREATE VIRTUAL TABLE docs_fts USING fts5(body, content = 'docs', content_rowid = 'id', "
         "tokenize = 'porter unicode61');"
         "CREATE TRIGGER docs_ai AFTER INSERT ON docs BEGIN "
         "INSERT INTO docs_fts (rowid, body) VALUES (new.id, new.body); END;")
_WORDS = ("running", "jumped", "quietly", "bridges", "cancer", "therapy", "trial", "cohort")


def _docs(path: Path, rows: int = 3_000, *statements: str) -> Path:
    """A database whose FTS5 index its trigger built row by row (many small segments)."""
    db = apsw.Connection(str(path))
    db.execute(_DOCS)
    for start in range(1, rows + 1, 50):  # a segment per transaction, merged as FTS5 goes
        with db:
            for i in range(start, min(start + 50, rows + 1)):
                words = " ".join(_WORDS[(i * k) % len(_WORDS)] for k in (1, 3, 5, 7))
                db.execute("INSERT INTO docs (id, body) VALUES (?, ?)", (i, f"{words} doc{i}"))
    for sql in statements:
        db.execute(sql)
    db.close()
    return path


def _shadow(path: Path, table: str) -> list[tuple]:
    db = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return [tuple(r) for r in db.execute(f"SELECT * FROM {table} ORDER BY 1, 2")]
    finally:
        db.close()


def _rebuilt(source: Path, fts: str, tmp_path: Path) -> list[tuple]:
    """The segments a rebuild of the source's index makes."""
    copy = tmp_path / "rebuilt.sqlite"
    shutil.copyfile(source, copy)
    db = apsw.Connection(str(copy))
    db.execute(f"INSERT INTO {fts} ({fts}) VALUES ('rebuild')")
    db.close()
    return _shadow(copy, f"{fts}_data")


def _match(conn: object, word: str) -> int:
    return conn.execute(f"SELECT count(*) FROM docs_fts WHERE docs_fts MATCH '{word}'").rows[0][0]  # type: ignore[attr-defined]


@pytest.mark.parametrize("schema", ["docs", "saas"])
def test_the_source_index_is_copied(schema: str, saas_db: Path, tmp_path: Path) -> None:
    source = _docs(tmp_path / "docs.sqlite") if schema == "docs" else saas_db
    fts = "docs_fts" if schema == "docs" else "comments_fts"
    with LocalD1(tmp_path / "d1") as d1, d1.target(allow_writes=True) as target:
        frame = upload(source, target, progress=False, offline=True)
        assert frame.attrs["fts"] == {fts: "copy"}
        conn = target.connect()
        conn.execute(f"INSERT INTO {fts} ({fts}, rank) VALUES ('integrity-check', 1)")
        path = sqlite_file(d1.persist_dir)
    # byte for byte the source's segments, which a rebuild would not make
    for part in ("data", "idx", "docsize", "config"):
        assert _shadow(path, f"{fts}_{part}") == _shadow(source, f"{fts}_{part}"), part
    assert _rebuilt(source, fts, tmp_path) != _shadow(source, f"{fts}_data")


def test_a_differently_defined_target_index_is_filled(tmp_path: Path) -> None:
    source = _docs(tmp_path / "docs.sqlite")
    with LocalD1(tmp_path / "d1") as d1, d1.target(allow_writes=True) as target:
        conn = target.connect()
        # the target's own table, without the source's porter stemmer: kept (IF NOT EXISTS)
        conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("CREATE VIRTUAL TABLE docs_fts USING fts5(body, content = 'docs', "
                     "content_rowid = 'id')")
        frame = upload(source, target, progress=False, offline=True)
        assert frame.attrs["fts"] == {"docs_fts": "fill: its definition differs from the source's"}
        conn.execute("INSERT INTO docs_fts (docs_fts, rank) VALUES ('integrity-check', 1)")
        # indexed by the target's tokenizer: 'run' no longer finds 'running'
        assert _match(conn, "running") > 0 and _match(conn, "run") == 0


def test_other_settings_are_filled(tmp_path: Path) -> None:
    source = _docs(tmp_path / "docs.sqlite", 500,
                   "INSERT INTO docs_fts (docs_fts, rank) VALUES ('pgsz', 1000)")
    with LocalD1(tmp_path / "d1") as d1, d1.target(allow_writes=True) as target:
        frame = upload(source, target, progress=False, offline=True)
        assert frame.attrs["fts"] == {
            "docs_fts": "fill: its settings (_config) differ from the source's"}
        target.connect().execute("INSERT INTO docs_fts (docs_fts, rank) VALUES ('integrity-check', 1)")


def test_a_stale_source_index_fails_the_check_and_is_filled(tmp_path: Path) -> None:
    # rows changed with no trigger to tell the index: it still finds the old words
    source = _docs(tmp_path / "docs.sqlite", 500,
                   "UPDATE docs SET body = 'zebra crossing' WHERE id <= 10")
    with LocalD1(tmp_path / "d1") as d1, d1.target(allow_writes=True) as target:
        frame = upload(source, target, progress=False, offline=True)
        way = frame.attrs["fts"]["docs_fts"]
        assert way.startswith("fill: the copied index fails FTS5's integrity-check"), way
        conn = target.connect()
        conn.execute("INSERT INTO docs_fts (docs_fts, rank) VALUES ('integrity-check', 1)")
        assert _match(conn, "zebra") == 10


class _Cut(Exception):
    pass


def test_a_cut_short_copy_resumes_and_foreign_rows_are_wiped(tmp_path: Path) -> None:
    source = _docs(tmp_path / "docs.sqlite", 3_000)
    target = tmp_path / "target.sqlite"
    db = apsw.Connection(str(target))
    db.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT);"
               "CREATE VIRTUAL TABLE docs_fts USING fts5(body, content = 'docs', "
               "content_rowid = 'id', tokenize = 'porter unicode61');")
    db.execute("ATTACH ? AS src", (str(source),))
    db.execute("INSERT INTO main.docs SELECT * FROM src.docs")
    chunks = 0

    def cut(after: int):
        def count() -> None:
            nonlocal chunks
            chunks += 1
            if chunks == after:
                raise _Cut

        return count

    with pytest.raises(_Cut):
        copy_fts(db, "docs_fts", chunk_rows=100, on_chunk=cut(3))  # docsize: 300 rows in
    assert db.execute("SELECT count(*), max(id) FROM main.docs_fts_docsize").fetchone() == (300, 300)
    chunks = 0
    assert copy_fts(db, "docs_fts", chunk_rows=100, on_chunk=cut(0))[0] is None
    whole = chunks
    for part in ("data", "idx", "docsize"):
        assert (list(db.execute(f"SELECT * FROM main.docs_fts_{part} ORDER BY 1, 2"))
                == list(db.execute(f"SELECT * FROM src.docs_fts_{part} ORDER BY 1, 2"))), part
    # the resumed copy kept the 300 rows: 3 fewer chunks than from scratch
    db.execute("INSERT INTO docs_fts (docs_fts) VALUES ('rebuild')")  # rows not the source's
    chunks = 0
    assert copy_fts(db, "docs_fts", chunk_rows=100, on_chunk=cut(0))[0] is None
    assert chunks == whole + 3
    assert (list(db.execute("SELECT * FROM main.docs_fts_data ORDER BY 1"))
            == list(db.execute("SELECT * FROM src.docs_fts_data ORDER BY 1")))
    db.close()
