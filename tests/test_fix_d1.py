"""The fix plan's trigger counting rules, checked against a real local D1 (Miniflare).

The plan measures each write template before and after a step's DDL through
the SQLite target (whose estimate counts trigger writes) and takes at least
what a rule says (``Rewrite.trigger_writes``): one row per counter or rollup
update, one entry per insert for an index the DDL adds.  Here local D1's own
counter says the same as the rule and the estimate, and shows what ``AFTER
UPDATE OF`` saves.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import apsw
import pytest
from schemas import build, workload_path

from d1bench.fixer.kinds.counter import counter_ddl
from d1bench.fixer.kinds.trigger_of import narrowed

pytestmark = pytest.mark.slow  # a local D1 round trip per statement


def _script(conn, script: str) -> None:
    chunk = ""
    for line in script.splitlines(keepends=True):
        chunk += line
        if apsw.complete(chunk):
            conn.execute(chunk.strip())
            chunk = ""


def test_counter_trigger_writes_one_row_per_insert_and_of_skips_other_columns(local_d1):
    with local_d1.target(allow_writes=True) as target:
        conn = target.connect()
        conn.execute("DROP TABLE IF EXISTS fixprobe")
        conn.execute("CREATE TABLE fixprobe (id INTEGER PRIMARY KEY, body TEXT, seen TEXT)")
        plain = conn.execute("INSERT INTO fixprobe (body) VALUES ('a')").meta.rows_written
        _script(conn, counter_ddl("fixprobe")[1])
        counted = conn.execute("INSERT INTO fixprobe (body) VALUES ('b')").meta.rows_written
        assert (plain, counted) == (1, 2)  # the counter row is the one more
        assert conn.execute("SELECT n FROM fixprobe_row_count WHERE id = 1").rows == [(2,)]
        every = ("CREATE TRIGGER fixprobe_au AFTER UPDATE ON fixprobe BEGIN "
                 "UPDATE fixprobe_row_count SET n = n WHERE id = 1; END")
        conn.execute(every)
        fired = conn.execute("UPDATE fixprobe SET seen = 'x' WHERE id = 1").meta.rows_written
        conn.execute("DROP TRIGGER fixprobe_au")
        conn.execute(narrowed(every, ["body"]))
        skipped = conn.execute("UPDATE fixprobe SET seen = 'y' WHERE id = 1").meta.rows_written
        still = conn.execute("UPDATE fixprobe SET body = 'z' WHERE id = 1").meta.rows_written
        assert (fired, skipped, still) == (2, 1, 2)
        for stmt in ("DROP TABLE fixprobe", "DROP TABLE fixprobe_row_count"):
            conn.execute(stmt)


def _rollup_step(db: Path):
    """The rollup rewrite of the events workload's ``daily_counts`` on ``db``."""
    from d1bench.advisor.preparation import as_workload, open_corpus, template_weights
    from d1bench.fixer.kinds import rollup
    from d1bench.fixer.model import Context, Rewrite
    from d1bench.sql.catalog import read_catalog

    wl = as_workload(workload_path("events"))
    conn = open_corpus(db)
    try:
        rw = rollup.propose("daily_counts", Context(read_catalog(conn), conn, wl,
                                                    template_weights(wl), {}, {}))
    finally:
        conn.close()
    assert isinstance(rw, Rewrite), rw
    return rw


def test_rollup_trigger_writes_match_d1_on_a_new_day_and_an_existing_one(tmp_path):
    from d1bench.targets import open_target
    from d1bench.targets.d1.local import LocalD1
    from d1bench.uploader import upload

    db = build("events", tmp_path / "events.sqlite", scale=0.02)
    rw = _rollup_step(db)
    # the rollup row (new key or not) and the entry of the events(ts) index the DDL adds
    assert "CREATE INDEX IF NOT EXISTS idx_events_ts" in rw.ddl
    assert rw.trigger_writes == {"ingest_reading": 2.0}
    insert = ("INSERT INTO events (device_id, ts, kind, severity, value, payload) "
              "VALUES (1, ?, 'reading', 'info', ?, '{}')")
    rows = [("2031-01-01T00:00:00", 1.5), ("2031-01-01T01:00:00", None),
            ("2031-01-02T00:00:00", 2.5), ("2031-01-01T02:00:00", 3.5)]  # new, same, new, same
    copy = tmp_path / "copy.sqlite"
    shutil.copy(db, copy)
    lite = apsw.Connection(str(copy))
    _script(lite, rw.ddl)
    lite.close()
    # a D1 of its own: the shared one holds other tests' tables of the same names
    with LocalD1(tmp_path / "d1") as d1, d1.target(allow_writes=True) as target, \
            open_target(f"sqlite:{copy}") as ours:
        upload(db, target, progress=False)
        conn = target.connect()
        plain = conn.execute(insert, ("2030-06-01T00:00:00", 1.0)).meta.rows_written
        _script(conn, rw.ddl)
        theirs = [conn.execute(insert, p).meta.rows_written for p in rows]
        mine = ours.connect()
        estimated = [mine.execute(insert, p).meta.rows_written for p in rows]
        mine.close()
        assert conn.execute("SELECT day, kind, n FROM events_daily_kind WHERE day >= '2031' "
                            "ORDER BY day").rows == [("2031-01-01", "reading", 3),
                                                     ("2031-01-02", "reading", 1)]
    assert [t - plain for t in theirs] == [rw.trigger_writes["ingest_reading"]] * 4
    assert estimated == theirs
