"""--verify: the advice is built on a copy and the workload replayed before and after,
through the SQLite target, until every template's mean rows read is known within 5%;
a template is called slower only when the change is significant and larger than the
minimum effect, and never when its plan and rows did not change."""

from __future__ import annotations

from pathlib import Path

import apsw
import numpy as np
import pandas as pd
import pytest

from d1bench.advisor import advise
from d1bench.advisor.sequential import MIN_EXECUTIONS, Rounds
from d1bench.advisor.verify import TARGET_RSE, VERIFY_COLUMNS, _compare

FIXTURES = Path(__file__).parent / "fixtures" / "advice"


def _db(tmp_path: Path, case: str) -> Path:
    db = tmp_path / f"{case}.sqlite"
    conn = apsw.Connection(str(db))
    conn.execute((FIXTURES / case / "schema.sql").read_text(encoding="utf-8"))
    conn.close()
    return db


def test_verify_measures_the_saving(tmp_path: Path) -> None:
    db = _db(tmp_path, "order_limit")
    before = db.read_bytes()
    advice = advise(db, FIXTURES / "order_limit" / "workload.toml", verify=True, verify_requests=60)
    v = advice.verification
    assert v is not None and list(v.columns) == VERIFY_COLUMNS
    rows = v.set_index("template")
    # a full scan of 20,000 rows and a sort, then an index walk that stops at LIMIT 10
    assert rows.loc["top_scores", "rows_read_before"] >= 20_000
    assert rows.loc["top_scores", "rows_read_after"] <= 12
    assert rows.loc["by_id", "rows_read_after"] == rows.loc["by_id", "rows_read_before"] == 1
    assert rows.loc["by_id", "latency_change"] == "unchanged plan"
    assert rows["executions_before"].sum() == rows["executions_after"].sum() > 0
    # latency on a shared machine is noisy; rows read are not
    assert not any("reads" in why for why in rows["why"]), rows[rows["worse"]]
    assert v.attrs["rows_read_per_unit_after"] < 0.01 * v.attrs["rows_read_per_unit_before"]
    assert v.attrs["fidelity"] == 1.0, rows[["rows_read_predicted", "rows_read_same_values"]]
    assert db.read_bytes() == before  # built and replayed on copies only


#: Each case's migration for the tests that take one: an index its workload uses.
_MIGRATIONS = {"saas": "CREATE INDEX tasks_by_tenant ON tasks (tenant_id, status);",
               "order_limit": "CREATE INDEX events_account_score ON events (account, score);",
               "shop": "CREATE INDEX orders_customer ON orders (customer_id);"}


def _case(case: str, tmp_path: Path, saas_db: Path) -> tuple[Path, Path, str]:
    """A case's database (a copy), its workload file and its migration."""
    if case == "saas":
        from schemas import workload_path

        db = tmp_path / "saas.sqlite"
        db.write_bytes(saas_db.read_bytes())
        return db, workload_path("saas"), _MIGRATIONS[case]
    return _db(tmp_path, case), FIXTURES / case / "workload.toml", _MIGRATIONS[case]


@pytest.mark.parametrize("case", ["order_limit", "saas"])
def test_verify_hashes_no_copy_of_the_corpus(case: str, tmp_path: Path, saas_db: Path,
                                             monkeypatch) -> None:
    """The copies verify replays hold the corpus's rows under other indexes: their content
    digest is the corpus's, and no copy's rows are hashed again (minutes at a million papers)."""
    from d1bench.advisor.verify import verify
    from d1bench.corpus import describe

    db, workload, migration = _case(case, tmp_path, saas_db)
    describe.content_digest(db)  # the corpus's own, as a replay of it would have found it
    hashed: list[str] = []
    real = describe._rows_digest

    def counting(conn):
        hashed.append(conn.filename)
        return real(conn)

    monkeypatch.setattr(describe, "_rows_digest", counting)
    v = verify(db, workload, migration, requests=40, max_requests=80)
    assert len(v) > 0 and v["executions_before"].sum() > 0
    assert hashed == [], hashed


@pytest.mark.slow
def test_verify_replays_until_each_mean_is_known(tmp_path: Path) -> None:
    """The shop's rare templates (a coupon retired once in 120 units) and the skewed ones
    (customers per country) get rounds of their own until their means are known."""
    db = _db(tmp_path, "shop")
    wl = FIXTURES / "shop" / "workload.toml"
    advice = advise(db, wl, verify=True, verify_requests=60, verify_max_requests=1500)
    v = advice.verification.set_index("template")
    assert v.attrs["rounds"] > 1 and 60 < v.attrs["requests_replayed"] <= 1500
    for name, row in v.iterrows():
        assert row["executions_after"] >= MIN_EXECUTIONS, name
        assert row["rows_read_rse_after"] <= TARGET_RSE, (name, row["rows_read_rse_after"])
    # writes are shown before and after: a new review also writes its product_id entry
    assert v.loc["new_review", "rows_written_before"] == 1.0
    assert v.loc["new_review", "rows_written_after"] == 2.0
    # predicted against measured on the same values, per template
    assert v.attrs["fidelity"] >= 0.9, v[["rows_read_predicted", "rows_read_same_values"]]
    # with the cap at the first round, there is no second one and the rare template stays vague
    capped = advise(db, wl, verify=True, verify_requests=60, verify_max_requests=60).verification
    assert capped.attrs["rounds"] == 1 and capped.attrs["requests_replayed"] == 60
    assert (capped["rows_read_rse_after"] > TARGET_RSE).any()


def _rounds(before: dict[str, tuple[float, list[float]]],
            after: dict[str, tuple[float, list[float]]]) -> Rounds:
    def frame(spec: dict[str, tuple[float, list[float]]]) -> pd.DataFrame:
        rows = [{"template": n, "unit": i, "rows_read": reads, "rows_written": 0.0,
                 "service_ms": ms} for n, (reads, times) in spec.items()
                for i, ms in enumerate(times)]
        return pd.DataFrame(rows)
    return Rounds(frame(before), frame(after), {n: 1.0 for n in before}, 100, 1)


def test_slower_only_when_significant_and_larger_than_the_minimum_effect() -> None:
    rng = np.random.default_rng(0)
    base = list(rng.normal(1.0, 0.05, 200))
    runs = _rounds(
        {"untouched": (5.0, base), "slightly": (50.0, base), "twice": (50.0, base)},
        {"untouched": (5.0, [3 * x for x in base]),   # same plan and rows: the clock lies
         "slightly": (40.0, [1.1 * x for x in base]),  # significant, but 10% < 25%
         "twice": (40.0, [2.0 * x for x in base])})
    plans = {"untouched": (["SCAN t"], ["SCAN t"]), "slightly": (["SCAN t"], ["SEARCH t"]),
             "twice": (["SCAN t"], ["SEARCH t"])}
    out = _compare(runs, plans, None, 0.25, {}).set_index("template")
    assert out.loc["untouched", "latency_change"] == "unchanged plan"
    assert not out.loc["untouched", "worse"]
    assert out.loc["slightly", "latency_change"].startswith("under the minimum effect")
    assert not out.loc["slightly", "worse"] and out.loc["slightly", "p_value"] < 0.05
    assert out.loc["twice", "latency_change"] == "slower" and out.loc["twice", "worse"]
    # the minimum effect is an option: at 5%, the 10% change counts
    strict = _compare(runs, plans, None, 0.05, {}).set_index("template")
    assert strict.loc["slightly", "latency_change"] == "slower"


@pytest.mark.slow
def test_verify_medical_on_small_corpus(small_corpus: Path) -> None:
    """FTS5 templates, sessions and writes replay on both copies; nothing indexable gets worse,
    and no template whose plan did not change is called slower."""
    advice = advise(small_corpus, "medical", verify=True, verify_requests=80,
                    verify_max_requests=120)
    v = advice.verification.set_index("template")
    for name in ("top_cited_in_specialty", "list_specialty_papers", "paper_reviews"):
        assert v.loc[name, "rows_read_after"] < 0.2 * v.loc[name, "rows_read_before"], name
    assert not any("reads" in why for why in v["why"]), v[v["worse"]]
    assert not any(v.loc[~v["plan_changed"] & ~v.index.isin(["record_reading",
                                                              "bump_citation_count"]), "worse"])
    assert v.attrs["rows_read_per_unit_after"] < v.attrs["rows_read_per_unit_before"]


@pytest.mark.slow
def test_verify_rules_hold_on_saas(saas_db: Path) -> None:
    """The verify rules on a schema besides medical and shop: each template is replayed until
    its mean rows read is known within 5% (or the cap is reached), rows written are shown
    before and after, and a template is called slower only when the difference is
    significant and larger than the minimum effect, never when its plan and rows held."""
    from schemas import workload_path

    from d1bench.advisor.verify import MIN_EFFECT, WORSE_LATENCY

    before = saas_db.read_bytes()
    cap = 900
    advice = advise(saas_db, workload_path("saas"), verify=True, verify_requests=60,
                    verify_max_requests=cap)
    v = advice.verification.set_index("template")
    assert 60 <= v.attrs["requests_replayed"] <= cap
    if v.attrs["requests_replayed"] < cap:  # it stopped before the cap: every mean is known
        for name, row in v.iterrows():
            assert row["rows_read_rse_after"] <= TARGET_RSE, (name, row["rows_read_rse_after"])
    # saas's writes are measured on both copies; an index on a written table adds its entry
    written = v[v["rows_written_after"] > 0]
    assert not written.empty
    assert (written["rows_written_after"] >= written["rows_written_before"]).all()
    for name, row in v.iterrows():
        if row["latency_change"] == "slower":
            assert row["p_value"] < WORSE_LATENCY and row["latency_effect"] > MIN_EFFECT, name
        elif row["latency_change"].startswith("under the minimum effect"):
            assert row["p_value"] < WORSE_LATENCY and abs(row["latency_effect"]) <= MIN_EFFECT
        held = (not row["plan_changed"] and row["rows_read_after"] == row["rows_read_before"]
                and row["rows_written_after"] == row["rows_written_before"])
        if held:
            assert row["latency_change"] == "unchanged plan" and not row["worse"], name
    assert (v["latency_change"] == "unchanged plan").any()
    assert saas_db.read_bytes() == before  # built and replayed on copies only


def test_a_round_cut_to_the_time_left_runs_the_cheapest_templates_first() -> None:
    from d1bench.advisor.sequential import _fit

    runs = _rounds({"fast": (1.0, [1.0] * 5), "slow": (1.0, [2000.0] * 5)},
                   {"fast": (1.0, [1.0] * 5), "slow": (1.0, [2000.0] * 5)})
    # a pair of "fast" costs 2.2 ms, of "slow" 4.4 s: 10 s leave all of fast and 2 slow
    assert _fit({"fast": 100, "slow": 5}, runs, 10.0) == {"fast": 100, "slow": 2}
    assert _fit({"fast": 100, "slow": 5}, runs, 0.1) == {"fast": 45}
    assert _fit({"fast": 100, "slow": 5}, runs, 0.0) == {}
    # a template not run yet is costed at the mean of all executions
    assert _fit({"new": 10}, runs, 1.0) == {}


@pytest.mark.parametrize("case", ["shop", "saas"])
def test_verify_stops_at_its_time_limit_and_says_so(case: str, tmp_path: Path,
                                                    saas_db: Path) -> None:
    """--max-seconds bounds the rounds after the first (a million papers without indexes
    take seconds a unit); the weights of the totals are the workload's own frequencies,
    so a short first round weighs a rare template as the mix does, not by chance."""
    from d1bench.advisor.sequential import sequential
    from d1bench.advisor.verify import copy_corpus, verify
    from d1bench.workload import load_workload

    db, wl_path, migration = _case(case, tmp_path, saas_db)
    free = verify(db, wl_path, migration, requests=20, max_requests=600)
    timed = verify(db, wl_path, migration, requests=20, max_requests=600, max_seconds=1e-6)
    assert free.attrs["requests_replayed"] > 20 and free.attrs["stopped"] in {"known", "cap"}
    assert timed.attrs["stopped"] == "time" and timed.attrs["requests_replayed"] == 20
    assert timed.attrs["rounds"] == 1
    wl = load_workload(wl_path)
    model = wl.template_frequencies()
    looped = {s.template for sess in wl.sessions.values() for s in sess.steps if s.for_each_row}
    a, b = copy_corpus(db, tmp_path / "a.sqlite"), copy_corpus(db, tmp_path / "b.sqlite")
    runs = sequential(a, b, wl, first=20, cap=20, seed=0, target_rse=0.05)
    assert runs.stopped == "cap"
    for name, rate in model.items():
        if rate > 0 and name not in looped:
            assert runs.per_unit[name] == pytest.approx(rate), name
    ran = set(runs.before["template"]) & set(runs.after["template"])
    assert runs.unmeasured() == sorted(n for n in runs.per_unit if n not in ran)


@pytest.mark.parametrize("case", ["shop", "saas"])
def test_same_values_runs_keep_to_the_time_limit_and_leave_the_copy_alone(
        case: str, tmp_path: Path, saas_db: Path) -> None:
    """The prediction's values run once each (every one of them without a limit; with one,
    the first of each and then what the time allows), inside a savepoint: the write
    templates' values leave the copy as it was."""
    from d1bench.advisor.verify import _run_values
    from d1bench.workload import load_workload

    db, wl_path, _ = _case(case, tmp_path, saas_db)
    wl = load_workload(wl_path)
    priced = advise(db, wl).priced
    assert any(wl.templates[n].is_write for n in priced), "the case has write templates"
    before = db.read_bytes()
    every = _run_values(db, wl, priced)
    first = _run_values(db, wl, {n: v[:1] for n, v in priced.items()})
    limited = _run_values(db, wl, priced, max_seconds=1e-6)
    assert db.read_bytes() == before
    assert set(every) == set(first) == set(limited) and len(every) > 3
    assert limited == first
    assert any(every[n] != first[n] for n in every), "the other values read other rows"
    assert _run_values(db, wl, priced) == every, "the writes were undone: the same again"


def test_the_time_limit_counts_from_the_end_of_the_first_round(tmp_path: Path, monkeypatch) -> None:
    """A first round slower than --max-seconds still leaves the rounds after it their time
    (at a million papers the first round alone takes minutes)."""
    from d1bench.advisor import sequential as seq
    from d1bench.advisor.verify import copy_corpus
    from d1bench.workload import load_workload

    db = _db(tmp_path, "shop")
    wl = load_workload(FIXTURES / "shop" / "workload.toml")
    clock = [0.0]
    real = seq._pair

    def slow_first(*args, **kwargs):
        if not clock[0]:
            clock[0] = 1000.0  # the first round "took" 1,000 s
        return real(*args, **kwargs)

    monkeypatch.setattr(seq, "_pair", slow_first)
    monkeypatch.setattr(seq, "_clock", lambda: clock[0])
    a, b = copy_corpus(db, tmp_path / "a.sqlite"), copy_corpus(db, tmp_path / "b.sqlite")
    runs = seq.sequential(a, b, wl, first=20, cap=400, seed=0, target_rse=0.05, max_seconds=500)
    assert runs.rounds > 1 and runs.spent > 20 and runs.stopped != "time"
