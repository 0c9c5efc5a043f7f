"""Production in: insights, GraphQL and SQL logs become workload files whose
samplers are inferred from the database; a replay is put beside production."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest

from d1bench.cli import main
from d1bench.errors import UsageError
from d1bench.production import compare_production, from_insights, read_insights
from d1bench.workload import check_workload, load_workload

INSIGHTS = Path(__file__).parent / "fixtures" / "insights"


def test_from_insights_infers_every_placeholder(other_schema, tmp_path: Path) -> None:
    insights = INSIGHTS / f"{other_schema.name}.json"
    out = tmp_path / "w.toml"
    made = from_insights(insights, other_schema.db, out)
    assert made.unresolved == ()
    raw = json.loads(insights.read_text())
    workload = load_workload(out)
    assert len(workload.templates) == len(raw)
    kinds = {s.kind for t in workload.templates.values() for s in t.params}
    # `=`, ranges and IN draw existing values, LIKE a prefix, LIMIT a small int
    assert {"column", "prefix", "int"} <= kinds
    for t, item in zip(workload.templates.values(), raw, strict=True):
        assert t.sql == item["query"]
        assert t.weight == item["numberOfTimesRun"]
        assert t.production["avg_rows_read"] == item["avgRowsRead"]
        assert t.production["runs"] == item["numberOfTimesRun"]
    assert check_workload(out, other_schema.db).empty
    text = out.read_text()
    assert "# 1: " in text and "production = {" in text  # commented and editable


def test_weight_by_reads_and_graphql(saas_db: Path, tmp_path: Path) -> None:
    raw = json.loads((INSIGHTS / "saas.json").read_text())
    graphql = {"data": {"viewer": {"accounts": [{"d1QueriesAdaptiveGroups": [
        {"count": i["numberOfTimesRun"], "dimensions": {"query": i["query"]},
         "sum": {"rowsRead": i["totalRowsRead"], "rowsWritten": i["totalRowsWritten"],
                 "queryDurationMs": i["totalDurationMs"], "rowsReturned": i["totalRowsRead"] / 2},
         "avg": {"queryDurationMs": i["avgDurationMs"]}} for i in raw]}]}}, "errors": None}
    path = tmp_path / "graphql.json"
    path.write_text(json.dumps(graphql, indent=1))
    shapes = read_insights(path)
    assert [s.sql for s in shapes] == [i["query"] for i in raw]
    assert [s.avg_rows_read for s in shapes] == [float(i["avgRowsRead"]) for i in raw]
    made = from_insights(path, saas_db, tmp_path / "w.toml", weight="reads")
    weights = {t.sql: t.weight for t in load_workload(made.path).templates.values()}
    assert weights == {i["query"]: float(i["totalRowsRead"]) for i in raw}


def test_a_sql_log_is_lifted_grouped_and_counted(events_db: Path, tmp_path: Path) -> None:
    log = tmp_path / "queries.log"
    log.write_text("-- captured from the app\n"
                   "SELECT * FROM events WHERE id = 17;\n"
                   "SELECT * FROM events WHERE id = 4242\n"
                   "SELECT id, serial FROM devices\n  WHERE label LIKE 'Boil%' LIMIT 5;\n"
                   "SELECT * FROM events WHERE id = 9;\n")
    shapes = read_insights(log)
    assert [(s.sql, s.runs, s.line) for s in shapes] == [
        ("SELECT * FROM events WHERE id = ?", 3, 2),
        ("SELECT id, serial FROM devices WHERE label LIKE ? LIMIT ?", 1, 4)]
    assert shapes[1].examples == ("Boil%", 5)
    made = from_insights(log, events_db, tmp_path / "w.toml")
    assert made.unresolved == () and check_workload(made.path, events_db).empty
    assert "values in the first logged statement: [\"Boil%\", 5]" in made.path.read_text()


def test_what_cannot_be_inferred_is_named(saas_db: Path, tmp_path: Path) -> None:
    path = tmp_path / "i.json"
    path.write_text(json.dumps([{"query": "SELECT id FROM users WHERE json_extract(settings, "
                                          "'$.locale') = ?", "numberOfTimesRun": 3}]))
    made = from_insights(path, saas_db, tmp_path / "w.toml")
    why = "FILL IN: compared with JSON_EXTRACT(settings, '$.locale'), not a column"
    assert made.unresolved == (("select_users_by_json_extract", 1, why),)
    assert "FILL IN" in made.path.read_text()
    tomllib.loads(made.path.read_text())


@pytest.mark.parametrize("text, message", [
    ('{"rows": []}', r":1: expected a JSON array \(wrangler d1 insights --json\)"),
    ('[\n  {"query": "SELECT 1", "numberOfTimesRun": 1},\n  {"numberOfTimesRun": 2}\n]',
     r":3: \[1\]: \"query\" must be a non-empty string"),
    ('[\n  {"query": "SELECT 1",\n   "numberOfTimesRun": "many"}\n]',
     r":2: \[0\]: numberOfTimesRun is 'many', not a number"),
    ('[{"query": "SELECT 1", "numberOfTimesRun": 1,}]', r":1:46: not valid JSON"),
    ('[\n{"query": "SELECT nope FROM users WHERE id = ?", "numberOfTimesRun": 1}\n]',
     r":2: the query does not run on .*no such column: nope"),
])
def test_bad_insights_one_line_exit_2_nothing_written(saas_db: Path, tmp_path: Path, capsys,
                                                      text: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    out = tmp_path / "w.toml"
    with pytest.raises(UsageError, match=rf"^{path}{message}"):
        from_insights(path, saas_db, out)
    assert main(["workload", "from-insights", str(path), "--db", str(saas_db),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err
    assert not out.exists()


def test_compare_production_says_where_replay_and_production_part(saas_db: Path,
                                                                  tmp_path: Path, capsys) -> None:
    from d1bench import replay

    db = tmp_path / "saas.sqlite"
    shutil.copyfile(saas_db, db)
    insights = INSIGHTS / "saas.json"
    made = from_insights(insights, db, tmp_path / "w.toml")
    trace = tmp_path / "t.parquet"
    replay(load_workload(made.path).reads_only(), f"sqlite:{db}", trace_path=trace,
           concurrency=1, requests=300, progress=False)
    frame = compare_production(trace, insights)
    by = frame.set_index("template")
    assert list(frame["template"]) == list(made.templates["template"])
    # a key lookup reads what production reads
    assert by.loc["select_tasks_by_project_id_2", "verdict"] == "close"
    # production's users table is larger than the fixture's: the same scan reads more there
    scan = by.loc["select_users_by_tenant_id"]
    assert scan["plan_class"] == "full_scan" and scan["rows_read_ratio"] < 0.5
    assert scan["verdict"].startswith("data size: production reads")
    assert by.loc["update_tasks_by_project_id", "verdict"] == "not replayed"
    assert main(["compare-production", str(trace), "--insights", str(insights)]) == 0
    shown = capsys.readouterr().out
    assert "select_users_by_tenant_id: data size" in shown and "prod rows read" in shown


def test_a_production_shape_that_returns_no_rows_gets_a_verdict(saas_db: Path,
                                                                tmp_path: Path) -> None:
    """queryEfficiency 0 (rows read, none returned) on a plan the replay serves by index."""
    from d1bench import replay

    db = tmp_path / "saas.sqlite"
    shutil.copyfile(saas_db, db)
    shapes = json.loads((INSIGHTS / "saas.json").read_text())
    lookup = shapes[0]
    assert "WHERE email = ?" in lookup["query"]
    lookup.update(avgRowsRead=5000, totalRowsRead=5000 * lookup["numberOfTimesRun"],
                  queryEfficiency=0.0)
    insights = tmp_path / "insights.json"
    insights.write_text(json.dumps(shapes))
    made = from_insights(insights, db, tmp_path / "w.toml")
    trace = tmp_path / "t.parquet"
    replay(load_workload(made.path).reads_only(), f"sqlite:{db}", trace_path=trace,
           concurrency=1, requests=200, progress=False)
    row = compare_production(trace, insights).iloc[0]
    assert row["production_efficiency"] == 0.0 and row["rows_read_ratio"] < 0.5
    assert row["verdict"].startswith("a different plan: the replay uses an index")
    assert "returns none of the rows it reads" in row["verdict"]
