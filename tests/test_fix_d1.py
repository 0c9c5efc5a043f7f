"""The fix plan's trigger counting rules, checked against a real local D1 (Miniflare).

The SQLite target's row estimate does not see writes made inside triggers, so
the plan counts a trigger's writes by rule (``Rewrite.trigger_writes``): one
row per counter or rollup update.  Here local D1's own counter says the same,
and shows what ``AFTER UPDATE OF`` saves.
"""

from __future__ import annotations

import apsw
import pytest

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
