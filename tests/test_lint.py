"""Lint rules against golden fixtures: each folder of tests/fixtures/lint/ holds a
workload and the findings its rule must (and must not) produce, run on a real
SQLite database built from tests/fixtures/lint/schema.sql."""

from __future__ import annotations

import json
from pathlib import Path

import apsw
import pytest

from d1bench.linter import LINT_COLUMNS, lint, rule_names

FIXTURES = Path(__file__).parent / "fixtures" / "lint"
CASES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())


def test_every_rule_has_a_fixture() -> None:
    assert sorted(rule_names()) == CASES


@pytest.mark.parametrize("case", CASES)
def test_rule_golden(case: str, lint_db: Path) -> None:
    expected = json.loads((FIXTURES / case / "expected.json").read_text(encoding="utf-8"))
    frame = lint(FIXTURES / case / "workload.toml", lint_db)
    assert list(frame.columns) == LINT_COLUMNS
    mine = frame[frame["rule"] == expected["rule"]]
    assert sorted(mine["template"]) == sorted(f["template"] for f in expected["findings"]), mine
    for want in expected["findings"]:
        row = mine[mine["template"] == want["template"]].iloc[0]
        assert row["severity"] in ("low", "medium", "high")
        if "severity" in want:
            assert row["severity"] == want["severity"]
        if "evidence_contains" in want:
            assert want["evidence_contains"] in row["evidence"]
        if "fix_contains" in want:
            assert want["fix_contains"] in row["fix"]
        if "fix_sql_contains" in want:
            assert row["fix_sql"] is not None and want["fix_sql_contains"] in row["fix_sql"], row["fix_sql"]
        # every finding says what it rests on: the plan, and rows read when it can tell
        assert "plan:" in row["evidence"] or case == "n_plus_one"
    for name in expected["clean"]:
        assert name not in set(mine["template"]), f"{name} wrongly flagged by {expected['rule']}"


def test_fix_sql_runs(lint_db: Path, tmp_path: Path) -> None:
    """The CREATE INDEX fixes are valid SQL, and the index they create serves the template."""
    import shutil

    db = tmp_path / "fixed.sqlite"
    shutil.copyfile(lint_db, db)
    frame = lint(FIXTURES / "function_on_column" / "workload.toml", db)
    fix = frame[(frame["template"] == "by_kind") & (frame["rule"] == "function_on_column")].iloc[0]
    conn = apsw.Connection(str(db))
    conn.execute(fix["fix_sql"])
    plan = [r[3] for r in conn.execute("EXPLAIN QUERY PLAN SELECT id FROM items "
                                      "WHERE json_extract(doc, '$.kind') = ? LIMIT 50", ("k3",))]
    conn.close()
    assert any("INDEX idx_items_doc_kind (<expr>=?)" in d for d in plan), plan


def test_trace_measurements_replace_estimates(lint_db: Path) -> None:
    import pandas as pd

    case = FIXTURES / "count_star_large_table" / "workload.toml"
    estimated = lint(case, lint_db)
    assert "(estimated)" in estimated.loc[estimated["template"] == "count_items", "evidence"].iloc[0]
    trace = pd.DataFrame({"template": ["count_items"] * 3, "rows_read": [12000, 12000, 12000],
                          "error_class": [None] * 3, "unit": ["count_items"] * 3,
                          "unit_index": [0, 1, 2]})
    measured = lint(case, lint_db, trace=trace)
    evidence = measured.loc[measured["template"] == "count_items", "evidence"].iloc[0]
    assert "rows read per execution: 12,000 (measured)" in evidence


def test_unparsable_template_is_reported_and_others_still_linted(lint_db: Path, tmp_path: Path) -> None:
    workload = tmp_path / "broken.toml"
    workload.write_text('''
[workload]
name = "broken"
format = 1

[templates.broken]
sql = "SELECT id FROM items WHERE grp = ? ORDER BY"
params = [{ sampler = "int", min = 0, max = 3 }]

[templates.star]
sql = "SELECT * FROM kinds"
params = []

[templates.ghost]
sql = "SELECT id FROM ghosts WHERE id = ?"
params = [{ sampler = "int", min = 0, max = 3 }]
''', encoding="utf-8")
    frame = lint(workload, lint_db)
    assert set(frame.loc[frame["template"] == "broken", "rule"]) == {"unparsed"}
    ghost = frame[frame["template"] == "ghost"]
    assert list(ghost["rule"]) == ["unplannable"] and "no such table: ghosts" in ghost["evidence"].iloc[0]
    assert "select_star" in set(frame.loc[frame["template"] == "star", "rule"])


def test_medical_workload_findings(small_corpus: Path) -> None:
    """The shipped workload carries the seed's flaws on purpose: lint finds the main ones."""
    frame = lint("medical", small_corpus)
    found = set(zip(frame["template"], frame["rule"]))
    for pair in [("paper_reviews", "n_plus_one"),
                 ("trials_by_condition", "like_leading_wildcard"),
                 ("trials_by_condition", "like_over_json"),
                 ("trials_by_condition", "or_across_columns"),
                 ("semantic_search", "vector_search_over_json"),
                 ("top_cited_in_specialty", "order_by_limit_full_sort"),
                 ("paper_by_id", "select_star")]:
        assert pair in found, pair
