"""The corpus generator: determinism, safety of writes, bad input, schema, FTS, CLI."""

from __future__ import annotations

import doctest
import hashlib
import importlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import apsw
import numpy as np
import pytest

from d1bench import generate_corpus, schema
from d1bench.cli import main
from d1bench.corpus import describe_corpus
from d1bench.corpus._pieces import Digest
from d1bench.corpus.generator import DATA_TABLES, CorpusGenerator
from d1bench.corpus.papers import PaperMaker
from d1bench.corpus.plan import make_plan
from d1bench.corpus.texts import Texts
from d1bench.corpus.vocabulary import load_vocabulary
from d1bench.errors import UsageError


def dump_digest(path: Path) -> dict[str, str]:
    """sha256 of every table's rows in rowid order (the FTS index's own pages included)."""
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    out = {}
    for table in (*schema.TABLES, "papers_fts_data", "papers_fts_idx", "papers_fts_docsize"):
        h = hashlib.sha256()
        width = len(conn.execute(f"PRAGMA table_info({table})").fetchall())
        order = ", ".join(str(k) for k in range(1, width + 1))
        for row in conn.execute(f"SELECT * FROM {table} ORDER BY {order}"):
            h.update(repr(row).encode())
        out[table] = h.hexdigest()
    conn.close()
    return out


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- determinism -------------------------------------------------------------

def test_same_papers_and_seed_give_the_same_rows(tmp_path):
    a = generate_corpus(tmp_path / "a.sqlite", papers=1_500, seed=3)
    b = generate_corpus(tmp_path / "b.sqlite", papers=1_500, seed=3)
    c = generate_corpus(tmp_path / "c.sqlite", papers=1_500, seed=4)
    assert a.digest == b.digest
    assert a.row_counts == b.row_counts
    dump_a, dump_b, dump_c = (dump_digest(tmp_path / f"{x}.sqlite") for x in "abc")
    assert dump_a == dump_b
    assert c.digest != a.digest
    # a different seed changes every generated table, not just some
    changed = {t for t in DATA_TABLES if dump_a[t] != dump_c[t]}
    assert changed == set(DATA_TABLES)


def test_as_of_moves_the_calendar(tmp_path):
    info = generate_corpus(tmp_path / "c.sqlite", papers=500, seed=1, as_of="2020-03-15")
    conn = apsw.Connection(str(info.path))
    first, last = conn.execute("SELECT min(publication_date), max(publication_date) "
                               "FROM papers").fetchone()
    newest_read = conn.execute("SELECT max(last_read_at) FROM reading_history").fetchone()[0]
    assert "2000-03-15" <= first and last < "2020-03-15"
    assert newest_read < "2020-03-15"
    assert dict(conn.execute("SELECT key, value FROM corpus_meta"))["as_of"] == "2020-03-15"


# --- the file it writes ------------------------------------------------------------

def test_corpus_has_the_whole_schema_and_nothing_d1_refuses(small_corpus):
    conn = apsw.Connection(str(small_corpus), flags=apsw.SQLITE_OPEN_READONLY)
    objects = conn.execute("SELECT type, name, sql FROM sqlite_schema "
                           "WHERE sql IS NOT NULL").fetchall()
    names = {name for _, name, _ in objects}
    assert set(schema.TABLES) | {"papers_fts", "recent_trends"} <= names
    assert {f"papers_fts_after_{event}" for event in ("insert", "delete", "update")} <= names
    # index set `none`: keys and UNIQUE constraints only, no CREATE INDEX
    assert [n for t, n, _ in objects if t == "index"] == []
    # the DDL as stored in the file, minus the shadow tables FTS5 makes itself
    ddl = ";\n".join(sql for _, name, sql in objects if not name.startswith("papers_fts_")) + ";"
    assert schema.d1_problems(ddl) == []
    assert schema.d1_problems(schema.ddl()) == []
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    # the build's FTS5 settings were not left behind
    assert conn.execute("SELECT k FROM papers_fts_config").fetchall() == [("version",)]


def test_fts_index_is_in_sync_and_triggers_keep_it_so(corpus_copy):
    conn = apsw.Connection(str(corpus_copy))
    conn.execute("INSERT INTO papers_fts (papers_fts, rank) VALUES ('integrity-check', 1)")
    paper_id, title = conn.execute("SELECT id, title FROM papers WHERE id = 1234").fetchone()
    word = max((w.strip(":,.") for w in title.split()), key=len)
    hits = [r for (r,) in conn.execute(
        "SELECT rowid FROM papers_fts WHERE papers_fts MATCH ?", (f'title:"{word}"',))]
    assert paper_id in hits
    # the triggers: a new paper is searchable at once, a deleted one is gone
    conn.execute(
        "INSERT INTO papers (id, doi, title, abstract, authors, keywords, journal,"
        " publication_date, publication_type, publication_stage, medical_specialty,"
        " study_design, evidence_level, conditions) VALUES (99999, '10.1/x', 'Zyxwvut syndrome',"
        " NULL, '[]', '[]', 'J', '2026-10-01', 'letter', 'final', 'Cardiology', 'correspondence',"
        " 'low', '[]')")
    search = "SELECT rowid FROM papers_fts WHERE papers_fts MATCH 'zyxwvut'"
    assert conn.execute(search).fetchall() == [(99999,)]
    conn.execute("DELETE FROM papers WHERE id = 99999")
    assert conn.execute(search).fetchall() == []
    conn.execute("INSERT INTO papers_fts (papers_fts, rank) VALUES ('integrity-check', 1)")


def test_describe_corpus_reads_corpus_meta(small_corpus):
    info = describe_corpus(small_corpus)
    conn = apsw.Connection(str(small_corpus), flags=apsw.SQLITE_OPEN_READONLY)
    meta = dict(conn.execute("SELECT key, value FROM corpus_meta"))
    assert info["generator"] == "d1bench"
    assert (info["papers"], info["seed"], info["as_of"]) == (2000, 7, "2026-11-01")
    # The recipe's fingerprint from corpus_meta; "digest" is the content's (issue 10).
    assert info["generator_digest"] == meta["digest"] and len(info["generator_digest"]) == 32
    assert info["digest_of"] == "content" and len(info["digest"]) == 32
    assert info["file_bytes"] == small_corpus.stat().st_size
    for table in DATA_TABLES:
        count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        assert info["row_counts"][table] == count


def test_describe_corpus_of_a_foreign_database(tmp_path):
    path = tmp_path / "theirs.sqlite"
    conn = apsw.Connection(str(path))
    conn.execute("CREATE TABLE papers (id INTEGER PRIMARY KEY, title TEXT); "
                 "INSERT INTO papers (title) VALUES ('a'), ('b')")
    first = describe_corpus(path)
    assert first["generator"] is None and first["seed"] is None
    assert first["papers"] == 2 and first["row_counts"] == {"papers": 2}
    assert describe_corpus(path)["digest"] == first["digest"]
    conn.execute("INSERT INTO papers (title) VALUES ('c')")
    assert describe_corpus(path)["digest"] != first["digest"]
    conn.close()
    with pytest.raises(UsageError, match="no such database file"):
        describe_corpus(tmp_path / "missing.sqlite")
    (tmp_path / "text.sqlite").write_text("not a database at all" * 100)
    with pytest.raises(UsageError, match="not a SQLite database"):
        describe_corpus(tmp_path / "text.sqlite")


# --- atomic writes -----------------------------------------------------------------

class Stop(Exception):
    pass


@pytest.mark.parametrize("phase", ["citations", "papers", "reading history", "full-text index",
                                   "done"])
def test_an_interrupted_build_leaves_nothing(tmp_path, phase):
    def progress(current: str, done: int, total: int) -> None:
        if current == phase:
            raise Stop(current)

    with pytest.raises(Stop):
        generate_corpus(tmp_path / "c.sqlite", papers=3_000, seed=1, progress=progress)
    assert listing(tmp_path) == []


def test_ctrl_c_leaves_nothing(tmp_path):
    out = tmp_path / "c.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-m", "d1bench", "generate", "--papers", "200000", "--out", str(out)],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        # No bar to watch (stderr is a pipe, not a terminal): the temporary file says work began.
        deadline = time.monotonic() + 60
        while not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()):
            assert time.monotonic() < deadline and proc.poll() is None, listing(tmp_path)
            time.sleep(0.05)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=60)
        seen = proc.stderr.read()
        assert "\r" not in seen, "a progress bar was drawn on a pipe"
    finally:
        proc.kill()
        proc.wait()
    assert rc == 130, seen
    assert "interrupted" in seen
    assert listing(tmp_path) == []


def test_existing_file_is_kept_without_force_and_replaced_with_it(tmp_path):
    out = tmp_path / "c.sqlite"
    out.write_text("precious")
    with pytest.raises(UsageError, match="already exists"):
        generate_corpus(out, papers=200)
    assert out.read_text() == "precious" and listing(tmp_path) == ["c.sqlite"]
    info = generate_corpus(out, papers=200, force=True)
    assert info.row_counts["papers"] == 200 and listing(tmp_path) == ["c.sqlite"]
    assert describe_corpus(out)["papers"] == 200


@pytest.mark.parametrize("kwargs, message", [
    ({"papers": 0}, "between 1 and"),
    ({"papers": -5}, "between 1 and"),
    ({"papers": 2.5}, "whole number"),
    ({"papers": 100, "seed": -1}, "seed"),
    ({"papers": 100, "as_of": "yesterday"}, "YYYY-MM-DD"),
])
def test_bad_arguments_are_refused_before_anything_is_written(tmp_path, kwargs, message):
    with pytest.raises(UsageError, match=message):
        generate_corpus(tmp_path / "c.sqlite", **kwargs)
    assert listing(tmp_path) == []


# --- the CLI -------------------------------------------------------------------------

def test_cli_generate_writes_a_corpus(tmp_path, capsys):
    out = tmp_path / "cli.sqlite"
    assert main(["generate", "--papers", "800", "--seed", "5", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"wrote {out}" in captured.out and "800 papers" in captured.out
    assert "\r" not in captured.err  # stderr is not a terminal: no bar redrawn over itself
    info = describe_corpus(out)
    assert (info["papers"], info["seed"]) == (800, 5)


def test_cli_default_path_is_under_the_data_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("D1BENCH_DATA", str(tmp_path))
    assert main(["generate", "--papers", "300", "--quiet"]) == 0
    assert listing(tmp_path) == ["corpus-300.sqlite"]
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("argv, message", [
    (["--papers", "0"], "--papers 0: must be at least 1"),
    (["--papers", "-3"], "must be at least 1"),
    (["--papers", "many"], "not a whole number"),
    (["--papers", "1.5"], "not a whole number"),
    (["--papers", "100", "--seed", "x"], "--seed 'x': not a whole number"),
    (["--papers", "100", "--out", "{tmp}/missing/c.sqlite"], "no such directory"),
    (["--papers", "100", "--out", "{tmp}/afile/c.sqlite"], "not a directory"),
    (["--papers", "100", "--out", "{tmp}/afile"], "already exists"),
    (["--papers", "100", "--out", "{tmp}"], "is a directory"),
    (["--papers", "100", "--out", "{tmp}/c.sqlite", "--as-of", "2026-02-30"], "YYYY-MM-DD"),
])
def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, argv, message):
    (tmp_path / "afile").write_text("keep me")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "c.sqlite")]
    assert main(["generate", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("d1bench generate: error: ")
    assert message in err
    assert listing(tmp_path) == ["afile"] and (tmp_path / "afile").read_text() == "keep me"


def test_cli_unwritable_directory(tmp_path, capsys):
    """A folder the user may not write to is refused up front.  Mode bits do not stop
    root, so under root the folder is also made immutable (chattr +i), which does."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = os.geteuid() == 0
    if immutable:
        subprocess.run(["chattr", "+i", str(folder)], check=True)
    try:
        assert main(["generate", "--papers", "100", "--out", str(folder / "c.sqlite")]) == 2
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o700)
    assert "not writable" in capsys.readouterr().err
    assert listing(folder) == []


def test_cli_help_describes_the_verb():
    proc = subprocess.run([sys.executable, "-m", "d1bench", "generate", "--help"],
                          capture_output=True, text=True, check=True)
    for option in ("--papers", "--seed", "--out", "--force"):
        assert option in proc.stdout


# --- building blocks --------------------------------------------------------------------

@pytest.mark.parametrize("module", ["_pieces", "plan", "texts", "vocabulary", "papers"])
def test_doctests(module):
    result = doctest.testmod(importlib.import_module(f"d1bench.corpus.{module}"))
    assert result.attempted > 0 and result.failed == 0


def test_a_block_of_papers_can_be_made_on_its_own():
    """Random streams are per (seed, stream, block): block 2 does not depend on blocks 0-1."""
    plan = make_plan(25_000, 9, "2026-11-01")
    vocab = load_vocabulary()
    generator = CorpusGenerator(plan, vocab)
    papers = [b.rows for b in generator.batches() if b.table == "papers"]
    assert len(papers) == plan.paper_blocks == 3
    block = papers[2]
    cited_by = np.array([row[13] for row in block], dtype=np.int32)
    alone = PaperMaker(plan, Texts(vocab, plan)).block(2, cited_by, Digest())[1]
    assert alone == block


def test_a_broken_vocabulary_file_is_named_with_its_line(tmp_path):
    import shutil

    from d1bench.corpus.vocabulary import vocabulary_dir

    folder = tmp_path / "vocabulary"
    shutil.copytree(vocabulary_dir(), folder)
    assert load_vocabulary(folder).digest == load_vocabulary().digest
    lines = (folder / "conditions.tsv").read_text().splitlines()
    lines[3] = 'heart "failure"\tCardiology\t10'
    (folder / "conditions.tsv").write_text("\n".join(lines) + "\n")
    with pytest.raises(UsageError, match=r"conditions\.tsv:4: .*quote"):
        load_vocabulary(folder)
    lines[3] = "heart failure\tCardiologia\t10"
    (folder / "conditions.tsv").write_text("\n".join(lines) + "\n")
    with pytest.raises(UsageError, match=r"conditions\.tsv:4: unknown specialty 'Cardiologia'"):
        load_vocabulary(folder)


def test_prefetch_keeps_order_passes_errors_and_stops_its_thread():
    import threading

    from d1bench.corpus.build import prefetch

    assert list(prefetch(iter(range(100)), depth=3)) == list(range(100))

    def failing():
        yield 1
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        list(prefetch(failing()))

    produced = []

    def endless():
        for k in range(10**9):
            produced.append(k)
            yield k

    items = prefetch(endless(), depth=2)
    assert next(items) == 0
    items.close()
    assert not any(t.name == "corpus-generator" for t in threading.enumerate())
    assert len(produced) <= 5  # it stopped instead of running on
