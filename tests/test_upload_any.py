"""`upload` takes any SQLite database: schema from the source, parents first,
WITHOUT ROWID tables resumed in key order, and what D1 refuses named with its fix."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from d1bench.errors import UsageError
from d1bench.targets.d1.local import LocalD1
from d1bench.targets.sqlite import SQLiteTarget
from d1bench.uploader import upload


class _Interrupted(Exception):
    pass


@pytest.mark.slow
def test_saas_uploads_resumes_in_key_order_and_keeps_its_fts(saas_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "saas.sqlite"
    shutil.copyfile(saas_db, db)

    def interrupt(table: str, n: int) -> None:
        if table == "tasks" and n == 2:
            raise _Interrupted

    with LocalD1(tmp_path / "d1") as d1, d1.target(allow_writes=True) as target:
        conn = target.connect()
        with pytest.raises(_Interrupted):
            upload(db, target, batch_rows=500, progress=False, on_batch=interrupt)
        # parents came first: tenants, users and projects are whole, tasks stopped after 2 batches
        assert conn.execute("SELECT count(*) FROM projects").rows == [(600,)]
        sent = conn.execute("SELECT count(*) FROM tasks").rows[0][0]
        assert 0 < sent < 30_000
        assert conn.execute("SELECT count(*) FROM comments").rows == [(0,)]
        frame = upload(db, target, batch_rows=500, progress=False)
        assert frame["ok"].all()
        assert frame.loc["tasks", "rows_uploaded"] == frame.loc["tasks", "rows_source"] - sent
        assert frame.loc["tenants", "rows_uploaded"] == 0
        assert list(frame.index[:3]) == ["tenants", "users", "projects"]
        assert "comments_fts" in frame.index
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master").rows}
        assert {"comments_ai", "comments_au", "open_tasks"} <= names
        term = conn.execute("SELECT body FROM comments LIMIT 1").rows[0][0].split()[0]
        hits = conn.execute("SELECT count(*) FROM comments_fts WHERE comments_fts MATCH ?",
                            [f'"{term}"']).rows[0][0]
        local = sqlite3.connect(db)
        local.execute("INSERT INTO comments_fts(comments_fts) VALUES ('rebuild')")
        expected = local.execute("SELECT count(*) FROM comments_fts WHERE comments_fts MATCH ?",
                                 [f'"{term}"']).fetchone()[0]
        local.close()
        assert hits == expected > 0
        # a third run has nothing to do
        again = upload(db, target, progress=False)
        assert int(again["rows_uploaded"].drop(["comments_fts", "(schema)", "(checks)"]).sum()) == 0


def test_what_d1_refuses_is_named_with_its_fix_before_anything_is_sent(tmp_path: Path) -> None:
    db = tmp_path / "odd.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE VIRTUAL TABLE places USING rtree(id, minx, maxx)")
    conn.execute("CREATE TABLE wide (" + ", ".join(f"c{i} INTEGER" for i in range(101)) + ")")
    conn.execute("CREATE VIRTUAL TABLE bare USING fts5(body, content='')")
    conn.close()
    target_db = tmp_path / "target.sqlite"
    # An empty database with its header written (a 0-byte file is refused as a database to open).
    init = sqlite3.connect(target_db)
    init.executescript("CREATE TABLE t (x); DROP TABLE t;")
    init.close()
    with SQLiteTarget(target_db) as target, pytest.raises(UsageError) as info:
        upload(db, target, progress=False)
    lines = str(info.value).splitlines()
    assert lines[0] == f"{db}: D1 would refuse 3 thing(s):"
    assert any("places" in ln and "USING rtree" in ln and "only FTS5" in ln for ln in lines)
    assert any("wide" in ln and "101 columns" in ln and "split it" in ln for ln in lines)
    assert any("bare" in ln and "contentless" in ln for ln in lines)
    probe = sqlite3.connect(target_db)
    assert probe.execute("SELECT count(*) FROM sqlite_schema").fetchone() == (0,)
    probe.close()
