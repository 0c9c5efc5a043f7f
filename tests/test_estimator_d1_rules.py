"""The SQLite target's estimate of D1's counts on writes, checked against local D1's own counter.

Three estimator errors, each seen on a schema besides ``medical`` and fixed:

* partial indexes: an insert writes an entry only into the partial indexes
  whose WHERE holds for the new row (the events schema's advised
  ``events(device_id) WHERE severity = 'error'``); the estimate counted every
  one, since no counter tells the branches apart;
* triggers: the rows a trigger writes are billed to the statement that fired
  it (an audit row, an FTS5 entry); the estimate counted none, misreading the
  ``Trace`` opcode that opens each trigger statement as a jump to itself;
* foreign-key probes: deleting a parent probes each child index for a child,
  and a successful delete found none, which D1 does not bill; the estimate
  split the VM steps between that probe's hit and other branches;
* a page by ``LIMIT ... OFFSET ?`` read, by the estimate, the index range's
  whole length (the rows with that key) rather than the offset and the page;
* a UNIQUE lookup whose row a later filter rejects (a soft-deleted user by
  email) is a billed hit, a value not in the table an unbilled miss; once the
  target stopped collecting counters for the statement it took the one for
  the other;
* an update that takes a row out of a partial index whose WHERE holds an IN list (or
  leaves it outside) writes the row alone; the estimate counted the index entry too,
  reading the ``OpenEphemeral`` that holds the list as a write to the new entry's register;
* a WITHOUT ROWID table's new row (a daily rollup's upsert, the events
  schema's fix plan) is billed once; the estimate counted twice, taking the
  ``Insert`` SQLite emits only for the pre-update hook for a write.

Every statement runs on a real local D1 and, through the SQLite target, on a
SQLite file holding the same rows; each estimate must equal D1's count.
"""

from __future__ import annotations

from pathlib import Path

import apsw
import pytest

from d1bench.targets import open_target

SCHEMA = [
    "CREATE TABLE devices (id INTEGER PRIMARY KEY, serial TEXT NOT NULL UNIQUE, site INTEGER)",
    ("CREATE TABLE events (id INTEGER PRIMARY KEY, device_id INTEGER NOT NULL REFERENCES "
     "devices (id), ts TEXT NOT NULL, severity TEXT NOT NULL, value REAL)"),
    "CREATE INDEX events_device_ts ON events (device_id, ts)",
    "CREATE INDEX events_errors ON events (device_id) WHERE severity = 'error'",
    "CREATE INDEX events_problems ON events (ts) WHERE severity IN ('warning', 'error')",
    "CREATE TABLE audit (id INTEGER PRIMARY KEY, event_id INTEGER, what TEXT)",
    ("CREATE TRIGGER events_audit AFTER INSERT ON events BEGIN "
     "INSERT INTO audit (event_id, what) VALUES (new.id, 'ingest'); END"),
    "CREATE TABLE sites (id INTEGER PRIMARY KEY, code TEXT)",
    ("CREATE TABLE racks (id INTEGER PRIMARY KEY, site_id INTEGER REFERENCES sites (id), "
     "label TEXT)"),
    "CREATE INDEX racks_site ON racks (site_id)",
    "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
    "CREATE VIRTUAL TABLE notes_fts USING fts5 (body, content = 'notes', content_rowid = 'id')",
    ("CREATE TRIGGER notes_ai AFTER INSERT ON notes BEGIN "
     "INSERT INTO notes_fts (rowid, body) VALUES (new.id, new.body); END"),
    ("CREATE TABLE alerts (id INTEGER PRIMARY KEY, event_id INTEGER NOT NULL UNIQUE, "
     "acknowledged_at TEXT)"),
    "CREATE INDEX alerts_open ON alerts (event_id) WHERE acknowledged_at IS NULL",
    # upserts keyed by (day, kind): a WITHOUT ROWID table, a rowid table with a UNIQUE key
    # (and a second index), each also kept by a trigger on a raw table
    ("CREATE TABLE daily_wr (day TEXT NOT NULL, kind TEXT NOT NULL, n INTEGER NOT NULL, s REAL, "
     "PRIMARY KEY (day, kind)) WITHOUT ROWID"),
    ("CREATE TABLE daily_uq (id INTEGER PRIMARY KEY, day TEXT NOT NULL, kind TEXT NOT NULL, "
     "n INTEGER NOT NULL, s REAL, UNIQUE (day, kind))"),
    "CREATE INDEX daily_uq_n ON daily_uq (n)",
    ("CREATE TABLE tickets (id INTEGER PRIMARY KEY, status TEXT NOT NULL CHECK (status IN "
     "('open', 'pending', 'done')), ts TEXT NOT NULL, closed_at TEXT)"),
    ("CREATE INDEX tickets_open ON tickets (ts) WHERE status IN ('open', 'pending') "
     "AND closed_at IS NULL"),
    "CREATE TABLE raw_wr (id INTEGER PRIMARY KEY, day TEXT, kind TEXT, v REAL)",
    "CREATE TABLE raw_uq (id INTEGER PRIMARY KEY, day TEXT, kind TEXT, v REAL)",
    *(f"CREATE TRIGGER raw_{t}_ai AFTER INSERT ON raw_{t} BEGIN INSERT INTO daily_{t} "
      "(day, kind, n, s) VALUES (new.day, new.kind, 1, new.v) ON CONFLICT (day, kind) "
      "DO UPDATE SET n = n + 1, s = s + excluded.s; END" for t in ("wr", "uq")),
]
_N = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {}) "
DATA = [
    _N.format(50) + "INSERT INTO devices (id, serial, site) SELECT x, 's' || x, x % 5 FROM n",
    _N.format(600) + ("INSERT INTO events (device_id, ts, severity, value) SELECT 1 + x % 50, "
                      "'2026-01-01 00:' || x, CASE x % 3 WHEN 0 THEN 'error' WHEN 1 THEN 'info' "
                      "ELSE 'warning' END, x FROM n"),
    # device 11 has a long history: 312 events
    _N.format(300) + ("INSERT INTO events (device_id, ts, severity, value) SELECT 11, "
                      "'2026-01-02 00:' || x, 'info', x FROM n"),
    _N.format(40) + "INSERT INTO sites (id, code) SELECT x, 'c' || x FROM n",
    _N.format(200) + "INSERT INTO racks (site_id, label) SELECT 1 + x % 20, 'r' || x FROM n",
    _N.format(100) + ("INSERT INTO alerts (event_id, acknowledged_at) SELECT x, CASE WHEN x % 3 = 0 "
                      "THEN '2026-01-01' END FROM n"),
    _N.format(40) + ("INSERT INTO tickets (id, status, ts) SELECT x, CASE x % 4 WHEN 0 THEN 'open' "
                     "WHEN 1 THEN 'pending' ELSE 'done' END, 't' || x FROM n"),
]
INSERT = "INSERT INTO events (device_id, ts, severity, value) VALUES (?, ?, ?, ?)"
# (statement, parameters); run in this order on both databases
STATEMENTS = [
    (INSERT, (7, "2026-02-01 00:00:00", "info", 1.5)),
    (INSERT, (7, "2026-02-01 00:00:01", "error", 2.5)),
    (INSERT, (8, "2026-02-01 00:00:02", "warning", 3.5)),
    (INSERT, (9, "2026-02-01 00:00:03", "info", None)),
    ("INSERT INTO events (device_id, ts, severity) VALUES (3, 'x', 'error')", ()),
    ("INSERT INTO notes (body) VALUES (?)", ("a note about pumps",)),
    ("DELETE FROM sites WHERE id = ?", (30,)),  # no rack points at site 30
    ("DELETE FROM sites WHERE id = ?", (99,)),  # no such site
    ("DELETE FROM sites WHERE id IN (31, 32, 33)", ()),
    ("UPDATE sites SET code = 'z' WHERE id = ?", (5,)),
]
# a UNIQUE lookup filtered after the seek, many times (past the counters' calibration):
# devices of site 0 are found and rejected, 's999' is not there
LOOKUP = "SELECT id FROM devices WHERE serial = ? AND site <> 0"
LOOKUPS = [(LOOKUP, (serial,)) for serial in ["s1", "s2", "s5", "s999", "s10", "s3"] * 5]
STATEMENTS += LOOKUPS
# acknowledging an alert takes it out of the partial index (not billed); reopening one puts
# it back (one entry written); an acknowledged one is left alone
ACK = "UPDATE alerts SET acknowledged_at = ? WHERE id = ? AND acknowledged_at IS NULL"
REOPEN = "UPDATE alerts SET acknowledged_at = NULL WHERE id = ?"
UPDATES = [(ACK, ("2026-02-01", i)) for i in range(1, 16)] + [(REOPEN, (i,)) for i in range(1, 7)]
STATEMENTS += UPDATES
# a page of a device's events by OFFSET: the loop stops after OFFSET + LIMIT entries
PAGE = "SELECT id, ts FROM events WHERE device_id = ? ORDER BY ts DESC LIMIT 5 OFFSET ?"
PAGES = [(PAGE, (device, offset)) for device in (11, 12) for offset in (0, 5, 10, 20)]
STATEMENTS += PAGES
# each upsert: a new key, the same key, another new key, the first again; top-level into
# each table (day 'd1' and 'd2'), then through each trigger (days 'd3' and 'd4')
UPSERT = ("INSERT INTO daily_{} (day, kind, n, s) VALUES (?, ?, 1, ?) ON CONFLICT (day, kind) "
          "DO UPDATE SET n = n + 1, s = s + excluded.s")
RAW = "INSERT INTO raw_{} (day, kind, v) VALUES (?, ?, ?)"
UPSERTS = [(sql.format(t), (day, kind, 1.5))
           for sql, t, day in ((UPSERT, "wr", "d1"), (UPSERT, "uq", "d2"), (RAW, "wr", "d3"),
                               (RAW, "uq", "d4"))
           for kind in ("a", "a", "b", "a")]
STATEMENTS += UPSERTS
# closing a ticket takes an open one out of a partial index whose WHERE holds an IN list
# (not billed) and leaves a done one outside it: the row alone, either way; the table's
# CHECK holds an IN list too
CLOSE = "UPDATE tickets SET closed_at = ?, ts = ? WHERE id = ? AND closed_at IS NULL"
CLOSES = [(CLOSE, ("2026-03-01", f"c{i}", i)) for i in range(1, 21)]
# a status change (the table's CHECK holds an IN list too): into the index (an entry
# written), out of it (not billed), within it (rewritten under its new ts), and outside
MOVE = "UPDATE tickets SET status = ?, ts = ? WHERE id = ?"
MOVES = [(MOVE, (new, f"m{i}", i)) for i in range(21, 29)
         for new in ("done", "open", "pending", "done")]
STATEMENTS += CLOSES + MOVES


@pytest.fixture(scope="module")
def counted(local_d1, tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple]:
    """statement number -> (D1's rows read, D1's rows written, estimated read, estimated written)."""
    path = tmp_path_factory.mktemp("estimator_rules") / "rules.sqlite"
    lite = apsw.Connection(str(path))
    for sql in SCHEMA + DATA:
        lite.execute(sql)
    lite.close()
    out = {}
    with local_d1.target(allow_writes=True) as target, \
            open_target(f"sqlite:{path}") as sqlite_target:
        d1 = target.connect()
        for sql in SCHEMA + DATA:
            d1.execute(sql)
        mine = sqlite_target.connect()
        for k, (sql, params) in enumerate(STATEMENTS):
            theirs = d1.execute(sql, params).meta
            ours = mine.execute(sql, params).meta
            out[k] = (theirs.rows_read, theirs.rows_written, ours.rows_read, ours.rows_written)
        mine.close()
    return out


@pytest.mark.parametrize("k", range(len(STATEMENTS)))
def test_estimate_equals_local_d1(counted: dict, k: int) -> None:
    read, written, est_read, est_written = counted[k]
    if STATEMENTS[k] in MOVES:  # their rows read: test_a_status_move_reads_what_d1_reads
        assert est_written == written, STATEMENTS[k]
        return
    assert (est_read, est_written) == (read, written), STATEMENTS[k]


def test_partial_indexes_are_written_only_for_rows_they_hold(counted: dict) -> None:
    # the row, (device_id, ts), the audit row: 3; 'error' adds both partial indexes,
    # 'warning' the problems one
    assert [counted[k][1] for k in range(4)] == [3, 5, 4, 3]
    assert counted[4][1] == 5  # literal values: the same rule


def test_trigger_writes_are_billed_to_the_statement(counted: dict) -> None:
    # the note and its FTS5 entry (one VUpdate)
    assert counted[5][1] == 2
    assert all(counted[k][3] >= 3 for k in range(5))  # the audit row is in every insert's count


def test_a_parent_delete_whose_child_probe_misses_reads_the_parent_only(counted: dict) -> None:
    assert counted[6][:2] == (1, 1)
    assert counted[6][2:] == (1, 1)
    assert counted[7][2:] == (1, 0)
    # three seeks, the IN list's three entries, each row sought again before its delete
    assert counted[8][2:] == counted[8][:2] == (9, 3)


def test_a_unique_hit_rejected_by_a_filter_is_billed_and_a_miss_is_not(counted: dict) -> None:
    first = STATEMENTS.index(LOOKUPS[0])
    seen = [counted[k] for k in range(first, first + len(LOOKUPS))]
    assert [c[0] for c in seen[:6]] == [1, 1, 1, 0, 1, 1]  # s5, s10: site 0, rejected
    assert [c[2] for c in seen] == [c[0] for c in seen]


def test_an_update_writes_a_partial_index_only_for_rows_that_enter_it(counted: dict) -> None:
    first = STATEMENTS.index(UPDATES[0])
    seen = [counted[k] for k in range(first, first + len(UPDATES))]
    # ids 3, 6, 9, ... were acknowledged already: nothing written
    assert [c[1] for c in seen[:6]] == [1, 1, 0, 1, 1, 0]
    assert [c[1] for c in seen[15:]] == [2] * 6  # the row and its partial-index entry
    assert [c[3] for c in seen] == [c[1] for c in seen]


def test_a_partial_index_with_an_in_list_is_written_as_d1_writes_it(counted: dict) -> None:
    first = STATEMENTS.index(CLOSES[0])
    seen = [counted[k] for k in range(first, first + len(CLOSES))]
    assert [c[1] for c in seen] == [1] * len(CLOSES)  # D1: the row, in the index or not
    # the estimate had read the IN list's ephemeral table as writing the new index
    # record's register, lost the branch that skips the insert, and counted 2 for a
    # status move out of the index or outside it
    assert [c[3] for c in seen] == [c[1] for c in seen]
    first = STATEMENTS.index(MOVES[0])
    seen = [counted[k] for k in range(first, first + len(MOVES))]
    assert [c[1] for c in seen[:4]] == [1, 2, 2, 1]  # out, in, within, out
    assert [c[3] for c in seen] == [c[1] for c in seen]


@pytest.mark.xfail(strict=True, reason="a known miss: the estimate reads 3 rows where D1 "
                   "reads 2 when a status move finds the row in the partial index")
def test_a_status_move_reads_what_d1_reads(counted: dict) -> None:
    first = STATEMENTS.index(MOVES[0])
    seen = [counted[k] for k in range(first, first + len(MOVES))]
    assert [c[2] for c in seen] == [c[0] for c in seen]


def test_an_offset_page_reads_the_offset_and_the_page(counted: dict) -> None:
    first = STATEMENTS.index(PAGES[0])
    seen = [counted[k] for k in range(first, first + len(PAGES))]
    assert [c[2] for c in seen] == [c[0] for c in seen]
    assert seen[1][0] > seen[0][0]  # a deeper page reads more


def test_estimates_hold_for_bound_values_that_change_the_branches(tmp_path: Path) -> None:
    """The estimate of one statement text follows each execution's own values."""
    path = tmp_path / "b.sqlite"
    db = apsw.Connection(str(path))
    for sql in SCHEMA + DATA:
        db.execute(sql)
    db.close()
    with open_target(f"sqlite:{path}") as target:
        conn = target.connect()
        seen = [conn.execute(INSERT, (5, f"t{i}", sev, 1.0)).meta.rows_written
                for i, sev in enumerate(["info", "error", "warning", "info", "error"] * 3)]
        conn.close()
    assert seen == [3, 5, 4, 3, 5] * 3


def test_an_upsert_is_billed_what_it_writes_on_a_new_key_and_on_an_existing_one(counted: dict) -> None:
    first = STATEMENTS.index(UPSERTS[0])
    seen = [counted[k] for k in range(first, first + len(UPSERTS))]
    # WITHOUT ROWID: the new row or its replacement, one entry either way
    assert [c[1] for c in seen[0:4]] == [1, 1, 1, 1]
    # rowid table: the row and its two index entries; an update rewrites the row and
    # moves its entry in (n), the UNIQUE key unchanged
    assert [c[1] for c in seen[4:8]] == [3, 2, 3, 2]
    # through a trigger: the raw row, plus the same
    assert [c[1] for c in seen[8:12]] == [2, 2, 2, 2]
    assert [c[1] for c in seen[12:16]] == [4, 3, 4, 3]
    assert [c[2:] for c in seen] == [c[:2] for c in seen]
