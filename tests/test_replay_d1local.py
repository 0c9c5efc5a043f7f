"""Replay over HTTP: the asyncio path against a real local D1 holding the small corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from d1bench import load_workload, replay, summarize
from d1bench.analysis import ALL
from d1bench.errors import UsageError

pytestmark = pytest.mark.d1local

READS = """
[workload]
name = "d1_reads"
format = 1

[templates.paper_by_id]
sql = "SELECT id, title FROM papers WHERE id = ?"
weight = 3
family = "retrieval"
params = [{sampler = "id", table = "papers"}]

[templates.papers_in_specialty]
sql = "SELECT id FROM papers WHERE medical_specialty = ? LIMIT 20"
weight = 1
family = "search"
params = [{sampler = "column", table = "papers", column = "medical_specialty"}]
"""


def test_open_loop_over_http_records_d1s_own_rows_read(local_d1_corpus, small_corpus: Path,
                                                       tmp_path: Path) -> None:
    from d1bench.targets import open_target

    path = tmp_path / "reads.toml"
    path.write_text(READS)
    workload = load_workload(path)
    # Parameters drawn from the local copy: binding sends no request to D1.
    with open_target(f"sqlite:{small_corpus}") as local, local.connect() as bind_conn, \
            local_d1_corpus.target() as target:
        trace = replay(workload, target, rate=150, arrival="fixed", requests=90, workers=8,
                       seed=2, bind_conn=bind_conn, corpus=small_corpus, progress=False,
                       trace_path=tmp_path / "d1.parquet")
    r = trace.requests
    assert trace.meta["schedule"]["engine"] == "asyncio"
    assert trace.meta["target"]["target_kind"] == "d1-local"
    assert trace.meta["corpus"]["papers"] == 2000
    assert r["error_class"].isna().all(), r["error"].dropna().unique()
    assert len(r) == 90
    by_id = r[r["template"] == "paper_by_id"]
    assert (by_id["rows_returned"] == 1).all()
    assert (by_id["rows_read"] == 1).all()  # D1's own count: a primary-key lookup reads 1
    assert trace.meta["plans"]["paper_by_id"]["plan_class"] == "primary_key"
    assert trace.meta["plans"]["papers_in_specialty"]["plan_class"] == "full_scan"
    summary = summarize(trace).set_index("template")
    assert summary.loc[ALL, "count"] == 90
    assert summary.loc["paper_by_id", "index_hit_rate"] == 1.0


def test_a_writing_workload_is_refused_on_d1_without_allow_writes(local_d1_corpus,
                                                                  small_corpus: Path) -> None:
    from d1bench.targets import open_target

    with open_target(f"sqlite:{small_corpus}") as local, local.connect() as bind_conn, \
            local_d1_corpus.target() as target, pytest.raises(UsageError, match="record_reading"):
        replay("medical", target, requests=5, bind_conn=bind_conn, progress=False)
