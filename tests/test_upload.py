"""Uploading a corpus into a real local D1: limits, counts, resume, and the FTS index."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import apsw
import pytest

from d1bench.errors import UsageError
from d1bench.schema import TABLES
from d1bench.targets.d1.local import LocalD1
from d1bench.uploader import upload
from d1bench.uploader.packing import (
    MAX_PARAMS,
    MAX_STATEMENT_BYTES,
    StatementPacker,
    Table,
    describe_table,
)


class _Interrupted(Exception):
    """Stands for Ctrl-C or a dropped network in the middle of an upload."""


def _read_only(path: Path) -> apsw.Connection:
    return apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)


def _fts_terms(corpus: Path) -> list[str]:
    """Up to three words of the corpus's titles (found in the data, not hard-coded)."""
    db = _read_only(corpus)
    try:
        titles = [t for (t,) in db.execute("SELECT title FROM papers ORDER BY id LIMIT 50")]
    finally:
        db.close()
    words = [w.lower() for t in titles for w in re.findall(r"[A-Za-z]{6,}", t)]
    return sorted(set(words))[:3]


def test_upload_copies_every_row_exactly(local_d1_corpus: LocalD1, small_corpus: Path) -> None:
    # Uploading again resumes: nothing is sent twice, and counts are verified.
    with local_d1_corpus.target() as target:
        frame = upload(small_corpus, target, progress=False)
    tables = list(TABLES)
    assert list(frame.index) == [*tables, "papers_fts", "(schema)", "(checks)"]
    assert frame.loc["papers", "rows_source"] == 2000
    assert frame.loc[tables, "ok"].all()
    assert (frame.loc[tables, "rows_target"] == frame.loc[tables, "rows_source"]).all()
    assert (frame.loc[tables, "rows_uploaded"] == 0).all()
    assert (frame.loc[tables, "rows_written"].fillna(0) == 0).all()  # nothing billed twice
    # Same values of the same types, row by row (integers bound over JSON must
    # land as integers, NULLs as NULLs).
    source, copy = _read_only(small_corpus), _read_only(local_d1_corpus.sqlite_path)
    try:
        for table in tables:
            columns = [row[1] for row in source.execute(f"PRAGMA table_info({table})")]
            select = ", ".join(f"{c}, typeof({c})" for c in columns)
            query = f"SELECT rowid, {select} FROM {table} ORDER BY rowid"
            assert list(copy.execute(query)) == list(source.execute(query)), table
    finally:
        source.close()
        copy.close()


def test_fts_match_works_on_d1(local_d1_corpus: LocalD1, corpus_copy: Path) -> None:
    # The reference: the same rows indexed by SQLite itself.
    reference = apsw.Connection(str(corpus_copy))
    reference.execute("INSERT INTO papers_fts (papers_fts) VALUES ('rebuild')")
    terms = _fts_terms(corpus_copy)
    assert len(terms) >= 2
    queries = [terms[0], f"{terms[1][:4]}*", f"title:{terms[-1]}", f"{terms[0]} OR {terms[1]}"]
    ranked = ("SELECT rowid FROM papers_fts WHERE papers_fts MATCH ? "
              "ORDER BY bm25(papers_fts), rowid LIMIT 20")
    with local_d1_corpus.target(allow_writes=True) as target:
        conn = target.connect()
        for query in queries:
            count = "SELECT count(*) FROM papers_fts WHERE papers_fts MATCH ?"
            expected = reference.execute(count, (query,)).fetchall()[0][0]
            got = conn.execute(count, [query])
            assert got.rows == [(expected,)] and expected > 0, query
            assert got.meta.rows_read > 0  # FTS steps are billed rows on D1
            assert [r[0] for r in conn.execute(ranked, [query]).rows] == [
                r[0] for r in reference.execute(ranked, (query,))]
        snippet = conn.execute("SELECT snippet(papers_fts, -1, '[', ']', '…', 8) FROM papers_fts "
                               "WHERE papers_fts MATCH ? LIMIT 1", [terms[0]])
        assert "[" in snippet.rows[0][0]
        # FTS5's own check that the index matches the papers table.
        conn.execute("INSERT INTO papers_fts (papers_fts, rank) VALUES ('integrity-check', 1)")
    reference.close()


def test_upload_refuses_to_add_rows_without_resume(local_d1_corpus: LocalD1,
                                                   small_corpus: Path) -> None:
    with local_d1_corpus.target() as target, pytest.raises(UsageError, match="already holds rows"):
        upload(small_corpus, target, progress=False, resume=False)


def test_resume_after_interruption(tmp_path: Path, corpus_copy: Path) -> None:
    # The source carries an index of its own: the upload must bring it along.
    db = apsw.Connection(str(corpus_copy))
    db.execute("CREATE INDEX idx_reviews_rating_probe ON paper_reviews (rating)")
    db.close()
    batches = []

    def interrupt(table: str, n: int) -> None:
        batches.append((table, n))
        if table == "papers" and n == 3:
            raise _Interrupted

    with LocalD1(tmp_path / "d1") as d1, d1.target(allow_writes=True) as target:
        conn = target.connect()
        with pytest.raises(_Interrupted):
            upload(corpus_copy, target, batch_rows=100, progress=False, on_batch=interrupt,
                   fts_rebuild_max=0)
        assert batches[-1] == ("papers", 3)
        assert conn.execute("SELECT count(*), max(id) FROM papers").rows == [(300, 300)]
        assert conn.execute("SELECT count(*) FROM citations").rows == [(0,)]

        # fts_rebuild_max=0: the index is refilled in id ranges, as for a large corpus.
        frame = upload(corpus_copy, target, batch_rows=100, progress=False, fts_rebuild_max=0,
                       fts_seconds=0.01)
        assert frame["ok"].all()
        assert frame.loc["papers", "rows_uploaded"] == 2000 - 300
        # D1 bills each paper twice: the row and its entry in the UNIQUE (doi) index.
        assert frame.loc["papers", "rows_written"] == 2 * (2000 - 300)
        assert frame.loc["papers_fts", "rows_uploaded"] == 2000
        assert frame.loc["papers_fts", "rows_written"] >= 2000
        assert frame.loc["clinical_trials", "rows_uploaded"] == 0
        assert frame.loc["papers", "rows_target"] == 2000
        assert conn.execute("SELECT count(DISTINCT doi) FROM papers").rows == [(2000,)]
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master").rows}
        assert {"idx_reviews_rating_probe", "papers_fts_after_insert", "recent_trends"} <= names
        conn.execute("INSERT INTO papers_fts (papers_fts, rank) VALUES ('integrity-check', 1)")

        # The triggers keep the index in step with new rows, on D1 itself.
        row = conn.execute("SELECT * FROM papers WHERE id = 1").rows[0]
        columns = conn.execute("SELECT * FROM papers WHERE id = 1").columns
        values = dict(zip(columns, row, strict=True))
        values.update(id=999_999, doi="10.0/d1bench-probe", title="Zyxwvut probe paper")
        marks = ", ".join("?" for _ in values)
        conn.execute(f"INSERT INTO papers ({', '.join(values)}) VALUES ({marks})",
                     list(values.values()))
        match = "SELECT rowid FROM papers_fts WHERE papers_fts MATCH 'zyxwvut'"
        assert conn.execute(match).rows == [(999_999,)]
        conn.execute("DELETE FROM papers WHERE id = 999999")
        assert conn.execute(match).rows == []


def test_statements_stay_within_d1_limits(small_corpus: Path) -> None:
    source = _read_only(small_corpus)
    try:
        table = describe_table(source, small_corpus, "papers")
        pack = StatementPacker(table, None, max_statements=7, max_request_bytes=10**9)
        sent = []
        for row in source.execute("SELECT rowid, * FROM papers ORDER BY rowid"):
            if pack.add(row):
                statements, _ = pack.take()
                assert len(statements) <= 7
                sent += statements
        while pack.pending:
            sent += pack.take()[0]
        for sql, params in sent:
            assert len(params) <= MAX_PARAMS and len(sql.encode()) <= MAX_STATEMENT_BYTES
            assert sql.startswith('INSERT OR IGNORE INTO "papers" (')
            assert len(params) % len(table.columns) == 0
        flat = [v for _, params in sent for v in params]
        expected = [v for row in source.execute("SELECT * FROM papers ORDER BY rowid") for v in row]
        assert flat == expected
    finally:
        source.close()


def test_values_json_cannot_carry_are_written_as_literals() -> None:
    table = Table("t", ("id", "big", "blob", "inf"), explicit_rowid=False)
    pack = StatementPacker(table, None, 50, 10**6)
    pack.add((1, 1, 2**60, b"\x00\xff", float("inf")))
    ((sql, params),) = pack.take()[0]
    assert not pack.pending
    assert sql.endswith("VALUES (?,1152921504606846976,X'00ff',9e999)")
    assert params == [1]
    keyed = Table("kv", ("key", "value"), explicit_rowid=True)
    pack = StatementPacker(keyed, None, 50, 10**6)
    pack.add((7, "k", "v"))
    sql = 'INSERT OR IGNORE INTO "kv" ("rowid", "key", "value") VALUES (?,?,?)'
    assert pack.take()[0] == [(sql, [7, "k", "v"])]


def test_oversized_value_is_refused_before_sending() -> None:
    pack = StatementPacker(Table("papers", ("id", "abstract"), explicit_rowid=False), None, 50, 10**6)
    with pytest.raises(UsageError, match=r"papers rowid 12: 2,000,001 bytes"):
        pack.add((12, 12, "x" * 2_000_001))


def test_cli_upload(tmp_path: Path, small_corpus: Path, monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture[str]) -> None:
    from d1bench.cli import main

    monkeypatch.setenv("D1BENCH_STATE_DIR", str(tmp_path / "state"))
    corpus = tmp_path / "corpus.sqlite"
    shutil.copyfile(small_corpus, corpus)
    spec = f"d1-local:{tmp_path / 'db'}"
    assert main(["upload", "--db", str(corpus), "--target", spec, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "papers" in out and "2000" in out
    # The target started its own server and stopped it; the data stayed on disk.
    db = _read_only(LocalD1(tmp_path / "db").sqlite_path)
    try:
        assert db.execute("SELECT count(*) FROM papers").fetchall() == [(2000,)]
    finally:
        db.close()
    assert main(["upload", "--db", str(tmp_path / "missing.sqlite"), "--target", spec]) == 2
    assert "no such database file" in capsys.readouterr().err
