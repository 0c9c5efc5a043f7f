"""d1bench fix: every rewrite kind checked equivalent and measured, on real SQLite copies.

Golden figures are D1's counting rules applied by the SQLite target to the
fixture schemas (deterministic: seed 0, scale 1) and to the small medical corpus.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import apsw
import pytest
from schemas import workload_path

from d1bench.fixer import fix

FIXTURES = Path(__file__).parent / "fixtures"
#: Every step of each schema's plan (indexes=False, samples=3): its target, the equivalence
#: check's result, rows read and written per execution before and after, and the rows its
#: triggers add to the workload's writes per unit.  Kinds with no instance on a schema:
#: medical has no OFFSET, LIKE, json_extract filter, unfiltered COUNT, date rollup or
#: un-narrowed update trigger (its FTS trigger already says OF); saas, events and shop keep
#: no vectors (vector_lsh is medical's only); events' N+1 has a per-row LIMIT (refused) and
#: no FTS index; saas's trigger_of saves nothing in its workload (no update of comments:
#: measured on local D1 in test_fix_d1.py instead); shop has none of these shapes at all.
GOLDEN = json.loads((FIXTURES / "fix" / "golden.json").read_text(encoding="utf-8"))

# Each plan replays a workload's templates on scratch copies: tens of seconds in all.
pytestmark = pytest.mark.slow


def _count(db: Path, table: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


@pytest.fixture(scope="module")
def saas_plan(saas_db):
    return fix(saas_db, workload_path("saas"), indexes=False, samples=3)


@pytest.fixture(scope="module")
def events_plan(events_db):
    return fix(events_db, workload_path("events"), indexes=False, samples=3)


def _step(plan, kind):
    rows = plan.steps[plan.steps["kind"] == kind]
    assert len(rows) == 1, f"no {kind} step in {plan.steps[['kind', 'target']]}\n{plan.rejected}"
    return rows.iloc[0]


def _rejected(plan, kind):
    rows = plan.rejected[plan.rejected["kind"] == kind]
    assert len(rows) == 1, plan.rejected
    return rows.iloc[0]


def test_plan_is_ordered_by_dollars_and_exact_steps_are_equivalent(saas_plan, events_plan):
    for plan in (saas_plan, events_plan):
        usd = list(plan.steps["usd_month_saved"])
        assert usd == sorted(usd, reverse=True)
        assert (plan.steps["equivalent"] == plan.steps["trials"]).all()
        assert (plan.steps["trials"] > 0).all()
        s = plan.summary
        assert s["rows_read_after"] < s["rows_read_none"]
        assert s["usd_month_after"] < s["usd_month_before"]


def test_keyset_pagination(saas_plan, events_plan):
    board = _step(saas_plan, "keyset")
    assert board["target"] == "project_board_page"
    assert "(updated_at, task_no) < (?3, ?4)" in board["sql"]
    assert "OFFSET" not in board["sql"].upper()
    assert "ON tasks (project_id, updated_at DESC, task_no DESC)" in board["ddl"]
    # OFFSET pages read every skipped row; a keyset page reads about the page.
    assert board["rows_read_before"] > 10 * board["rows_read_after"]
    timeline = _step(events_plan, "keyset")
    assert timeline["target"] == "device_timeline"
    assert timeline["rows_read_before"] > 0.5 * _count(Path(events_plan.summary["corpus"]), "events")
    assert timeline["rows_read_after"] <= 60  # a 50-row page, seeks included


def test_counter_only_for_unfiltered_counts_and_its_trigger_writes_counted(saas_plan, events_plan):
    tasks = _step(saas_plan, "counter")
    assert tasks["target"] == "count_all_tasks"
    assert tasks["rows_read_before"] == _count(Path(saas_plan.summary["corpus"]), "tasks")
    assert tasks["rows_read_after"] == 1
    assert "tasks_row_count" in tasks["sql"]
    seats = _rejected(saas_plan, "counter")
    assert seats["target"] == "tenant_seat_count" and "WHERE" in seats["reason"]
    events = _step(events_plan, "counter")
    # ingest_reading inserts into events: the counter's trigger writes one row more each time.
    assert events["rows_written_added"] > 0


def test_json_extract_gets_a_generated_column_or_an_expression_index(saas_plan, events_plan):
    locale = _step(saas_plan, "json_column")
    assert "GENERATED ALWAYS AS (json_extract(settings, '$.locale')) VIRTUAL" in locale["ddl"]
    assert "settings_locale" in locale["sql"] and "json_extract" not in locale["sql"].lower()
    assert locale["rows_read_before"] == _count(Path(saas_plan.summary["corpus"]), "users")
    assert locale["rows_read_after"] < 50
    # events is read with SELECT * (event_by_id): a new column would change its rows.
    code = _step(events_plan, "json_column")
    assert "GENERATED" not in code["ddl"] and "json_extract(payload, '$.code')" in code["ddl"]
    assert code["rows_read_after"] <= 60


def test_rollup_for_date_buckets_with_partial_days_from_raw_rows(events_plan):
    daily = _step(events_plan, "rollup")
    assert daily["target"] == "daily_counts"
    assert daily["equivalent"] == daily["trials"] == 3  # sampled windows start mid-day
    assert "events_daily_kind" in daily["sql"] and "UNION ALL" in daily["sql"]
    assert "AFTER INSERT ON events" in daily["ddl"] and "AFTER UPDATE OF ts, kind, value" in daily["ddl"]
    assert daily["rows_read_before"] > 20 * daily["rows_read_after"]
    # ingest_reading now also writes the rollup's row and an entry of the events(ts) index
    assert daily["rows_written_added"] > 0
    joined = events_plan.rejected[events_plan.rejected["target"] == "site_daily_severity"]
    assert "join" in joined["reason"].iloc[0]


def test_n_plus_one_batched_and_refused_where_each_row_has_a_limit(saas_plan, events_plan):
    batch = _step(saas_plan, "n_plus_one")
    assert batch["target"] == "board_comments_n_plus_1"
    assert "json_each(?1)" in batch["sql"].lower()
    assert batch["rows_read_before"] > 5 * batch["rows_read_after"]
    limited = _rejected(events_plan, "n_plus_one")
    assert "LIMIT" in limited["reason"]


def test_fts_match_is_only_proposed_when_every_sample_agrees(saas_db, tmp_path):
    from d1bench.advisor.preparation import as_workload as _load
    from d1bench.advisor.preparation import open_corpus
    from d1bench.fixer.check import Copies, check
    from d1bench.fixer.kinds import fts_match
    from d1bench.fixer.model import Context
    from d1bench.sql.catalog import read_catalog

    conn = open_corpus(saas_db)
    wl = _load(workload_path("saas"))
    rw = fts_match.propose("search_comments_like", Context(read_catalog(conn), conn, wl, {}, {}, {}))
    conn.close()
    assert "comments_fts MATCH ?1" in rw.sql
    with Copies(saas_db, tmp_path) as copies:
        pair = copies.step(rw.ddl)
        try:
            whole = check(rw, pair, [("%safari%",)])
            part = check(rw, pair, [("%afar%",)])  # a substring, not a token: MATCH finds none
        finally:
            pair.close()
    # A common word: MATCH still reads its postings and sorts them, but not every comment.
    assert whole.all_equivalent and whole.rows_read_after < 0.7 * whole.rows_read_before
    assert whole.rows_read_before >= _count(saas_db, "comments")
    assert not part.all_equivalent and part.failures


def _state(conn):
    """A copy's schema, statistics and row counts, as the scratch connection sees them."""
    schema = conn.fetch("SELECT type, name, sql FROM sqlite_schema ORDER BY name")
    tables = [n for t, n, sql in schema if t == "table" and not (sql or "").startswith("CREATE VIRTUAL")]
    counts = {t: conn.fetch(f'SELECT count(*) FROM "{t}"')[0][0] for t in tables}
    return schema, counts, conn.fetch("PRAGMA page_count")


@pytest.mark.parametrize("schema", ["saas", "medical"])
def test_a_step_leaves_both_copies_as_it_found_them(schema, request, tmp_path):
    """Every step runs inside savepoints on the plan's two copies: its DDL, backfill,
    statistics and its trials' writes are all undone, and the next step sees the copies as
    the first did (they are copied once per plan, not once per step)."""
    from d1bench.fixer.check import Copies, check
    from d1bench.fixer.measure import identity

    db = request.getfixturevalue("saas_db" if schema == "saas" else "small_corpus")
    # A write, and an index on what it writes: it costs one more row written after the step.
    table, column, write = (
        ("projects", "name", ("INSERT INTO projects (tenant_id, owner_id, name, status, created_at) "
                              "SELECT tenant_id, owner_id, name || ' copy', status, created_at "
                              "FROM projects LIMIT 3"))
        if schema == "saas" else
        ("papers", "citation_count", ("UPDATE papers SET citation_count = citation_count + 1 "
                                      "WHERE id <= 3")))
    ddl = (f"CREATE TABLE scratch_counts (n INTEGER NOT NULL);\n"
           f"INSERT INTO scratch_counts SELECT count(*) FROM {table};\n"
           f"CREATE INDEX idx_scratch_{table} ON {table}({column});")
    with Copies(db, tmp_path) as copies:
        copies.commit("ANALYZE;")
        found = [_state(c) for c in (copies.before, copies.after)]
        for _ in range(2):
            pair = copies.step(ddl)
            made = pair.after.fetch("SELECT idx, stat FROM sqlite_stat1 WHERE tbl = 'scratch_counts' "
                                    f"OR idx = 'idx_scratch_{table}'")
            assert {r[0] for r in made} == {None, f"idx_scratch_{table}"}, "what it built is analysed"
            assert pair.added_bytes() > 0
            m = check(identity(write[:6], write), pair, [()])
            assert m.rows_written_before > 0 and m.rows_written_after > m.rows_written_before
            pair.close()
            assert [_state(c) for c in (copies.before, copies.after)] == found


def test_trigger_of_narrows_an_update_trigger(saas_plan, saas_db):
    from d1bench.fixer.kinds.trigger_of import narrowed

    sql = sqlite3.connect(saas_db).execute(
        "SELECT sql FROM sqlite_schema WHERE name = 'comments_au'").fetchone()[0]
    assert "AFTER UPDATE OF body ON comments" in narrowed(sql, ["body"])
    # The saas workload never updates comments, so the narrowing saves nothing there: said so.
    reason = _rejected(saas_plan, "trigger_of")["reason"]
    assert reason.startswith("saves nothing measurable in this workload")


@pytest.fixture(scope="module")
def medical_plan(small_corpus):
    return fix(small_corpus, "medical", indexes=False, samples=3)


def test_medical_n_plus_one(medical_plan):
    step = _step(medical_plan, "n_plus_one")
    assert step["target"] == "specialty_reviews_n_plus_1"
    assert step["equivalent"] == step["trials"] == 3
    assert step["rows_read_before"] > 5 * step["rows_read_after"]


def test_medical_vector_search_is_approximate_with_its_recall(medical_plan):
    from d1bench.fixer.kinds.vector import RECALL_TARGET

    step = _step(medical_plan, "vector_lsh")
    assert step["target"] == "semantic_search" and not step["exact"]
    assert step["recall"] >= RECALL_TARGET
    assert step["note"].startswith("APPROXIMATE")
    assert "_buckets" in step["sql"] and "_buckets_ai AFTER INSERT ON papers" in step["ddl"]
    # Brute force steps through every element of every vector per query element.
    assert step["rows_read_before"] > 10 * step["rows_read_after"]


def test_migration_written_once_and_every_step_runs_after_it(events_db, events_plan, tmp_path):
    from d1bench.advisor.verify import apply_sql, copy_corpus

    db = copy_corpus(events_db, tmp_path / "e.sqlite")
    apply_sql(db, events_plan.migration_sql)
    from d1bench.fixer.sqlshape import max_index

    conn = sqlite3.connect(db)
    ran = 0
    for sql in events_plan.steps["sql"]:
        for chunk in sql.split(";"):
            stmt = "\n".join(x for x in chunk.splitlines() if not x.strip().startswith("--"))
            if stmt.strip():
                conn.execute("EXPLAIN " + stmt, [None] * max_index(stmt))
                ran += 1
    conn.close()
    assert ran >= len(events_plan.steps)
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_init.sql").write_text("SELECT 1;\n")
    from d1bench.fixer.plan import _write_migration

    path, filled = _write_migration(migrations, events_plan.migration_sql, False)
    assert filled is None  # events has no step with a backfill
    assert path.name == "0002_d1bench_fix.sql"
    from d1bench.errors import UsageError

    with pytest.raises(UsageError, match="already a d1bench fix plan"):
        _write_migration(migrations, "x", False)
    assert path.read_text() == events_plan.migration_sql


def test_cli_help_and_bad_database(tmp_path):
    cli = [sys.executable, "-m", "d1bench", "fix"]
    out = subprocess.run([*cli, "--help"], capture_output=True, text=True, check=True)
    assert "--migrations" in out.stdout and "--verify" in out.stdout
    bad = subprocess.run([*cli, "--db", str(tmp_path / "nope.sqlite"), "--workload", "medical"],
                         check=False, capture_output=True, text=True)
    assert bad.returncode == 2
    assert "nope.sqlite" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("schema", sorted(GOLDEN))
def test_golden_steps_equivalence_and_rows_read_and_written(schema, request):
    plan = request.getfixturevalue(f"{schema}_plan")
    golden = GOLDEN[schema]
    assert sorted(plan.steps["kind"]) == sorted(golden), plan.rejected
    for kind, want in golden.items():
        row = _step(plan, kind)
        got = {"target": row["target"], "exact": bool(row["exact"]),
               "equivalent": int(row["equivalent"]), "trials": int(row["trials"]),
               "recall": round(float(row["recall"]), 4),
               "rows_read": [round(float(row["rows_read_before"]), 4),
                             round(float(row["rows_read_after"]), 4)],
               "rows_written": [round(float(row["rows_written_before"]), 4),
                                round(float(row["rows_written_after"]), 4)],
               "rows_written_added": round(float(row["rows_written_added"]), 6)}
        for k, v in want.items():
            assert got[k] == (pytest.approx(v, rel=1e-3) if k.startswith(("rows", "recall"))
                              else v), (schema, kind, k)
        if want["exact"]:
            assert got["equivalent"] == got["trials"] > 0, (schema, kind)


def test_shop_has_no_rewrite_to_propose(tmp_path):
    base = FIXTURES / "advice" / "shop"
    db = tmp_path / "shop.sqlite"
    conn = apsw.Connection(str(db))
    conn.execute((base / "schema.sql").read_text(encoding="utf-8"))
    conn.close()
    plan = fix(db, base / "workload.toml", indexes=False, samples=2)
    assert plan.steps.empty and plan.rejected.empty
    assert plan.backfill_sql == "" and "CREATE" not in plan.migration_sql


def test_vector_backfill_for_d1_gives_the_buckets_of_the_scratch_fill(small_corpus, tmp_path):
    """The statements the user sends to D1 and the numpy fill of the scratch copies agree,
    each statement within D1's statement length, none inside the migration."""
    from d1bench.advisor.preparation import as_workload as _load
    from d1bench.advisor.preparation import open_corpus
    from d1bench.advisor.verify import apply_sql, copy_corpus
    from d1bench.fixer.kinds import vector
    from d1bench.fixer.measure import sample_params
    from d1bench.fixer.model import Context
    from d1bench.sql.catalog import read_catalog

    wl = _load("medical")
    conn = open_corpus(small_corpus)
    try:
        rw = vector.propose("semantic_search", Context(
            read_catalog(conn), conn, wl, {}, sample_params(wl, small_corpus, 0, 2), {}))
    finally:
        conn.close()
    statements = [s for s in rw.backfill_sql.splitlines() if s.strip()]
    assert len(statements) == len(range(0, 2001, vector.BACKFILL_ROWS))  # ids 1..2000, from 0
    assert all(s.startswith("INSERT OR IGNORE INTO papers_embedding_vector_buckets")
               and len(s.encode()) < 100_000 for s in statements)
    assert "INSERT OR IGNORE INTO papers_embedding_vector_buckets" not in rw.ddl
    from d1bench.sql.limits import D1_LIMITS

    chunk, migration = "", []
    for line in rw.ddl.splitlines(keepends=True):
        chunk += line
        if apsw.complete(chunk):
            migration.append(chunk)
            chunk = ""
    assert not chunk.strip() and len(migration) >= 6  # tables, planes, index, three triggers
    assert all(len(s.encode()) <= D1_LIMITS.sql_bytes for s in migration)
    buckets = []
    for how in ("sql", "fill"):
        db = copy_corpus(small_corpus, tmp_path / f"{how}.sqlite")
        apply_sql(db, rw.ddl)
        c = apsw.Connection(str(db))
        if how == "sql":
            for s in statements:
                c.execute(s)
        else:
            rw.backfill(c)
        buckets.append(list(c.execute(
            "SELECT tbl, bucket, id FROM papers_embedding_vector_buckets ORDER BY 1, 2, 3")))
        c.close()
    assert buckets[0] == buckets[1] and len(buckets[0]) > 2000


def test_fix_verify_checks_every_rewrite_again_with_all_steps_applied(events_db, events_plan):
    """fix --verify on a schema besides medical: the four steps' DDL together (two of them
    triggers on events), and every rewrite still gives the same rows on its samples."""
    plan = fix(events_db, workload_path("events"), indexes=False, samples=3, verify=True)
    assert plan.summary["verified"] is True
    assert list(plan.steps["kind"]) == list(events_plan.steps["kind"])
    assert events_plan.summary["verified"] is None  # not asked: not claimed


@pytest.mark.parametrize("schema", ["saas", "medical"])
def test_a_read_whose_plan_the_ddl_leaves_alone_is_measured_once(schema, request, tmp_path):
    """measure_templates runs a read on the after copy only when its plan changed there."""
    from d1bench.fixer.check import Copies
    from d1bench.fixer.measure import measure_templates, sample_params
    from d1bench.workload import load_workload

    if schema == "saas":
        db, wl = request.getfixturevalue("saas_db"), load_workload(workload_path("saas"))
        served, ddl = "tenant_projects_summary", "CREATE INDEX idx_p ON projects (tenant_id, status);"
    else:
        db, wl = request.getfixturevalue("small_corpus"), load_workload("medical")
        served, ddl = "top_cited_in_specialty", \
            "CREATE INDEX idx_p ON papers (medical_specialty, citation_count DESC);"
    params = sample_params(wl, db, 0, 2)
    reads = [n for n, t in wl.templates.items() if not t.is_write and params.get(n)]
    with Copies(db, tmp_path) as copies:
        pair = copies.step(ddl)
        ran: list[str] = []
        real = copies.after.execute

        def spy(sql, params=()):
            ran.append(sql)
            return real(sql, params)

        copies.after.execute = spy
        try:
            measured = measure_templates(pair, wl, params, reads)
        finally:
            del copies.after.execute
            pair.close()
    after = {n for n in reads if wl.templates[n].sql in ran}
    assert served in after, "its plan uses the new index: measured on the after copy"
    assert measured[served].rows_read_after != measured[served].rows_read_before
    untouched = [n for n in reads if n not in after]
    assert untouched, "some reads have nothing to gain from the index"
    for n in untouched:
        m = measured[n]
        assert (m.rows_read_after, m.equivalent) == (m.rows_read_before, m.trials), n


def test_fix_starts_from_an_index_migration_it_is_given(saas_db, monkeypatch):
    """Given the advice's migration, fix builds it and does not advise again."""
    import d1bench.advisor

    def refuse(*_args, **_kwargs):
        raise AssertionError("advised again")

    monkeypatch.setattr(d1bench.advisor, "advise", refuse)
    sql = "CREATE INDEX IF NOT EXISTS idx_tasks_tenant_status ON tasks (tenant_id, status);\n"
    plan = fix(saas_db, workload_path("saas"), indexes=sql, samples=2)
    step = _step(plan, "indexes")
    assert step["ddl"] == sql.strip() and step["equivalent"] == step["trials"] > 0
    assert step["rows_read_after"] < step["rows_read_before"]
    assert sql.strip() in plan.migration_sql
