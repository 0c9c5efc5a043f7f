"""Retries, backoff and error classes under injected faults, through FaultProxy on 127.0.0.1.

The scripted tests put the proxy in front of ``SQLiteD1Server`` and inject one
known fault at a time; the replay test puts it in front of the real local D1
and injects every kind at random, then reconciles what the client recorded
with what the proxy did.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

import pytest
from faultproxy import FaultProxy, SQLiteD1Server

from d1bench.errors import TargetError
from d1bench.targets.d1 import D1Target

#: What the client must call each injected fault.
CLASS_OF = {"drop": "network", "retryable_message": "network", "rate_limit": "rate_limited",
            "server_error": "other", "overloaded": "overloaded", "lost_response": "network"}
RETRIED = ("drop", "retryable_message", "rate_limit", "server_error")

NO_FAULTS = {"drop": 0, "retryable_message": 0, "rate_limit": 0, "server_error": 0, "slow": 0}


@pytest.fixture
def server():
    with SQLiteD1Server() as srv:
        setup = D1Target(srv.base_url, srv.account_id, srv.database_id, srv.token,
                         allow_writes=True)
        conn = setup.connect()
        conn.execute("CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)")
        conn.execute("CREATE TABLE log (id INTEGER PRIMARY KEY, tag TEXT)")
        conn.execute_batch([("INSERT INTO kv VALUES (?, ?)", [i, f"v{i}"]) for i in range(1, 11)])
        setup.close()
        yield srv


def _client(proxy: FaultProxy, srv: SQLiteD1Server, **options) -> D1Target:
    options.setdefault("backoff_base", 0.001)
    options.setdefault("allow_writes", True)
    return D1Target(proxy.base_url, srv.account_id, srv.database_id, srv.token, **options)


def _logged(srv: SQLiteD1Server) -> int:
    direct = D1Target(srv.base_url, srv.account_id, srv.database_id, srv.token)
    try:
        return direct.connect().execute("SELECT count(*) FROM log").rows[0][0]
    finally:
        direct.close()


def _proxy(srv: SQLiteD1Server, script: list[str], **options) -> FaultProxy:
    return FaultProxy(srv.base_url, script=script, **{**NO_FAULTS, **options})


@pytest.mark.parametrize("fault", RETRIED)
def test_a_read_is_retried_after_a_transient_fault(server, fault):
    with _proxy(server, [fault], retry_after=0) as proxy, _client(proxy, server) as target:
        result = target.connect().execute("SELECT v FROM kv WHERE k = ?", [3])
    assert result.rows == [("v3",)]
    assert result.meta.attempts == 2
    assert result.meta.extra["attempt_errors"] == [CLASS_OF[fault]]
    assert len(result.meta.extra["backoff_s"]) == 1
    assert proxy.counts["requests"] == 2 and proxy.counts[fault] == 1


@pytest.mark.parametrize("fault", RETRIED)
def test_a_write_is_not_retried(server, fault):
    with _proxy(server, [fault], retry_after=0) as proxy, _client(proxy, server) as target, \
            pytest.raises(TargetError) as err:
        target.connect().execute("INSERT INTO log (tag) VALUES (?)", ["w"])
    assert err.value.error_class == CLASS_OF[fault] and err.value.retryable
    assert err.value.attempts == 1 and err.value.attempt_errors == [CLASS_OF[fault]]
    assert proxy.counts["requests"] == 1 and proxy.counts["forwarded"] == 0
    assert _logged(server) == 0


def test_retry_writes_retries_a_write_once_applied(server):
    with _proxy(server, ["drop", "retryable_message"]) as proxy, \
            _client(proxy, server, retry_writes=True) as target:
        result = target.connect().execute("INSERT INTO log (tag) VALUES (?)", ["w"])
    assert result.meta.attempts == 3 and result.meta.extra["attempt_errors"] == ["network"] * 2
    assert _logged(server) == 1


def test_a_lost_response_is_why_writes_are_not_retried(server):
    # the database ran the insert, the answer never came back: retrying would insert twice
    with _proxy(server, ["lost_response"]) as proxy, _client(proxy, server) as target, \
            pytest.raises(TargetError) as err:
        target.connect().execute("INSERT INTO log (tag) VALUES (?)", ["w"])
    assert err.value.error_class == "network" and err.value.attempts == 1
    assert proxy.counts["forwarded"] == 1 and _logged(server) == 1


def test_retry_after_is_a_floor_for_the_backoff(server):
    with _proxy(server, ["rate_limit"], retry_after=0.3) as proxy, \
            _client(proxy, server, backoff_base=0.0001, backoff_cap=0.0001) as target:
        result = target.connect().execute("SELECT 1")
    assert result.meta.extra["attempt_errors"] == ["rate_limited"]
    assert result.meta.extra["backoff_s"][0] >= 0.3


def test_a_long_retry_after_is_not_waited_for(server):
    with _proxy(server, ["rate_limit"], retry_after=300) as proxy, \
            _client(proxy, server, max_retry_after=60) as target, \
            pytest.raises(TargetError) as err:
        target.connect().execute("SELECT 1")
    assert err.value.error_class == "rate_limited" and err.value.attempts == 1
    assert "retry-after 300 s exceeds max_retry_after 60 s" in err.value.message


def test_overloaded_is_not_retried(server):
    with _proxy(server, ["overloaded"]) as proxy, _client(proxy, server) as target, \
            pytest.raises(TargetError) as err:
        target.connect().execute("SELECT 1")
    assert err.value.error_class == "overloaded" and not err.value.retryable
    assert err.value.attempts == 1 and "D1 DB is overloaded" in err.value.message
    assert proxy.counts["requests"] == 1


def test_a_slow_answer_past_the_timeout_is_a_timeout_and_a_read_goes_again(server):
    with _proxy(server, ["slow"], slow_ms=400) as proxy, \
            _client(proxy, server, timeout=0.15) as target:
        result = target.connect().execute("SELECT 1")
        proxy._script.append("slow")
        with pytest.raises(TargetError) as err:
            target.connect().execute("INSERT INTO log (tag) VALUES ('late')")
    assert result.meta.extra["attempt_errors"] == ["timeout"] and result.meta.attempts == 2
    assert err.value.error_class == "timeout" and err.value.attempts == 1


def test_attempts_stop_at_max_attempts(server):
    with _proxy(server, ["drop"] * 6) as proxy, _client(proxy, server) as target, \
            pytest.raises(TargetError) as err:
        target.connect().execute("SELECT 1")
    assert err.value.attempts == 5 and err.value.attempt_errors == ["network"] * 5
    assert len(err.value.backoff_s) == 4 and proxy.counts["requests"] == 5


def test_faults_repeat_with_the_seed(server):
    def sequence(seed: int) -> list[str]:
        with FaultProxy(server.base_url, seed=seed, drop=0.1, retryable_message=0.1,
                        rate_limit=0.1, server_error=0.1, slow=0.1, slow_ms=1,
                        retry_after=0) as proxy, \
                _client(proxy, server, max_attempts=1) as target:
            conn = target.connect()
            for _ in range(60):
                with contextlib.suppress(TargetError):
                    conn.execute("SELECT 1")
        return [fault for _, fault, _ in proxy.log]

    first, again, other = sequence(11), sequence(11), sequence(12)
    assert first == again and first != other
    assert set(first) == {"ok", "drop", "retryable_message", "rate_limit", "server_error", "slow"}


def test_every_attempt_is_accounted_for_under_random_faults(server):
    """Pure protocol version of the replay test below: fast, and without Node.js."""
    with FaultProxy(server.base_url, seed=5, drop=0.05, retryable_message=0.05,
                    rate_limit=0.05, server_error=0.05, slow=0.05, slow_ms=5,
                    retry_after=0) as proxy:
        target = _client(proxy, server, concurrency=16)

        async def one(i: int) -> tuple[str, str, int, list[str]]:
            kind = "write" if i % 5 == 0 else "read"
            sql = "INSERT INTO log (tag) VALUES (?)" if kind == "write" else \
                "SELECT v FROM kv WHERE k = ?"
            try:
                result = await target.execute_async(sql, [str(i) if kind == "write"
                                                          else 1 + i % 10])
            except TargetError as exc:
                assert exc.attempt_errors[-1] == exc.error_class
                return kind, exc.error_class, exc.attempts, exc.attempt_errors
            return kind, "ok", result.meta.attempts, \
                list(result.meta.extra.get("attempt_errors", []))

        async def run():
            try:
                return await asyncio.gather(*(one(i) for i in range(400)))
            finally:
                await target.aclose()

        outcomes = asyncio.run(run())
    _reconcile(outcomes, proxy, ok_writes=_logged(server))


def _reconcile(outcomes, proxy: FaultProxy, *, ok_writes: int, skip=frozenset()) -> None:
    """Every request ok or classified, only reads retried, and the proxy's counts agree.

    ``outcomes``: ``(kind, outcome, attempts, attempt_errors)`` per request;
    ``attempt_errors`` is ``None`` when only the last failed attempt's class is
    known (a trace keeps that much for a failed request): the earlier ones are
    then only counted.
    """
    counted = Counter(f for _, f, sql in proxy.log if sql not in skip)
    failed = Counter()
    unknown = 0
    for kind, outcome, attempts, errors in outcomes:
        assert outcome == "ok" or outcome in CLASS_OF.values(), outcome
        if kind == "write":
            assert attempts == 1  # never retried
        if errors is None:
            failed[outcome] += 1
            unknown += attempts - 1
        else:
            assert attempts == len(errors) + (outcome == "ok")
            failed.update(errors)
    assert sum(a for _, _, a, _ in outcomes) == sum(counted.values())
    injected = {"network": counted["drop"] + counted["retryable_message"],
                "rate_limited": counted["rate_limit"], "other": counted["server_error"]}
    assert all(failed[c] <= n for c, n in injected.items())
    assert sum(injected.values()) - sum(failed.values()) == unknown
    assert set(failed) <= set(injected)
    assert ok_writes == sum(1 for k, o, _, _ in outcomes if k == "write" and o == "ok")
    assert all(counted[f] > 0 for f in RETRIED + ("slow",))


FAULT_WORKLOAD = """
[workload]
name = "faults"
format = 1
description = "Point reads and one-row inserts, for the fault-injection replay."
write_weight = 0.2

[templates.get_kv]
family = "retrieval"
weight = 1
description = "A primary-key read."
sql = "SELECT k, v FROM kv WHERE k = ?"
params = [{ sampler = "int", min = 1, max = 10 }]

[templates.add_log]
family = "write"
weight = 1
description = "One insert: each ok one must leave exactly one row."
sql = "INSERT INTO log (tag) VALUES (?)"
params = [{ sampler = "int", min = 1, max = 1000000000 }]
"""


@pytest.mark.d1local
@pytest.mark.slow
def test_replay_through_faults_in_front_of_local_d1_loses_nothing():
    import json

    from d1bench.runner import replay
    from d1bench.targets.d1.local import LocalD1
    from d1bench.workload import parse_workload

    workload, problems = parse_workload(FAULT_WORKLOAD, "faults.toml")
    assert workload is not None, problems
    with LocalD1() as local:
        setup = D1Target(local.base_url, local.account_id, local.database_id, local.token,
                         allow_writes=True)
        conn = setup.connect()
        conn.execute("CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)")
        conn.execute("CREATE TABLE log (id INTEGER PRIMARY KEY, tag TEXT)")
        conn.execute_batch([("INSERT INTO kv VALUES (?, ?)", [i, f"v{i}"]) for i in range(1, 11)])
        # the proxy's default rates: 2% each of drops, retryable messages, 429s, 5xx, slow
        with FaultProxy(local.base_url, seed=2026, slow_ms=50, retry_after=0.05) as proxy:
            target = D1Target(proxy.base_url, local.account_id, local.database_id, local.token,
                              allow_writes=True, backoff_base=0.01, seed=1)
            trace = replay(workload, target, concurrency=32, requests=2000, seed=3,
                           progress=False)
            target.close()
        ok_writes = conn.execute("SELECT count(*) FROM log").rows[0][0]
        setup.close()

    rows = trace.requests
    assert len(rows) == 2000  # count in == count out
    outcomes = []
    for row in rows.itertuples():
        kind = "write" if row.template == "add_log" else "read"
        outcome = row.error_class if isinstance(row.error_class, str) else "ok"
        extra = json.loads(row.extra) if isinstance(row.extra, str) else {}
        errors = extra.get("attempt_errors", []) if outcome == "ok" else None
        outcomes.append((kind, outcome, int(row.attempts), errors))
    # the replay's own queries (EXPLAIN of each template, metadata) went through the proxy
    # too: only the templates' requests are the run's
    ours = {t.sql[:80] for t in workload.templates.values()}
    _reconcile(outcomes, proxy, ok_writes=ok_writes,
               skip=frozenset(s for _, _, s in proxy.log if s not in ours))
