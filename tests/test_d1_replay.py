"""The ``medical`` workload replayed through a real local D1 (Miniflare) holding the small corpus.

Issue 5's first "done when": the suite starts local D1, uploads a small corpus,
replays the medical workload's reads through it, and checks that rows read and
rows written come from D1's own ``meta``.  And a workload that writes is refused
before anything is sent unless writes are allowed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from d1bench import load_workload, replay
from d1bench.errors import UsageError

pytestmark = pytest.mark.d1local

UNITS = 300


@pytest.fixture(scope="module")
def read_trace(local_d1_corpus, small_corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    """One closed-loop replay of the medical reads through local D1 (shared by the checks)."""
    from d1bench.targets import open_target

    workload = load_workload("medical").reads_only()
    out = tmp_path_factory.mktemp("d1-replay") / "medical-reads.parquet"
    # Values are drawn from the local copy of the corpus D1 holds: binding sends nothing to D1.
    with open_target(f"sqlite:{small_corpus}", readonly=True) as local, \
            local.connect() as bind_conn, local_d1_corpus.target() as target:
        assert target.allow_writes is False
        trace = replay(workload, target, concurrency=4, requests=UNITS, seed=5,
                       bind_conn=bind_conn, corpus=small_corpus, progress=False,
                       trace_path=out)
    return workload, trace


def test_the_reads_ran_on_local_d1_and_every_request_is_accounted_for(read_trace) -> None:
    workload, trace = read_trace
    r = trace.requests
    meta = trace.meta
    assert meta["target"]["target_kind"] == "d1-local"
    assert meta["schedule"]["engine"] == "asyncio"
    assert meta["workload"]["templates"] == list(workload.templates)
    assert not meta["interrupted"]
    assert r["error_class"].isna().all(), r["error"].dropna().unique()[:5]
    assert meta["errors"] == 0 and meta["dropped"] == 0
    # Every unit drawn ran, and every statement it sent is a row (a session sends several).
    assert meta["units_started"] == UNITS
    assert sorted(r["unit_index"].unique()) == list(range(UNITS))
    assert meta["statements"] == len(r)
    assert len(r) > UNITS  # the N+1 session was drawn and ran its per-row steps
    sessions = r[r["kind"] == "session"]
    assert set(sessions["unit"]) == {"specialty_reviews_n_plus_1"}
    assert set(sessions["template"]) == {"list_specialty_papers", "paper_reviews"}
    # Statements were answered: the trace written to disk holds the same rows.
    assert trace.path is not None and Path(trace.path).is_file()
    assert set(r["template"]) <= set(workload.templates)
    assert len(set(r["template"])) >= len(workload.templates) - 2, set(r["template"])


def test_rows_read_and_written_are_d1s_own_meta(read_trace, small_corpus: Path) -> None:
    from d1bench.corpus import describe_corpus

    _, trace = read_trace
    r = trace.requests
    assert r["rows_read"].notna().all() and r["rows_written"].notna().all()
    # Every medical read template reads at least one table: D1 billed rows for each request.
    assert (r["rows_read"] > 0).all(), r.loc[r["rows_read"] <= 0, "template"].unique()
    assert (r["rows_written"] == 0).all()
    # Counts as workerd's counters give them, not a guess: a primary-key lookup reads
    # exactly 1, and ranking a specialty's papers scans the whole papers table.
    papers = describe_corpus(small_corpus)["papers"]
    by_id = r[r["template"] == "paper_by_id"]
    assert len(by_id) > 0 and (by_id["rows_read"] == 1).all()
    top = r[r["template"] == "top_cited_in_specialty"]
    assert len(top) > 0 and (top["rows_read"] >= papers).all()
    # The rest of D1's meta travels in `extra`: fields only D1 reports, never SQLite.
    extras = [json.loads(x) for x in r["extra"].dropna()]
    assert len(extras) == len(r)
    assert all("size_after" in x and x.get("changed_db") is False for x in extras), extras[:2]
    assert (r["db_duration_ms"] >= 0).all()
    assert (r["attempts"] == 1).all()


def test_plan_classes_are_recorded_for_every_template(read_trace) -> None:
    workload, trace = read_trace
    plans = trace.meta["plans"]
    assert set(plans) == set(workload.templates)
    for name, plan in plans.items():
        assert plan["plan_class"], (name, plan)
        assert plan["plan"], name  # D1's own EXPLAIN QUERY PLAN rows
    assert plans["paper_by_id"]["plan_class"] == "primary_key"
    r = trace.requests
    assert r["plan_class"].notna().all()
    for template, classes in r.groupby("template")["plan_class"]:
        assert set(classes) == {plans[template]["plan_class"]}, template


def test_with_write_weight_zero_still_counts_as_a_writing_workload(local_d1_corpus,
                                                                  small_corpus: Path) -> None:
    """The guard judges templates, not weights: a weight-0 write template still needs
    ``allow_writes`` (a session could step into it), hence :meth:`Workload.reads_only`."""
    from d1bench.targets import open_target

    workload = load_workload("medical").with_write_weight(0)
    with open_target(f"sqlite:{small_corpus}", readonly=True) as local, \
            local.connect() as bind_conn, local_d1_corpus.target() as target, \
            pytest.raises(UsageError, match="record_reading"):
        replay(workload, target, concurrency=1, requests=3, bind_conn=bind_conn,
               progress=False)


@pytest.mark.parametrize("write_weight", [None, 1.0], ids=["as-shipped", "all-writes"])
def test_the_full_medical_workload_is_refused_up_front_without_allow_writes(
        local_d1_corpus, small_corpus: Path, tmp_path: Path, write_weight: float | None) -> None:
    from d1bench.targets import open_target

    workload = load_workload("medical")
    if write_weight is not None:
        workload = workload.with_write_weight(write_weight)
    out = tmp_path / "refused.parquet"
    with open_target(f"sqlite:{small_corpus}", readonly=True) as local, \
            local.connect() as bind_conn, local_d1_corpus.target() as target:
        before = _reading_history_rows(target)
        # Without the guard in replay(), every unit of the all-writes variant would be
        # refused one by one by the read-only connection and recorded as an error:
        # a trace, not an exception.
        with pytest.raises(UsageError) as caught:
            replay(workload, target, concurrency=2, requests=20, bind_conn=bind_conn,
                   progress=False, trace_path=out)
        after = _reading_history_rows(target)
    message = str(caught.value)
    assert "record_reading" in message and "bump_citation_count" in message
    assert "allow-writes" in message or "allow_writes" in message
    assert "medical" in message
    # Nothing sent, nothing recorded.
    assert before == after
    assert not out.exists()


def _reading_history_rows(target) -> int:
    with target.connect() as conn:
        return int(conn.execute("SELECT count(*) FROM reading_history").rows[0][0])


def test_reads_only_keeps_every_read_and_nothing_that_writes() -> None:
    medical = load_workload("medical")
    reads = medical.reads_only()
    assert set(reads.templates) == {n for n, t in medical.templates.items() if not t.is_write}
    assert not any(t.is_write for t in reads.templates.values())
    assert reads.digest != medical.digest and set(reads.sessions) <= set(medical.sessions)


def test_a_bad_token_is_caught_by_the_health_check_before_anything_is_drawn(
        local_d1_corpus, small_corpus: Path, tmp_path: Path) -> None:
    """Every run starts with the target's health check; its message says what to fix."""
    from d1bench.targets.d1 import D1Target

    d1 = local_d1_corpus
    out = tmp_path / "never.parquet"
    with D1Target(d1.base_url, d1.account_id, d1.database_id, "not-the-token") as target, \
            pytest.raises(UsageError, match="CLOUDFLARE_API_TOKEN") as exc:
        replay(load_workload("medical").reads_only(), target, concurrency=1, requests=3,
               progress=False, trace_path=out)
    assert "not-the-token" not in str(exc.value)
    assert not out.exists()


def test_allowing_writes_on_a_read_only_target_is_refused_with_the_fix(
        local_d1_corpus, small_corpus: Path) -> None:
    """``replay(allow_writes=True)`` on a target opened read-only would turn every write
    into an error; it is refused up front, saying how to open the target."""
    from d1bench.targets import open_target

    with open_target(f"sqlite:{small_corpus}", readonly=True) as local, \
            local.connect() as bind_conn, local_d1_corpus.target() as target, \
            pytest.raises(UsageError, match="allow_writes=True"):
        replay(load_workload("medical"), target, concurrency=1, requests=3,
               bind_conn=bind_conn, allow_writes=True, progress=False)
