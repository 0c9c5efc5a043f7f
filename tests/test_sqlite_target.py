"""The SQLite target: opening, executing, errors, plans, and D1's row counts estimated.

The hand-checked row counts follow workerd's VDBE patch (see
``d1bench/targets/rowcount.py``), and were confirmed on a local D1 (Miniflare):
a primary-key lookup reads 1 row (hit or miss); a full scan of N rows reads N;
an indexed range of k rows reads k + 1 (the seek, then k steps, the last one
landing past the range); an insert into a table with one secondary index
writes 2 (the row and the index entry).
"""

from __future__ import annotations

import threading
from pathlib import Path

import apsw
import pytest

from d1bench.errors import TargetError, UsageError
from d1bench.targets import TARGETS, open_target
from d1bench.targets.base import Meta, PlanStep, Result
from d1bench.targets.sqlite import SQLiteConnection, SQLiteTarget

N = 500  #: rows of table t
GROUPS = 50  #: t.a takes GROUPS values, each on N // GROUPS rows


def _make_db(path: Path) -> Path:
    db = apsw.Connection(str(path))
    db.execute("""
        CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER NOT NULL, b TEXT NOT NULL);
        CREATE INDEX t_a ON t (a);
        CREATE TABLE plain (id INTEGER PRIMARY KEY, v TEXT);
        CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT);
        CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parent (id));
        CREATE TABLE empty (id INTEGER PRIMARY KEY, v TEXT);
        CREATE VIRTUAL TABLE docs USING fts5 (body);
    """)
    with db:
        db.executemany("INSERT INTO t (a, b) VALUES (?, ?)",
                       [(i % GROUPS, f"row {i}") for i in range(1, N + 1)])
        db.executemany("INSERT INTO parent (name) VALUES (?)", [(f"p{i}",) for i in range(10)])
        db.executemany("INSERT INTO docs (rowid, body) VALUES (?, ?)",
                       [(i, "alpha beta" if i % 3 == 0 else "beta gamma") for i in range(1, 31)])
    db.close()
    return path


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make_db(tmp_path_factory.mktemp("sqlite_target") / "t.sqlite")


@pytest.fixture
def writable(tmp_path: Path) -> Path:
    return _make_db(tmp_path / "w.sqlite")


@pytest.fixture
def conn(db_path: Path):
    with open_target(f"sqlite:{db_path}") as target, target.connect() as c:
        yield c


# --- opening -----------------------------------------------------------------------


def test_open_target_accepts_sqlite_specs_and_bare_paths(db_path: Path) -> None:
    assert isinstance(open_target(f"sqlite:{db_path}"), SQLiteTarget)
    bare = open_target(str(db_path))
    assert isinstance(bare, SQLiteTarget) and bare.url == f"sqlite:{db_path}"


def test_open_target_names_the_spec_and_the_known_schemes() -> None:
    with pytest.raises(UsageError, match=r"postgres://x.*sqlite:PATH.*d1-local.*d1://"):
        open_target("postgres://x")
    with pytest.raises(UsageError, match="no such database file"):
        open_target("sqlite:/nonexistent/dir/db.sqlite")


def test_other_schemes_are_dispatched_lazily_to_their_modules() -> None:
    assert TARGETS == {"sqlite": "d1bench.targets.sqlite:SQLiteTarget",
                       "d1-local": "d1bench.targets.d1.local:LocalD1Target",
                       "d1-worker": "d1bench.targets.d1.worker:WorkerTarget",
                       "d1": "d1bench.targets.d1:D1Target"}
    target = open_target("d1://account/database", env={"CLOUDFLARE_API_TOKEN": "sentinel"})
    assert target.kind == "d1"


def test_target_declares_its_abilities(db_path: Path) -> None:
    target = open_target(f"sqlite:{db_path}")
    assert (target.kind, target.exact_rows_read, target.supports_concurrency,
            target.supports_async) == ("sqlite", False, True, False)
    info = target.describe()
    assert info["target_kind"] == "sqlite" and info["file_bytes"] == db_path.stat().st_size
    assert info["sqlite_version"] == apsw.sqlite_lib_version() and info["path"] == str(db_path)


def test_bad_counters_option_is_a_usage_error(db_path: Path) -> None:
    with pytest.raises(UsageError, match="counters"):
        SQLiteTarget(db_path, counters="sometimes")


# --- executing ---------------------------------------------------------------------


def test_execute_returns_columns_rows_and_meta(conn: SQLiteConnection) -> None:
    result = conn.execute("SELECT id, b AS label FROM t WHERE id = ?", (7,))
    assert isinstance(result, Result) and isinstance(result.meta, Meta)
    assert result.columns == ("id", "label")
    assert result.rows == [(7, "row 7")]
    assert result.meta.duration_ms is not None and result.meta.duration_ms > 0
    assert result.meta.changes is None and result.meta.attempts == 1


def test_writes_report_changes_and_last_row_id(writable: Path) -> None:
    with open_target(f"sqlite:{writable}").connect() as c:
        result = c.execute("INSERT INTO plain (v) VALUES (?)", ("x",))
        assert result.meta.changes == 1 and result.meta.last_row_id == 1
        result = c.execute("UPDATE t SET b = 'y' WHERE a = ?", (3,))
        assert result.meta.changes == N // GROUPS


@pytest.mark.parametrize("sql, params, error_class", [
    ("SELEC 1", (), "syntax"),
    ("SELECT * FROM missing_table", (), "syntax"),
    ("SELECT ?", (1, 2), "syntax"),
    ("INSERT INTO child (parent_id) VALUES (999)", (), "constraint"),
    ("INSERT INTO t (id, a, b) VALUES (1, 1, 'dup')", (), "constraint"),
])
def test_errors_are_classified(writable: Path, sql: str, params: tuple, error_class: str) -> None:
    with open_target(f"sqlite:{writable}").connect() as c, pytest.raises(TargetError) as info:
        c.execute(sql, params)
    assert info.value.error_class == error_class
    assert info.value.message  # SQLite's own words, e.g. "no such table: missing_table"


def test_read_only_target_refuses_writes(db_path: Path) -> None:
    with open_target(f"sqlite:{db_path}", readonly=True).connect() as c:
        assert c.execute("SELECT count(*) FROM t").rows == [(N,)]
        with pytest.raises(TargetError) as info:
            c.execute("INSERT INTO plain (v) VALUES ('x')")
    assert info.value.error_class == "read_only"


def test_foreign_keys_are_enforced_like_on_d1(writable: Path) -> None:
    with open_target(f"sqlite:{writable}").connect() as c:
        c.execute("INSERT INTO child (parent_id) VALUES (1)")
        with pytest.raises(TargetError, match="FOREIGN KEY"):
            c.execute("INSERT INTO child (parent_id) VALUES (12345)")


def test_explain_returns_the_query_plan(conn: SQLiteConnection) -> None:
    steps = conn.explain("SELECT * FROM t WHERE id = ?", (1,))
    assert steps and all(isinstance(s, PlanStep) for s in steps)
    assert "INTEGER PRIMARY KEY" in steps[0].detail
    with pytest.raises(TargetError):
        conn.explain("SELECT * FROM nowhere")


def test_each_thread_gets_its_own_connection(db_path: Path) -> None:
    target = open_target(f"sqlite:{db_path}")
    results: dict[int, list[int]] = {}

    def work(k: int) -> None:
        with target.connect() as c:
            results[k] = [c.execute("SELECT count(*) FROM t WHERE a = ?", (k,)).rows[0][0]
                          for _ in range(50)]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert results == {k: [N // GROUPS] * 50 for k in range(4)}


def test_estimate_rows_false_reports_no_rows_read(db_path: Path) -> None:
    with open_target(f"sqlite:{db_path}", estimate_rows=False).connect() as c:
        meta = c.execute("SELECT * FROM t").meta
    assert meta.rows_read is None and meta.rows_written is None


def test_multi_statement_text_runs_without_an_estimate(writable: Path) -> None:
    import warnings

    with open_target(f"sqlite:{writable}").connect() as c, warnings.catch_warnings():
        warnings.simplefilter("error")  # skipping the estimate is deliberate, not a failure
        meta = c.execute("INSERT INTO plain (v) VALUES ('a'); INSERT INTO plain (v) VALUES ('b')").meta
        assert meta.rows_read is None
        assert c.execute("SELECT count(*) FROM plain").rows == [(2,)]  # both ran, once each


# --- D1's rows read and written, estimated ------------------------------------------


def _meta(conn: SQLiteConnection, sql: str, params: tuple = ()) -> Meta:
    return conn.execute(sql, params).meta


def test_primary_key_lookup_reads_one_row(conn: SQLiteConnection) -> None:
    assert _meta(conn, "SELECT * FROM t WHERE id = ?", (42,)).rows_read == 1
    # A miss is billed too: SeekRowid positions the cursor either way.
    assert _meta(conn, "SELECT * FROM t WHERE id = ?", (N + 999,)).rows_read == 1


def test_full_scan_of_n_rows_reads_n(conn: SQLiteConnection) -> None:
    assert _meta(conn, "SELECT * FROM t").rows_read == N
    # Filtering does not help: every row is still visited.
    assert _meta(conn, "SELECT * FROM t WHERE b LIKE ?", ("%7",)).rows_read == N
    assert _meta(conn, "SELECT * FROM plain").rows_read == 1  # an empty table: the Rewind alone


def test_indexed_range_of_k_rows_reads_k_plus_one(conn: SQLiteConnection) -> None:
    k = N // GROUPS
    covering = _meta(conn, "SELECT a FROM t WHERE a = ?", (3,))
    assert covering.rows_read == k + 1
    table_rows = _meta(conn, "SELECT * FROM t WHERE a = ?", (3,))
    assert table_rows.rows_read == k + 1  # fetching the table row by rowid is not billed
    ranged = _meta(conn, "SELECT a FROM t WHERE a BETWEEN ? AND ?", (3, 5))
    assert ranged.rows_read == 3 * k + 1
    # The last key of the index: no entry follows the range, so no extra step.
    last = _meta(conn, "SELECT a FROM t WHERE a = ?", (GROUPS - 1,))
    assert last.rows_read in (k, k + 1)
    # A miss on an equality seek is not billed at all.
    assert _meta(conn, "SELECT a FROM t WHERE a = ?", (GROUPS + 10,)).rows_read == 0


def test_count_star_reads_the_whole_btree(conn: SQLiteConnection) -> None:
    assert _meta(conn, "SELECT count(*) FROM t").rows_read == N


def test_insert_writes_one_row_per_index_entry(writable: Path) -> None:
    with open_target(f"sqlite:{writable}").connect() as c:
        one_index = _meta(c, "INSERT INTO t (a, b) VALUES (?, ?)", (1, "new"))
        assert (one_index.rows_read, one_index.rows_written) == (0, 2)
        no_index = _meta(c, "INSERT INTO plain (v) VALUES (?)", ("x",))
        assert (no_index.rows_read, no_index.rows_written) == (0, 1)
        # The foreign key check reads the parent row it references.
        fk = _meta(c, "INSERT INTO child (parent_id) VALUES (?)", (3,))
        assert (fk.rows_read, fk.rows_written) == (1, 1)


def test_updates_and_deletes_by_key(writable: Path) -> None:
    def billed(meta: Meta) -> tuple[int | None, int | None]:
        return meta.rows_read, meta.rows_written

    with open_target(f"sqlite:{writable}").connect() as c:
        assert billed(_meta(c, "UPDATE t SET b = ? WHERE id = ?", ("z", 5))) == (1, 1)
        # Changing an indexed column rewrites its index entry too.
        assert billed(_meta(c, "UPDATE t SET a = a + 1 WHERE id = ?", (6,))) == (1, 2)
        # D1 bills one write per deleted row (index entries removed are not counted).
        assert billed(_meta(c, "DELETE FROM t WHERE id = ?", (7,))) == (1, 1)
        # Emptying a table (SQLite's truncate optimisation) bills every row removed.
        assert billed(_meta(c, "DELETE FROM plain")) == (0, 0)
        c.execute("INSERT INTO plain (v) VALUES ('a'), ('b'), ('c')")
        assert billed(_meta(c, "DELETE FROM plain")) == (0, 3)


def test_sorting_and_grouping_read_their_temporary_btrees(conn: SQLiteConnection) -> None:
    # ORDER BY on an unindexed column: the scan (N), then the sorter (1 sort + N-1 steps).
    assert _meta(conn, "SELECT * FROM t ORDER BY b").rows_read == 2 * N
    # A sorter keeping the top 10: every row past the 10th also peeks at the worst kept.
    assert _meta(conn, "SELECT * FROM t ORDER BY b DESC LIMIT 10").rows_read == 2 * N


def test_joins_read_each_key_lookup(writable: Path) -> None:
    with open_target(f"sqlite:{writable}").connect() as c:
        for i in range(20):
            c.execute("INSERT INTO child (parent_id) VALUES (?)", (i % 10 + 1,))
        meta = _meta(c, "SELECT * FROM child JOIN parent ON parent.id = child.parent_id")
    assert meta.rows_read == 20 + 20  # scan child, one primary-key lookup per child row


def test_json_each_reads_one_row_per_element(conn: SQLiteConnection) -> None:
    assert _meta(conn, "SELECT value FROM json_each(?)", ("[1,2,3,4,5]",)).rows_read == 5
    assert _meta(conn, "SELECT value FROM json_each(?)", ("[]",)).rows_read == 0


def test_full_text_search_reads_one_row_per_match(conn: SQLiteConnection) -> None:
    # One VNext per match (the last call finds the end), nothing for FTS5's own tables.
    assert _meta(conn, "SELECT rowid FROM docs WHERE docs MATCH ?", ("alpha",)).rows_read == 10
    # Joined to a table by key: one more read per match for the key lookup.
    joined = "SELECT t.b FROM docs JOIN t ON t.id = docs.rowid WHERE docs MATCH ? ORDER BY bm25(docs)"
    assert _meta(conn, joined, ("alpha",)).rows_read == 10 + 10 + 10  # + the sorter's rows


def test_counters_reported_in_extra(conn: SQLiteConnection) -> None:
    meta = _meta(conn, "SELECT * FROM t WHERE b = ?", ("row 3",))
    assert set(meta.extra) == {"vm_steps", "fullscan_steps", "sort", "autoindex"}
    assert meta.extra["fullscan_steps"] == N - 1 and meta.extra["vm_steps"] > N
    sorted_ = _meta(conn, "SELECT * FROM t ORDER BY b")
    assert sorted_.extra["sort"] == 1


def test_always_collecting_counters_fills_extra_for_fixed_estimates(db_path: Path) -> None:
    with open_target(f"sqlite:{db_path}", counters="always").connect() as c:
        meta = _meta(c, "SELECT * FROM t WHERE id = ?", (3,))
    assert meta.rows_read == 1 and meta.extra["vm_steps"] > 0


def test_estimate_follows_schema_changes_made_through_the_connection(writable: Path) -> None:
    with open_target(f"sqlite:{writable}").connect() as c:
        sql = "SELECT * FROM t WHERE b = ?"
        assert _meta(c, sql, ("row 9",)).rows_read == N  # no index on b: a full scan
        c.execute("CREATE INDEX t_b ON t (b)")
        assert _meta(c, sql, ("row 9",)).rows_read == 2  # seek + one step past the match


def test_steady_state_estimate_matches_the_counted_one(conn: SQLiteConnection) -> None:
    """After calibrating, a statement whose estimate needs no counters stops collecting them."""
    sql = "SELECT a FROM t WHERE a = ?"
    metas = [_meta(conn, sql, (k % (GROUPS - 1),)) for k in range(40)]
    assert {m.rows_read for m in metas} == {N // GROUPS + 1}
    assert metas[0].extra and not metas[-1].extra  # counted at first, not any more


# --- against D1's own counters ------------------------------------------------------

FIDELITY_TEMPLATES = ("paper_by_id", "paper_by_doi", "search_papers", "search_papers_by_design",
                      "top_cited_in_specialty", "list_specialty_papers", "citation_network",
                      "trials_by_condition", "user_reading_analytics", "specialty_recent_reads",
                      "paper_reviews")


@pytest.mark.d1local
def test_estimates_follow_local_d1s_counts(local_d1_corpus, small_corpus: Path) -> None:
    """Per template of `medical`, the estimate is within 10% of what local D1 bills."""
    import random

    from d1bench.workload import load_workload

    workload = load_workload("medical")
    sqlite = open_target(f"sqlite:{small_corpus}", readonly=True).connect()
    bound = workload.bind(sqlite, seed=5)
    rng = random.Random(5)
    totals: dict[str, list[int]] = {}
    with local_d1_corpus.target() as target, target.connect() as d1:
        for name in FIDELITY_TEMPLATES:
            for _ in range(3):
                params = bound.draw_params(name, rng)
                sql = workload.templates[name].sql
                estimated = sqlite.execute(sql, params).meta.rows_read
                billed = d1.execute(sql, params).meta.rows_read
                pair = totals.setdefault(name, [0, 0])
                pair[0] += estimated
                pair[1] += billed
    sqlite.close()
    off = {name: (est - d1) / d1 for name, (est, d1) in totals.items() if abs(est - d1) > 0.1 * d1}
    assert not off, f"estimates more than 10% from D1's rows_read: {off} (totals {totals})"
