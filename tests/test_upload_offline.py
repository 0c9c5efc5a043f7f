"""The offline upload into a local D1's own file: the same database as by statements,
resumable after a real kill, the same refusals, and never for remote D1."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import apsw
import pandas as pd
import pytest

from d1bench import replay
from d1bench.errors import UsageError
from d1bench.targets.d1 import D1Target
from d1bench.targets.d1.local import LocalD1, sqlite_file
from d1bench.uploader import upload

_SHADOW_INDEX = ("_data", "_idx")  # FTS5 segments: their layout depends on how rows arrived


def _schema_and_rows(path: Path) -> tuple[list[tuple], dict[str, list[tuple]]]:
    """sqlite_master in creation order, and every table's rows with their types."""
    db = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        master = [tuple(r) for r in db.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY rowid")]
        rows = {}
        for kind, name, _tbl, sql in master:
            if (kind != "table" or name == "_cf_METADATA" or name.endswith(_SHADOW_INDEX)
                    or (sql or "").upper().startswith("CREATE VIRTUAL")):
                continue
            cols = [r[1] for r in db.execute(f'PRAGMA table_info("{name}")')]
            select = ", ".join(f'"{c}", typeof("{c}")' for c in cols)
            rows[name] = [tuple(r) for r in db.execute(f'SELECT {select} FROM "{name}" '
                                                        f'ORDER BY {", ".join(map(str, range(1, 2 * len(cols) + 1)))}')]
        return master, rows
    finally:
        db.close()


_FTS_TEMPLATES = {"search_papers", "search_papers_by_design", "search_papers_plain",
                  "search_comments_fts"}  # the workloads' templates that MATCH


def _segments(path: Path) -> list[tuple]:
    """Every FTS5 table's segment pages (``_data``), byte for byte."""
    db = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master "
                                          "WHERE name LIKE '%\\_fts\\_data' ESCAPE '\\'")]
        return [(n, *r) for n in names for r in db.execute(f'SELECT * FROM "{n}" ORDER BY id')]
    finally:
        db.close()


def _replayed_counts(target: object, workload: object, bind_db: Path) -> list[tuple]:
    """D1's own rows_read / rows_written for every statement of a fixed replay."""
    from d1bench.targets.sqlite import SQLiteTarget

    with SQLiteTarget(bind_db, readonly=True) as binder, binder.connect() as bind_conn:
        trace = replay(workload, target, concurrency=1, requests=150, seed=3, progress=False,
                       bind_conn=bind_conn, allow_writes=True, estimate=False)
    req = trace.requests.sort_values(["unit_index", "step"])
    assert req["error_class"].isna().all(), req[req["error_class"].notna()].head()
    return list(zip(req["unit_index"], req["template"], req["rows_returned"], req["rows_read"],
                    req["rows_written"], strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("schema", ["medical", "saas"])
def test_offline_upload_is_the_same_database_for_replay(schema: str, small_corpus: Path,
                                                        saas_db: Path, tmp_path: Path) -> None:
    from schemas import workload_path

    db = small_corpus if schema == "medical" else saas_db
    workload = "medical" if schema == "medical" else workload_path("saas")
    results, layouts = {}, {}
    for way in ("statements", "offline"):
        with LocalD1(tmp_path / way) as d1, d1.target(allow_writes=True) as target:
            frame = upload(db, target, progress=False, offline=way == "offline")
            assert frame.attrs["path"] == way and frame["ok"].all()
            # offline, the source's own index (its segment layout) is what D1 then reads
            assert set(frame.attrs["fts"].values()) == {"copy" if way == "offline" else "fill"}
            conn = target.connect()
            for fts in [n for n in frame.index if n.endswith("_fts")]:
                conn.execute(f"INSERT INTO {fts} ({fts}, rank) VALUES ('integrity-check', 1)")
            schema_rows = _schema_and_rows(d1.sqlite_path)
            counts = _replayed_counts(target, workload, db)
            results[way] = (frame, schema_rows, counts)
            layouts[way] = _segments(d1.sqlite_path)
    statements, offline = results["statements"], results["offline"]
    assert offline[1][0] == statements[1][0]  # sqlite_master, same order and text
    assert offline[1][1].keys() == statements[1][1].keys()
    for table, rows in statements[1][1].items():
        assert offline[1][1][table] == rows, table
    assert offline[2] == statements[2]  # every statement read and wrote the same rows
    assert sum(c[3] for c in offline[2]) > 0
    # ... FTS5 queries among them, and on saas over another segment layout (the copy keeps
    # the segments the source's trigger wrote): D1 counts the rows FTS5 returns, not its pages
    assert {c[1] for c in offline[2] if c[3]} & _FTS_TEMPLATES
    if schema == "saas":
        assert layouts["offline"] != layouts["statements"]
    # D1 billed the rows sent as statements, and nothing for the rows written offline
    biggest = statements[0]["rows_source"].idxmax()
    assert statements[0].loc[biggest, "rows_written"] >= statements[0].loc[biggest, "rows_source"]
    assert pd.isna(offline[0].loc[biggest, "rows_written"])


_KILLER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    import d1bench.uploader.offline as offline
    from d1bench import LocalD1, upload
    offline.CHUNK_ROWS = 300

    def kill(table, n):
        if table == "papers" and n == 3:
            os.kill(os.getpid(), signal.SIGKILL)  # no finally, no atexit: a real crash

    with LocalD1(Path(sys.argv[2])) as d1:
        upload(Path(sys.argv[1]), d1.target(), progress=False, offline=True, on_batch=kill)
""")


@pytest.mark.slow
def test_offline_upload_resumes_after_a_kill(small_corpus: Path, tmp_path: Path) -> None:
    persist = tmp_path / "d1"
    proc = subprocess.run([sys.executable, "-c", _KILLER, str(small_corpus), str(persist)],
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with LocalD1(persist) as d1, d1.target(allow_writes=True) as target:
        conn = target.connect()
        # three chunks of 300 papers committed, the fourth lost with the process
        assert conn.execute("SELECT count(*), max(id) FROM papers").rows == [(900, 900)]
        assert conn.execute("SELECT count(*) FROM citations").rows == [(0,)]
        frame = upload(small_corpus, target, progress=False, offline=True)
        assert frame["ok"].all()
        assert frame.loc["papers", "rows_uploaded"] == 2000 - 900
        assert frame.loc["clinical_trials", "rows_uploaded"] == 0
        conn.execute("INSERT INTO papers_fts (papers_fts, rank) VALUES ('integrity-check', 1)")
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master").rows}
        assert {"papers_fts_after_insert", "recent_trends"} <= names
    _, rows = _schema_and_rows(sqlite_file(persist))
    source = apsw.Connection(str(small_corpus), flags=apsw.SQLITE_OPEN_READONLY)
    expected = [tuple(r) for r in source.execute("SELECT id, typeof(id) FROM papers ORDER BY id")]
    source.close()
    assert [(r[0], r[1]) for r in rows["papers"]] == expected


def _tiny(path: Path, *statements: str) -> Path:
    db = apsw.Connection(str(path))
    db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT);"
               "CREATE TABLE child (id INTEGER PRIMARY KEY, "
               "parent_id INTEGER REFERENCES parent(id), body TEXT);"
               "INSERT INTO parent VALUES (1, 'a'), (2, 'b');")
    for sql in statements:
        db.execute(sql)
    db.close()
    return path


def test_offline_refuses_what_d1_refuses(local_d1: LocalD1, tmp_path: Path) -> None:
    orphan = _tiny(tmp_path / "orphan.sqlite", "INSERT INTO child VALUES (1, 1, 'x'), (2, 7, 'y')")
    wide = _tiny(tmp_path / "wide.sqlite", "INSERT INTO child VALUES (5, 1, printf('%.*c', 2000001, 'z'))")
    with LocalD1(tmp_path / "d1") as d1, d1.target(allow_writes=True) as target:
        with pytest.raises(UsageError, match=r"table child rowid 2 refers to a parent row that does "
                                             r"not exist; D1 enforces foreign keys"):
            upload(orphan, target, progress=False, offline=True)
        assert target.connect().execute("SELECT count(*) FROM child").rows == [(0,)]
        with pytest.raises(UsageError, match=r"child rowid 5: a value of 2,000,001 bytes, over "
                                             r"D1's 2,000,000"):
            upload(wide, target, progress=False, offline=True)
        # and the server is back after each refusal
        assert target.connect().execute("SELECT count(*) FROM parent").rows == [(2,)]


def test_offline_is_never_used_for_remote_d1(tmp_path: Path, small_corpus: Path) -> None:
    remote = D1Target("http://127.0.0.1:9/client/v4", "account", "database", "token")
    assert remote.offline_file() is None
    with pytest.raises(UsageError, match="only into a local D1 this process runs"):
        upload(small_corpus, remote, progress=False, offline=True)
    remote.close()


def test_only_a_local_d1_of_this_process_without_cache_is_paused(local_d1: LocalD1,
                                                                tmp_path: Path) -> None:
    from d1bench.targets.d1.worker_options import CacheSpec, WorkerOptions

    attached = LocalD1(local_d1.persist_dir, token=local_d1.token)
    attached.port, attached.pid, attached.owned = local_d1.port, local_d1.pid, False
    assert attached.target().offline_file() is None  # a detached server others may use
    assert local_d1.target().offline_file() is not None
    cached = WorkerOptions(CacheSpec("memory", 0.5, 10))
    with LocalD1(tmp_path / "cached", worker=cached) as d1, d1.target() as target:
        assert target.offline_file() is None  # its cache could answer from before the load


def test_auto_keeps_statements_for_small_uploads(tmp_path: Path) -> None:
    db = _tiny(tmp_path / "tiny.sqlite")
    with LocalD1(tmp_path / "d1") as d1, d1.target() as target:
        frame = upload(db, target, progress=False)
        assert frame.attrs["path"] == "statements"
        assert frame.loc["parent", "rows_written"] == 2


@pytest.mark.slow
def test_cli_upload_offline(tmp_path: Path, small_corpus: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    from d1bench.cli import main

    copy = tmp_path / "c.sqlite"
    shutil.copyfile(small_corpus, copy)
    assert main(["upload", "--db", str(copy), "--target", f"d1-local:{tmp_path / 'd1'}", "--no-progress",
                 "--offline"]) == 0
    out = capsys.readouterr().out
    assert "papers" in out and "offline" in out
    assert "FTS index papers_fts: copy" in out
    assert os.path.getsize(copy) == os.path.getsize(small_corpus)
