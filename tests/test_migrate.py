"""``d1bench migrate`` against real PostgreSQL and MariaDB servers started by the suite.

Each server runs on 127.0.0.1 in a temporary directory as an unprivileged user,
with a sentinel password that must never appear in any output.  Each holds the
medical platform in its own types (filled from a generated corpus) and a
``probe`` table with one column of every type the rules cover.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from d1bench.migrator import ValidationFailed, aside_path, migrate
from d1bench.migrator.demo import create_database, load_medical
from d1bench.migrator.servers import mariadb_server, postgres_server
from d1bench.migrator.sqlfix import transpile

pytestmark = pytest.mark.slow

SENTINEL = "Sentinel-pw-7f3a"
PAPERS = 300

PG_PROBE = r"""
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE probe (
    id INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    flag BOOLEAN NOT NULL DEFAULT false, seen_at TIMESTAMPTZ, local_at TIMESTAMP, day DATE,
    at_time TIME, doc JSONB, raw_doc JSON, tags TEXT[] DEFAULT '{}', scores INTEGER[],
    price NUMERIC(10, 2), exact NUMERIC, ratio DOUBLE PRECISION, uid UUID, mood mood,
    payload BYTEA, big BIGINT, note TEXT DEFAULT E'it''s',
    CHECK (LEAST(price, 1000) >= 0));
INSERT INTO probe (flag, seen_at, local_at, day, at_time, doc, raw_doc, tags, scores, price,
                   exact, ratio, uid, mood, payload, big) VALUES
 (true, '2024-03-01 13:05:00+02', '2024-03-01 13:05:00.25', '2024-02-29', '23:59:58',
  '{"b": [1.50, 2], "a": "x y"}', '{"b": [1.50, 2],  "a": "x y"}', ARRAY['a', 'b c', 'ü'],
  ARRAY[1, NULL, 3], 12.34, 12345678901234567890.123456789, 0.1,
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'happy', '\x00ff10', 9007199254740993),
 (false, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL),
 (true, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL);
DELETE FROM probe WHERE id = 3;
"""

PG_PROBE_ROW = (1, 1, "2024-03-01 11:05:00", "2024-03-01 13:05:00.250000", "2024-02-29",
                "23:59:58", '{"a":"x y","b":[1.50,2]}', '{"b": [1.50, 2],  "a": "x y"}',
                '["a","b c","ü"]', "[1,null,3]", 12.34, "12345678901234567890.123456789", 0.1,
                "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "happy", b"\x00\xff\x10",
                9007199254740993, "it's")

MY_PROBE = r"""
CREATE TABLE probe (
    id INT AUTO_INCREMENT PRIMARY KEY, flag TINYINT(1) NOT NULL DEFAULT 0, made DATETIME(6),
    stamp TIMESTAMP NULL, day DATE, at_time TIME, doc JSON,
    mood ENUM('sad', 'ok', 'happy'), price DECIMAL(10, 2), exact DECIMAL(30, 9), ratio DOUBLE,
    payload BLOB, big BIGINT, note VARCHAR(20) DEFAULT 'it''s') ENGINE=InnoDB;
INSERT INTO probe (flag, made, stamp, day, at_time, doc, mood, price, exact, ratio, payload, big)
VALUES (1, '2024-03-01 13:05:00.250000', '2024-03-01 13:05:00', '2024-02-29', '23:59:58',
        '{"b": [1.50, 2], "a": "x y"}', 'happy', 12.34, 123456789012345678901.123456789, 0.1,
        X'00ff10', 9007199254740993),
       (0, NULL, NULL, '0000-00-00', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"""

MY_PROBE_ROW = (1, 1, "2024-03-01 13:05:00.250000", "2024-03-01 13:05:00", "2024-02-29",
                "23:59:58", '{"b": [1.50, 2], "a": "x y"}', "happy", 12.34,
                "123456789012345678901.123456789", 0.1, b"\x00\xff\x10", 9007199254740993, "it's")


def _run_sql(url: str, script: str) -> None:
    from d1bench.migrator.demo import _connect

    conn = _connect(url)
    try:
        with conn.cursor() as cur:
            for statement in [s for s in script.split(";\n") if s.strip()]:
                cur.execute(statement)
    finally:
        conn.close()


@pytest.fixture(scope="session")
def medical_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from d1bench import generate_corpus

    path = tmp_path_factory.mktemp("migrate") / "medical.sqlite"
    generate_corpus(path, papers=PAPERS, seed=11)
    return path


def _server(factory, probe: str, corpus: Path):  # type: ignore[no-untyped-def]
    with factory(SENTINEL) as server:
        medical = create_database(server.url(), "medical")
        load_medical(corpus, medical)
        probe_url = create_database(server.url(), "probe")
        _run_sql(probe_url, probe)
        yield {"medical": medical, "probe": probe_url, "server": server}


@pytest.fixture(scope="session")
def pg(medical_corpus: Path):
    yield from _server(postgres_server, PG_PROBE, medical_corpus)


@pytest.fixture(scope="session")
def my(medical_corpus: Path):
    yield from _server(mariadb_server, MY_PROBE, medical_corpus)


@pytest.fixture(scope="module")
def fresh_d1(tmp_path_factory: pytest.TempPathFactory):
    """A local D1 of this module's own: the session's ``local_d1`` may hold the medical corpus."""
    from d1bench.targets.d1.local import LocalD1

    with LocalD1(tmp_path_factory.mktemp("d1-migrate")) as d1:
        yield d1


@pytest.fixture(params=["pg", "my"])
def src(request: pytest.FixtureRequest):
    return request.getfixturevalue(request.param)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "d1bench", "migrate", *args], text=True,
                          capture_output=True, env=env, timeout=120, check=False)


# --- conversion ---------------------------------------------------------------


def test_sqlglot_faults_are_fixed() -> None:
    assert transpile("SELECT E'it\\'s'", "postgres") == "SELECT 'it''s'"
    assert transpile("SELECT LEAST(a, b, c) FROM t", "postgres") == "SELECT MIN(a, b, c) FROM t"
    con = sqlite3.connect(":memory:")
    sql = transpile("SELECT 1 WHERE 'b' = ANY (ARRAY['a'::text, 'b'::text])", "postgres")
    assert con.execute(sql).fetchall() == [(1,)]


def test_every_type_round_trips(src, tmp_path: Path) -> None:
    out = tmp_path / "probe.sqlite"
    result = migrate(src["probe"], f"sqlite:{out}", progress=False)
    assert result.ok, result.checks
    con = sqlite3.connect(out)
    rows = con.execute("SELECT * FROM probe ORDER BY id").fetchall()
    want = PG_PROBE_ROW if src["server"].kind == "postgresql" else MY_PROBE_ROW
    assert rows[0] == want
    if src["server"].kind == "mysql":
        assert rows[1][4] is None  # the zero date
    ddl = con.execute("SELECT sql FROM sqlite_master WHERE name = 'probe'").fetchone()[0]
    assert "INTEGER PRIMARY KEY" in ddl and '"flag" INTEGER NOT NULL DEFAULT 0 CHECK' in ddl
    assert "'happy'" in ddl  # the ENUM's CHECK
    with pytest.raises(sqlite3.IntegrityError):
        con.execute("INSERT INTO probe (flag, mood) VALUES (1, 'furious')")
    report = result.conversion.report
    assert {"type", "key", "default"} <= set(report["kind"])
    if src["server"].kind == "postgresql":
        # the sequence had reached 3 (row 3 deleted): the next id stays 4
        assert con.execute("SELECT seq FROM sqlite_sequence WHERE name = 'probe'").fetchone() == (3,)
        assert "MIN(" in ddl  # LEAST in the CHECK
        numeric = report[(report.column == "exact") & (report.kind == "type")].decision.iloc[0]
        assert "TEXT" in numeric and "double" in numeric


def test_converted_medical_ddl_passes_d1_check_and_runs_on_local_d1(pg, fresh_d1) -> None:
    from d1bench.schema import d1_problems

    result = migrate(pg["medical"], "sqlite:/nonexistent/x.sqlite", dry_run=True, progress=False)
    assert d1_problems(result.conversion.ddl) == []
    with fresh_d1.target() as target:
        conn = target.connect(allow_writes=True)
        for plan in result.conversion.tables:
            for statement in plan.ddl:
                conn.execute(statement)
        names = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'").rows}
        assert {"papers", "citations", "reading_history"} <= names
        for plan in reversed(result.conversion.tables):
            conn.execute(f'DROP TABLE "{plan.name}"')
        conn.close()


def test_dry_run_writes_nothing(pg, tmp_path: Path) -> None:
    out = tmp_path / "never.sqlite"
    done = _cli("--from", pg["medical"], "--to", f"sqlite:{out}", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "CREATE TABLE" in done.stdout and "timestamp with time zone -> TEXT in UTC" in done.stdout
    assert list(tmp_path.iterdir()) == []
    assert SENTINEL not in done.stdout + done.stderr


def _same_answers(workload, bound, rng, want, got, draws: int = 3) -> int:  # type: ignore[no-untyped-def]
    """Each read template, ``draws`` times with the same parameters on both sides; rows compared."""
    compared = 0
    for name, template in workload.templates.items():
        if template.is_write:
            continue
        for _ in range(draws):
            params = bound.draw_params(name, rng)
            expected = want(template.sql, params)
            assert got(template.sql, params) == expected, (name, params)
            compared += len(expected)
    return compared


# --- the medical workload ------------------------------------------------------


def test_migrated_medical_replays_with_the_corpus_rows(pg, my, medical_corpus: Path,
                                                       tmp_path: Path) -> None:
    from d1bench.schema import create_schema
    from d1bench.targets import open_target
    from d1bench.workload import load_workload

    workload = load_workload("medical")
    with open_target(f"sqlite:{medical_corpus}") as original:
        conn = original.connect()
        bound = workload.bind(conn, seed=4)
        for name, source in (("pg", pg), ("my", my)):
            out = tmp_path / f"{name}.sqlite"
            assert migrate(source["medical"], f"sqlite:{out}", progress=False).ok
            # PostgreSQL and MySQL have no FTS5: the medical schema's own search index
            # and view are added after the migration, as a user would.
            with sqlite3.connect(out) as mig:
                create_schema(mig, "fts", "views")
                mig.execute("INSERT INTO papers_fts (papers_fts) VALUES ('rebuild')")
            with open_target(f"sqlite:{out}") as migrated:
                mconn = migrated.connect()
                compared = _same_answers(workload, bound, random.Random(9),
                                         lambda sql, p: conn.execute(sql, p).rows,
                                         lambda sql, p, c=mconn: c.execute(sql, p).rows)
                mconn.close()
            assert compared > 50
        conn.close()


# --- a schema besides medical: saas, written in PostgreSQL's types ---------------

SAAS_TABLES = ("tenants", "users", "projects", "tasks", "comments", "audit_log", "corpus_meta")


@pytest.fixture(scope="session")
def pg_saas(pg, saas_db: Path) -> str:
    from d1bench.migrator.demo import load_sqlite
    from d1bench.schema import split_statements

    url = create_database(pg["server"].url(), "saas")
    ddl = (Path(__file__).parent / "fixtures" / "migrate" / "saas_postgres.sql").read_text()
    load_sqlite(saas_db, url, split_statements(ddl), SAAS_TABLES, arrays={("tasks", "labels")})
    return url


def _as_json(value):  # type: ignore[no-untyped-def]
    # JSONB keeps its own key order (shorter keys first): compare documents, not text.
    if isinstance(value, str) and value[:1] in "{[":
        with contextlib.suppress(ValueError):
            return json.dumps(json.loads(value), sort_keys=True)
    return value


def _rows(con: sqlite3.Connection, sql: str, params=()) -> list:  # type: ignore[no-untyped-def]
    return sorted((tuple(_as_json(v) for v in row) for row in con.execute(sql, params)), key=repr)


def test_saas_schema_migrates_and_replays_its_workload(pg_saas: str, saas_db: Path,
                                                       tmp_path: Path) -> None:
    from schemas import workload_path

    from d1bench.targets import open_target
    from d1bench.workload import load_workload

    out = tmp_path / "saas.sqlite"
    result = migrate(pg_saas, f"sqlite:{out}", progress=False)
    assert result.ok, result.checks
    assert any("idx_audit_recent" in p for p in result.conversion.problems)  # partial index
    ddl = result.conversion.ddl
    assert 'PRIMARY KEY ("project_id", "task_no")' in ddl
    assert 'FOREIGN KEY ("project_id", "task_no") REFERENCES "tasks"' in ddl
    assert "\"plan\" TEXT NOT NULL CHECK (\"plan\" IN ('free', 'team'" in ddl
    original = sqlite3.connect(f"file:{saas_db}?mode=ro", uri=True)
    migrated = sqlite3.connect(out)
    for table in SAAS_TABLES:
        assert _rows(migrated, f"SELECT * FROM {table}") == _rows(original,
                                                                  f"SELECT * FROM {table}"), table
    # PostgreSQL has no FTS5 or SQLite views: add the schema's own, as a user would.
    for (sql,) in original.execute("SELECT sql FROM sqlite_master WHERE type IN ('view', 'trigger')"
                                   " OR name = 'comments_fts'"):
        migrated.execute(sql)
    migrated.execute("INSERT INTO comments_fts (comments_fts) VALUES ('rebuild')")
    migrated.commit()
    workload = load_workload(workload_path("saas"))
    with open_target(f"sqlite:{saas_db}") as target:
        bound = workload.bind(target.connect(), seed=2)
    compared = _same_answers(workload, bound, random.Random(3),
                             lambda sql, p: _rows(original, sql, p),
                             lambda sql, p: _rows(migrated, sql, p))
    assert compared > 20


# --- validation and rollback ---------------------------------------------------


def test_corrupted_row_is_named_and_target_left_untouched(pg, tmp_path: Path) -> None:
    out = tmp_path / "kept.sqlite"
    out.write_bytes(b"the user's old file")

    def corrupt(table: str, n: int) -> None:
        if table == "users" and n == 1:
            con = sqlite3.connect(aside_path(out))
            con.execute("UPDATE users SET name = 'Mallory' WHERE id = 3")
            con.commit()
            con.close()

    with pytest.raises(ValidationFailed) as caught:
        migrate(pg["medical"], f"sqlite:{out}", force=True, progress=False, on_batch=corrupt)
    message = str(caught.value)
    assert "table users" in message and "id=3" in message and "column name" in message
    assert out.read_bytes() == b"the user's old file"
    assert not aside_path(out).exists()


def test_interrupted_migration_resumes_without_duplicates(pg, medical_corpus: Path,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "resumed.sqlite"
    args = ["--from", pg["medical"], "--to", f"sqlite:{out}", "--batch-rows", "40",
            "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-m", "d1bench", "migrate", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    aside = aside_path(out)
    deadline = time.monotonic() + 60
    copied = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if aside.exists():
            try:
                con = sqlite3.connect(aside, timeout=0.1)
                copied = con.execute("SELECT coalesce(sum(rows), 0) FROM _d1bench_migration "
                                     "WHERE item = 'citations'").fetchone()[0]
                con.close()
            except sqlite3.OperationalError:
                pass
            if copied >= 200:
                os.kill(proc.pid, signal.SIGKILL)
                break
        time.sleep(0.005)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, "the copy finished before it could be killed"
    assert not out.exists() and aside.exists()
    report = tmp_path / "report.md"
    done = _cli(*args, "--report", str(report))
    assert done.returncode == 0, done.stderr
    assert "True" in done.stdout  # the resumed column of the copy table
    assert "| table | column | kind |" in report.read_text()
    for text in (done.stdout, done.stderr, report.read_text()):
        assert SENTINEL not in text
    assert SENTINEL.encode() not in out.read_bytes()
    src = sqlite3.connect(medical_corpus)
    dst = sqlite3.connect(out)
    for table in ("papers", "citations", "reading_history"):
        want = src.execute(f"SELECT count(*), total(id) FROM {table}").fetchone()
        assert dst.execute(f"SELECT count(*), total(id) FROM {table}").fetchone() == want
    assert dst.execute("SELECT count(*) FROM sqlite_master WHERE name = '_d1bench_migration'"
                       ).fetchone() == (0,)


def test_renames_carry_through_keys_and_validation(my, tmp_path: Path) -> None:
    out = tmp_path / "renamed.sqlite"
    result = migrate(my["medical"], f"sqlite:{out}", progress=False,
                     maps=["users=people", "papers.authors=authors_json"])
    assert result.ok, result.checks
    con = sqlite3.connect(out)
    assert con.execute("SELECT count(*) FROM people").fetchone()[0] > 0
    assert con.execute("SELECT json_valid(authors_json) FROM papers LIMIT 1").fetchone() == (1,)
    refs = {r[2] for r in con.execute("PRAGMA foreign_key_list(reading_history)")}
    assert refs == {"people", "papers"}


def test_check_queries_are_compared(my, tmp_path: Path) -> None:
    result = migrate(my["medical"], f"sqlite:{tmp_path / 'q.sqlite'}", progress=False,
                     queries=[("SELECT medical_specialty, count(*) FROM papers "
                               "GROUP BY medical_specialty"),
                              ("SELECT evidence_level, avg(citation_count) FROM papers "
                               "GROUP BY evidence_level")])
    queries = result.checks[result.checks.table == "(query)"]
    assert len(queries) == 2 and queries.ok.all()


def test_a_file_of_the_sources_queries_is_compared_on_both_sides(pg, my, tmp_path: Path) -> None:
    """--check-file: each server's own SQL (a semicolon in a string does not split it)."""
    files = {
        "pg": ("SELECT medical_specialty, count(*) FROM papers GROUP BY medical_specialty;\n"
               "-- a comment; with a semicolon\n"
               "SELECT count(*) FROM papers WHERE title <> 'a;b' AND citation_count >= 0;\n"),
        "my": ("SELECT evidence_level, count(*) FROM `papers` GROUP BY evidence_level;\n"
               "SELECT count(*) FROM papers WHERE title <> 'a;b';\n"),
    }
    for name, server in (("pg", pg), ("my", my)):
        queries = tmp_path / f"{name}.sql"
        queries.write_text(files[name])
        out = tmp_path / f"{name}.sqlite"
        done = _cli("--from", server["medical"], "--to", f"sqlite:{out}", "--check-file",
                    str(queries), "--no-progress")
        assert done.returncode == 0, done.stderr
        checked = [line for line in done.stdout.splitlines() if "(query)" in line]
        assert len(checked) == 2 and all(" True " in f" {line} " for line in checked), done.stdout
        assert "a;b" in done.stdout and SENTINEL not in done.stdout + done.stderr
    bad = tmp_path / "writes.sql"
    bad.write_text("SELECT 1;\n\nDELETE FROM papers;\n")
    done = _cli("--from", pg["medical"], "--to", f"sqlite:{tmp_path / 'never.sqlite'}",
                "--check-file", str(bad))
    assert done.returncode == 2 and f"{bad}:3: DELETE" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "never.sqlite").exists()


def test_migrate_into_local_d1_and_roll_back_what_d1_cannot_hold(pg, fresh_d1) -> None:
    with fresh_d1.target() as spec:
        result = migrate(pg["medical"], spec, tables=["clinical_trials", "papers", "citations"],
                         progress=False, batch_rows=120)
    assert result.ok, result.checks
    with fresh_d1.target() as target:
        conn = target.connect()
        assert conn.execute("SELECT count(*) FROM papers").rows == [(PAPERS,)]
        conn.close()
    # 2^53 + 1 is written exactly (as a literal) but D1's JavaScript API reads it back
    # as 2^53: validation names the value, and the new table is dropped again.
    with pytest.raises(ValidationFailed, match=r"table probe.*id=1: column big"), \
            fresh_d1.target() as spec:
        migrate(pg["probe"], spec, progress=False)
    with fresh_d1.target() as target:
        conn = target.connect(allow_writes=True)
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master").rows}
        assert "probe" not in names and "_d1bench_migration" not in names
        for table in ("citations", "papers", "clinical_trials"):
            conn.execute(f"DROP TABLE {table}")
        conn.close()


# --- bad input ------------------------------------------------------------------


def test_bad_input_is_one_line_exit_2_and_never_shows_the_password(pg, tmp_path: Path) -> None:
    server = pg["server"]
    out = f"sqlite:{tmp_path / 'x.sqlite'}"
    wrong = server.url("medical").replace(SENTINEL, "Wrong-" + SENTINEL)
    cases = {
        "unreachable": (f"postgresql://d1bench:{SENTINEL}@127.0.0.1:1/medical", "cannot connect"),
        "password": (wrong, "password authentication failed"),
        "table": (pg["medical"], "no table 'nope'"),
    }
    for what, (url, expected) in cases.items():
        extra = ["--tables", "nope"] if what == "table" else []
        done = _cli("--from", url, "--to", out, *extra)
        assert done.returncode == 2, (what, done.stderr)
        assert expected in done.stderr, (what, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert SENTINEL not in done.stdout + done.stderr, what
    _run_sql(pg["probe"], "CREATE TABLE odd (id INTEGER PRIMARY KEY, span INTERVAL)")
    try:
        done = _cli("--from", pg["probe"], "--to", out, "--tables", "odd")
        assert done.returncode == 2 and "odd.span" in done.stderr and "no conversion rule" in \
            done.stderr, done.stderr
        assert SENTINEL not in done.stdout + done.stderr
    finally:
        _run_sql(pg["probe"], "DROP TABLE odd")
    assert not (tmp_path / "x.sqlite").exists()
