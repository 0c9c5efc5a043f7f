"""The advisor against golden fixtures: each folder of tests/fixtures/advice/ holds a
schema with its data, a workload, and the advice expected (indexes, drops, and the
reason every template gets), run on real SQLite databases."""

from __future__ import annotations

import json
import re
from pathlib import Path

import apsw
import pytest

from d1bench.advisor import Advice, advise
from d1bench.advisor.report import DROP_COLUMNS, INDEX_COLUMNS, TEMPLATE_COLUMNS

FIXTURES = Path(__file__).parent / "fixtures" / "advice"
CASES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())


def build(case: str, folder: Path) -> Path:
    path = folder / f"{case}.sqlite"
    conn = apsw.Connection(str(path))
    conn.execute((FIXTURES / case / "schema.sql").read_text(encoding="utf-8"))
    conn.close()
    return path


@pytest.mark.parametrize("case", CASES)
def test_advice_golden(case: str, tmp_path: Path) -> None:
    expected = json.loads((FIXTURES / case / "expected.json").read_text(encoding="utf-8"))
    db = build(case, tmp_path)
    advice = advise(db, FIXTURES / case / "workload.toml", **expected["options"])
    assert isinstance(advice, Advice)
    assert list(advice.indexes.columns) == INDEX_COLUMNS
    assert list(advice.templates.columns) == TEMPLATE_COLUMNS
    assert list(advice.drops.columns) == DROP_COLUMNS
    got = sorted((r.table, list(r.columns), r.where) for r in advice.indexes.itertuples())
    want = sorted((i["table"], i["columns"], i["where"]) for i in expected["indexes"])
    assert got == want, advice.templates[["template", "plan_after", "reason"]].to_string()
    for i in expected["indexes"]:
        row = advice.indexes[advice.indexes["columns"].map(lambda c, i=i: list(c) == i["columns"])
                             & (advice.indexes["table"] == i["table"])].iloc[0]
        assert row["templates"] == i["serves"]
        assert row["rows_read_after"] < row["rows_read_before"]
        assert row["bytes"] > 0 and row["reason"]
        assert row["name"].startswith(f"idx_{i['table']}_")
    drops = sorted((r.name, r.reason.split(":")[0]) for r in advice.drops.itertuples())
    assert drops == sorted((d["name"], d["reason"]) for d in expected["drops"])
    reasons = dict(zip(advice.templates["template"], advice.templates["reason"]))
    for template, reason in expected["reasons"].items():
        if reason == "":
            assert reasons[template] == "", f"{template}: {reasons[template]}"
        else:
            assert reasons[template].startswith(reason), f"{template}: {reasons[template]}"
    # the migration creates exactly the advised indexes and ends as wrangler expects
    assert advice.migration_sql.rstrip().endswith("PRAGMA optimize;")
    for sql in advice.indexes["sql"]:
        assert sql in advice.migration_sql
    for name in advice.drops["name"]:
        assert f"DROP INDEX IF EXISTS {name};" in advice.migration_sql


@pytest.mark.parametrize("case", ["order_limit", "expression", "partial", "drops", "fts_and_broken"])
def test_predicted_plans_are_the_real_plans(case: str, tmp_path: Path) -> None:
    """Build the advice on the database itself: SQLite then plans what the what-if predicted."""
    db = build(case, tmp_path)
    advice = advise(db, FIXTURES / case / "workload.toml", samples=1)
    conn = apsw.Connection(str(db))
    conn.execute(advice.migration_sql)
    from d1bench.workload import load_workload

    workload = load_workload(FIXTURES / case / "workload.toml")
    for row in advice.templates.itertuples():
        if row.reason.startswith(("SQL does not parse", "SQLite cannot plan it")):
            continue
        sql = workload.templates[row.template].sql
        n = sql.count("?")
        real = " | ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, [None] * n))
        predicted = row.plan_after
        if n:  # predicted plans used drawn values; NULLs give the same shape here
            assert real.split(" (")[0] == predicted.split(" (")[0], (row.template, real, predicted)
        else:
            assert real == predicted, (row.template, real, predicted)
    conn.close()


def test_budget_limits_bytes(tmp_path: Path) -> None:
    db = build("order_limit", tmp_path)
    free = advise(db, FIXTURES / "order_limit" / "workload.toml")
    size = float(free.indexes["bytes"].sum())
    tight = advise(db, FIXTURES / "order_limit" / "workload.toml", budget_bytes=size - 1)
    assert float(tight.indexes["bytes"].sum()) <= size - 1
    assert free.summary["rows_read_after"] <= tight.summary["rows_read_after"]


def test_write_weight_zero_takes_the_index(tmp_path: Path) -> None:
    """The write-heavy fixture's index is refused for its write cost only."""
    db = build("write_heavy", tmp_path)
    advice = advise(db, FIXTURES / "write_heavy" / "workload.toml", write_weight=0.0)
    assert [list(c) for c in advice.indexes["columns"]] == [["user_id"]]


def test_trace_frequencies_replace_weights(tmp_path: Path) -> None:
    """A trace in which the read never ran gives it no weight, so nothing is advised for it."""
    import pandas as pd

    db = build("order_limit", tmp_path)
    trace = pd.DataFrame({"template": ["by_id"] * 5, "unit_index": range(5)})
    advice = advise(db, FIXTURES / "order_limit" / "workload.toml", trace=trace)
    assert advice.indexes.empty
    reasons = dict(zip(advice.templates["template"], advice.templates["reason"]))
    assert reasons["top_scores"].startswith("never run by the workload")


def test_migration_written_in_wrangler_layout(tmp_path: Path) -> None:
    from d1bench.errors import UsageError

    db = build("order_limit", tmp_path)
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_init.sql").write_text("CREATE TABLE x (a);\n")
    (folder / "0007_more.sql").write_text("CREATE TABLE y (a);\n")
    advice = advise(db, FIXTURES / "order_limit" / "workload.toml", migrations_dir=folder)
    assert advice.migration_path == folder / "0008_d1bench_indexes.sql"
    assert advice.migration_path.read_text() == advice.migration_sql
    with pytest.raises(UsageError, match="newest migration is already d1bench advice"):
        advise(db, FIXTURES / "order_limit" / "workload.toml", migrations_dir=folder)
    again = advise(db, FIXTURES / "order_limit" / "workload.toml", migrations_dir=folder, force=True)
    assert again.migration_path == folder / "0008_d1bench_indexes.sql"
    assert sorted(p.name for p in folder.iterdir()) == [
        "0001_init.sql", "0007_more.sql", "0008_d1bench_indexes.sql"]


def test_missing_database_is_a_usage_error(tmp_path: Path) -> None:
    from d1bench.errors import UsageError

    with pytest.raises(UsageError, match="no such database file"):
        advise(tmp_path / "nope.sqlite", FIXTURES / "order_limit" / "workload.toml")


def test_medical_workload_on_small_corpus(small_corpus: Path) -> None:
    """The shipped workload, FTS5 queries included, is advised without failing."""
    advice = advise(small_corpus, "medical")
    t = advice.templates.set_index("template")
    assert not advice.indexes.empty
    assert t.loc["paper_by_id", "reason"] == "already uses the primary key"
    assert t.loc["search_papers_plain", "reason"] == "FTS serves it"
    assert t.loc["semantic_search", "reason"].startswith("no sargable predicate")
    assert "json_each over papers.embedding_vector" in t.loc["semantic_search", "reason"]
    # every template that gets nothing says why; every proposed index serves someone
    for row in t.itertuples():
        assert row.indexes or row.reason, row.Index
    assert all(len(s) > 0 for s in advice.indexes["templates"])
    assert advice.summary["rows_read_after"] < advice.summary["rows_read_before"]
    # Why the search stopped is said of the next step, not of the steps it took.
    stopped = advice.summary["stopped"]
    assert re.match(r"after \d+ step\(s\), no further step saves", stopped), stopped
    # What is left, by template: it adds up to the predicted total, largest first, and the
    # brute-force vector search (which no index shortens) is most of it.
    left = advice.remaining()
    assert left["weighted"].sum() == pytest.approx(advice.summary["rows_read_after"])
    assert left["share"].sum() == pytest.approx(1.0)
    assert list(left["weighted"]) == sorted(left["weighted"], reverse=True)
    assert left.iloc[0]["template"] == "semantic_search" and left.iloc[0]["share"] > 0.5
    assert "paper_by_id" in set(left["template"])  # one row read per lookup still counts
