"""Replay: open loop exposes stalls that closed loop hides; schedules, sessions, Ctrl-C, errors."""

from __future__ import annotations

import _thread
import asyncio
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from replay_support import (
    HookTarget,
    make_items_db,
    sqlite_target,
    stall_once,
    toy_workload,
)

from d1bench import load_trace, replay, summarize
from d1bench.errors import TargetError, UsageError
from d1bench.runner.schedule import arrivals
from d1bench.targets.base import Connection, Target


@pytest.fixture(scope="module")
def items_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_items_db(tmp_path_factory.mktemp("items") / "items.sqlite")


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return toy_workload(tmp_path_factory.mktemp("toy"))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return toy_workload(tmp_path_factory.mktemp("mixed"), scan_weight=0.3, session_weight=0.3)


def test_a_stall_shows_in_open_loop_p99_but_closed_loop_hides_it(items_db, toy) -> None:
    """Coordinated omission: one 300 ms stall of the only worker, at 500 requests a second."""
    stall_ms = 300
    open_loop = replay(toy, HookTarget(sqlite_target(items_db), stall_once(100, stall_ms / 1e3)),
                       rate=500, arrival="fixed", requests=500, workers=1, progress=False)
    closed = replay(toy, HookTarget(sqlite_target(items_db), stall_once(100, stall_ms / 1e3)),
                    concurrency=1, requests=500, progress=False)
    p99_open = summarize(open_loop).set_index("template").loc["ALL", "p99_ms"]
    p99_closed = summarize(closed).set_index("template").loc["ALL", "p99_ms"]
    # Open loop: the ~150 requests due during the stall all wait for it.
    assert p99_open > stall_ms / 2
    assert (open_loop.requests["response_ms"] > stall_ms / 10).sum() >= 50
    # Closed loop: the stall is one slow request out of 500, below the 99th percentile.
    assert p99_closed < stall_ms / 10
    assert closed.requests["response_ms"].max() >= stall_ms
    # The stall is in the service time of one request; the rest is schedule lag.
    assert (open_loop.requests["service_ms"] >= stall_ms).sum() == 1
    assert open_loop.requests["lag_ms"].max() > stall_ms / 2


def test_open_loop_follows_the_schedule_drawn_in_advance(items_db, toy) -> None:
    trace = replay(toy, sqlite_target(items_db), rate=400, arrival="poisson", requests=120,
                   seed=11, progress=False)
    r = trace.requests.sort_values("unit_index")
    assert list(r["intended_ns"]) == arrivals(400, "poisson", seed=11, count=120)
    assert (r["sent_ns"] >= r["intended_ns"]).all() and (r["done_ns"] >= r["sent_ns"]).all()
    np.testing.assert_allclose(r["response_ms"], r["lag_ms"] + r["service_ms"], atol=1e-6)
    again = replay(toy, sqlite_target(items_db), rate=400, arrival="poisson", requests=120,
                   seed=11, progress=False).requests.sort_values("unit_index")
    assert list(again["intended_ns"]) == list(r["intended_ns"])
    assert list(again["rows_returned"]) == list(r["rows_returned"])
    assert trace.meta["schedule"]["mode"] == "open"
    assert trace.meta["schedule"]["units_scheduled"] == 120


def test_sessions_record_each_step_intended_when_the_last_ended(items_db, mixed) -> None:
    trace = replay(mixed, sqlite_target(items_db), concurrency=2, requests=200, seed=5,
                   progress=False)
    r = trace.requests
    sessions = r[r["kind"] == "session"]
    assert len(sessions) > 0
    for _, steps in sessions.groupby("session_id"):
        steps = steps.sort_values("step")
        assert list(steps["step"]) == list(range(len(steps)))
        assert steps.iloc[0]["template"] == "list_items"
        # list_items returns 3-5 ids, and the session fetches each one (N+1).
        assert len(steps) == 1 + steps.iloc[0]["rows_returned"]
        assert list(steps["intended_ns"].iloc[1:]) == list(steps["done_ns"].iloc[:-1])
        assert (steps["unit_index"] == steps["session_id"]).all()
    assert r.loc[r["kind"] == "query", "session_id"].isna().all()
    assert r["unit_index"].nunique() == 200
    assert set(r["plan_class"].dropna()) >= {"full_scan"}
    scans = r[r["template"] == "items_by_v"]
    assert not scans["all_indexed"].any()


def test_warmup_is_recorded_and_flagged(items_db, toy) -> None:
    trace = replay(toy, sqlite_target(items_db), rate=200, arrival="fixed", duration=0.5,
                   warmup=0.25, progress=False)
    r = trace.requests
    assert (r["warmup"] == (r["intended_ns"] < 250_000_000)).all()
    assert r["warmup"].sum() == 50 and (~r["warmup"]).sum() == 100
    assert summarize(trace).set_index("template").loc["ALL", "count"] == 100


def test_closed_loop_runs_exactly_the_requested_units(items_db, toy) -> None:
    trace = replay(toy, sqlite_target(items_db), concurrency=3, requests=90, progress=False)
    assert len(trace.requests) == 90
    assert set(trace.requests["worker"]) <= {0, 1, 2}
    warm = replay(toy, sqlite_target(items_db), concurrency=2, requests=40, warmup=0.05,
                  progress=False)
    assert (~warm.requests["warmup"]).sum() == 40


def test_errors_are_recorded_and_the_run_goes_on(items_db, toy) -> None:
    def fail_some(n: int) -> None:
        if n % 10 == 0:
            raise TargetError("database is locked", error_class="overloaded", attempts=3)

    trace = replay(toy, HookTarget(sqlite_target(items_db), fail_some), concurrency=1,
                   requests=50, progress=False)
    failed = trace.requests[trace.requests["error_class"].notna()]
    assert len(trace.requests) == 50 and len(failed) == 5
    assert set(failed["error_class"]) == {"overloaded"}
    assert set(failed["error"]) == {"database is locked"}
    assert set(failed["attempts"]) == {3}
    assert summarize(trace).set_index("template").loc["ALL", "errors"] == 5
    assert trace.meta["errors"] == 5


def test_ctrl_c_keeps_what_completed(items_db, toy, tmp_path) -> None:
    """Ctrl-C after 30 requests (simulated SIGINT on the main thread) ends the run cleanly."""
    def press_ctrl_c(n: int) -> None:
        if n == 30:
            _thread.interrupt_main()

    path = tmp_path / "interrupted.parquet"
    trace = replay(toy, HookTarget(sqlite_target(items_db), press_ctrl_c), rate=100,
                   requests=1000, trace_path=path, progress=False)
    assert trace.meta["interrupted"] is True
    loaded = load_trace(path)
    assert loaded.meta["interrupted"] is True
    assert 30 <= len(loaded.requests) < 1000
    assert loaded.requests["done_ns"].notna().all()
    assert (loaded.requests["done_ns"] >= loaded.requests["sent_ns"]).all()
    assert summarize(loaded).set_index("template").loc["ALL", "count"] == len(loaded.requests)


def test_units_that_cannot_be_sent_in_time_are_dropped(items_db, toy) -> None:
    slow = HookTarget(sqlite_target(items_db), lambda n: threading.Event().wait(0.02))
    trace = replay(toy, slow, rate=200, arrival="fixed", duration=0.3, workers=1, overrun=0.0,
                   progress=False)
    r = trace.requests
    dropped = r[r["error_class"] == "dropped"]
    assert len(dropped) > 0 and len(r) == 60
    assert trace.meta["dropped"] == len(dropped)
    row = summarize(trace).set_index("template").loc["ALL"]
    assert row["dropped"] == len(dropped)
    # A drop is neither an error nor an attempt: the statement was never sent.
    assert row["errors"] == 0 and row["error_rate"] == 0
    assert row["drop_rate"] == pytest.approx(len(dropped) / len(r))
    assert row["attempts"] == len(r) - len(dropped)


@pytest.mark.parametrize("kwargs, message", [
    ({"rate": 10, "concurrency": 2}, "not both"),
    ({"rate": 0}, "rate must be"),
    ({"rate": float("nan")}, "rate must be"),
    ({"concurrency": 1.5}, "concurrency must be a whole number"),
    ({"requests": -3}, "requests must be"),
    ({"duration": 0}, "duration must be"),
    ({"warmup": -1}, "warmup must be"),
    ({"arrival": "bursty"}, "arrival must be"),
])
def test_bad_arguments_are_refused(items_db, toy, kwargs, message) -> None:
    with pytest.raises(UsageError, match=message):
        replay(toy, sqlite_target(items_db), progress=False, **kwargs)


def test_an_existing_trace_is_not_overwritten(items_db, toy, tmp_path) -> None:
    path = tmp_path / "t.parquet"
    path.write_bytes(b"precious")
    with pytest.raises(UsageError, match="already exists"):
        replay(toy, sqlite_target(items_db), requests=5, trace_path=path, progress=False)
    assert path.read_bytes() == b"precious"
    replay(toy, sqlite_target(items_db), requests=5, rate=1000, trace_path=path, force=True,
           progress=False)
    assert len(load_trace(path).requests) == 5


def test_progress_line_shows_rate_errors_and_p99(items_db, toy, capsys, monkeypatch) -> None:
    # As if stderr were a terminal: the line is redrawn in place.
    monkeypatch.setattr("d1bench.runner.recorder.is_terminal", lambda stream=None: True)
    replay(toy, sqlite_target(items_db), rate=500, requests=400, progress=True)
    err = capsys.readouterr().err
    assert "requests" in err and "/s" in err and "errors 0" in err and "p99" in err
    assert "\r" in err


def test_progress_off_a_terminal_writes_no_carriage_returns(items_db, toy, capsys) -> None:
    replay(toy, sqlite_target(items_db), rate=500, requests=400, progress=True)
    assert "\r" not in capsys.readouterr().err


class _AsyncItems(Target):
    """An HTTP-like target: each request takes 5 ms of waiting, many may be in flight."""

    kind = "d1-local"
    supports_async = True

    def __init__(self, path: Path) -> None:
        self.inner = sqlite_target(path)
        self.local = threading.local()
        self.in_flight = 0
        self.max_in_flight = 0

    @property
    def url(self) -> str:
        return "d1-local:test"

    def connect(self) -> Connection:
        return self.inner.connect()

    async def execute_async(self, sql: str, params: Any = ()) -> Any:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = self.inner.connect()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.005)
            return conn.execute(sql, params)
        finally:
            self.in_flight -= 1


def test_asyncio_path_keeps_several_requests_in_flight(items_db, mixed) -> None:
    target = _AsyncItems(items_db)
    trace = replay(mixed, target, rate=1000, arrival="fixed", requests=200, workers=16,
                   progress=False)
    assert trace.meta["schedule"]["engine"] == "asyncio"
    assert trace.requests["unit_index"].nunique() == 200
    assert trace.requests["error_class"].isna().all()
    # 1,000 a second of 5 ms requests: about five overlap, never more than the 16 allowed.
    assert 2 <= target.max_in_flight <= 16
    closed = replay(mixed, target, concurrency=3, requests=60, progress=False)
    assert closed.requests["unit_index"].nunique() == 60
    assert target.max_in_flight <= 16


def test_medical_workload_on_the_small_corpus(corpus_copy, tmp_path) -> None:
    """The shipped workload against a generated corpus: every statement recorded and explained."""
    from d1bench import load_workload
    from d1bench.analysis import ALL

    medical = load_workload("medical")
    trace = replay("medical", f"sqlite:{corpus_copy}", concurrency=2, requests=150, seed=1,
                   trace_path=tmp_path / "medical.parquet", progress=False)
    r = trace.requests
    assert r["unit_index"].nunique() == 150
    assert r["error_class"].isna().all(), r.loc[r["error_class"].notna(), "error"].unique()
    assert set(r["template"]) <= set(medical.templates)
    assert set(trace.meta["plans"]) == set(medical.templates)
    assert all(p["plan_class"] for p in trace.meta["plans"].values())
    assert r["plan_class"].notna().all() and r["all_indexed"].notna().all()
    assert r["rows_read"].notna().all() and (r["rows_read"] >= 0).all()
    assert trace.meta["workload"] == {"name": "medical", "digest": medical.digest,
                                      "templates": list(medical.templates)}
    assert trace.meta["corpus"]["digest"] and trace.meta["target"]["target_kind"] == "sqlite"
    summary = summarize(load_trace(tmp_path / "medical.parquet")).set_index("template")
    assert summary.loc[ALL, "count"] == len(r)
    assert set(summary.index) == set(r["template"]) | {ALL}


def test_d1bench_replay_stays_the_function_after_submodule_imports(items_db, toy) -> None:
    """The engine lives in ``d1bench.runner`` so that importing its submodules can never
    rebind the public name ``d1bench.replay`` to a package."""
    import d1bench
    import d1bench.runner.schedule

    assert callable(d1bench.replay) and d1bench.replay.__name__ == "replay"
    trace = d1bench.replay(toy, sqlite_target(items_db), concurrency=1, requests=3, progress=False)
    assert len(trace.requests) == 3


def test_warmup_can_be_counted_in_units(items_db, toy) -> None:
    open_loop = replay(toy, sqlite_target(items_db), rate=500, requests=50, warmup_requests=10,
                       progress=False)
    r = open_loop.requests
    assert len(r) == 60
    assert set(r.loc[r["warmup"], "unit_index"]) == set(range(10))
    closed = replay(toy, sqlite_target(items_db), concurrency=2, requests=30, warmup_requests=5,
                    progress=False)
    assert len(closed.requests) == 35 and closed.requests["warmup"].sum() == 5
    timed = replay(toy, sqlite_target(items_db), concurrency=1, duration=0.2,
                   warmup_requests=20, progress=False)
    assert timed.requests["warmup"].sum() == 20 and (~timed.requests["warmup"]).sum() > 0
    with pytest.raises(UsageError, match="not both"):
        replay(toy, sqlite_target(items_db), warmup=1, warmup_requests=5, progress=False)
