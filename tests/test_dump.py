"""SQL dumps: D1's export format written and read back, `sqlite3 .dump` output
read, failures named by line, and the REST export protocol against a local
stand-in of Cloudflare's API."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from d1bench.cli import main
from d1bench.dump import import_dump, write_dump
from d1bench.errors import UsageError

SCHEMA = """
CREATE TABLE "user accounts" (id INTEGER PRIMARY KEY, handle TEXT NOT NULL UNIQUE, bio TEXT,
                              avatar BLOB, score REAL);
CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES "user accounts"(id),
                    body TEXT NOT NULL);
CREATE TABLE kv (k TEXT, v TEXT, PRIMARY KEY (k, v)) WITHOUT ROWID;
CREATE INDEX posts_user ON posts(user_id);
CREATE VIEW busy AS SELECT user_id, count(*) AS n FROM posts GROUP BY user_id;
CREATE TRIGGER posts_kv AFTER INSERT ON posts BEGIN
  INSERT OR IGNORE INTO kv VALUES ('last_post', new.id);
END;
"""

ROWS = [
    (1, "ann", "line one\nline two", b"\x00\xff\x10", 1.5),
    (2, "o'brien", "carriage\r\nreturn; and -- dashes", None, -2.0),
    (3, "zed", None, b"", 1e-7),
]


def _source(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    conn.executemany('INSERT INTO "user accounts" VALUES (?, ?, ?, ?, ?)', ROWS)
    conn.executemany("INSERT INTO posts VALUES (?, ?, ?)",
                     [(i, 1 + i % 3, f"post {i}, with 'quotes'") for i in range(1, 41)])
    conn.commit()
    conn.close()
    return path


def _rows(path: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_d1_format_round_trip(tmp_path: Path) -> None:
    src = _source(tmp_path / "src.sqlite")
    dump = write_dump(src, tmp_path / "dump.sql")
    text = dump.read_text()
    lines = text.split("\n")
    # the format wrangler d1 export writes
    assert lines[0] == "PRAGMA defer_foreign_keys=TRUE;"
    assert lines[1].startswith('CREATE TABLE IF NOT EXISTS "user accounts"')
    assert ('INSERT INTO "user accounts" ("id","handle","bio","avatar","score") VALUES('
            "1,'ann',replace('line one\\nline two','\\n',char(10)),X'00ff10',1.5);") in lines
    assert "BEGIN TRANSACTION" not in text and not text.endswith("\n")
    info = import_dump(dump, tmp_path / "out.sqlite", progress=False)
    assert info.row_counts == {"user accounts": 3, "posts": 40, "kv": 40}
    assert info.foreign_key_violations == 0
    out = info.path
    assert _rows(out, 'SELECT * FROM "user accounts" ORDER BY id') == \
        _rows(src, 'SELECT * FROM "user accounts" ORDER BY id')
    assert _rows(out, "SELECT type, name FROM sqlite_schema ORDER BY name") == \
        _rows(src, "SELECT type, name FROM sqlite_schema ORDER BY name")
    assert _rows(out, "SELECT count(*) FROM busy") == [(3,)]


def test_sqlite3_dump_with_fts5_and_triggers(tmp_path: Path) -> None:
    if shutil.which("sqlite3") is None:
        pytest.fail("the sqlite3 shell is missing: run `make system-deps`")
    src = _source(tmp_path / "src.sqlite")
    conn = sqlite3.connect(src)
    conn.executescript("CREATE VIRTUAL TABLE posts_fts USING fts5(body, content='posts', "
                       "content_rowid='id'); INSERT INTO posts_fts(posts_fts) VALUES('rebuild');")
    conn.close()
    dump = tmp_path / "shell.sql"
    dump.write_text(subprocess.run(["sqlite3", str(src), ".dump"], capture_output=True,
                                   text=True, check=True).stdout)
    assert "BEGIN TRANSACTION;" in dump.read_text() and "writable_schema" in dump.read_text()
    info = import_dump(dump, tmp_path / "out.sqlite", progress=False)
    assert info.row_counts["posts"] == 40
    assert _rows(info.path, "SELECT count(*) FROM posts_fts WHERE posts_fts MATCH 'quotes'") == [(40,)]
    assert _rows(info.path, 'SELECT bio FROM "user accounts" WHERE id = 2') == \
        [("carriage\r\nreturn; and -- dashes",)]


def test_external_content_fts5_is_rebuilt(tmp_path: Path) -> None:
    dump = tmp_path / "hand.sql"
    dump.write_text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);\n"
                    "CREATE VIRTUAL TABLE notes_fts USING fts5(body, content='notes', "
                    "content_rowid='id');\n"
                    "INSERT INTO notes VALUES(1,'alpha beta');\n"
                    "INSERT INTO notes VALUES(2,'beta gamma'),(3,'gamma');\n")
    info = import_dump(dump, tmp_path / "out.sqlite", progress=False)
    assert info.rebuilt == ("notes_fts",)
    assert info.row_counts == {"notes": 3}
    assert _rows(info.path, "SELECT rowid FROM notes_fts WHERE notes_fts MATCH 'gamma' "
                            "ORDER BY rowid") == [(2,), (3,)]


@pytest.mark.parametrize("bad, line, message", [
    ("INSERT INTO \"posts\" (\"id\",\"user_id\",\"body\") VALUES(5,1,'dup');", None,
     "UNIQUE constraint failed: posts.id"),
    ("INSERT INTO nowhere VALUES(1);", None, "no such table: nowhere"),
    ("CREATE TABLE posts (x);", None, "table posts already exists"),
])
def test_a_failing_line_is_named_and_nothing_is_written(tmp_path: Path, capsys, bad: str,
                                                        line: int | None, message: str) -> None:
    src = _source(tmp_path / "src.sqlite")
    lines = write_dump(src, tmp_path / "dump.sql").read_text().split("\n")
    at = next(i for i, text in enumerate(lines) if text.startswith('INSERT INTO "posts"')) + 10
    lines.insert(at, bad)
    dump = tmp_path / "bad.sql"
    dump.write_text("\n".join(lines))
    out = tmp_path / "out.sqlite"
    with pytest.raises(UsageError, match=rf"^{dump}:{at + 1}: {message}"):
        import_dump(dump, out, progress=False)
    assert not out.exists() and list(tmp_path.glob(".out*")) == []
    assert main(["import", str(dump), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{dump}:{at + 1}: {message}" in err
    assert not out.exists()


def test_import_refuses_to_overwrite_without_force(tmp_path: Path, capsys) -> None:
    dump = write_dump(_source(tmp_path / "src.sqlite"), tmp_path / "dump.sql")
    out = tmp_path / "out.sqlite"
    out.write_text("mine")
    assert main(["import", str(dump), "--out", str(out), "--quiet"]) == 2
    assert "already exists (use --force" in capsys.readouterr().err
    assert out.read_text() == "mine"
    assert main(["import", str(dump), "--out", str(out), "--quiet", "--force"]) == 0
    shown = capsys.readouterr().out
    assert "83 rows from 90 statements" in shown
    assert [line.split() for line in shown.splitlines()[1:]] == [
        ["user", "accounts", "3"], ["posts", "40"], ["kv", "40"]]


def test_write_dump_refuses_virtual_tables_as_d1_does(tmp_path: Path) -> None:
    db = tmp_path / "fts.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(x)")
    conn.close()
    with pytest.raises(UsageError, match="virtual table"):
        write_dump(db, tmp_path / "dump.sql")


# --- the REST export, against a stand-in of Cloudflare's API ------------------

TOKEN = "tok-export-secret-1234"


class _Api:
    """Speaks POST /accounts/A/d1/database/D/export (polling) and serves the signed URL."""

    def __init__(self, dump: bytes, polls_before_ready: int = 2, fail: str | None = None) -> None:
        self.dump, self.left, self.fail = dump, polls_before_ready, fail
        self.requests: list[tuple[str, str, dict, str | None]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                api.requests.append(("GET", self.path, {}, self.headers.get("authorization")))
                if self.path == "/signed/dump.sql?sig=abc":
                    self._send(200, api.dump, "application/sql")
                else:
                    self._send(404, b"no")

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                api.requests.append(("POST", self.path, body, self.headers.get("authorization")))
                if self.headers.get("authorization") != f"Bearer {TOKEN}":
                    self._send(401, json.dumps({"success": False, "errors": [
                        {"code": 10000, "message": "Authentication error"}]}).encode())
                    return
                if api.fail:
                    self._send(200, json.dumps({"success": True, "result": {
                        "status": "error", "error": api.fail, "at_bookmark": "b1"}}).encode())
                    return
                api.left -= 1
                done = api.left < 0
                result = {"at_bookmark": "bm-0001", "status": "complete" if done else "active",
                          "type": "export", "messages": ["Generating dump"]}
                if done:
                    result["result"] = {"filename": "dump.sql",
                                        "signed_url": f"{api.base}/signed/dump.sql?sig=abc"}
                self._send(200, json.dumps({"success": True, "errors": [], "messages": [],
                                            "result": result}).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def api(tmp_path: Path):
    dump = write_dump(_source(tmp_path / "src.sqlite"), tmp_path / "d1.sql").read_bytes()
    server = _Api(dump)
    yield server
    server.close()


def test_export_starts_polls_and_downloads_without_the_token(api: _Api, tmp_path: Path,
                                                             monkeypatch, capsys) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    out = tmp_path / "exported.sql"
    code = main(["export", "--target", "d1://acct/db-1", "--out", str(out), "--base-url",
                 f"{api.base}/client/v4", "--table", "posts"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert out.read_bytes() == api.dump
    posts = [r for r in api.requests if r[0] == "POST"]
    assert [r[1] for r in posts] == ["/client/v4/accounts/acct/d1/database/db-1/export"] * 3
    assert posts[0][2] == {"output_format": "polling", "dump_options": {"tables": ["posts"]}}
    assert posts[1][2]["current_bookmark"] == "bm-0001"
    gets = [r for r in api.requests if r[0] == "GET"]
    assert len(gets) == 1 and gets[0][3] is None  # the signed URL never sees the token
    assert TOKEN not in captured.out + captured.err
    assert "after 3 export call(s)" in captured.out
    # the export imports
    info = import_dump(out, tmp_path / "back.sqlite", progress=False)
    assert info.row_counts["posts"] == 40


def test_export_errors_are_one_line_and_leave_nothing(tmp_path: Path, monkeypatch, capsys) -> None:
    server = _Api(b"", fail=f"database busy (token {TOKEN})")
    try:
        monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
        out = tmp_path / "x.sql"
        assert main(["export", "--target", "d1://acct/db", "--out", str(out), "--base-url",
                     server.base]) == 2
        err = capsys.readouterr().err
        assert "export failed: database busy" in err and TOKEN not in err and err.count("\n") == 1
        assert not out.exists()
        monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "wrong-token-5678")
        assert main(["export", "--target", "d1://acct/db", "--out", str(out), "--base-url",
                     server.base]) == 2
        err = capsys.readouterr().err
        assert "export refused (HTTP 401)" in err and "wrong-token-5678" not in err
        assert not out.exists()
    finally:
        server.close()


@pytest.mark.slow
def test_local_d1_exports_what_write_dump_writes(events_db: Path, tmp_path: Path, capsys) -> None:
    """Miniflare's own dump code (D1's) against ours, byte for byte, through the REST export."""
    from d1bench.targets.d1.local import LocalD1
    from d1bench.uploader import upload

    with LocalD1(tmp_path / "d1") as d1:
        with d1.target(allow_writes=True) as target:
            upload(events_db, target, progress=False)
        out = tmp_path / "exported.sql"
        assert main(["export", "--target", f"d1-local:{tmp_path / 'd1'}", "--out", str(out),
                     "--quiet"]) == 0
        assert d1.token not in capsys.readouterr().out
    ours = write_dump(events_db, tmp_path / "ours.sql").read_text()
    assert out.read_text() == ours
    info = import_dump(out, tmp_path / "back.sqlite", progress=False)
    assert info.row_counts["events"] == _rows(events_db, "SELECT count(*) FROM events")[0][0]
