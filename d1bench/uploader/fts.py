"""Filling an FTS5 table over external content, in statements that each stay short.

``INSERT INTO t(t) VALUES('rebuild')`` indexes every row in one statement, and
D1 stops any statement at 30 s.  It took 1.3 s for 20,000 papers on a local D1
here (about 65 us a paper), so somewhere near 400,000 papers it would not fit,
and a million papers need over a minute.  Up to ``rebuild_max`` rows (the
upload's default is 50,000, a wide margin) one 'rebuild' does; beyond, the index
is emptied (``'delete-all'``) and refilled with ``INSERT INTO t(rowid, ...)
SELECT ... FROM content WHERE key > lo AND key <= hi`` in key ranges, each sized
from the last one's duration to take about ``seconds``.  That works at any size,
and the slowest statement is returned so that callers can show the limit held.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from d1bench.uploader.packing import quote
from d1bench.uploader.source import FtsTable

__all__ = ["fill_fts"]

#: Rows of the first range, before durations are known.
FIRST_RANGE = 500
#: Bounds of a range's size, whatever the durations say.
MIN_RANGE, MAX_RANGE = 100, 50_000


def fill_fts(fts: FtsTable, ids: Sequence[int], run: Callable[[str], object], *,
             rebuild_max: int, seconds: float) -> float:
    """Index the rows whose keys are ``ids`` (ascending) with ``run(sql)``; return the
    longest statement's seconds."""
    name, key = quote(fts.name), quote(fts.content_rowid)

    def timed(sql: str) -> float:
        started = time.perf_counter()
        run(sql)
        return time.perf_counter() - started

    if len(ids) <= rebuild_max:
        return timed(f"INSERT INTO {name} ({name}) VALUES ('rebuild')")
    cols = ", ".join(quote(c) for c in fts.columns)
    fill = (f"INSERT INTO {name} (rowid, {cols}) SELECT {key}, {cols} FROM "
            f"{quote(fts.content or '')} WHERE {key} > {{lo}} AND {key} <= {{hi}}")
    slowest = timed(f"INSERT INTO {name} ({name}) VALUES ('delete-all')")
    chunk, i, lo = FIRST_RANGE, 0, ids[0] - 1
    while i < len(ids):
        end = min(i + chunk, len(ids))
        took = timed(fill.format(lo=int(lo), hi=int(ids[end - 1])))
        slowest = max(slowest, took)
        i, lo = end, ids[end - 1]
        # Aim the next range at `seconds`, growing or shrinking at most 4x.
        factor = min(max(seconds / max(took, 1e-3), 0.25), 4.0)
        chunk = int(min(max(chunk * factor, MIN_RANGE), MAX_RANGE))
    return slowest
