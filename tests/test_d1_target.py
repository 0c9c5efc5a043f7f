"""The D1 REST target: protocol, meta, limits, the read-only guard, specs, health.

Protocol tests run against ``SQLiteD1Server`` (D1's REST shape over SQLite, on
127.0.0.1); the ones marked ``d1local`` run against the real local D1
(Miniflare), whose messages and meta are workerd's own.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import threading

import pytest
from faultproxy import SQLiteD1Server
from loopback import serve_in_thread

from d1bench.errors import TargetError, UsageError
from d1bench.targets.d1 import (
    D1Target,
    check_statement,
    check_workload_limits,
    classify_response,
    guard_read_only,
    read_only_verdict,
)
from d1bench.targets.d1._http import HTTPPool

REMOTE_META = {"served_by_region": "WEUR", "served_by_primary": True, "served_by_colo": "AMS",
               "total_attempts": 1, "timings": {"sql_duration_ms": 0.25}}


@pytest.fixture
def double():
    with SQLiteD1Server(meta_extra=REMOTE_META) as server:
        setup = D1Target(server.base_url, server.account_id, server.database_id, server.token,
                         allow_writes=True)
        conn = setup.connect()
        conn.execute("CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT UNIQUE)")
        conn.execute_batch([("INSERT INTO kv VALUES (?, ?)", [i, f"v{i}"]) for i in range(1, 21)])
        setup.close()
        yield server


def _target(server, **options) -> D1Target:
    return D1Target(server.base_url, server.account_id, server.database_id, server.token,
                    **options)


# --- requests and results --------------------------------------------------------------------

@pytest.mark.parametrize("endpoint", ["raw", "query"])
def test_execute_returns_rows_and_keeps_every_meta_field(double, endpoint):
    with _target(double, endpoint=endpoint) as target:
        result = target.connect().execute("SELECT k, v FROM kv WHERE k <= ? ORDER BY k", [3])
    assert result.columns == ("k", "v")
    assert result.rows == [(1, "v1"), (2, "v2"), (3, "v3")]
    meta = result.meta
    assert (meta.rows_read, meta.rows_written, meta.duration_ms, meta.attempts) == (3, 0, 0.0, 1)
    # everything Meta has no field for is kept verbatim
    for key, value in REMOTE_META.items():
        assert meta.extra[key] == value
    assert meta.extra["served_by"] == "sqlite-double" and "changed_db" in meta.extra
    assert "duration" not in meta.extra and "attempt_errors" not in meta.extra


def test_batch_is_one_request_with_one_result_per_statement(double):
    with _target(double, allow_writes=True) as target:
        conn = target.connect()
        before = double.requests
        results = conn.execute_batch([("UPDATE kv SET v = ? WHERE k = ?", ["x", 1]),
                                      "SELECT v FROM kv WHERE k = 1"])
        assert double.requests == before + 1
        assert results[0].meta.changes == 1 and results[1].rows == [("x",)]
        # atomic: the failing second statement undoes the first
        with pytest.raises(TargetError) as err:
            conn.execute_batch([("UPDATE kv SET v = ? WHERE k = ?", ["y", 1]),
                                ("INSERT INTO kv VALUES (?, ?)", [2, "dup"])])
        assert err.value.error_class == "constraint"
        assert conn.execute("SELECT v FROM kv WHERE k = 1").rows == [("x",)]


def test_explain_returns_plan_steps(double):
    with _target(double) as target:
        steps = target.connect().explain("SELECT v FROM kv WHERE k = ?", [1])
        by_pk = asyncio.run(target.explain_async("SELECT k FROM kv WHERE v = ?", ["v1"]))
    assert [s.detail for s in steps] == ["SEARCH kv USING INTEGER PRIMARY KEY (rowid=?)"]
    assert "USING COVERING INDEX" in by_pk[0].detail and by_pk[0].parent == 0


def test_async_requests_share_one_pool_per_loop(double):
    target = _target(double, concurrency=4)

    async def run():
        results = await asyncio.gather(*(target.execute_async("SELECT ?", [i])
                                          for i in range(50)))
        pool = target._pools[asyncio.get_running_loop()]
        return [r.rows[0][0] for r in results], pool.opened

    values, opened = asyncio.run(run())
    target.close()
    assert values == list(range(50)) and 1 <= opened <= 4


def test_sync_connections_from_threads_share_one_pool(double):
    target = _target(double, concurrency=3)
    seen: list[int] = []

    def work(k: int) -> None:
        conn = target.connect()
        for i in range(20):
            seen.append(conn.execute("SELECT ?", [k * 100 + i]).rows[0][0])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pools = list(target._pools.values())
    target.close()
    assert sorted(seen) == sorted(k * 100 + i for k in range(6) for i in range(20))
    assert len(pools) == 1 and 1 <= pools[0].opened <= 3


# --- the HTTP client on shapes the D1 worker never sends ---------------------------------------

def _raw_server(responses: list[bytes]):
    """A loopback server answering each request with the next canned response bytes."""
    async def client(reader, writer):
        while responses:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            length = [int(x.split(b":")[1]) for x in head.split(b"\r\n")
                      if x.lower().startswith(b"content-length")]
            await reader.readexactly(length[0] if length else 0)
            response = responses.pop(0)
            writer.write(response)
            await writer.drain()
            if response.startswith(b"HTTP/1.0"):  # its body ends when the connection does
                break
        writer.close()

    return serve_in_thread(client)


def test_http_pool_reads_chunked_until_close_and_informational_responses():
    body = b'{"a": 1}'
    responses = [
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n" + body,
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\n{\"a\r\n5\r\n\": 2}\r\n"
         b"0\r\nX-Trailer: t\r\n\r\n"),
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.0 200 OK\r\n\r\nuntil close",
    ]
    loop, port = _raw_server(responses)

    async def run():
        pool = HTTPPool(f"http://127.0.0.1:{port}/v4")
        out = [await pool.request("POST", "/x", b"", b"{}") for _ in range(4)]
        pool.close()
        return out, pool.opened

    out, opened = asyncio.run(run())
    loop.call_soon_threadsafe(loop.stop)
    assert [r.status for r in out] == [200, 200, 204, 200]
    assert [r.body for r in out] == [body, b'{"a": 2}', b"", b"until close"]
    assert opened == 1  # one keep-alive connection served all four


# --- classification --------------------------------------------------------------------------

@pytest.mark.parametrize("status, code, message, expected", [
    (400, 7500, "Network connection lost.", ("network", True)),
    (400, 7500, "Internal error in D1 DB storage caused object to be reset.", ("network", True)),
    (500, 7500, "D1 DB reset because its code was updated.", ("network", True)),
    (400, 7500, "Cannot resolve D1 DB due to transient issue on remote node.", ("network", True)),
    (400, 7500, "Can't read from request stream because client disconnected.", ("network", True)),
    (429, 7429, "D1 DB is overloaded. Requests queued for too long.", ("overloaded", False)),
    (429, 7429, "Too many requests queued.", ("overloaded", False)),
    (400, 7500, "D1 DB exceeded timeout", ("overloaded", False)),
    (400, 7500, "Worker exceeded its CPU time limit", ("overloaded", False)),
    (400, 7500, "exceeded its memory limit", ("overloaded", False)),
    (429, 971, "Please wait and consider throttling your request speed", ("rate_limited", True)),
    (401, 10000, "Authentication error", ("auth", False)),
    (403, 7403, "The given account is not valid or is not authorized", ("auth", False)),
    (404, 7404, "The database x could not be found", ("not_found", False)),
    (400, 7500, 'near "SELEC": syntax error at offset 0: SQLITE_ERROR', ("syntax", False)),
    (400, 7500, "no such table: nope: SQLITE_ERROR", ("syntax", False)),
    (400, 7500, "UNIQUE constraint failed: kv.v: SQLITE_CONSTRAINT", ("constraint", False)),
    (400, 7500, "too many SQL variables at offset 434: SQLITE_ERROR", ("limit", False)),
    (400, 7500, "statement too long: SQLITE_TOOBIG", ("limit", False)),
    (400, 7500, "not authorized: SQLITE_AUTH", ("limit", False)),
    (400, 7500, "attempt to write a readonly database: SQLITE_READONLY", ("read_only", False)),
    (502, None, "HTTP 502: <html>Bad Gateway</html>", ("other", True)),
    (400, 7400, "The request is malformed", ("other", False)),
])
def test_classify_d1_messages(status, code, message, expected):
    assert classify_response(status, code, message) == expected


# --- limits, checked before sending ----------------------------------------------------------

@pytest.mark.parametrize("sql, params, needle", [
    ("SELECT " + ", ".join("?" for _ in range(101)), list(range(101)), "101 bound parameters"),
    ("SELECT ?101", [0] * 101, "101 bound parameters"),
    ("SELECT 1 /*" + "x" * 100_000 + "*/", [], "statement of 100,013 bytes"),
    ("SELECT length(?)", ["é" * 1_000_001], "parameter 1 is 2,000,002 bytes"),
    ("PRAGMA journal_mode = WAL", [], "PRAGMA journal_mode is not authorized"),
    ("VACUUM", [], "VACUUM is refused"),
    ("SELECT v FROM kv WHERE v LIKE ?", ["%" + "a" * 50], "pattern of 51 bytes (parameter 1)"),
    ("SELECT v FROM kv WHERE v LIKE '%' || ? || '%'", ["a" * 49], "pattern of 51 bytes"),
    ("SELECT v FROM kv WHERE v GLOB '" + "a" * 51 + "'", [], "pattern of 51 bytes (literal)"),
])
def test_limits_are_refused_before_sending(double, sql, params, needle):
    with _target(double, allow_writes=True) as target:
        conn = target.connect()
        before = double.requests
        with pytest.raises(TargetError) as err:
            conn.execute(sql, params, template="tpl")
    assert double.requests == before  # nothing was sent
    assert err.value.error_class == "limit" and err.value.attempts == 0
    assert needle in err.value.message and err.value.message.startswith("template 'tpl': ")


def test_values_at_the_limits_are_sent(double):
    with _target(double) as target:
        conn = target.connect()
        assert conn.execute("SELECT " + ", ".join("?" for _ in range(100)),
                            list(range(100))).rows[0][99] == 99
        assert conn.execute("SELECT count(*) FROM kv WHERE v LIKE ?", ["%" * 50]).rows == [(20,)]
        assert conn.execute("SELECT length(?)", ["x" * 2_000_000]).rows == [(2_000_000,)]


def test_workload_limits_name_the_template():
    from d1bench.workload import parse_workload

    workload, problems = parse_workload(
        '[workload]\nname = "w"\nformat = 1\n'
        '[templates.ok]\nweight = 1\nsql = "SELECT 1"\n'
        '[templates.big_pattern]\nweight = 1\n'
        f'sql = "SELECT 1 FROM papers WHERE title LIKE \'{"x" * 60}\'"\n', "w.toml")
    assert workload is not None, problems
    with pytest.raises(UsageError, match=r"template 'big_pattern': LIKE/GLOB pattern of 60"):
        check_workload_limits(workload)
    check_statement("SELECT 1 FROM papers WHERE title LIKE ?", ["short"])


# --- the read-only guard ---------------------------------------------------------------------

@pytest.mark.parametrize("sql, read_only, by_parse, by_sqlite", [
    ("SELECT title FROM papers WHERE id = ?", True, True, True),
    ("SELECT rowid FROM papers_fts WHERE papers_fts MATCH ?", True, True, True),
    ("PRAGMA table_list", True, True, True),
    ("PRAGMA optimize", False, False, False),
    ("INSERT INTO users (email) VALUES (?)", False, False, False),
    ("WITH x AS (SELECT 1) INSERT INTO users (email) SELECT * FROM x", False, False, False),
    ("REPLACE INTO users (id) VALUES (1)", False, False, False),
    ("SELECT 1; DELETE FROM papers", False, False, False),
    ("EXPLAIN QUERY PLAN DELETE FROM papers WHERE id = ?", True, True, True),  # not run
    ("SELECT * FROM not_in_the_schema", True, True, None),  # SQLite cannot prepare: parse decides
    ("DELETE FROM not_in_the_schema", False, False, None),
])
def test_read_only_verdict(sql, read_only, by_parse, by_sqlite):
    verdict = read_only_verdict(sql)
    assert (verdict.read_only, verdict.by_parse, verdict.by_sqlite) == (read_only, by_parse,
                                                                         by_sqlite)
    assert bool(verdict.reason) == (not read_only)


def test_guard_refuses_a_writing_workload_unless_allowed(double):
    from d1bench.workload import load_workload

    workload = load_workload("medical")
    writers = sorted(n for n, t in workload.templates.items() if t.is_write)
    assert writers
    target = _target(double)
    with pytest.raises(UsageError) as err:
        guard_read_only(workload, target=target)
    for name in writers:
        assert f"{name} (" in str(err.value)
    assert "--allow-writes" in str(err.value)
    verdicts = guard_read_only(workload, allow_writes=True, target=target)
    assert sorted(n for n, v in verdicts.items() if not v.read_only) == writers
    reads_only = {n: t for n, t in workload.templates.items() if not t.is_write}
    assert all(v.read_only for v in guard_read_only(reads_only, target=target).values())
    target.close()


def test_read_only_connection_refuses_writes_before_sending(double):
    with _target(double) as target:
        conn = target.connect()
        before = double.requests
        for sql in ("INSERT INTO kv VALUES (99, 'x')", "PRAGMA optimize",
                    "SELECT 1; DELETE FROM kv"):
            with pytest.raises(TargetError) as err:
                conn.execute(sql)
            assert err.value.error_class == "read_only" and err.value.attempts == 0
        with pytest.raises(TargetError, match="read-only"):
            conn.execute_batch(["SELECT 1", "DELETE FROM kv"])
        with pytest.raises(TargetError, match="read-only"):
            asyncio.run(target.execute_async("UPDATE kv SET v = 'y'"))
        assert double.requests == before
        assert target.connect(allow_writes=True).execute(
            "UPDATE kv SET v = 'z' WHERE k = 1").meta.changes == 1


# --- specs, wrangler files, name resolution ---------------------------------------------------

def test_from_spec_forms(double, tmp_path):
    env = {"CLOUDFLARE_API_TOKEN": double.token, "CLOUDFLARE_ACCOUNT_ID": double.account_id}
    base = double.base_url
    t1 = D1Target.from_spec(f"d1://{double.account_id}/{double.database_id}", env=env,
                            base_url=base)
    t2 = D1Target.from_spec(f"d1://{double.database_name}", env=env, base_url=base)
    uuid = "c020574a-5623-407b-be0c-cd192bab9545"
    t3 = D1Target.from_spec(f"d1://{uuid}", env=env, base_url=base)
    assert t1.database_id == t2.database_id == double.database_id and t3.database_id == uuid
    assert t2.database_name == double.database_name
    assert t2.connect().execute("SELECT count(*) FROM kv").rows == [(20,)]

    toml = tmp_path / "wrangler.toml"
    toml.write_text(f'name = "app"\naccount_id = "{double.account_id}"\n'
                    '[[d1_databases]]\nbinding = "DB"\ndatabase_name = "other"\n'
                    'database_id = "id-of-other"\n'
                    f'[[d1_databases]]\nbinding = "PAPERS"\n'
                    f'database_name = "{double.database_name}"\n')
    t4 = D1Target.from_spec("d1://", wrangler_config=toml, binding="PAPERS",
                            env={"CLOUDFLARE_API_TOKEN": double.token}, base_url=base)
    assert t4.database_id == double.database_id  # resolved by name through the API
    t5 = D1Target.from_spec("d1://DB", wrangler_config=toml, env=env, base_url=base)
    assert t5.database_id == "id-of-other"
    with pytest.raises(UsageError, match="2 d1_databases"):
        D1Target.from_spec("d1://", wrangler_config=toml, env=env)

    jsonc = tmp_path / "wrangler.jsonc"
    jsonc.write_text('{\n  // the app\n  "name": "app", /* ids */\n'
                     f'  "d1_databases": [{{"binding": "DB", "database_id": "{double.database_id}",'
                     ' "database_name": "x//y",},],\n}\n')
    t6 = D1Target.from_spec("d1://", wrangler_config=jsonc, env=env, base_url=base)
    assert t6.database_id == double.database_id and t6.account_id == double.account_id
    for t in (t1, t2, t3, t4, t5, t6):
        t.close()


def test_from_spec_says_what_is_missing(double):
    with pytest.raises(UsageError, match="set CLOUDFLARE_API_TOKEN with D1 Read permission"):
        D1Target.from_spec("d1://acc/db", env={})
    with pytest.raises(UsageError, match="CLOUDFLARE_ACCOUNT_ID"):
        D1Target.from_spec("d1://medical", env={"CLOUDFLARE_API_TOKEN": "t0ken"})
    env = {"CLOUDFLARE_API_TOKEN": double.token, "CLOUDFLARE_ACCOUNT_ID": double.account_id}
    with pytest.raises(UsageError, match="no D1 database named 'nope'"):
        D1Target.from_spec("d1://nope", env=env, base_url=double.base_url)
    with pytest.raises(UsageError, match="never from the URL"):
        D1Target.from_spec("d1://user:secret@acc/db", env=env)
    with pytest.raises(UsageError, match="must not carry credentials"):
        D1Target("https://u:p@example.com/client/v4", "a", "d", "t")


# --- health -----------------------------------------------------------------------------------

def test_health_reports_tables_and_says_what_to_fix(double):
    with _target(double) as target:
        report = target.health(tables=["kv"])
        assert report["ok"] and report["tables"] == ["kv"] and report["served_by_region"] == "WEUR"
        with pytest.raises(UsageError, match="tables missing: papers"):
            target.health(tables=["kv", "papers"])
    bad = D1Target(double.base_url, double.account_id, double.database_id, "wrong-token-123")
    with pytest.raises(UsageError) as err:
        bad.health()
    assert "set CLOUDFLARE_API_TOKEN with D1 Read permission" in str(err.value)
    assert "Authentication error" in str(err.value) and "wrong-token-123" not in str(err.value)
    missing = D1Target(double.base_url, double.account_id, "no-such-db", double.token)
    with pytest.raises(UsageError, match="could not be found: check the account and database"):
        missing.health()
    empty = SQLiteD1Server().start()
    with pytest.raises(UsageError, match="has no tables"):
        _target(empty).health()
    empty.stop()
    nowhere = D1Target("http://127.0.0.1:9/client/v4", "a", "d", "t0ken", max_attempts=1)
    with pytest.raises(UsageError, match="cannot reach the API"):
        nowhere.health()
    for t in (bad, missing, nowhere):
        t.close()


def test_token_stays_out_of_repr_url_describe_and_pickles(double):
    target = _target(double)
    text = " ".join([repr(target), target.url, json.dumps(target.describe()),
                     repr(target.connect()), repr(vars(target))])
    assert double.token not in text and "token='***'" in repr(target)
    assert target.url == f"d1://{double.account_id}/{double.database_id}"
    with pytest.raises(TypeError):
        pickle.dumps(target._token)
    target.close()


# --- the real local D1 ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def notes_d1():
    from d1bench.targets.d1.local import LocalD1

    with LocalD1() as local:
        setup = D1Target(local.base_url, local.account_id, local.database_id, local.token,
                         allow_writes=True)
        conn = setup.connect()
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, grp INT, body TEXT)")
        conn.execute("CREATE INDEX notes_grp ON notes (grp)")
        setup.close()
        yield local


@pytest.mark.d1local
def test_local_d1_meta_counts_rows_as_d1_bills_them(notes_d1):
    with D1Target(notes_d1.base_url, notes_d1.account_id, notes_d1.database_id, notes_d1.token,
                  allow_writes=True) as target:
        conn = target.connect()
        inserted = conn.execute_batch([("INSERT INTO notes (grp, body) VALUES (?, ?)",
                                        [i % 10, f"note {i}"]) for i in range(100)])
        # one table row and one index entry per insert
        assert [r.meta.rows_written for r in inserted] == [2] * 100
        by_pk = conn.execute("SELECT body FROM notes WHERE id = ?", [5])
        assert by_pk.rows == [("note 4",)] and by_pk.meta.rows_read == 1
        scan = conn.execute("SELECT count(*) FROM notes WHERE body LIKE ?", ["%9%"])
        assert scan.meta.rows_read == 100 and scan.meta.rows_written == 0
        assert scan.meta.extra["served_by"] and "changed_db" in scan.meta.extra
        plan = conn.explain("SELECT body FROM notes WHERE grp = ?", [3])
        assert "USING INDEX notes_grp" in plan[0].detail


@pytest.mark.d1local
@pytest.mark.parametrize("sql, params, error_class, needle", [
    ("SELECT " + ", ".join("?" for _ in range(101)), list(range(101)), "limit",
     "too many SQL variables"),
    ("PRAGMA journal_mode", [], "limit", "not authorized"),
    ("SELEC 1", [], "syntax", "syntax error"),
    ("SELECT * FROM nowhere", [], "syntax", "no such table"),
    ("INSERT INTO notes (id, grp) VALUES (1, 1)", [], "constraint", "UNIQUE constraint failed"),
])
def test_local_d1_messages_are_classified(notes_d1, sql, params, error_class, needle):
    # limits checks off: D1 itself must say no, and its words must sort into the right class
    with D1Target(notes_d1.base_url, notes_d1.account_id, notes_d1.database_id, notes_d1.token,
                  allow_writes=True, check_limits=False) as target:
        conn = target.connect()
        conn.execute("INSERT OR IGNORE INTO notes (id, grp) VALUES (1, 1)")
        with pytest.raises(TargetError) as err:
            conn.execute(sql, params)
    assert err.value.error_class == error_class and needle in err.value.message
    assert err.value.attempts == 1 and not err.value.retryable


@pytest.mark.d1local
def test_local_d1_health_and_bad_token(notes_d1):
    good = D1Target(notes_d1.base_url, notes_d1.account_id, notes_d1.database_id, notes_d1.token)
    assert "notes" in good.health(tables=["notes"])["tables"]
    bad = D1Target(notes_d1.base_url, notes_d1.account_id, notes_d1.database_id, "not-it-0000")
    with pytest.raises(UsageError, match="API token was refused"):
        bad.health()
    good.close()
    bad.close()


def test_cli_options_reach_the_target(double):
    import argparse

    from d1bench.targets.d1 import add_d1_arguments, d1_options

    parser = argparse.ArgumentParser()
    add_d1_arguments(parser)
    args = parser.parse_args(["--allow-writes", "--base-url", double.base_url,
                              "--d1-endpoint", "query", "--max-attempts", "2"])
    env = {"CLOUDFLARE_API_TOKEN": double.token}
    with D1Target.from_spec(f"d1://{double.account_id}/{double.database_id}", env=env,
                            **d1_options(args)) as target:
        assert (target.allow_writes, target.endpoint, target.policy.max_attempts,
                target.policy.retry_writes) == (True, "query", 2, False)
        assert target.connect().execute("UPDATE kv SET v = 'w' WHERE k = 2").meta.changes == 1
    defaults = d1_options(parser.parse_args([]))
    assert defaults == {"allow_writes": False, "retry_writes": False, "max_attempts": 5,
                        "endpoint": "raw"}


def test_https_with_a_private_certificate_authority(tmp_path):
    import ssl
    import subprocess

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    with SQLiteD1Server(tls=server_side) as server:
        assert server.base_url.startswith("https://127.0.0.1:")
        trusting = ssl.create_default_context(cafile=str(cert))
        with _target(server, ssl_context=trusting) as target:
            assert target.connect().execute("SELECT ?", ["over tls"]).rows == [("over tls",)]
        # the system trust store does not know this certificate: refused, and not retried
        with _target(server, max_attempts=3) as target, pytest.raises(TargetError) as err:
            target.connect().execute("SELECT 1")
    assert err.value.error_class == "network" and not err.value.retryable
    assert err.value.attempts == 1 and "certificate" in err.value.message
