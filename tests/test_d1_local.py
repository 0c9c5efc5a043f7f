"""The local D1: Miniflare started and stopped by d1bench, speaking D1's REST API on loopback."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import apsw
import httpx
import pytest

from d1bench.errors import TargetError, UsageError
from d1bench.schema import ddl, index_set_names, index_set_sql, split_statements
from d1bench.targets.d1.detached import local_status
from d1bench.targets.d1.local import (
    LocalD1,
    LocalD1Error,
    LocalD1Target,
    process_group,
    sqlite_file,
)

#: The fields Miniflare's D1 puts in every statement's meta (Cloudflare adds region fields).
MINIFLARE_META = {"served_by", "duration", "changes", "last_row_id", "changed_db",
                  "size_after", "rows_read", "rows_written"}


def _post(d1: LocalD1, body: dict, *, endpoint: str = "raw", token: str | None = None,
          database_id: str | None = None) -> httpx.Response:
    path = (f"{d1.base_url}/accounts/{d1.account_id}/d1/database/"
            f"{database_id or d1.database_id}/{endpoint}")
    headers = {"Authorization": f"Bearer {d1.token if token is None else token}"}
    return httpx.post(path, json=body, headers=headers, timeout=30)


def _workerd_in(pgid: int) -> list[int]:
    return [pid for pid, name in process_group(pgid).items() if name == "workerd"]


@pytest.fixture(scope="module")
def rows_table(local_d1: LocalD1) -> str:
    """1,000 rows with one secondary index: grp takes 10 values, 100 rows each."""
    name = "t_rows_probe"
    with local_d1.target(allow_writes=True) as target:
        conn = target.connect()
        conn.execute(f"CREATE TABLE IF NOT EXISTS {name} "
                     "(id INTEGER PRIMARY KEY, grp INTEGER NOT NULL, v TEXT NOT NULL)")
        conn.execute(f"CREATE INDEX IF NOT EXISTS {name}_grp ON {name} (grp)")
        conn.execute(f"DELETE FROM {name}")
        conn.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                     f"WHERE i < 1000) INSERT INTO {name} (id, grp, v) "
                     "SELECT i, i % 10, 'value ' || i FROM n")
    return name


# --- process management --------------------------------------------------------------


def test_start_stop_leaves_no_process(tmp_path: Path) -> None:
    with LocalD1(tmp_path / "persist") as d1:
        pgid = d1.pid
        members = process_group(pgid)
        assert len(_workerd_in(pgid)) == 1, members
        assert d1.health()["database_id"] == d1.database_id
        assert d1.base_url == f"http://127.0.0.1:{d1.port}/client/v4"
        # Nothing reached for the network (Miniflare would fetch a Request.cf sample).
        output = "".join(path.read_text() for path in d1.log_paths)
        assert "Request.cf" not in output and "ENOTFOUND" not in output
    assert process_group(pgid) == {}
    assert not d1.running
    # The database outlives the server, as a plain SQLite file.
    assert d1.sqlite_path == sqlite_file(tmp_path / "persist", d1.database_id)
    assert d1.sqlite_path.is_file()


def test_node_killed_does_not_orphan_workerd() -> None:
    d1 = LocalD1().start()
    pgid = d1.pid
    os.kill(pgid, signal.SIGKILL)  # Miniflare gets no chance to stop workerd
    deadline = time.monotonic() + 5
    while d1._proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _workerd_in(pgid), "workerd should still run after its node was SIGKILLed"
    d1.stop()
    assert process_group(pgid) == {}


def test_parent_killed_stops_the_server(tmp_path: Path) -> None:
    child = textwrap.dedent("""
        import os, signal
        from d1bench.targets.d1.local import LocalD1
        d1 = LocalD1().start()
        print(d1.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no atexit, no __exit__
    """)
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                          timeout=120, check=False)  # it dies by SIGKILL on purpose
    pgid = int(done.stdout.split()[0])
    deadline = time.monotonic() + 10
    while process_group(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert process_group(pgid) == {}


def test_start_failure_shows_node_stderr(local_d1: LocalD1) -> None:
    taken = LocalD1(port=local_d1.port, ready_timeout=30)
    with pytest.raises(LocalD1Error) as caught:
        taken.start()
    message = str(caught.value)
    assert "stderr ends with" in message and "Address already in use" in message
    assert taken.token not in message
    assert not taken.running


def test_missing_miniflare_says_how_to_install(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("D1BENCH_NODE_MODULES", str(tmp_path))
    with pytest.raises(UsageError, match="make node_modules"):
        LocalD1().start()


# --- the REST shape ------------------------------------------------------------------


def test_raw_and_query_envelopes(local_d1: LocalD1) -> None:
    sql = "SELECT 1 AS a, 'x' AS a, NULL AS b"
    raw = _post(local_d1, {"sql": sql}).json()
    assert raw["success"] is True and raw["errors"] == [] and raw["messages"] == []
    (statement,) = raw["result"]
    assert statement["success"] is True
    # /raw keeps repeated column names and their order
    assert statement["results"] == {"columns": ["a", "a", "b"], "rows": [[1, "x", None]]}
    assert MINIFLARE_META <= set(statement["meta"])
    query = _post(local_d1, {"sql": "SELECT 2 AS n, 'y' AS s"}, endpoint="query").json()
    assert query["result"][0]["results"] == [{"n": 2, "s": "y"}]


def test_batch_gives_one_result_per_statement(local_d1: LocalD1) -> None:
    body = {"batch": [{"sql": "SELECT ?1 + 1", "params": [41]},
                      {"sql": "SELECT upper(?)", "params": ["d1"]},
                      {"sql": "SELECT ?", "params": [True]}]}
    result = _post(local_d1, body).json()["result"]
    assert [r["results"]["rows"] for r in result] == [[[42]], [["D1"]], [[1]]]


def test_wrong_or_missing_token_is_refused(local_d1: LocalD1) -> None:
    wrong = _post(local_d1, {"sql": "SELECT 1"}, token="not-the-token")
    assert wrong.status_code == 401
    assert wrong.json()["errors"] == [{"code": 10000, "message": "Authentication error"}]
    missing = httpx.post(f"{local_d1.base_url}/accounts/{local_d1.account_id}/d1/database/"
                         f"{local_d1.database_id}/raw", json={"sql": "SELECT 1"})
    assert missing.status_code == 401
    # The D1 client classifies it.
    from d1bench.targets.d1 import D1Target

    target = D1Target(local_d1.base_url, local_d1.account_id, local_d1.database_id, "wrong")
    with target, pytest.raises(TargetError) as caught:
        target.connect().execute("SELECT 1")
    assert caught.value.error_class == "auth"


def test_unknown_database_is_404_7404(local_d1: LocalD1) -> None:
    response = _post(local_d1, {"sql": "SELECT 1"}, database_id="no-such-db")
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == 7404


def test_sql_error_is_400_7500_with_sqlite_message(local_d1: LocalD1) -> None:
    response = _post(local_d1, {"sql": "SELEC 1"})
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False
    assert body["errors"] == [{"code": 7500,
                               "message": 'near "SELEC": syntax error at offset 0: SQLITE_ERROR'}]
    too_many = _post(local_d1, {"sql": "SELECT " + ",".join("?" * 101), "params": [1] * 101})
    assert too_many.status_code == 400
    assert "too many SQL variables" in too_many.json()["errors"][0]["message"]
    refused = _post(local_d1, {"sql": "PRAGMA journal_mode"})
    assert refused.json()["errors"][0]["message"] == "not authorized: SQLITE_AUTH"


def test_malformed_body_is_400(local_d1: LocalD1) -> None:
    response = _post(local_d1, {"sql": "SELECT ?", "params": [{"nested": 1}]})
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == 7400


def test_failed_batch_changes_nothing(local_d1: LocalD1) -> None:
    _post(local_d1, {"sql": "CREATE TABLE IF NOT EXISTS t_atomic (v TEXT)"})
    before = _post(local_d1, {"sql": "SELECT count(*) FROM t_atomic"}).json()
    body = {"batch": [{"sql": "INSERT INTO t_atomic VALUES ('a')"}, {"sql": "SELEC"}]}
    assert _post(local_d1, body).status_code == 400
    after = _post(local_d1, {"sql": "SELECT count(*) FROM t_atomic"}).json()
    assert after["result"][0]["results"] == before["result"][0]["results"]


# --- rows read and written, as workerd counts them ------------------------------------


def test_rows_read_and_written_match_d1(local_d1: LocalD1, rows_table: str) -> None:
    with local_d1.target(allow_writes=True) as target:
        conn = target.connect()
        by_pk = conn.execute(f"SELECT v FROM {rows_table} WHERE id = ?", [500])
        assert by_pk.rows == [("value 500",)] and by_pk.meta.rows_read == 1
        scan = conn.execute(f"SELECT sum(length(v)) FROM {rows_table}")
        assert scan.meta.rows_read == 1000
        indexed_count = conn.execute(f"SELECT count(*) FROM {rows_table} WHERE grp = ?", [3])
        assert indexed_count.rows == [(100,)] and indexed_count.meta.rows_read == 101
        insert = conn.execute(f"INSERT INTO {rows_table} (id, grp, v) VALUES (?, ?, ?)",
                              [5000, 1, "new"])
        assert insert.meta.rows_written == 2  # the row and its one index entry
        assert insert.meta.changes == 1 and insert.meta.last_row_id == 5000
        assert {"served_by", "changed_db", "size_after"} <= set(insert.meta.extra)
        conn.execute(f"DELETE FROM {rows_table} WHERE id = 5000")


def test_explain_query_plan_through_rest(local_d1: LocalD1, rows_table: str) -> None:
    with local_d1.target() as target:
        plan = target.connect().explain(f"SELECT * FROM {rows_table} WHERE grp = ?", [3])
    assert [step.detail for step in plan] == [
        f"SEARCH {rows_table} USING INDEX {rows_table}_grp (grp=?)"]


def test_schema_ddl_runs_unchanged_on_d1(local_d1: LocalD1) -> None:
    # Every part of the schema and every index set, in one atomic batch that a
    # final bad statement rolls back: D1 leaves the shared database untouched,
    # and an error on the sentinel proves every statement before it ran.
    statements = split_statements(ddl())
    for name in index_set_names():
        statements += split_statements(index_set_sql(name))
    assert len(statements) > 10
    sentinel = "SELECT * FROM d1bench_rollback_sentinel"
    body = {"batch": [{"sql": s} for s in statements] + [{"sql": sentinel}]}
    response = _post(local_d1, body)
    assert response.json()["errors"][0]["message"] == (
        "no such table: d1bench_rollback_sentinel: SQLITE_ERROR")


def test_sqlite_path_is_the_database(local_d1: LocalD1, rows_table: str) -> None:
    db = apsw.Connection(str(local_d1.sqlite_path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        assert db.execute(f"SELECT count(*) FROM {rows_table}").fetchall() == [(1000,)]
    finally:
        db.close()


# --- the CLI and the d1-local target ---------------------------------------------------


def test_cli_start_status_stop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    from d1bench.cli import main

    monkeypatch.setenv("D1BENCH_STATE_DIR", str(tmp_path / "state"))
    persist = tmp_path / "db"
    assert main(["d1-local", "start", "--persist", str(persist), "--json"]) == 0
    state = json.loads(capsys.readouterr().out)
    try:
        token_file = Path(state["token_file"])
        token = token_file.read_text().strip()
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert "token" not in state and token not in json.dumps(state)
        assert main(["d1-local", "start", "--persist", str(persist)]) == 2  # already running
        assert "already runs" in capsys.readouterr().err

        assert main(["d1-local", "status"]) == 0
        out = capsys.readouterr().out
        assert "healthy" in out and str(state["pid"]) in out and token not in out
        status = local_status()
        assert status["running"] and status["healthy"] and "workerd" in status["processes"].values()

        # The d1-local target on the same directory attaches instead of starting another.
        with LocalD1Target.from_spec(f"d1-local:{persist}", allow_writes=True) as target:
            assert target.local.owned is False and target.local.port == state["port"]
            assert target.connect().execute("SELECT 41 + 1").rows == [(42,)]
            assert target.kind == "d1-local" and target.exact_rows_read
        assert process_group(state["pid"]), "closing an attached target must not stop the server"
    finally:
        assert main(["d1-local", "stop"]) == 0
    assert "stopped" in capsys.readouterr().out
    assert process_group(state["pid"]) == {}
    assert main(["d1-local", "status"]) == 1
    assert "not running" in capsys.readouterr().out


def test_target_spec_starts_and_stops_its_own_server(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("D1BENCH_STATE_DIR", str(tmp_path / "state"))
    target = LocalD1Target.from_spec(f"d1-local:{tmp_path / 'db'}")
    pgid = target.local.pid
    assert target.local.owned and target.url == f"d1-local:{tmp_path / 'db'}"
    assert target.describe()["target_kind"] == "d1-local"
    target.close()
    assert process_group(pgid) == {}
    with pytest.raises(UsageError):
        LocalD1Target.from_spec("d1-local:")
