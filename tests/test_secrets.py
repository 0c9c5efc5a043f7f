"""The API token never reaches output, logs, traces, files, exceptions or reprs.

A whole replay runs with a sentinel token against the real local D1, through
the fault proxy (so that retries and classified failures are exercised too),
with everything it can write captured: stdout, stderr (the progress line),
every log record at DEBUG, the trace file and anything else written under the
test's directory.  Then the ways a token could leak through an error are
provoked one by one: a refused token, a failed name lookup, a server that
echoes the request in its error message, an unreachable endpoint.
"""

from __future__ import annotations

import asyncio
import json
import logging
import traceback

import pytest
from faultproxy import FaultProxy, SQLiteD1Server
from loopback import serve_in_thread

from d1bench.errors import TargetError, UsageError
from d1bench.targets.d1 import D1Target

SENTINEL = "sentinel-Tok3n-7f3a9c1e5b2d48609ae1"

WORKLOAD = """
[workload]
name = "secrets"
format = 1
description = "Reads and writes whose every trace column is searched for the token."
write_weight = 0.3

[templates.read_note]
family = "retrieval"
weight = 1
description = "Point read."
sql = "SELECT id, body FROM notes WHERE id = ?"
params = [{ sampler = "int", min = 1, max = 20 }]

[templates.bad_read]
family = "other"
weight = 0.2
description = "Fails on purpose: D1's error text goes into the trace."
sql = "SELECT nope FROM notes WHERE id = ?"
params = [{ sampler = "int", min = 1, max = 20 }]

[templates.write_note]
family = "write"
weight = 1
description = "One insert."
sql = "INSERT INTO notes (body) VALUES (?)"
params = [{ sampler = "int", min = 1, max = 1000 }]
"""


def _everything(exc: BaseException) -> str:
    """Every text an exception can show: str, repr, args, attributes, the traceback."""
    parts = [str(exc), repr(exc), repr(exc.args), repr(vars(exc))]
    parts += traceback.format_exception(exc)
    return "\n".join(parts)


def _assert_clean(text: str, where: str) -> None:
    assert SENTINEL not in text, f"the token leaked into {where}"


@pytest.mark.d1local
def test_a_whole_replay_writes_the_token_nowhere(tmp_path, capfd, caplog, monkeypatch):
    from d1bench.runner import replay
    from d1bench.targets.d1.local import LocalD1
    from d1bench.trace import load_trace
    from d1bench.workload import parse_workload

    caplog.set_level(logging.DEBUG)
    # As on a terminal, so that the live progress line is written (and searched below).
    monkeypatch.setattr("d1bench.runner.recorder.is_terminal", lambda stream=None: True)
    workload, problems = parse_workload(WORKLOAD, str(tmp_path / "secrets.toml"))
    assert workload is not None, problems
    trace_path = tmp_path / "run.parquet"
    with LocalD1(tmp_path / "persist", token=SENTINEL) as local:
        setup = D1Target(local.base_url, local.account_id, local.database_id, SENTINEL,
                         allow_writes=True)
        conn = setup.connect()
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute_batch([("INSERT INTO notes (body) VALUES (?)", [f"n{i}"])
                            for i in range(20)])
        assert setup.health(tables=["notes"])["ok"]
        setup.close()
        with FaultProxy(local.base_url, seed=9, drop=0.05, retryable_message=0.05,
                        rate_limit=0.05, server_error=0.05, slow=0.02, slow_ms=20,
                        retry_after=0.01) as proxy:
            target = D1Target(proxy.base_url, local.account_id, local.database_id, SENTINEL,
                              allow_writes=True, backoff_base=0.005)
            print(repr(target), target.describe())
            trace = replay(workload, target, concurrency=8, requests=300, seed=1,
                           trace_path=trace_path, progress=True)
            target.close()

    # the run did meet failures worth leaking through
    requests = trace.requests
    assert len(requests) == 300
    classes = set(requests["error_class"].dropna())
    assert {"syntax", "network"} <= classes, classes
    assert (requests["attempts"] > 1).any()

    out, err = capfd.readouterr()
    _assert_clean(out, "stdout")
    _assert_clean(err, "stderr")
    assert "replay" in err  # the progress line was written and searched
    records = "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records)
    _assert_clean(records, "log records")

    loaded = load_trace(trace_path)
    cells = loaded.requests.astype(str).to_csv()
    _assert_clean(cells, "the trace's rows")
    _assert_clean(json.dumps(loaded.meta, default=str), "the trace's metadata")
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert trace_path in written
    for path in written:
        if "persist" in path.relative_to(tmp_path).parts:
            continue  # the database itself: rows, not output (and searched below anyway)
        _assert_clean(path.read_bytes().decode("latin-1"), str(path))
    for path in written:
        data = path.read_bytes()
        assert SENTINEL.encode() not in data, f"the token is stored in {path}"


def test_a_refused_token_is_not_in_any_error(tmp_path):
    with SQLiteD1Server(token="the-right-token") as server:
        target = D1Target(server.base_url, server.account_id, server.database_id, SENTINEL)
        with pytest.raises(UsageError) as health:
            target.health()
        assert "API token was refused" in str(health.value)
        with pytest.raises(TargetError) as sync:
            target.connect().execute("SELECT 1")
        with pytest.raises(TargetError) as in_async:
            asyncio.run(target.execute_async("SELECT 1"))
        assert sync.value.error_class == in_async.value.error_class == "auth"
        env = {"CLOUDFLARE_API_TOKEN": SENTINEL, "CLOUDFLARE_ACCOUNT_ID": server.account_id}
        with pytest.raises(UsageError) as lookup:
            D1Target.from_spec("d1://test-db", env=env, base_url=server.base_url)
        assert "set CLOUDFLARE_API_TOKEN" in str(lookup.value)
        for exc in (health.value, sync.value, in_async.value, lookup.value):
            _assert_clean(_everything(exc), "an auth error")
        _assert_clean(repr(target) + repr(target.connect()) + repr(vars(target)), "reprs")
        target.close()


def _echo_server():
    """A broken gateway that quotes the whole request, headers included, in its error."""
    async def client(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        body = json.dumps({"success": False, "errors": [
            {"code": 7500, "message": "bad request: " + head.decode()}]}).encode()
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n" % len(body) + body)
        await writer.drain()
        writer.close()

    return serve_in_thread(client)


def test_a_server_echoing_the_header_is_redacted():
    loop, port = _echo_server()
    target = D1Target(f"http://127.0.0.1:{port}/client/v4", "acc", "db", SENTINEL)
    with pytest.raises(TargetError) as err:
        target.connect().execute("SELECT 1")
    loop.call_soon_threadsafe(loop.stop)
    target.close()
    assert "Authorization: Bearer ***" in err.value.message  # the echo arrived, redacted
    _assert_clean(_everything(err.value), "an echoed error")


def test_unreachable_endpoints_do_not_show_the_token():
    target = D1Target("http://127.0.0.1:9/client/v4", "acc", "db", SENTINEL, max_attempts=2,
                      backoff_base=0.001)
    with pytest.raises(TargetError) as err:
        target.connect().execute("SELECT 1")
    target.close()
    assert err.value.error_class == "network" and err.value.attempts == 2
    env = {"CLOUDFLARE_API_TOKEN": SENTINEL, "CLOUDFLARE_ACCOUNT_ID": "acc"}
    with pytest.raises(UsageError) as lookup:
        D1Target.from_spec("d1://some-name", env=env, base_url="http://127.0.0.1:9/client/v4")
    assert "cannot list D1 databases" in str(lookup.value)
    for exc in (err.value, lookup.value):
        _assert_clean(_everything(exc), "a connection error")


@pytest.mark.d1local
def test_the_worker_secret_reaches_no_output(tmp_path, capfd, caplog, monkeypatch):
    """d1-worker: the shared secret from D1BENCH_WORKER_SECRET, a whole CLI replay, a refusal."""
    from d1bench.cli import main
    from d1bench.targets.d1.local import LocalD1
    from d1bench.targets.d1.worker import SECRET_ENV, WorkerTarget

    caplog.set_level(logging.DEBUG)
    workload = tmp_path / "secrets.toml"
    workload.write_text(WORKLOAD)
    trace_path = tmp_path / "run.parquet"
    with LocalD1(tmp_path / "persist", token=SENTINEL) as local:
        setup = WorkerTarget(local.origin, secret=SENTINEL, allow_writes=True)
        setup.connect().execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        setup.close()
        monkeypatch.setenv(SECRET_ENV, SENTINEL)
        assert main(["replay", "--target", f"d1-worker:{local.origin}", "--workload",
                     str(workload), "--trace", str(trace_path), "--requests", "60",
                     "--concurrency", "4", "--allow-writes", "--session", "first-primary"]) == 0
        monkeypatch.setenv(SECRET_ENV, SENTINEL[::-1])  # a wrong one: refused, and not echoed
        assert main(["replay", "--target", f"d1-worker:{local.origin}", "--workload",
                     str(workload), "--trace", str(tmp_path / "no.parquet")]) == 2
    out, err = capfd.readouterr()
    assert "refused the secret" in err
    for text, where in ((out, "stdout"), (err, "stderr"),
                        ("\n".join(r.getMessage() for r in caplog.records), "logs")):
        _assert_clean(text, where)
        assert SENTINEL[::-1] not in text, where
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SENTINEL.encode() not in path.read_bytes(), f"the secret is stored in {path}"
