"""The fixture schemas besides medical: deterministic, D1-valid, untuned, and as skewed as they claim."""

from __future__ import annotations

import hashlib
import math
import shutil
import subprocess
import sys
from pathlib import Path

import apsw
import pytest
from schemas import SCHEMAS, build, generator, schema_sql, workload_path

from d1bench import check_workload, load_workload, replay
from d1bench.schema import d1_problems

#: Small enough for the determinism checks to build three databases per schema in a second.
SMALL = 0.2
#: A short replay runs until the rarest template is expected this often (missing it: ~e^-8).
MIN_EXPECTED = 8


def _rows(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    conn = apsw.Connection(str(db), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _one(db: Path, sql: str, params: tuple = ()) -> object:
    return _rows(db, sql, params)[0][0]


def table_hashes(db: Path) -> dict[str, str]:
    """A content hash of every stored table (FTS shadow tables included), rows in a fixed order."""
    names = [r[0] for r in _rows(db, "SELECT name FROM sqlite_schema WHERE type = 'table' "
                                     "AND sql NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name")]
    out = {}
    for name in names:
        rows = sorted(repr(r) for r in _rows(db, f'SELECT * FROM "{name}"'))
        out[name] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    return out


@pytest.mark.parametrize("name", SCHEMAS)
def test_the_generator_is_deterministic(name: str, tmp_path: Path) -> None:
    a = table_hashes(build(name, tmp_path / "a.sqlite", scale=SMALL, seed=0))
    b = table_hashes(build(name, tmp_path / "b.sqlite", scale=SMALL, seed=0))
    other = table_hashes(build(name, tmp_path / "c.sqlite", scale=SMALL, seed=1))
    assert a == b
    assert len(a) >= 4
    # another seed changes every table holding random data (corpus_meta records the seed)
    differ = {t for t in a if a[t] != other[t]}
    assert "corpus_meta" in differ and len(differ) >= len(a) - 2


@pytest.mark.parametrize("name", SCHEMAS)
def test_build_refuses_an_existing_file_and_leaves_nothing_behind(name: str, tmp_path: Path) -> None:
    out = tmp_path / "db.sqlite"
    out.write_text("mine")
    with pytest.raises(FileExistsError, match="already exists"):
        build(name, out, scale=SMALL)
    assert out.read_text() == "mine"
    with pytest.raises(ValueError, match="scale"):
        build(name, tmp_path / "new.sqlite", scale=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.sqlite"]


@pytest.mark.parametrize("name", SCHEMAS)
def test_the_generator_runs_standalone(name: str, tmp_path: Path) -> None:
    script = Path(generator(name).__file__)
    out = tmp_path / "cli.sqlite"
    cmd = [sys.executable, str(script), str(out), "--scale", "0.05", "--seed", "3"]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert dict(_rows(out, "SELECT key, value FROM corpus_meta"))["seed"] == "3"
    again = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)
    assert again.returncode == 2
    assert again.stderr.strip() == f"error: {out}: already exists (delete it first)"


@pytest.mark.parametrize("name", SCHEMAS)
def test_scale_is_linear(name: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    full = request.getfixturevalue(f"{name}_db")
    half = build(name, tmp_path / "half.sqlite", scale=0.5)
    biggest = {"saas": "tasks", "events": "events"}[name]
    n_full = _one(full, f"SELECT COUNT(*) FROM {biggest}")
    assert 20_000 <= n_full <= 40_000
    assert _one(half, f"SELECT COUNT(*) FROM {biggest}") == pytest.approx(n_full / 2, rel=0.02)


def test_schemas_pass_the_static_d1_check_and_are_untuned(other_schema) -> None:
    assert d1_problems(schema_sql(other_schema.name)) == []
    db = other_schema.db
    assert _rows(db, "PRAGMA foreign_key_check") == []
    assert _one(db, "SELECT COUNT(*) FROM pragma_foreign_key_list('alerts')"
                if other_schema.name == "events" else
                "SELECT COUNT(*) FROM pragma_foreign_key_list('comments')") >= 1
    # only the indexes primary keys and UNIQUE constraints make: the advisor must find the rest
    made = _rows(db, "SELECT name FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL")
    assert made == []


def test_saas_has_the_shapes_it_is_for(saas_db: Path) -> None:
    sql = schema_sql("saas")
    assert "WITHOUT ROWID" in sql
    without_rowid = [r[0] for r in _rows(saas_db, "SELECT name FROM pragma_table_list "
                                                  "WHERE wr = 1 AND schema = 'main' "
                                                  "AND name NOT LIKE 'comments_fts%'")]
    assert without_rowid == ["tasks"]
    assert _one(saas_db, "SELECT COUNT(*) FROM pragma_foreign_key_list('comments') "
                         "WHERE \"table\" = 'tasks'") == 2   # the composite key, both columns
    triggers = dict(_rows(saas_db, "SELECT name, sql FROM sqlite_schema WHERE type = 'trigger'"))
    assert set(triggers) == {"comments_ai", "comments_ad", "comments_au"}
    assert " OF " not in triggers["comments_au"].upper()    # the flaw a fix plan should find
    assert _one(saas_db, "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'view'") == 1
    # the FTS index is in step with its content table
    n = _one(saas_db, "SELECT COUNT(*) FROM comments WHERE body LIKE '%deploy%'")
    assert n > 0 and _one(saas_db, "SELECT COUNT(*) FROM comments_fts WHERE comments_fts MATCH 'deploy'") == n


def test_saas_distributions(saas_db: Path) -> None:
    deleted = _one(saas_db, "SELECT AVG(deleted_at IS NOT NULL) FROM users")
    assert 0.08 <= deleted <= 0.12
    assert 0.04 <= _one(saas_db, "SELECT AVG(deleted_at IS NOT NULL) FROM tasks") <= 0.08
    # Zipf-like tenants: the biggest tenth hold over 40% of users, the median tenant few
    sizes = [r[0] for r in _rows(saas_db, "SELECT COUNT(*) FROM users GROUP BY tenant_id ORDER BY 1 DESC")]
    assert len(sizes) == _one(saas_db, "SELECT COUNT(*) FROM tenants")
    assert sum(sizes[:len(sizes) // 10]) > 0.4 * sum(sizes)
    assert sizes[len(sizes) // 2] * 10 < sizes[0]
    # every project has tasks 1..MIN_TASKS, which the workload's task keys rely on
    min_tasks = generator("saas").MIN_TASKS
    assert _one(saas_db, "SELECT MIN(n) FROM (SELECT COUNT(*) AS n FROM tasks GROUP BY project_id)") >= min_tasks
    assert _one(saas_db, "SELECT COUNT(*) FROM projects WHERE id NOT IN "
                         "(SELECT project_id FROM tasks WHERE task_no = ?)", (min_tasks,)) == 0
    # users and projects stay inside their tenant
    assert _one(saas_db, "SELECT COUNT(*) FROM projects p JOIN users u ON u.id = p.owner_id "
                         "WHERE u.tenant_id <> p.tenant_id") == 0
    assert _one(saas_db, "SELECT COUNT(*) FROM tasks t JOIN users u ON u.id = t.assignee_id "
                         "WHERE u.tenant_id <> t.tenant_id") == 0
    assert _one(saas_db, "SELECT COUNT(*) FROM users WHERE NOT json_valid(settings) "
                         "OR json_extract(settings, '$.locale') IS NULL") == 0


def test_events_distributions(events_db: Path) -> None:
    assert _one(events_db, "SELECT COUNT(*) FROM events WHERE ts NOT GLOB "
                "'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]'") == 0
    as_of = _one(events_db, "SELECT value FROM corpus_meta WHERE key = 'as_of'")
    first, last = _rows(events_db, "SELECT MIN(ts), MAX(ts) FROM events")[0]
    span = _one(events_db, "SELECT julianday(?) - julianday(?)", (last, first))
    assert 355 <= span <= 366 and last < as_of
    # recency skew: the last quarter of the year holds far more than a quarter of events
    recent = _one(events_db, "SELECT AVG(ts >= date(?, '-91 days')) FROM events", (as_of,))
    assert recent > 0.35
    # busy devices: the top tenth of devices send over half of all events
    sizes = [r[0] for r in _rows(events_db, "SELECT COUNT(*) FROM events GROUP BY device_id ORDER BY 1 DESC")]
    assert sum(sizes[:_one(events_db, "SELECT COUNT(*) FROM devices") // 10]) > 0.5 * sum(sizes)
    # the log is append-only: ids in time order; events inside their device's service life
    assert _one(events_db, "SELECT COUNT(*) FROM events a JOIN events b ON b.id = a.id + 1 "
                           "WHERE b.ts < a.ts") == 0
    assert _one(events_db, "SELECT COUNT(*) FROM events e JOIN devices d ON d.id = e.device_id "
                           "WHERE e.ts < d.installed_at OR e.ts > coalesce(d.retired_at, ?)", (as_of,)) == 0
    # one alert per error or critical event, most acknowledged
    assert _one(events_db, "SELECT COUNT(*) FROM alerts") == \
        _one(events_db, "SELECT COUNT(*) FROM events WHERE severity IN ('error', 'critical')")
    assert 0.05 <= _one(events_db, "SELECT AVG(acknowledged_at IS NULL) FROM alerts") <= 0.3
    assert _one(events_db, "SELECT COUNT(*) FROM events WHERE json_extract(payload, '$.code') IS NULL") == 0
    assert _one(events_db, "SELECT COUNT(*) FROM sqlite_schema WHERE name LIKE '%rollup%' "
                           "OR name LIKE '%daily%'") == 0


def test_workloads_are_shaped_like_a_real_app(other_schema) -> None:
    workload = load_workload(other_schema.workload)
    kinds = [t.kind for t in workload.templates.values()]
    assert 10 <= kinds.count("read") <= 16 and 2 <= kinds.count("write") <= 3
    assert any(step.for_each_row for s in workload.sessions.values() for step in s.steps)
    assert all(t.description for t in workload.templates.values())
    sql = " ".join(t.sql for t in workload.templates.values())
    for shape in ("LIMIT", "OFFSET", "COUNT(*)", "GROUP BY", "LIKE ?", "json_extract(", " IN (", "JOIN"):
        assert shape in sql, shape


def test_workload_checks_clean_against_its_database(other_schema) -> None:
    problems = check_workload(other_schema.workload, other_schema.db)
    assert problems.empty, problems.to_string()


@pytest.mark.slow
def test_a_short_replay_runs_every_template_without_errors(other_schema, tmp_path: Path) -> None:
    db = tmp_path / "copy.sqlite"
    shutil.copyfile(other_schema.db, db)
    workload = load_workload(other_schema.workload)
    # enough units that the rarest template is expected MIN_EXPECTED times (a few hundred)
    rarest = min(workload.template_frequencies().values())
    requests = max(300, math.ceil(MIN_EXPECTED / rarest))
    assert requests <= 600, f"a template is too rare to replay quickly ({rarest:.4f} a unit)"
    trace = replay(workload, f"sqlite:{db}", concurrency=1, requests=requests, seed=2,
                   progress=False)
    r = trace.requests
    assert r["error"].isna().all(), r.loc[r["error"].notna(), ["template", "error"]].head().to_string()
    assert set(workload.templates) == set(r["template"])
    assert (r.loc[r["kind"] == "session", "template"].nunique()) == 2


@pytest.mark.slow
@pytest.mark.parametrize("name", SCHEMAS)
def test_schema_and_every_template_are_accepted_by_a_local_d1(name: str, tmp_path: Path,
                                                               request: pytest.FixtureRequest) -> None:
    """The DDL runs for real on D1 (triggers, FTS5, WITHOUT ROWID), and D1 plans every template."""
    from d1bench.schema import split_statements
    from d1bench.targets.d1.local import LocalD1

    local = request.getfixturevalue(f"{name}_db")
    made_locally = {r[0] for r in _rows(local, "SELECT name FROM sqlite_schema")
                    if not r[0].startswith("sqlite_")}
    workload = load_workload(workload_path(name))
    # its own server: the shared local D1 holds medical, whose tables share names with these
    with LocalD1(tmp_path / "d1") as d1, d1.target(allow_writes=True) as target:
        conn = target.connect()
        for statement in split_statements(schema_sql(name)):
            conn.execute(statement)
        on_d1 = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema").rows
                 if not r[0].startswith(("sqlite_", "_cf_"))}
        assert on_d1 == made_locally
        for template in workload.templates.values():
            # planned with NULL parameters: D1 must accept the SQL, not find rows
            # (an INSERT ... VALUES has no plan steps; any refusal raises)
            plan = conn.explain(template.sql, (None,) * len(template.params))
            assert plan or template.is_write, template.name
