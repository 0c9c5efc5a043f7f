"""The bench Worker served by Miniflare: the secret, sessions, the cache counted by hand, d1-worker.

Everything runs against the real Worker module in a real local D1 on
127.0.0.1, on a small schema of its own (``notes``), not the medical one.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from d1bench.errors import UsageError
from d1bench.runner import replay
from d1bench.targets import open_target
from d1bench.targets.d1.local import LocalD1
from d1bench.targets.d1.worker import SECRET_ENV, WorkerTarget
from d1bench.worker import WorkerOptions, cache_effect, session_summary, worker_fields
from d1bench.workload import load_workload

#: What Cloudflare's D1 reports and Miniflare leaves undefined: null in every local answer.
NULL_LOCALLY = {"served_by_region", "served_by_primary", "total_attempts", "sql_duration_ms"}

SCHEMA = ["CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
          "DELETE FROM notes",
          "INSERT INTO notes (id, body) VALUES (1, 'one'), (2, 'two'), (3, 'three')"]

# One session a simulated user runs, hand-counted for a cache without invalidation:
# read 1 (miss), read 1 (hit), update 1 (bypass), read 1 (hit, stale: the update changed it),
# read 2 (miss), read 2 (hit).  With invalidation the update empties the cache: the
# second read of note 1 after it is a miss, and nothing is stale.
SESSION_WORKLOAD = """
[workload]
name = "notes-session"
format = 1

[templates.read_one]
family = "retrieval"
weight = 0
sql = "SELECT body FROM notes WHERE id = ?"
params = [{ sampler = "int", min = 1, max = 1 }]

[templates.read_two]
family = "retrieval"
weight = 0
sql = "SELECT body FROM notes WHERE id = ?"
params = [{ sampler = "int", min = 2, max = 2 }]

[templates.rename_one]
family = "write"
weight = 0
sql = "UPDATE notes SET body = body || '!' WHERE id = ?"
params = [{ sampler = "int", min = 1, max = 1 }]

[sessions.user]
weight = 1
steps = [
    { template = "read_one" }, { template = "read_one" }, { template = "rename_one" },
    { template = "read_one" }, { template = "read_two" }, { template = "read_two" },
]
"""

#: template -> (hits, misses, bypassed, stale) for the session above, counted by hand.
HAND_COUNT = {
    False: {"read_one": (2, 1, 0, 1), "read_two": (1, 1, 0, 0), "rename_one": (0, 0, 1, 0)},
    True: {"read_one": (1, 2, 0, 0), "read_two": (1, 1, 0, 0), "rename_one": (0, 0, 1, 0)},
}


def _load(target) -> None:
    conn = target.connect(allow_writes=True)
    for sql in SCHEMA:
        conn.execute(sql)


@pytest.fixture(scope="module")
def workload_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wl") / "notes.toml"
    path.write_text(SESSION_WORKLOAD)
    return path


def _served(worker: WorkerOptions, tmp: Path) -> LocalD1:
    return LocalD1(tmp / "persist", worker=worker).start()


# --- the secret ----------------------------------------------------------------------


def test_requests_without_the_secret_get_401_and_learn_nothing(local_d1: LocalD1) -> None:
    api = f"{local_d1.base_url}/accounts/{local_d1.account_id}/d1/database/{local_d1.database_id}"
    bodies = set()
    for auth in (None, "Bearer wrong", f"Bearer {local_d1.token}x", "Basic abc", "Bearer  x"):
        headers = {"Authorization": auth} if auth else {}
        for method, url in (("GET", f"{local_d1.origin}/health"), ("POST", f"{api}/raw"),
                            ("POST", f"{api}/query"), ("GET", f"{local_d1.origin}/nowhere"),
                            ("POST", f"{local_d1.base_url}/accounts/x/d1/database/y/raw")):
            response = httpx.request(method, url, headers=headers, json={"sql": "SELECT 1"},
                                     timeout=10)
            assert response.status_code == 401, (auth, url)
            bodies.add(response.text)
    # One answer for every path and every wrong secret: nothing about routes, ids or the database.
    assert len(bodies) == 1
    body = bodies.pop()
    assert local_d1.database_id not in body and local_d1.account_id not in body
    assert json.loads(body)["errors"] == [{"code": 10000, "message": "Authentication error"}]
    good = httpx.get(f"{local_d1.origin}/health", timeout=10,
                     headers={"Authorization": f"Bearer {local_d1.token}"})
    assert good.status_code == 200 and good.json()["result"]["database_id"] == local_d1.database_id


def test_d1_worker_target_needs_the_secret(local_d1: LocalD1) -> None:
    with pytest.raises(UsageError, match=SECRET_ENV):
        open_target(f"d1-worker:{local_d1.origin}", env={})
    with pytest.raises(UsageError, match="refused the secret") as refused:
        WorkerTarget(local_d1.origin, secret="not-the-secret")
    assert "not-the-secret" not in str(refused.value)
    with pytest.raises(UsageError, match="expected d1-worker:https://HOST"):
        WorkerTarget(f"{local_d1.origin}/some/path", secret=local_d1.token)


# --- sessions ------------------------------------------------------------------------


def test_session_fields_locally(local_d1: LocalD1) -> None:
    with local_d1.target(allow_writes=True, session="first-primary") as target:
        _load(target)
        conn = target.connect()
        first = conn.execute("SELECT body FROM notes WHERE id = ?", [1])
        extra = first.meta.extra
        # Exactly these are undefined in Miniflare, so null; the Worker's own are filled in.
        assert {k for k in NULL_LOCALLY if extra[k] is None} == NULL_LOCALLY
        assert extra["session_in"] == "first-primary"
        assert isinstance(extra["bookmark"], str) and extra["bookmark"]
        assert isinstance(extra["worker_ms"], int | float) and extra["cache"] == "off"
        conn.execute("UPDATE notes SET body = 'uno' WHERE id = ?", [1])
        later = conn.execute("SELECT body FROM notes WHERE id = ?", [1],
                             bookmark=extra["bookmark"])
        assert later.meta.extra["session_in"] == extra["bookmark"]
        assert later.meta.extra["bookmark"] > extra["bookmark"]  # a write moved the database on
        assert later.rows == [("uno",)]
    with local_d1.target(session="none") as target:
        plain = target.connect().execute("SELECT 1")
        assert plain.meta.extra["bookmark"] is None and plain.meta.extra["session_in"] is None
    with pytest.raises(UsageError, match="--session 'primary'"):
        local_d1.target(session="primary")


def test_replay_chains_bookmarks_through_each_users_steps(local_d1: LocalD1,
                                                          workload_file: Path) -> None:
    wl = load_workload(workload_file)
    with local_d1.target(allow_writes=True, session="first-unconstrained") as target:
        _load(target)
        trace = replay(wl, target, concurrency=2, requests=3, progress=False, allow_writes=True)
    fields = worker_fields(trace)
    assert len(fields) == 18 and trace.meta["errors"] == 0
    for _, steps in fields.groupby("session_id"):
        steps = steps.sort_values("step")
        assert steps["session_in"].iloc[0] == "first-unconstrained"
        # every later step carried the bookmark the step before it returned
        assert list(steps["session_in"].iloc[1:]) == list(steps["bookmark"].iloc[:-1])
    summary = session_summary(trace)
    assert summary.loc["read_one", "requests"] == 9
    assert summary.loc["read_one", "with_bookmark"] == 9
    assert summary["served_by_primary"].isna().all() and summary["retried"].isna().all()
    assert (summary["regions"] == "").all()


# --- the cache, counted by hand --------------------------------------------------------


@pytest.mark.parametrize("level", ["memory", "kv"])
@pytest.mark.parametrize("invalidate", [False, True])
def test_cache_accounting_equals_the_hand_count(level: str, invalidate: bool, tmp_path: Path,
                                                workload_file: Path) -> None:
    options = WorkerOptions.from_strings(f"{level}:60", invalidate=invalidate, check=True)
    d1 = _served(options, tmp_path)
    try:
        with d1.target(allow_writes=True, session="first-primary") as target:
            _load(target)
            trace = replay(load_workload(workload_file), target, concurrency=1, requests=1,
                           progress=False, allow_writes=True)
    finally:
        d1.stop()
    effect = cache_effect(trace)
    for template, (hits, misses, bypassed, stale) in HAND_COUNT[invalidate].items():
        row = effect.loc[template]
        assert (row["hits"], row["misses"], row["bypassed"], row["stale"]) == \
            (hits, misses, bypassed, stale), template
        assert row["checked"] == hits
    # A hit bills nothing and saves what its miss read (1 row: a primary-key lookup).
    assert effect.loc["read_two", "rows_read"] == 1
    assert effect.loc["read_two", "rows_read_saved"] == 1
    assert effect.loc["read_one", "hit_rate"] == pytest.approx(2 / 3 if not invalidate else 1 / 3)
    assert effect.loc["read_one", "stale_rate"] == (0.5 if not invalidate else 0.0)
    assert effect.loc["read_two", "usd_saved"] == pytest.approx(1 * 0.001 / 1e6)
    fields = worker_fields(trace)
    hits = fields[fields["cache"] == "hit"]
    assert (hits["rows_read"] == 0).all() and (hits["bookmark"].notna()).all()


def test_cache_ttl_expires_and_writes_never_cache(tmp_path: Path) -> None:
    d1 = _served(WorkerOptions.from_strings("memory:0.4,2"), tmp_path)
    try:
        with d1.target(allow_writes=True) as target:
            _load(target)
            conn = target.connect()

            def cache_of(sql: str, *params: object) -> str:
                return conn.execute(sql, params).meta.extra["cache"]

            read = "SELECT body FROM notes WHERE id = ?"
            assert [cache_of(read, 1), cache_of(read, 1)] == ["miss", "hit"]
            time.sleep(0.5)
            assert cache_of(read, 1) == "miss"  # the TTL ran out
            # SIZE 2: a third key pushes out the least recently used one (2, since 1 was hit).
            assert [cache_of(read, 2), cache_of(read, 1), cache_of(read, 3)] == \
                ["miss", "hit", "miss"]
            assert [cache_of(read, 1), cache_of(read, 2)] == ["hit", "miss"]
            # A write that changes nothing is never answered from the cache.
            noop = "UPDATE notes SET body = body WHERE id = ?"
            assert [cache_of(noop, 99), cache_of(noop, 99)] == ["bypass", "bypass"]
            health = d1.health()
            assert health["cache"] == "memory:0.4,2" and health["cache_check"] is False
    finally:
        d1.stop()


# --- d1-worker: a replay through the Worker served locally ----------------------------


def test_replay_through_d1_worker(local_d1: LocalD1, workload_file: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, local_d1.token)
    with local_d1.target(allow_writes=True) as setup:
        _load(setup)
    with open_target(f"d1-worker:{local_d1.origin}", session="first-primary",
                     allow_writes=True) as target:
        assert target.kind == "d1-worker" and target.supports_sessions
        assert target.describe()["worker_cache"] == "off"
        trace = replay(load_workload(workload_file), target, concurrency=1, requests=2,
                       progress=False, allow_writes=True)
    assert trace.meta["target"]["target"] == f"d1-worker:{local_d1.origin}"
    assert trace.meta["target"]["session"] == "first-primary"
    assert trace.meta["errors"] == 0 and len(trace.requests) == 12
    assert trace.requests["rows_read"].notna().all()
    # Without --allow-writes the write template is refused before anything is sent.
    with open_target(f"d1-worker:{local_d1.origin}") as target, \
            pytest.raises(UsageError, match="write"):
        replay(load_workload(workload_file), target, concurrency=1, requests=1, progress=False)


def test_no_keep_alive_opens_a_connection_per_request(local_d1: LocalD1) -> None:
    import asyncio

    async def run(target) -> int:
        for _ in range(5):
            await target.execute_async("SELECT 1")
        pool = await target._pool()
        opened = pool.opened
        await target.aclose()
        return opened

    with local_d1.target(keep_alive=False) as fresh, local_d1.target() as kept:
        assert asyncio.run(run(fresh)) == 5
        assert asyncio.run(run(kept)) == 1


# --- on a schema of our own besides medical ------------------------------------------


@pytest.mark.slow
def test_cache_on_the_saas_schema(saas_db: Path, tmp_path: Path) -> None:
    """Read-only saas traffic through a checked cache: every hit is fresh and saves what it
    would have read (the database, asked at the moment of the hit, read exactly as many rows)."""
    from schemas import workload_path

    from d1bench.targets.d1.seed import seed_from_sqlite

    seed_from_sqlite(saas_db, tmp_path / "persist")
    d1 = _served(WorkerOptions.from_strings("memory:60", check=True), tmp_path)
    try:
        with d1.target() as target:
            trace = replay(load_workload(workload_path("saas")).reads_only(), target,
                           concurrency=2, requests=150, seed=3, progress=False)
    finally:
        d1.stop()
    fields = worker_fields(trace)
    hits = fields[fields["cache"] == "hit"]
    assert len(hits) > 10 and set(fields["cache"]) <= {"hit", "miss", "bypass"}
    assert not hits["stale"].astype(bool).any()
    assert (hits["check_rows_read"] == hits["rows_read_saved"]).all()
    assert (hits["rows_read"] == 0).all()
    effect = cache_effect(trace)
    assert effect["hits"].sum() == len(hits)
    assert (effect["hits"] + effect["misses"] + effect["bypassed"] == effect["requests"]).all()
    assert effect["rows_read_saved"].sum() == hits["rows_read_saved"].sum() > 0


def test_replay_cli_worker_options(tmp_path: Path, workload_file: Path, capsys) -> None:
    from d1bench.cli import main
    from d1bench.trace import load_trace

    trace = tmp_path / "t.parquet"
    persist = tmp_path / "persist"
    with LocalD1(persist) as d1, d1.target(allow_writes=True) as target:
        _load(target)
    # d1-local with a cache starts its own server with those Worker options
    assert main(["replay", "--target", f"d1-local:{persist}", "--workload", str(workload_file),
                 "--trace", str(trace), "--requests", "1", "--concurrency", "1",
                 "--allow-writes", "--cache", "memory:60", "--cache-check",
                 "--session", "first-primary", "--no-progress"]) == 0
    meta = load_trace(trace).meta["target"]
    assert meta["worker_cache"] == "memory:60,10000" and meta["session"] == "first-primary"
    assert cache_effect(load_trace(trace)).loc["read_two", "hits"] == 1
    for argv, message in (
            (["--target", f"sqlite:{tmp_path / 'x.sqlite'}", "--cache", "kv:60"],
             "options of the bench Worker"),
            (["--target", "d1-worker:https://w.example", "--cache", "kv:60"],
             "wrangler.jsonc"),
            (["--target", f"d1-local:{persist}", "--cache", "disk:60"], "--cache 'disk:60'")):
        capsys.readouterr()
        assert main(["replay", "--workload", str(workload_file), "--trace",
                     str(tmp_path / "no.parquet"), *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert not (tmp_path / "no.parquet").exists()
