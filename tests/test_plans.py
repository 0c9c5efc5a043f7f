"""Plan classification: golden plans (SQLite's and D1's), a real engine, index hit rates."""

from __future__ import annotations

import tomllib
from pathlib import Path

import apsw
import pandas as pd
import pytest

from d1bench.plans import EXPENSE, classify_plan, index_hit_rates, plan_report, plan_text
from d1bench.targets.base import PlanStep

FIXTURES = Path(__file__).parent / "fixtures" / "plans"
SQLITE = tomllib.loads((FIXTURES / "sqlite.toml").read_text(encoding="utf-8"))
D1 = tomllib.loads((FIXTURES / "d1.toml").read_text(encoding="utf-8"))


def parse_plan(text: str) -> list[PlanStep]:
    """Steps from a plan drawn as the sqlite3 shell draws it (two spaces per level)."""
    steps: list[PlanStep] = []
    stack: list[tuple[int, int]] = [(-1, 0)]  # (level, id)
    for n, line in enumerate(l for l in text.splitlines() if l.strip()):
        level = (len(line) - len(line.lstrip(" "))) // 2
        while stack[-1][0] >= level:
            stack.pop()
        steps.append(PlanStep(n + 1, stack[-1][1], line.strip()))
        stack.append((level, n + 1))
    return steps


def expectation(case: dict) -> dict:
    return {k: case[k] for k in ("plan_class", "classes", "all_indexed", "tables_scanned")}


def outcome(info) -> dict:
    return {"plan_class": info.plan_class, "classes": sorted(info.classes),
            "all_indexed": info.all_indexed, "tables_scanned": list(info.tables_scanned)}


ALL_CASES = [pytest.param(c, id=f"sqlite:{c['name']}") for c in SQLITE["case"]] + \
            [pytest.param(c, id=f"d1:{c['name']}") for c in D1["case"]]


@pytest.mark.parametrize("case", ALL_CASES)
def test_golden_plan_text_classifies_as_expected(case: dict) -> None:
    assert outcome(classify_plan(parse_plan(case["plan"]))) == expectation(case)


@pytest.fixture(scope="module")
def engine() -> apsw.Connection:
    db = apsw.Connection(":memory:")
    db.execute(SQLITE["schema"])
    return db


@pytest.mark.parametrize("case", [pytest.param(c, id=c["name"]) for c in SQLITE["case"]])
def test_golden_plans_hold_on_a_real_engine(engine: apsw.Connection, case: dict) -> None:
    sql = case["sql"]
    rows = engine.execute("EXPLAIN QUERY PLAN " + sql, (None,) * sql.count("?")).fetchall()
    steps = [PlanStep(r[0], r[1], r[3]) for r in rows]
    assert plan_text(steps) == case["plan"].strip("\n")  # the golden file is still the truth
    # Given the SQL, scanned tables go by their schema names (`tables_named`) rather
    # than the aliases the plan text shows.
    named = {**expectation(case), "tables_scanned": case.get("tables_named", case["tables_scanned"])}
    assert outcome(classify_plan(steps, sql=sql)) == named


def test_every_class_is_exercised_by_the_golden_files() -> None:
    seen = {c for case in SQLITE["case"] + D1["case"] for c in case["classes"]}
    assert seen == set(EXPENSE)


def test_headline_is_the_most_expensive_class() -> None:
    info = classify_plan(parse_plan("SEARCH t USING INTEGER PRIMARY KEY (rowid=?)\n"
                               "SCAN u\nUSE TEMP B-TREE FOR ORDER BY"))
    assert info.plan_class == "full_scan"
    assert EXPENSE.index("full_scan") < EXPENSE.index("temp_btree_order") \
        < EXPENSE.index("primary_key")


def test_sql_resolves_a_recursive_cte_alias() -> None:
    plan = parse_plan("CO-ROUTINE net\n  SETUP\n    SEARCH c USING INDEX i (cited=?)\n"
                      "  RECURSIVE STEP\n    SEARCH c USING INDEX i (cited=?)\n    SCAN n\n"
                      "SCAN net")
    sql = ("WITH RECURSIVE net(id) AS (SELECT citing FROM c WHERE cited = ? UNION ALL "
           "SELECT c.citing FROM c JOIN net n ON c.cited = n.id) SELECT * FROM net")
    assert classify_plan(plan, sql=sql).all_indexed is True  # `SCAN n` is the CTE, not a table
    assert classify_plan(plan).all_indexed is False  # without the SQL, `n` is not the first SCAN


def test_fts_tables_can_be_named() -> None:
    plan = parse_plan("SCAN docs VIRTUAL TABLE INDEX 0:")
    assert classify_plan(plan).plan_class == "other_virtual"
    assert classify_plan(plan, fts_tables={"docs"}).plan_class == "fts"


def test_plan_text_round_trips() -> None:
    text = SQLITE["case"][8]["plan"].strip("\n")
    assert plan_text(parse_plan(text)) == text


# --- index hit rates ---------------------------------------------------------------


def test_index_hit_rates_per_template_and_overall() -> None:
    frame = pd.DataFrame({
        "template": ["a", "a", "a", "b", "b", "c"],
        "all_indexed": [True, True, True, False, False, None],
        "service_ms": [1.0, 1.0, 2.0, 10.0, 30.0, 5.0],
    })
    out = index_hit_rates(frame).set_index("template")
    assert out.loc["a", "hit_rate"] == 1.0 and out.loc["b", "hit_rate"] == 0.0
    assert pd.isna(out.loc["c", "hit_rate"])  # plan unknown: counted, not rated
    assert out.loc["ALL", "executions"] == 6 and out.loc["ALL", "indexed_executions"] == 3
    assert out.loc["ALL", "hit_rate"] == pytest.approx(3 / 5)
    assert out.loc["ALL", "time_hit_rate"] == pytest.approx(4.0 / 44.0)
    assert out.loc["b", "time_ms"] == 40.0


def test_index_hit_rates_names_missing_columns() -> None:
    with pytest.raises(ValueError, match="service_ms"):
        index_hit_rates(pd.DataFrame({"template": ["a"], "all_indexed": [True]}))


# --- a whole workload -----------------------------------------------------------------


def test_plan_report_covers_the_medical_workload(corpus_copy: Path) -> None:
    from d1bench.indexes import apply_index_set
    from d1bench.workload import load_workload

    workload = load_workload("medical")
    none = plan_report(workload, corpus_copy, params="null").set_index("template")
    assert list(none.index) == list(workload.templates)
    assert none["error"].isna().all()
    assert none.loc["paper_by_id", "plan_class"] == "primary_key"
    assert none.loc["paper_by_id", "all_indexed"]
    # Under `none` the seed's flawed queries scan whole tables.
    assert none.loc["list_specialty_papers", "plan_class"] == "full_scan"
    assert "papers" in none.loc["list_specialty_papers", "tables_scanned"]
    # Tables by their names in the schema, not the aliases the plan uses (`rh`, `p`).
    assert none.loc["user_reading_analytics", "tables_scanned"] == ["reading_history"]
    apply_index_set(corpus_copy, "seed")
    seed = plan_report(workload, corpus_copy).set_index("template")
    assert "full_scan" not in seed.loc["list_specialty_papers", "classes"]
    assert seed.loc["list_specialty_papers", "all_indexed"]
    assert (seed["all_indexed"].sum() > none["all_indexed"].sum())
