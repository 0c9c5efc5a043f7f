"""The whole path for a team's own D1 database, on both fixture schemas:
dump (D1's export format) -> import -> workload from-insights -> workload check
-> replay on SQLite and on local D1 -> analyze -> lint -> advise --verify ->
compare-production.  Small data, few requests."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

# from the owning modules: `from d1bench import lint` gives the subpackage once it is imported
from d1bench.advisor import advise
from d1bench.analysis import summarize
from d1bench.cli import main
from d1bench.dump import write_dump
from d1bench.linter import lint
from d1bench.production import compare_production
from d1bench.runner import replay
from d1bench.targets.d1.local import LocalD1
from d1bench.trace import load_trace
from d1bench.uploader import upload
from d1bench.workload import check_workload, load_workload

INSIGHTS = Path(__file__).parent / "fixtures" / "insights"

pytestmark = pytest.mark.slow


@pytest.fixture
def d1(tmp_path: Path):
    """An empty local D1 for each schema (the session's holds the medical corpus)."""
    with LocalD1(tmp_path / "d1") as server:
        yield server


def _counts(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND sql NOT LIKE 'CREATE VIRTUAL%' "
            "AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '%_fts_%'")]
        return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
    finally:
        conn.close()


def test_own_database_end_to_end(other_schema, d1: LocalD1, tmp_path: Path, capsys) -> None:
    name = other_schema.name
    # 1. the dump D1 would export (saas's FTS5 table, which D1 cannot export, as DDL only)
    dump = write_dump(other_schema.db, tmp_path / "dump.sql", virtual="schema")
    assert dump.read_text().startswith("PRAGMA defer_foreign_keys=TRUE;\n")
    # 2. import
    db = tmp_path / f"{name}.sqlite"
    assert main(["import", str(dump), "--out", str(db), "--quiet"]) == 0
    assert _counts(db) == _counts(other_schema.db)
    if name == "saas":
        assert "rebuilt FTS5 index(es): comments_fts" in capsys.readouterr().out
    # 3. from-insights, 4. workload check
    insights = INSIGHTS / f"{name}.json"
    workload_file = tmp_path / "production.toml"
    assert main(["workload", "from-insights", str(insights), "--db", str(db),
                 "--out", str(workload_file)]) == 0
    assert "finds no errors" in capsys.readouterr().out
    assert check_workload(workload_file, db).empty
    workload = load_workload(workload_file)
    reads = workload.reads_only()
    # 5. replay on SQLite
    sqlite_trace = tmp_path / "sqlite.parquet"
    replay(reads, f"sqlite:{db}", trace_path=sqlite_trace, concurrency=1, requests=200,
           progress=False, seed=1)
    # 6. analyze
    summary = summarize(load_trace(sqlite_trace)).set_index("template")
    ran = set(summary.index) - {"ALL"}
    busiest = sorted(reads.templates.values(), key=lambda t: -t.weight)[:3]
    assert {t.name for t in busiest} <= ran <= set(reads.templates)
    assert (summary["errors"] == 0).all(), summary["errors"]
    assert (summary.loc[sorted(ran), "rows_read_per_exec"] > 0).all()
    # 5b. upload to local D1 and replay there (reads only, as against production)
    with d1.target(allow_writes=True) as target:
        frame = upload(db, target, progress=False)
    assert frame["ok"].all()
    d1_trace = tmp_path / "d1.parquet"
    with d1.target() as target:
        replay(reads, target, trace_path=d1_trace, concurrency=1, requests=40, progress=False,
               seed=1)
    d1_summary = summarize(load_trace(d1_trace)).set_index("template")
    on_d1 = [t for t in reads.templates if t in d1_summary.index]
    assert on_d1 and (d1_summary.loc[on_d1, "errors"] == 0).all()
    assert (d1_summary.loc[on_d1, "rows_read_per_exec"] > 0).all()  # D1's own counter
    # 7. lint: the scans production pays for are found
    findings = lint(workload, db)
    high = findings[findings["severity"] == "high"]
    assert len(high) and set(high["template"]) <= set(workload.templates)
    assert {"order_by_limit_full_sort", "foreign_key_without_index"} <= set(high["rule"])
    # 8. advise --verify: the advice is proven by a second replay on copies
    before = db.read_bytes()
    advice = advise(db, workload, verify=True, verify_requests=60)
    assert len(advice.indexes) > 0
    v = advice.verification
    assert v.attrs["rows_read_per_unit_after"] < v.attrs["rows_read_per_unit_before"]
    assert db.read_bytes() == before
    # 9. compare-production
    compared = compare_production(sqlite_trace, insights).set_index("template")
    raw = json.loads(insights.read_text())
    assert list(compared["production_runs"]) == [i["numberOfTimesRun"] for i in raw]
    replayed = compared[compared["replay_count"] > 0]
    assert set(replayed.index) == ran
    assert replayed["verdict"].str.match(r"^(close|data size|a different plan|the replay reads)").all()
    # production's tables are larger than the fixture's: some scan reads more there
    assert replayed["verdict"].str.startswith("data size").any()
    assert main(["compare-production", str(sqlite_trace), "--insights", str(insights)]) == 0
    assert "prod rows read" in capsys.readouterr().out
