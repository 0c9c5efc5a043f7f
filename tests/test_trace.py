"""Traces: Parquet round trip with metadata and histograms, merging, refusing bad files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from replay_support import make_items_db, sqlite_target, synthetic_trace, toy_workload

from d1bench import load_trace, replay
from d1bench.errors import UsageError
from d1bench.trace import COLUMNS, FORMAT_VERSION, Trace


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Trace:
    tmp = tmp_path_factory.mktemp("trace")
    db = make_items_db(tmp / "items.sqlite")
    workload = toy_workload(tmp, scan_weight=0.3, session_weight=0.3)
    return replay(workload, sqlite_target(db), concurrency=2, requests=150, seed=3,
                  trace_path=tmp / "run.parquet", progress=False)


def test_round_trip_keeps_rows_metadata_and_histograms(recorded: Trace) -> None:
    assert recorded.path is not None and recorded.path.is_file()
    loaded = load_trace(recorded.path)
    assert list(loaded.requests.columns) == list(COLUMNS)
    pd.testing.assert_frame_equal(loaded.requests, recorded.requests)
    assert loaded.meta == json.loads(json.dumps(recorded.meta, default=str))
    assert loaded.meta["format_version"] == FORMAT_VERSION
    assert loaded.meta["workload"]["name"] == "toy"
    assert loaded.meta["seed"] == 3 and loaded.meta["interrupted"] is False
    assert {"system", "cpu_count", "host"} <= set(loaded.meta["machine"])
    assert loaded.meta["sqlite_version"] and loaded.meta["d1bench_version"]
    assert set(loaded.histograms) == set(recorded.histograms) == {"item_by_id", "items_by_v",
                                                                    "list_items"}
    for name, hist in recorded.histograms.items():
        assert loaded.histograms[name].encode() == hist.encode()


def test_histograms_hold_every_measured_success_in_microseconds(recorded: Trace) -> None:
    for name, hist in recorded.histograms.items():
        rows = recorded.requests[(recorded.requests["template"] == name)
                                 & recorded.requests["error_class"].isna()]
        assert hist.get_total_count() == len(rows)
        # HdrHistogram keeps 3 significant digits: its max is within 0.1% of the real one.
        real_max_us = rows["response_ms"].max() * 1000
        assert hist.get_max_value() == pytest.approx(real_max_us, rel=2e-3, abs=1)


def test_histograms_leave_out_warmup_and_errors() -> None:
    rng = np.random.default_rng(1)
    trace = synthetic_trace({"a": rng.uniform(1, 5, 100)}, warmup={"a": 10}, errors={"a": 5})
    assert trace.histograms["a"].get_total_count() == 85


def test_writing_refuses_to_overwrite_without_force(recorded: Trace, tmp_path) -> None:
    path = tmp_path / "t.parquet"
    recorded.save(path)
    with pytest.raises(UsageError, match="already exists"):
        recorded.save(path)
    recorded.save(path, force=True)
    assert load_trace(path).requests.shape == recorded.requests.shape
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]  # no temp files left


def test_load_refuses_missing_and_foreign_files(tmp_path) -> None:
    with pytest.raises(UsageError, match="no such trace file"):
        load_trace(tmp_path / "missing.parquet")
    text = tmp_path / "notes.parquet"
    text.write_text("not parquet at all")
    with pytest.raises(UsageError, match="not a Parquet trace"):
        load_trace(text)
    plain = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), plain)
    with pytest.raises(UsageError, match="without d1bench trace metadata"):
        load_trace(plain)


def test_load_refuses_a_newer_format(recorded: Trace, tmp_path) -> None:
    newer = Trace(recorded.requests, {**recorded.meta, "format_version": FORMAT_VERSION + 1},
                  dict(recorded.histograms))
    path = newer.save(tmp_path / "newer.parquet")
    with pytest.raises(UsageError, match="newer"):
        load_trace(path)


def test_merge_adds_requests_and_histograms(recorded: Trace) -> None:
    merged = recorded.merge(recorded)
    assert len(merged.requests) == 2 * len(recorded.requests)
    assert sorted(merged.requests["run"].unique()) == [0, 1]
    assert len(merged.runs) == 2
    for name, hist in recorded.histograms.items():
        assert merged.histograms[name].get_total_count() == 2 * hist.get_total_count()
        assert merged.histograms[name].get_value_at_percentile(99) == \
            hist.get_value_at_percentile(99)
    # Merging does not change the traces merged.
    assert recorded.requests["run"].eq(0).all()
    assert merged.merge(recorded).requests["run"].max() == 2


def test_a_merged_trace_round_trips(recorded: Trace, tmp_path) -> None:
    merged = recorded.merge(recorded)
    loaded = load_trace(merged.save(tmp_path / "merged.parquet"))
    assert len(loaded.runs) == 2 and loaded.meta["merged"] is True
    assert [r["run_id"] for r in loaded.runs] == [recorded.meta["run_id"]] * 2
    pd.testing.assert_frame_equal(loaded.requests, merged.requests)
    assert loaded.histogram().get_total_count() == merged.histogram().get_total_count()


def test_merge_refuses_other_machines_corpora_workloads_and_says_why() -> None:
    a = synthetic_trace({"q": np.ones(5)})
    cases = {
        "machine": {"machine": {"system": "Linux", "cpu_count": 8, "host": "h2"}},
        "corpus": {"corpus": {"digest": "c2"}},
        "workload": {"workload": {"name": "w", "digest": "w2"}},
    }
    for what, meta in cases.items():
        b = synthetic_trace({"q": np.ones(5)}, meta=meta)
        with pytest.raises(UsageError, match=what) as info:
            a.merge(b)
        assert "force" in str(info.value)
        assert len(a.merge(b, force=True).requests) == 10
    with pytest.raises(UsageError, match="cpu_count: 2 vs 8"):
        a.merge(synthetic_trace({"q": np.ones(5)}, meta=cases["machine"]))
