"""Replays sized by the runs their percentiles need: ``min_executions`` tops up rare templates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from d1bench import load_trace, load_workload, replay
from d1bench.analysis import percentile_support
from d1bench.claims import runs_needed
from d1bench.errors import UsageError


def _measured_counts(trace) -> dict[str, int]:
    req = trace.requests
    req = req[~req["warmup"].astype(bool)]
    return req.groupby("template").size().to_dict()


def _query_templates(workload) -> list[str]:
    return [n for n, t in workload.templates.items() if t.weight > 0]


@pytest.mark.parametrize("schema", ["medical", "saas"])
def test_every_template_reaches_the_minimum(schema, small_corpus, saas_db, tmp_path):
    from schemas import workload_path

    db, wl = (small_corpus, load_workload("medical").reads_only()) if schema == "medical" \
        else (saas_db, load_workload(workload_path("saas")).reads_only())
    # 40 units in all: templates of weight 1 in 100 would get none without the top-up.
    plain = replay(wl, f"sqlite:{db}", rate=200, requests=40, seed=3, progress=False)
    topped = replay(wl, f"sqlite:{db}", rate=200, requests=40, seed=3, progress=False,
                    min_executions=6, topup_caps={"count_all_tasks": 2} if schema == "saas" else None)
    before, after = _measured_counts(plain), _measured_counts(topped)
    names = _query_templates(wl)
    assert any(before.get(n, 0) < 6 for n in names), "the plain run leaves some template short"
    for name in names:
        want = 2 if name == "count_all_tasks" and schema == "saas" else 6
        assert after.get(name, 0) >= min(want, 6), (name, after.get(name, 0))
        # The mix is kept as drawn: the top-up only adds.
        assert after.get(name, 0) >= before.get(name, 0)
    sched = topped.meta["schedule"]
    added = sum(sched["topup"].values())
    assert sched["min_executions"] == 6 and sched["topup_units"] == added > 0
    # The same mix first, then exactly the added units.
    first = plain.requests.sort_values("unit_index").drop_duplicates("unit_index")["unit"].tolist()
    again = topped.requests.sort_values("unit_index").drop_duplicates("unit_index")["unit"].tolist()
    assert again[:len(first)] == first and len(again) == len(first) + added


def test_caps_bound_a_slow_template(small_corpus):
    wl = load_workload("medical").reads_only()
    trace = replay(wl, f"sqlite:{small_corpus}", rate=300, requests=20, seed=1, progress=False,
                   min_executions=4, topup_caps={"semantic_search": 0})
    counts = _measured_counts(trace)
    mixed = trace.meta["schedule"]["topup"]
    assert "semantic_search" not in mixed, "a cap of 0 adds nothing"
    assert counts.get("paper_reviews", 0) >= 4
    assert trace.meta["schedule"]["topup_caps"] == {"semantic_search": 0}


def test_duration_bound_run_keeps_its_top_up(small_corpus):
    """The drop deadline moves past the top-up: its units are sent, not dropped."""
    wl = load_workload("medical").reads_only()
    trace = replay(wl, f"sqlite:{small_corpus}", rate=100, duration=0.3, seed=2, progress=False,
                   min_executions=5, topup_caps={"semantic_search": 1})
    req = trace.requests
    assert (req["error_class"] == "dropped").sum() == 0
    counts = _measured_counts(trace)
    assert all(counts.get(n, 0) >= 5 for n in _query_templates(wl) if n != "semantic_search")


def _check_back_to_back(trace, wl) -> None:
    sched, req = trace.meta["schedule"], trace.requests.sort_values(["sent_ns", "step"])
    assert sched["topup_mode"] == "closed loop, one worker, after the mix"
    first_topup = sched["units_scheduled"] - sched["topup_units"]
    top = req[req["unit_index"] >= first_topup]
    mix = req[req["unit_index"] < first_topup]
    assert top["unit_index"].nunique() == sched["topup_units"] >= 20, sched
    assert top["worker"].nunique() == 1
    assert top["sent_ns"].min() >= mix["intended_ns"].max(), "after the mix's last unit is due"
    firsts = top[top["step"] == 0]
    assert (firsts["sent_ns"] - firsts["intended_ns"]).between(0, 1e6).all(), "intended when sent"
    assert (top["sent_ns"].to_numpy()[1:] >= top["done_ns"].to_numpy()[:-1]).all(), "one at a time"
    counts = _measured_counts(trace)
    capped = set(trace.meta["schedule"]["topup_caps"])
    assert all(counts.get(n, 0) >= 3 for n in _query_templates(wl) if n not in capped)


#: One unit every four seconds, about a million papers' rate without indexes: the top-up's
#: 40-odd units would take minutes at it.
SLOW = {"rate": 0.25, "requests": 2, "min_executions": 3}


@pytest.mark.parametrize("schema", ["medical", "saas"])
def test_the_top_up_runs_back_to_back_after_the_mix(schema, small_corpus, saas_db):
    """One worker sends the top-up back to back, each unit intended when sent, after the mix."""
    from schemas import workload_path

    db, wl = (small_corpus, load_workload("medical").reads_only()) if schema == "medical" \
        else (saas_db, load_workload(workload_path("saas")).reads_only())
    caps = {"semantic_search": 1} if schema == "medical" else {"search_comments_like": 1}
    _check_back_to_back(replay(wl, f"sqlite:{db}", seed=4, progress=False, topup_caps=caps,
                               **SLOW), wl)


def test_the_top_up_runs_back_to_back_on_local_d1(local_d1_corpus, small_corpus):
    from d1bench.targets import open_target

    wl = load_workload("medical").reads_only()
    with open_target(f"sqlite:{small_corpus}") as local, local.connect() as bind_conn, \
            local_d1_corpus.target() as target:
        trace = replay(wl, target, seed=4, bind_conn=bind_conn, corpus=small_corpus,
                       progress=False, topup_caps={"semantic_search": 1}, **SLOW)
    assert trace.meta["schedule"]["engine"] == "asyncio"
    _check_back_to_back(trace, wl)


def test_bad_options_are_refused():
    with pytest.raises(UsageError, match="min_executions"):
        replay("medical", "sqlite:/nonexistent", concurrency=2, min_executions=5)
    with pytest.raises(UsageError, match="min_executions must be a whole number"):
        replay("medical", "sqlite:/nonexistent", min_executions=0)
    with pytest.raises(UsageError, match="give min_executions too"):
        replay("medical", "sqlite:/nonexistent", topup_caps={"semantic_search": 1})


def test_rule_and_marking():
    assert [runs_needed(q) for q in (0.5, 0.95, 0.99)] == [10, 100, 500]
    import pandas as pd

    summary = pd.DataFrame({"template": ["a", "b"], "count": [600, 40], "errors": [0, 0],
                            "dropped": [0, 0], "p50_ms": [1.0, 2.0], "p95_ms": [3.0, 4.0],
                            "p99_ms": [5.0, 6.0]})
    shown = percentile_support(summary).set_index("template")
    assert shown.loc["a", "p99"] == "5.00 (n=600)"
    assert shown.loc["b", "p50"] == "2.00 (n=40)"
    assert shown.loc["b", "p99"] == "6.00? (n=40 < 500)"
    assert shown.loc["b", "p95"] == "4.00? (n=40 < 100)"


def test_cli_min_executions(small_corpus, tmp_path):
    out = tmp_path / "t.parquet"
    done = subprocess.run([sys.executable, "-m", "d1bench", "replay", "--target",
                           f"sqlite:{small_corpus}", "--trace", str(out), "--reads-only",
                           "--rate", "300", "--requests", "20", "--min-executions", "3",
                           "--topup-cap", "semantic_search=1", "--no-progress"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    trace = load_trace(out)
    assert trace.meta["schedule"]["min_executions"] == 3
    assert "topped up" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "d1bench", "replay", "--target",
                          f"sqlite:{small_corpus}", "--trace", str(tmp_path / "u.parquet"),
                          "--topup-cap", "semantic_search", "--min-executions", "3"],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "TEMPLATE=N" in bad.stderr and "Traceback" not in bad.stderr
    assert not Path(tmp_path / "u.parquet").exists()
