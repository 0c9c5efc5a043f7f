"""When the SQLite target collects a statement's counters, and what it knows about a statement.

Collecting ``stmt_status`` costs APSW's profile callback, inside the
statement's timing (see the package docstring, point 5): these are the rules
that decide, execution by execution, whether a statement collects them.

Two regimes:

- calibrated (what a replay uses): before the clock starts, the statement
  runs on a few drawn parameter sets with its counters, and
  :func:`counting_verdict` compares the counted estimate with the count-free
  one.  The verdict (counters needed or not) is kept with the statement's
  analysis, so that the timed path collects counters only for statements
  whose estimate uses them, decided without any estimate (the same on the
  synchronous and the deferred path);
- adaptive (a statement nobody calibrated, as a notebook's first query):
  :func:`calibrate` compares both estimates as executions come, and stops
  counting after ``AGREE`` agreeing ones.  The synchronous path applies it as
  it goes; the deferred path replays it in execution order after the run
  (``SQLiteConnection.finish_estimates``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import apsw

from d1bench.targets.rowcount.estimator import RowEstimator

__all__ = ["AGREE", "CALIBRATION_S", "NESTED_LIMIT", "NESTED_PAUSE", "NESTED_TOLERANCE", "RECHECK",
           "Observation", "Statement", "apply_verdict", "calibrate", "counting_verdict",
           "observe", "pause_after"]

AGREE = 8  # agreeing executions before a statement stops collecting counters
NESTED_LIMIT = 64  # nested statements per execution beyond which counting costs too much
NESTED_PAUSE = 8  # executions left uncounted after one that ran too many
RECHECK = 64  # count-free executions between two checks
#: How far (relative, summed over the calibration's executions) the count-free
#: estimate of a statement that runs many nested statements (FTS5's bm25, one
#: per row, each a profile callback inside the timing: a counted execution of
#: ``search_papers_plain`` took 2-3x its uncounted time) may be from the
#: counted one and still be used.  The counted estimate is within about 2% of
#: D1's count (``benchmarks/rows_read_fidelity.py``), so this keeps the goal
#: of 10%.
NESTED_TOLERANCE = 0.08
#: Time a statement's calibration may take running its samples, and again estimating them.
CALIBRATION_S = 1.0

#: One calibration execution: (stmt_status, profile events, rows returned, changes, params, rows).
Observation = tuple[Mapping[str, int] | None, int, int, int, Any, list[Any]]


@dataclass(slots=True)
class Statement:
    """What one connection knows about one SQL text."""

    columns: tuple[str, ...]
    readonly: bool
    ddl: bool
    estimator: RowEstimator | None
    traced: bool  #: collect counters on the next execution
    constant: tuple[int, int] | None  #: (rows read, rows written) when they never vary
    calibrate: bool = False  #: compare counted and count-free estimates, drop counters if equal
    #: The calibration's verdict: whether the estimate uses counters (``None``:
    #: not calibrated, the adaptive rule applies).
    verdict: bool | None = None
    agree: int = 0  #: consecutive executions where both estimates agreed
    countdown: int = 0  #: count-free executions left before checking again
    #: Deferred mode: collect counters on the next execution.  The adaptive
    #: decisions (``traced``) need each estimate, so they are replayed after the
    #: run; the hot path collects whenever they might want counters (only
    #: FTS5's nested statements pause it, by the same rule).
    hot: bool = False
    hot_countdown: int = 0

    def stored(self) -> tuple:
        """What :class:`AnalysisStore` keeps: the analysis, not this connection's state."""
        return (self.columns, self.readonly, self.ddl, self.estimator, self.traced,
                self.constant, self.calibrate, self.verdict)


def apply_verdict(st: Statement, verdict: bool | None) -> None:
    """Put a calibrated statement on the counting its verdict calls for (``None``: leave it)."""
    if verdict is None or not st.calibrate:
        return
    st.verdict, st.calibrate = verdict, False
    st.traced = st.hot = verdict
    st.agree = st.countdown = st.hot_countdown = 0


def pause_after(counted: bool, countdown: int, events: int) -> tuple[bool, int]:
    """A statement that needs counters: (count the next execution?, executions left uncounted).

    Decided from what the hot path sees (whether this execution was counted,
    how many profile events it had), so the synchronous path, the deferred hot
    path and the estimate after the run all take the same decisions.

    >>> pause_after(True, 0, 3), pause_after(True, 0, NESTED_LIMIT + 1)
    ((True, 0), (False, 8))
    >>> pause_after(False, 8, 0), pause_after(False, 1, 0)
    ((False, 7), (True, 0))
    """
    if counted:
        return (False, NESTED_PAUSE) if events > NESTED_LIMIT else (True, 0)
    countdown -= 1
    return countdown <= 0, countdown


def observe(db: apsw.Connection, cursor: apsw.Cursor, sql: str, samples: Sequence[Any], *,
            writes: bool) -> list[Observation]:
    """Run ``sql`` once per parameter set in ``samples`` with its counters, before any clock.

    A write runs inside a savepoint rolled back at the end, so the database
    is as it was.  A sample that fails (a constraint the run will meet too) is
    left out; sampling stops once :data:`CALIBRATION_S` is spent.
    """
    seen: list[Observation] = []
    last: list[Any] = [None, 0]

    def on_profile(event: dict) -> None:  # nested statements report first, the statement last
        last[0] = event["stmt_status"]
        last[1] += 1

    deadline = time.perf_counter() + CALIBRATION_S
    if writes:
        db.execute("SAVEPOINT d1bench_calibration")
    try:
        for params in samples:
            last[:] = [None, 0]
            db.trace_v2(apsw.SQLITE_TRACE_PROFILE, on_profile)
            try:
                rows = cursor.execute(sql, params).fetchall()
            except apsw.Error:
                continue
            finally:
                db.trace_v2(0, None)
            seen.append((last[0], last[1], len(rows), db.changes() if writes else 0, params, rows))
            if time.perf_counter() > deadline:
                break
    finally:
        if writes:
            db.execute("ROLLBACK TO d1bench_calibration; RELEASE d1bench_calibration")
    return seen


def _close(a: int, b: int, tolerance: float) -> bool:
    # No row of slack, as the adaptive rule has: an update whose new index entry only the
    # counters see writes 2 rows, not 1; a verdict is kept for the whole run.
    return abs(a - b) <= int(b * tolerance)


def counting_verdict(est: RowEstimator, seen: Sequence[Observation], *,
                     complete: bool) -> bool | None:
    """Whether ``est`` needs counters, from executions observed with them.

    ``False`` only when shown: every execution's count-free estimate is
    within 1% of the counted one (for a statement that runs many nested
    statements, their sums within :data:`NESTED_TOLERANCE`), and there are
    ``AGREE`` of them or the samples are ``complete`` (none was left out).
    ``True`` otherwise, also when estimating takes longer than
    :data:`CALIBRATION_S` (counting then costs the least time after the run
    too); ``None`` when nothing was observed with counters.
    """
    if not seen or any(status is None for status, *_ in seen):
        return None
    nested = any(events > NESTED_LIMIT for _s, events, *_ in seen)
    counted_sum = blind_sum = 0
    # A count-free estimate meeting a new active set solves it first (up to seconds).
    deadline = time.perf_counter() + CALIBRATION_S
    for k, (status, _events, nrows, changes, params, rows) in enumerate(seen, 1):
        read, written, _ = est.rows(status, nrows, changes, params, rows)
        blind_read, blind_written, _ = est.rows(None, nrows, changes, params, rows)
        if not nested and not (_close(blind_read, read, 0.01)
                               and _close(blind_written, written, 0.01)):
            return True
        counted_sum += read + written
        blind_sum += blind_read + blind_written
        if k < len(seen) and time.perf_counter() > deadline:
            return True  # not shown to be unneeded: keep counting
    if nested and not _close(blind_sum, counted_sum, NESTED_TOLERANCE):
        return True
    return not (complete or len(seen) >= AGREE)


def calibrate(st: Statement, est: RowEstimator, status: Mapping[str, int] | None,
               rows_read: int, rows_written: int, nrows: int, changes: int, params: Any,
               rows: list[Any]) -> None:
    """The adaptive rule: stop collecting counters for a statement whose estimate does not need them.

    Collecting them costs a few microseconds per execution (APSW's profile
    callback), a lot for an indexed lookup.  After each counted execution
    the count-free estimate is computed too; after AGREE agreeing
    executions in a row the statement runs without counters, with one
    counted execution every RECHECK to catch a change.
    """
    if status is None or not st.traced:
        st.countdown -= 1
        if st.countdown <= 0:
            st.traced = True
        return
    blind_read, blind_written, _ = est.rows(None, nrows, changes, params, rows)
    if abs(blind_read - rows_read) <= max(1, rows_read // 100) and \
       abs(blind_written - rows_written) <= max(1, rows_written // 100):
        st.agree += 1
        if st.agree >= AGREE:
            st.traced, st.countdown = False, RECHECK
    else:
        st.agree, st.traced = 0, True
