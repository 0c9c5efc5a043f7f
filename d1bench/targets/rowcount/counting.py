"""When the SQLite target collects a statement's counters, and what it knows about a statement.

Collecting ``stmt_status`` costs APSW's profile callback, inside the
statement's timing (see the package docstring, point 5): these are the rules
that decide, execution by execution, whether a statement collects them.  The
synchronous path applies them as it goes; the deferred path replays them in
execution order after the run (``SQLiteConnection.finish_estimates``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from d1bench.targets.rowcount.estimator import RowEstimator

__all__ = ["AGREE", "NESTED_LIMIT", "NESTED_PAUSE", "RECHECK", "Statement", "calibrate"]

AGREE = 8  # agreeing executions before a statement stops collecting counters
NESTED_LIMIT = 64  # nested statements per execution beyond which counting costs too much
NESTED_PAUSE = 8  # executions left uncounted after one that ran too many
RECHECK = 64  # count-free executions between two checks


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
    agree: int = 0  #: consecutive executions where both estimates agreed
    countdown: int = 0  #: count-free executions left before checking again
    #: Deferred mode: collect counters on the next execution.  The synchronous
    #: decisions (``traced``) need each estimate, so they are replayed after the
    #: run; the hot path collects whenever they might want counters (only
    #: FTS5's nested statements pause it, by the same rule).
    hot: bool = False
    hot_countdown: int = 0

    def stored(self) -> tuple:
        """What :class:`AnalysisStore` keeps: the analysis, not this connection's state."""
        return (self.columns, self.readonly, self.ddl, self.estimator, self.traced,
                self.constant, self.calibrate)


def calibrate(st: Statement, est: RowEstimator, status: Mapping[str, int] | None,
               rows_read: int, rows_written: int, nrows: int, changes: int, params: Any,
               rows: list[Any]) -> None:
    """Stop collecting counters for a statement whose estimate does not need them.

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
