"""A SQLite connection's rows-read estimates: now, or after the run; and its preparation.

:class:`EstimatesMixin` is the half of :class:`~d1bench.targets.sqlite.SQLiteConnection`
that works estimates out and decides, before a run, which statements collect
SQLite's counters; the connection itself keeps the hot path and the analysis
of a SQL text.  The rules it applies are those of
:mod:`d1bench.targets.rowcount.counting`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import apsw

from d1bench.errors import TargetError
from d1bench.targets.base import Meta, Params
from d1bench.targets.rowcount import RowEstimator
from d1bench.targets.rowcount.counting import (
    NESTED_LIMIT,
    NESTED_PAUSE,
    Statement,
    apply_verdict,
    calibrate,
    counting_verdict,
    observe,
    pause_after,
)
from d1bench.targets.rowcount.store import AnalysisStore

__all__ = ["EstimatesMixin", "set_rows_read", "set_rows_written", "warn_once"]

#: Slot setters of a (frozen) Meta's estimate, filled in after the run.
set_rows_read, set_rows_written = (getattr(Meta, name).__set__
                                   for name in ("rows_read", "rows_written"))


class _Options(Protocol):
    """What the mixin reads of its connection's target."""

    readonly: bool
    estimate_rows: bool
    verdicts: dict[str, bool | None]


class EstimatesMixin:
    """Deferred estimates, calibration and stored analyses of one connection."""

    target: _Options
    _db: apsw.Connection
    #: ``_db`` for the analyses: their statements are not cached (see ``sqlite._Uncached``).
    _adb: Any
    _cursor: apsw.Cursor
    _statements: dict[str, Statement]
    _estimating: bool
    #: Deferred mode: (meta, statement, counters, nested events, rows returned, changes,
    #: params, rows if the estimate reads them), in execution order; None when synchronous.
    _pending: list[tuple] | None
    #: The analysis cache :meth:`prepare` used: analyses are stored again after a run.
    _store: AnalysisStore | None = None

    # Provided by the connection: its analysis of a SQL text.
    def _analyse(self, sql: str, params: Params) -> Statement:
        raise NotImplementedError

    def _bind(self, estimator: RowEstimator) -> RowEstimator:
        raise NotImplementedError

    def _remember(self, sql: str, st: Statement) -> None:
        raise NotImplementedError

    def _settle(self, sql: str, st: Statement, status: Mapping[str, int] | None, events: int,
                nrows: int, changes: int, params: Params, rows: list | None
                ) -> tuple[int | None, int | None]:
        """One execution's estimate (``status``: its counters, or ``None``) and the next decision.

        Called from ``execute`` (synchronous) or :meth:`finish_estimates`
        (deferred, in execution order): the same inputs, decisions and figures.
        """
        est = st.estimator
        assert est is not None
        if st.verdict:
            st.traced, st.countdown = pause_after(status is not None, st.countdown, events)
        elif status is not None and events > NESTED_LIMIT and st.calibrate:
            # A callback per nested statement (bm25 runs one per row): check again later.
            st.traced, st.countdown, st.agree = False, NESTED_PAUSE, 0
        rows = rows or []
        try:
            rows_read, rows_written, _ = est.rows(status, nrows, changes, params, rows)
            if st.calibrate:
                calibrate(st, est, status, rows_read, rows_written, nrows, changes, params, rows)
        except Exception as exc:  # noqa: BLE001 - an estimate must never fail a request
            warn_once(sql, exc)
            return None, None
        return rows_read, rows_written

    def defer_estimates(self, defer: bool = True, *, estimate: bool = True) -> None:
        """Put the rows-read estimate off until :meth:`finish_estimates` (replay's mode).

        ``estimate=False`` gives no estimate at all (raw speed: ``rows_read``
        and ``rows_written`` stay ``None``) for statements analysed from now on;
        call it before :meth:`prepare`.  ``defer=False`` returns to the
        synchronous path (pending estimates are finished first).
        """
        if self._pending:
            self.finish_estimates()
        self._estimating = bool(estimate) and self.target.estimate_rows
        if not estimate:
            for st in self._statements.values():
                st.estimator, st.constant, st.traced = None, None, False
        self._pending = [] if defer else None
        for st in self._statements.values():
            st.hot, st.hot_countdown = st.traced, 0

    @property
    def pending_estimates(self) -> int:
        """Executions whose estimate :meth:`finish_estimates` has still to work out."""
        return len(self._pending or ())

    def finish_estimates(self, tick: Callable[[int], Any] | None = None) -> int:
        """Work out every pending estimate and fill its ``Meta``; returns how many.

        ``tick(n)`` is called after every ``n`` estimates (a progress bar).  If
        interrupted, the executions not reached keep ``rows_read = None``.

        A calibrated statement uses the counters its executions collected,
        as the hot path decided without any estimate.  An adaptive one takes
        its counting decisions in execution order, as the synchronous path
        would have: an execution that path counts uses the counters the hot
        path collected; one it would not count is estimated without them.
        """
        pending, self._pending = self._pending, ([] if self._pending is not None else None)
        if not pending:
            return 0
        sql_of = {id(st): sql for sql, st in self._statements.items()}
        for k, (meta, st, status, events, nrows, changes, params, rows) in enumerate(pending, 1):
            if tick is not None and k % 256 == 0:
                tick(256)
            if st.calibrate:
                counted = status if st.traced else None
                if counted is None and st.traced:
                    events = 0
            else:
                counted = status
            rows_read, rows_written = self._settle(sql_of.get(id(st), "?"), st, counted, events,
                                                   nrows, changes, params, rows)
            set_rows_read(meta, rows_read)
            set_rows_written(meta, rows_written)
        if self._store is not None:
            self.save_analyses(self._store)
        return len(pending)

    def prepare(self, sql: str, params: Params = (), store: AnalysisStore | None = None,
                samples: Sequence[Params] = ()) -> bool:
        """Analyse ``sql`` now, so that none of its executions waits for it.

        With ``store``, a stored analysis is used when there is one, and a new
        one is stored.  With ``samples`` (parameter sets drawn as a run would)
        the statement is also calibrated: run on them with its counters (see
        :func:`~d1bench.targets.rowcount.counting.observe`), so that its
        executions collect counters only if its estimate needs them; the
        verdict is shared by the target's connections and stored with the
        analysis.  ``False`` when the statement cannot even be prepared.
        """
        if store is not None:
            self._store = store
        st = self._statements.get(sql)
        found = store.load(sql) if st is None and store is not None else None
        verdicts = self.target.verdicts
        if found is not None:
            columns, readonly, ddl, estimator, traced, constant, calibrating, verdict = found
            if estimator is not None:
                if not self._estimating:
                    estimator = constant = verdict = None
                    traced = calibrating = False
                else:
                    self._bind(estimator).warm(params)
            st = Statement(columns, readonly, ddl, estimator, traced, constant,
                           calibrate=calibrating, verdict=verdict, hot=traced)
            self._remember(sql, st)
            if verdict is not None:
                verdicts.setdefault(sql, verdict)
        elif st is None:
            try:
                st = self._analyse(sql, params)
            except TargetError:
                return False
            if store is not None and (st.estimator is not None or not self._estimating):
                store.save(sql, st.stored())
        if samples and st.calibrate and st.estimator is not None:
            if sql not in verdicts:
                verdicts[sql] = self._calibrate(sql, st, samples)
                if store is not None and verdicts[sql] is not None:
                    apply_verdict(st, verdicts[sql])
                    store.save(sql, st.stored())
            apply_verdict(st, verdicts[sql])
        return True

    def save_analyses(self, store: AnalysisStore) -> int:
        """Store this connection's analyses again, with what their estimators have solved since.

        A count-free estimate meeting a new active set solves it (up to
        seconds); stored after a run, the next run on the corpus starts with it.
        Returns how many were stored.
        """
        saved = 0
        for sql, st in list(self._statements.items()):
            if st.estimator is not None and st.constant is None:
                store.save(sql, st.stored())
                saved += 1
        return saved

    def _calibrate(self, sql: str, st: Statement, samples: Sequence[Params]) -> bool | None:
        writes = not st.readonly
        if st.estimator is None or st.ddl or (writes and self.target.readonly):
            return None
        seen = observe(self._adb, self._cursor, sql, samples, writes=writes)
        try:  # estimated after observe's rollback: data facts see the data the run starts from
            return counting_verdict(st.estimator, seen, complete=len(seen) == len(samples))
        except Exception as exc:  # noqa: BLE001 - then the adaptive rule decides
            warn_once(sql, exc)
            return None


_warned: set[str] = set()


def warn_once(sql: str, exc: BaseException) -> None:
    """A ``RuntimeWarning`` that ``sql`` gets no estimate, once per SQL text."""
    key = sql[:200]
    if key not in _warned:
        _warned.add(key)
        warnings.warn(f"d1bench: no rows-read estimate for {key!r}: {type(exc).__name__}: {exc}",
                      RuntimeWarning, stacklevel=3)
