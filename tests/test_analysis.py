"""Summaries and comparisons: percentiles equal a direct computation; compare's verdicts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from replay_support import (
    HookTarget,
    make_items_db,
    sleep_each,
    sqlite_target,
    synthetic_trace,
    toy_workload,
)

from d1bench import compare, replay, summarize
from d1bench.analysis import ALL, intervals
from d1bench.errors import UsageError

STATS = {"p50_ms": 50, "p90_ms": 90, "p99_ms": 99, "p999_ms": 99.9}


def _check_against_numpy(summary: pd.DataFrame, frame: pd.DataFrame) -> None:
    ok = frame[frame["error_class"].isna()]
    groups = {**{t: g for t, g in ok.groupby("template")}, ALL: ok}
    assert set(summary["template"]) == set(groups)
    for name, group in groups.items():
        row = summary.set_index("template").loc[name]
        times = group["response_ms"].to_numpy(float)
        for col, q in STATS.items():
            assert row[col] == pytest.approx(np.percentile(times, q, method="linear"),
                                             rel=1e-9), (name, col)
        assert row["min_ms"] == pytest.approx(times.min())
        assert row["max_ms"] == pytest.approx(times.max())
        assert row["mean_ms"] == pytest.approx(times.mean(), rel=1e-9)
        assert row["stddev_ms"] == pytest.approx(times.std(ddof=1), rel=1e-9)
        service = group["service_ms"].to_numpy(float)
        assert row["service_p99_ms"] == pytest.approx(np.percentile(service, 99), rel=1e-9)


def test_percentiles_equal_numpy_on_synthetic_times() -> None:
    rng = np.random.default_rng(42)
    trace = synthetic_trace({"fast": rng.lognormal(0, 0.5, 997), "slow": rng.lognormal(3, 1, 503)},
                            warmup={"fast": 50}, errors={"slow": 7})
    summary = summarize(trace)
    measured = trace.requests[~trace.requests["warmup"]]
    _check_against_numpy(summary, measured)
    counts = summary.set_index("template")
    assert counts.loc["fast", "count"] == 947 and counts.loc["slow", "errors"] == 7
    assert counts.loc[ALL, "count"] == 947 + 503
    with_warmup = summarize(trace, include_warmup=True)
    assert with_warmup.set_index("template").loc["fast", "count"] == 997
    _check_against_numpy(with_warmup, trace.requests)


def test_percentiles_equal_numpy_on_a_real_replay(tmp_path) -> None:
    db = make_items_db(tmp_path / "items.sqlite")
    workload = toy_workload(tmp_path, scan_weight=0.5, session_weight=0.2)
    trace = replay(workload, sqlite_target(db), rate=400, requests=300, warmup=0.1,
                   progress=False)
    summary = summarize(trace)
    _check_against_numpy(summary, trace.measured)
    row = summary.set_index("template").loc[ALL]
    measured = trace.measured
    assert row["rows_returned"] == measured["rows_returned"].sum()
    assert row["efficiency"] == pytest.approx(
        measured["rows_returned"].sum() / measured["rows_read"].sum())
    window_s = (measured["done_ns"].max() - measured["intended_ns"].min()) / 1e9
    assert row["rate_per_s"] == pytest.approx(len(measured) / window_s)


def test_index_hit_rate_by_count_and_by_time() -> None:
    trace = synthetic_trace({"pk": np.full(30, 1.0), "scan": np.full(10, 7.0)})
    requests = trace.requests
    requests.loc[requests["template"] == "scan", "all_indexed"] = False
    requests.loc[requests["template"] == "scan", "plan_class"] = "full_scan"
    summary = summarize(requests).set_index("template")
    assert summary.loc["pk", "index_hit_rate"] == 1.0
    assert summary.loc["scan", "index_hit_rate"] == 0.0
    assert summary.loc["scan", "index_hit_rate_time"] == 0.0
    assert summary.loc[ALL, "index_hit_rate"] == pytest.approx(30 / 40)
    assert summary.loc[ALL, "index_hit_rate_time"] == pytest.approx(30 / (30 + 70))
    assert summary.loc["scan", "plan_class"] == "full_scan"
    assert pd.isna(summary.loc[ALL, "plan_class"])


def test_intervals_count_every_measured_request() -> None:
    trace = synthetic_trace({"a": np.full(200, 10.0)})  # back to back: 2 s of 10 ms requests
    per_second = intervals(trace, seconds=0.5)
    assert per_second["count"].sum() == 200
    assert list(per_second["t_s"]) == [0.0, 0.5, 1.0, 1.5]
    with pytest.raises(UsageError):
        intervals(trace, seconds=0)


def test_compare_flags_a_tenfold_change_and_not_noise() -> None:
    rng = np.random.default_rng(7)
    before = synthetic_trace({"q": rng.lognormal(0, 0.4, 300), "same": rng.lognormal(1, 0.4, 300)})
    after = synthetic_trace({"q": 10 * rng.lognormal(0, 0.4, 300),
                             "same": rng.lognormal(1, 0.4, 300)})
    table = compare(before, after).set_index("template")
    assert table.loc["q", "change"] == "slower" and table.loc["q", "p_value"] < 1e-6
    assert table.loc["q", "ratio"] == pytest.approx(10, rel=0.25)
    assert table.loc["same", "change"] == "not significant"
    assert table.loc["same", "p_value"] > 0.05
    reverse = compare(after, before).set_index("template")
    assert reverse.loc["q", "change"] == "faster"
    assert compare(before, before).set_index("template").loc["q", "change"] == "not significant"


def test_compare_on_real_replays_sees_a_slow_target(tmp_path) -> None:
    db = make_items_db(tmp_path / "items.sqlite")
    workload = toy_workload(tmp_path)
    fast = replay(workload, HookTarget(sqlite_target(db), sleep_each(0.0005)), concurrency=1,
                  requests=40, progress=False)
    slow = replay(workload, HookTarget(sqlite_target(db), sleep_each(0.005)), concurrency=1,
                  requests=40, progress=False)
    table = compare(fast, slow).set_index("template")
    assert table.loc["item_by_id", "change"] == "slower"
    assert table.loc["item_by_id", "rows_read_before"] == table.loc["item_by_id", "rows_read_after"]


def test_compare_reports_templates_seen_in_one_trace_only() -> None:
    a = synthetic_trace({"old": np.ones(5), "both": np.ones(5)})
    b = synthetic_trace({"new": np.ones(5), "both": np.ones(5)})
    table = compare(a, b).set_index("template")
    assert table.loc["old", "change"] == "only before"
    assert table.loc["new", "change"] == "only after"


def test_compare_refuses_other_machines_or_corpora_and_names_them() -> None:
    a = synthetic_trace({"q": np.ones(5)})
    other = synthetic_trace({"q": np.ones(5)}, meta={
        "machine": {"system": "Darwin", "cpu_count": 2, "host": "h1"},
        "corpus": {"digest": "c9"}})
    with pytest.raises(UsageError) as info:
        compare(a, other)
    assert "machine (system: Linux vs Darwin)" in str(info.value)
    compare_forced = compare(a, other, force=True)
    assert len(compare_forced) == 2
    no_corpus = synthetic_trace({"q": np.ones(5)}, meta={"corpus": None})
    assert len(compare(a, no_corpus)) == 2  # unknown is not different
    with pytest.raises(UsageError, match="alpha"):
        compare(a, a, alpha=1.5)


def test_index_hit_rates_agree_with_the_plans_module(tmp_path) -> None:
    from d1bench.plans import index_hit_rates

    db = make_items_db(tmp_path / "items.sqlite")
    workload = toy_workload(tmp_path, scan_weight=1, session_weight=0.5)
    trace = replay(workload, sqlite_target(db), concurrency=2, requests=120, progress=False)
    ours = summarize(trace).set_index("template")
    theirs = index_hit_rates(trace.measured).set_index("template")
    assert 0 < ours.loc[ALL, "index_hit_rate"] < 1
    for name in ours.index:
        assert ours.loc[name, "index_hit_rate"] == pytest.approx(theirs.loc[name, "hit_rate"])
        assert ours.loc[name, "index_hit_rate_time"] == pytest.approx(
            theirs.loc[name, "time_hit_rate"])
