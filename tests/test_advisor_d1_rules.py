"""D1's counting rules in the advisor's cost model, each checked against local D1's own counter.

Every statement below runs on a real local D1 (Miniflare, workerd's counter)
and, on a SQLite copy holding the same rows, through the advisor's what-if
plan and cost model; the two must agree.  The named tests then pin each rule
the advisor relies on, so a change in workerd's counting (or in the model)
says which rule broke.

What local D1 showed (and the model follows):

* a rowid table's row fetched after an index hit is not billed: a covering
  index reads the same rows as a plain one over the same range;
* the primary-key lookup into a WITHOUT ROWID table after a secondary-index
  hit is not billed either (SQLite probes it with ``NotFound``, which workerd
  does not count): covering and plain read the same here too;
* ``COUNT(*)`` of a whole table adds the b-tree's entry count;
* deleting a parent row, or changing its key, scans every child table whose
  foreign-key column no index begins with, once per parent row; with such an
  index the check reads nothing;
* a child's insert, or a change of its foreign-key column, reads its parent: one row;
* a multi-row DELETE on a table in a foreign key seeks each deleted row again;
* a partial index ``WHERE col IS NOT NULL`` on the child's column serves the
  check as a full one does (``col = ?`` implies it).
"""

from __future__ import annotations

from pathlib import Path

import apsw
import pytest

from d1bench.advisor.costmodel import CostModel
from d1bench.advisor.query import analyze
from d1bench.advisor.stats import Stats
from d1bench.advisor.whatif import WhatIf
from d1bench.sql.catalog import read_catalog

SCHEMA = [
    "CREATE TABLE rr_t (id INTEGER PRIMARY KEY, a INTEGER, b TEXT, c INTEGER)",
    "CREATE INDEX rr_t_a ON rr_t (a)",
    ("CREATE TABLE rr_w (k1 INTEGER, k2 INTEGER, a INTEGER, b TEXT, PRIMARY KEY (k1, k2)) "
     "WITHOUT ROWID"),
    "CREATE INDEX rr_w_a ON rr_w (a)",
    "CREATE TABLE rr_p (id INTEGER PRIMARY KEY, name TEXT)",
    "CREATE TABLE rr_scan (id INTEGER PRIMARY KEY, pid INTEGER REFERENCES rr_p (id), v INTEGER)",
    "CREATE TABLE rr_seek (id INTEGER PRIMARY KEY, pid INTEGER REFERENCES rr_p (id), v INTEGER)",
    "CREATE INDEX rr_seek_pid ON rr_seek (pid)",
    "CREATE TABLE rr_q (id INTEGER PRIMARY KEY, name TEXT)",
    "CREATE TABLE rr_qc (id INTEGER PRIMARY KEY, qid INTEGER REFERENCES rr_q (id), v INTEGER)",
    "CREATE INDEX rr_qc_qid ON rr_qc (qid)",
    "CREATE TABLE rr_k (id INTEGER PRIMARY KEY, kind TEXT CHECK (kind IN ('a', 'b', 'c')), v INTEGER)",
    ("CREATE TABLE rr_wc (id INTEGER PRIMARY KEY, k1 INTEGER, k2 INTEGER, "
     "FOREIGN KEY (k1, k2) REFERENCES rr_w (k1, k2))"),
    "CREATE TABLE rr_c (id INTEGER PRIMARY KEY, code TEXT)",
    "CREATE TABLE rr_o (id INTEGER PRIMARY KEY, cid INTEGER REFERENCES rr_c (id), v INTEGER)",
    "CREATE INDEX rr_o_cid ON rr_o (cid) WHERE cid IS NOT NULL",
]
_N = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {}) "
DATA = [
    _N.format(1000) + "INSERT INTO rr_t (a, b, c) SELECT x % 100, 'b' || x, x FROM n",
    _N.format(1000) + "INSERT INTO rr_w (k1, k2, a, b) SELECT x % 7, x, x % 100, 'b' || x FROM n",
    _N.format(200) + "INSERT INTO rr_p (id, name) SELECT x, 'p' || x FROM n",
    _N.format(1000) + "INSERT INTO rr_scan (pid, v) SELECT 1 + x % 200, x FROM n",
    _N.format(1000) + "INSERT INTO rr_seek (pid, v) SELECT 1 + x % 200, x FROM n",
    _N.format(200) + "INSERT INTO rr_q (id, name) SELECT x, 'q' || x FROM n",
    _N.format(1000) + "INSERT INTO rr_qc (qid, v) SELECT 1 + x % 100, x FROM n",
    _N.format(200) + "INSERT INTO rr_c (id, code) SELECT x, 'c' || x FROM n",
    _N.format(900) + ("INSERT INTO rr_o (cid, v) SELECT CASE WHEN x % 9 = 0 THEN 1 + x % 100 END, x "
                      "FROM n"),
]
# Run in this order on both databases: the writes change what later statements see.
STATEMENTS = [
    "SELECT * FROM rr_t WHERE a = 5",
    "SELECT a FROM rr_t WHERE a = 5",
    "SELECT * FROM rr_w WHERE a = 5",
    "SELECT a, k1, k2 FROM rr_w WHERE a = 5",
    "SELECT * FROM rr_w WHERE k1 = 3 AND k2 = 10",
    "SELECT * FROM rr_w WHERE k1 = 3 AND k2 = 11",
    "SELECT * FROM rr_t WHERE id = 5000",
    "SELECT * FROM rr_w WHERE k1 = 3",
    "SELECT rr_t.c, rr_w.b FROM rr_t JOIN rr_w ON rr_w.a = rr_t.a WHERE rr_t.id < 4",
    "SELECT count(*) FROM rr_t",
    "SELECT count(*) FROM rr_w",
    "SELECT count(*) FROM rr_t WHERE a = 5",
    "SELECT count(*) FROM rr_t WHERE b > 'b5'",
    "UPDATE rr_p SET name = 'x' WHERE id = 3",
    "DELETE FROM rr_scan WHERE pid = 3",
    "DELETE FROM rr_seek WHERE pid = 3",
    "DELETE FROM rr_p WHERE id = 3",
    "DELETE FROM rr_scan WHERE pid = 4",
    "DELETE FROM rr_seek WHERE pid = 4",
    "UPDATE rr_p SET id = 1004 WHERE id = 4",
    "DELETE FROM rr_scan WHERE pid IN (5, 6, 7, 8)",
    "DELETE FROM rr_seek WHERE pid IN (5, 6, 7, 8)",
    "DELETE FROM rr_p WHERE id IN (5, 6, 7, 8)",
    "INSERT INTO rr_scan (pid, v) VALUES (9, 1)",
    "INSERT INTO rr_seek (pid, v) VALUES (9, 1)",
    "UPDATE rr_scan SET pid = 10 WHERE id = 20",
    "UPDATE rr_scan SET v = 10 WHERE id = 21",
    "INSERT INTO rr_w (k1, k2, a, b) VALUES (99, 99, 1, 'z')",
    "DELETE FROM rr_t WHERE a = 7",
    "DELETE FROM rr_q WHERE id = 150",
    "DELETE FROM rr_q WHERE id IN (151, 152, 153)",
    "INSERT INTO rr_k (kind, v) VALUES ('b', 1)",
    "UPDATE rr_k SET v = 2 WHERE id = 1",
    "INSERT INTO rr_wc (k1, k2) VALUES (3, 10)",
    "DELETE FROM rr_c WHERE id = 150",
    "DELETE FROM rr_c WHERE id IN (151, 152)",
]


def _predict(path: Path, sql: str) -> tuple[float, float]:
    db = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        catalog = read_catalog(db)
        stats = Stats(db, catalog)
        plan = WhatIf(catalog, stats).plan_exact(sql, (), [i for i in catalog.indexes
                                                           if i.origin == "c"])
        est = CostModel(catalog, stats).estimate(analyze(sql, catalog), plan, {},
                                                 {i.name: i for i in catalog.indexes})
        return est.rows_read, est.rows_written
    finally:
        db.close()


@pytest.fixture(scope="module")
def counted(local_d1, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple]:
    """statement -> (D1's rows read, D1's rows written, predicted read, predicted written)."""
    path = tmp_path_factory.mktemp("rules") / "rules.sqlite"
    lite = apsw.Connection(str(path))
    lite.execute("PRAGMA foreign_keys = ON")  # as D1 always has them
    out = {}
    with local_d1.target(allow_writes=True) as target:
        conn = target.connect()
        for sql in SCHEMA + DATA:
            conn.execute(sql)
            lite.execute(sql)
        for sql in STATEMENTS:
            predicted = _predict(path, sql)
            meta = conn.execute(sql).meta
            lite.execute(sql)
            out[sql] = (meta.rows_read, meta.rows_written, *predicted)
    lite.close()
    return out


@pytest.mark.parametrize("sql", STATEMENTS)
def test_cost_model_agrees_with_local_d1(counted: dict, sql: str) -> None:
    read, written, p_read, p_written = counted[sql]
    assert p_read == pytest.approx(read, rel=0.01, abs=1.0), (sql, read, p_read)
    assert p_written == pytest.approx(written, abs=0.01), (sql, written, p_written)


def test_rowid_row_after_an_index_hit_is_not_billed(counted: dict) -> None:
    plain = counted["SELECT * FROM rr_t WHERE a = 5"]
    covering = counted["SELECT a FROM rr_t WHERE a = 5"]
    assert plain[0] == covering[0] == 11  # a seek, 10 entries, the step past them


def test_without_rowid_lookup_after_an_index_hit(counted: dict) -> None:
    plain = counted["SELECT * FROM rr_w WHERE a = 5"]
    covering = counted["SELECT a, k1, k2 FROM rr_w WHERE a = 5"]
    # 10 rows fetched through the primary key after the index: D1 counts none of them
    assert plain[0] == covering[0] == 11
    assert counted["SELECT * FROM rr_w WHERE k1 = 3 AND k2 = 10"][0] == 1
    # an equality seek on a unique key that finds nothing is not billed; a rowid one is
    assert counted["SELECT * FROM rr_w WHERE k1 = 3 AND k2 = 11"][0] == 0
    assert counted["SELECT * FROM rr_t WHERE id = 5000"][0] == 1


def test_count_star_adds_the_whole_btree(counted: dict) -> None:
    assert counted["SELECT count(*) FROM rr_t"][0] == 1000
    assert counted["SELECT count(*) FROM rr_w"][0] == 1000
    assert counted["SELECT count(*) FROM rr_t WHERE a = 5"][0] == 11


def test_parent_delete_scans_unindexed_children(counted: dict) -> None:
    one = counted["DELETE FROM rr_p WHERE id = 3"]
    # rr_scan (995 rows left) is scanned; rr_seek's index finds no child and reads nothing
    assert 990 <= one[0] <= 1000
    four = counted["DELETE FROM rr_p WHERE id IN (5, 6, 7, 8)"]
    assert four[0] >= 4 * 960  # once per parent row
    key = counted["UPDATE rr_p SET id = 1004 WHERE id = 4"]
    assert key[0] >= 900 and counted["UPDATE rr_p SET name = 'x' WHERE id = 3"][0] == 1


def test_an_indexed_child_check_reads_nothing(counted: dict) -> None:
    # rr_q's only child is indexed: the probe finds no child and D1 counts only the seek
    assert counted["DELETE FROM rr_q WHERE id = 150"][:2] == (1, 1)
    # three seeks, the IN list's three entries, each row sought again before its delete
    assert counted["DELETE FROM rr_q WHERE id IN (151, 152, 153)"][:2] == (9, 3)


def test_a_partial_child_index_of_set_keys_serves_the_check(counted: dict) -> None:
    # rr_o's only index holds the rows with cid set: `cid = ?` implies it, so the
    # check seeks there and finds nothing, instead of scanning rr_o's 900 rows
    assert counted["DELETE FROM rr_c WHERE id = 150"][:2] == (1, 1)
    assert counted["DELETE FROM rr_c WHERE id IN (151, 152)"][:2] == (6, 2)


def test_child_writes_read_their_parent(counted: dict) -> None:
    assert counted["INSERT INTO rr_scan (pid, v) VALUES (9, 1)"][:2] == (1, 1)
    assert counted["INSERT INTO rr_seek (pid, v) VALUES (9, 1)"][:2] == (1, 2)
    assert counted["UPDATE rr_scan SET pid = 10 WHERE id = 20"][0] == 2
    assert counted["UPDATE rr_scan SET v = 10 WHERE id = 21"][0] == 1
    # a WITHOUT ROWID table is its primary key: one row plus one per secondary index
    assert counted["INSERT INTO rr_w (k1, k2, a, b) VALUES (99, 99, 1, 'z')"][1] == 2


def test_check_lists_and_indexed_parent_keys(counted: dict) -> None:
    # CHECK (kind IN (...)) looks the value up in the list's b-tree: one row per write
    assert counted["INSERT INTO rr_k (kind, v) VALUES ('b', 1)"][:2] == (1, 1)
    assert counted["UPDATE rr_k SET v = 2 WHERE id = 1"][:2] == (1, 1)  # kind unchanged
    # a composite parent key is probed in its index with Found: not counted
    assert counted["INSERT INTO rr_wc (k1, k2) VALUES (3, 10)"][:2] == (0, 1)


def test_multi_row_delete_in_a_foreign_key_seeks_each_row_again(counted: dict) -> None:
    scan = counted["DELETE FROM rr_scan WHERE pid = 3"]
    assert scan[:2] == (1005, 5)  # the scan, then each of the 5 rows again
    plain = counted["DELETE FROM rr_t WHERE a = 7"]
    assert plain[:2] == (11, 10)  # no foreign key: deleted in one pass
