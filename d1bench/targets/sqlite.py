"""The local SQLite target: a database file opened with APSW.

Each replay worker gets its own :class:`SQLiteConnection` (APSW releases the
GIL while SQLite works, so workers run in parallel).  Besides rows and timing,
every execution carries an estimate of what D1 would bill for it, computed by
:mod:`d1bench.targets.rowcount` from the statement's bytecode and SQLite's
per-statement counters.

Two ways to get the estimate:

- synchronous (the default, for notebooks, the advisor, lint, tests):
  ``execute`` returns ``meta.rows_read`` filled in;
- deferred (what replay uses, :meth:`SQLiteConnection.defer_estimates`): the
  hot path reads only what must be read at the moment (rows returned,
  changes, last row id, the statement's counters and the parameters) into a
  small pending record, and :meth:`SQLiteConnection.finish_estimates` works
  the estimates out after the run, filling the same ``Meta`` objects.  So the
  estimator never runs, nor holds the GIL, while any statement is timed.

Both give the same figures: the deferred pass replays, in execution order,
the very decisions the synchronous path takes (which executions use
counters).  The one-time analysis of a SQL text (``EXPLAIN``, the flow model)
happens in :meth:`SQLiteConnection.prepare`, before a replay's clock starts,
and is kept across runs by :class:`~d1bench.targets.rowcount.store.AnalysisStore`.

While a statement's estimate needs SQLite's counters, APSW's profile callback
collects them (about 2 µs, and it runs as the statement finishes, so inside
its ``duration_ms``).

Connections enforce foreign keys, as D1 does (it also makes inserts read the
parent rows they reference, which D1 bills).
"""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import apsw
import apsw.ext

from d1bench.dbfile import check_database
from d1bench.errors import TargetError, UsageError
from d1bench.sql.session import EXPLAIN, plan_steps
from d1bench.targets.base import Connection, Meta, Params, PlanStep, Result, Target
from d1bench.targets.rowcount import TRACE_COUNTERS, DataFacts, RowEstimator, read_program
from d1bench.targets.rowcount.counting import NESTED_LIMIT, NESTED_PAUSE, Statement, calibrate
from d1bench.targets.rowcount.schema import schema_maps
from d1bench.targets.rowcount.store import AnalysisStore, store_for
from d1bench.targets.sqlite_errors import classify_error

__all__ = ["SQLiteConnection", "SQLiteTarget", "classify_error"]

_PROFILE = apsw.SQLITE_TRACE_PROFILE
_perf_ns = time.perf_counter_ns
_new = object.__new__
# Frozen dataclasses set their fields through object.__setattr__, which costs
# about a microsecond per Meta; these slot setters build the same objects in
# half the time (the replay's overhead budget is counted in microseconds).
(_m_read, _m_written, _m_duration, _m_changes, _m_rowid, _m_attempts, _m_extra) = (
    getattr(Meta, name).__set__ for name in
    ("rows_read", "rows_written", "duration_ms", "changes", "last_row_id", "attempts", "extra"))
_r_columns, _r_rows, _r_meta = (getattr(Result, name).__set__ for name in ("columns", "rows", "meta"))
_EMPTY: Mapping[str, Any] = Meta().extra  # the protocol's shared empty mapping
_VM, _FULLSCAN, _SORT, _AUTOINDEX = (TRACE_COUNTERS[k] for k in
                                     ("vm_steps", "fullscan_steps", "sort", "autoindex"))
_DDL = re.compile(r"^\s*(CREATE|DROP|ALTER|ANALYZE|VACUUM|REINDEX)\b", re.IGNORECASE)


class SQLiteTarget(Target):
    """A SQLite database file.

    Args:
        path: the database file; it must exist.
        readonly: open it read-only (writes fail with error class ``read_only``).
        estimate_rows: estimate D1's rows read/written for every execution.
            ``False`` gives the bare timing loop replay compares itself with.
        counters: when to collect SQLite's per-statement counters:
            ``"auto"`` (when the estimate needs them), ``"always"`` (also fills
            ``Meta.extra`` for statements whose estimate is fixed), ``"never"``.
        foreign_keys: enforce foreign keys, as D1 does.
        busy_timeout_ms: how long a statement waits for a lock held by another
            connection before failing as ``overloaded``.
    """

    kind: ClassVar[str] = "sqlite"
    exact_rows_read: ClassVar[bool] = False
    supports_async: ClassVar[bool] = False
    supports_concurrency: ClassVar[bool] = True
    defers_estimates: ClassVar[bool] = True
    local_file: ClassVar[bool] = True

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False,
                 estimate_rows: bool = True, counters: str = "auto", foreign_keys: bool = True,
                 busy_timeout_ms: int = 5000, statement_cache: int = 256) -> None:
        self.path = Path(path)
        check_database(self.path)
        if counters not in ("auto", "always", "never"):
            raise UsageError(f"counters={counters!r}: choose auto, always or never")
        self.readonly = readonly
        self.allow_writes = not readonly
        self.estimate_rows = estimate_rows
        self.counters = counters
        self.foreign_keys = foreign_keys
        self.busy_timeout_ms = busy_timeout_ms
        self.statement_cache = statement_cache
        #: Facts about the data the estimator uses, shared by all connections.
        self.facts = DataFacts()
        #: SQL texts analysed (EXPLAIN and flow model) by this target's connections.
        self.analyses = 0

    @classmethod
    def from_spec(cls, spec: str, **options: Any) -> SQLiteTarget:
        """``sqlite:PATH`` (or a bare path to a ``.sqlite``/``.db`` file)."""
        path = spec.removeprefix("sqlite:")
        path = path.removeprefix("//")
        if not path:
            raise UsageError(f"target {spec!r}: expected sqlite:PATH")
        return cls(path, **options)

    @property
    def url(self) -> str:
        return f"sqlite:{self.path}"

    def connect(self, *, allow_writes: bool | None = None) -> SQLiteConnection:
        return SQLiteConnection(self)

    def corpus_path(self) -> Path:
        return self.path

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        db = apsw.Connection(str(self.path), flags=apsw.SQLITE_OPEN_READONLY)
        try:
            journal = db.pragma("journal_mode")
            page_size = db.pragma("page_size")
            page_count = db.pragma("page_count")
        finally:
            db.close()
        info.update({
            "sqlite_version": apsw.sqlite_lib_version(),
            "apsw_version": apsw.apsw_version(),
            "path": str(self.path),
            "file_bytes": self.path.stat().st_size,
            "page_size": page_size,
            "page_count": page_count,
            "journal_mode": journal,
            "foreign_keys": self.foreign_keys,
            "readonly": self.readonly,
            "rows_read": "estimated from bytecode and statement counters" if self.estimate_rows
                         else "not measured",
        })
        return info

    def sibling(self, path: str | os.PathLike[str] | None = None, **overrides: Any) -> SQLiteTarget:
        """A target with the same options over ``path`` (a snapshot), or with ``overrides``."""
        options = {"readonly": self.readonly, "estimate_rows": self.estimate_rows,
                   "counters": self.counters, "foreign_keys": self.foreign_keys,
                   "busy_timeout_ms": self.busy_timeout_ms,
                   "statement_cache": self.statement_cache, **overrides}
        return SQLiteTarget(self.path if path is None else path, **options)

    def prepare_estimates(self, conns: Sequence[Connection],
                          statements: Sequence[tuple[str, Params]], *, estimate: bool,
                          corpus: Mapping[str, Any] | None) -> dict[str, Any]:
        estimating = estimate and self.estimate_rows
        start = time.perf_counter()
        store = store_for(self.path, corpus, foreign_keys=self.foreign_keys,
                          counters=self.counters) if estimating else None
        before = self.analyses
        for conn in conns:
            assert isinstance(conn, SQLiteConnection)  # one of this target's, or a sibling's
            conn.defer_estimates(estimate=estimating)
            for sql, params in statements:
                conn.prepare(sql, params, store)
        return {
            "rows": "estimated after the run" if estimating else "not estimated (--no-estimate)",
            "estimated": estimating, "analysed": self.analyses - before,
            "from_cache": store.hits if store is not None else 0,
            "prepare_s": round(time.perf_counter() - start, 4),
        }

    def forget_data_facts(self) -> None:
        """Drop cached table sizes, column samples and FTS match counts (after bulk changes)."""
        self.facts.forget()


class SQLiteConnection(Connection):
    """One APSW connection; use it from one thread at a time."""

    def __init__(self, target: SQLiteTarget) -> None:
        self.target = target
        flags = apsw.SQLITE_OPEN_READONLY if target.readonly else apsw.SQLITE_OPEN_READWRITE
        try:
            self._db = apsw.Connection(str(target.path), flags=flags,
                                       statementcachesize=target.statement_cache)
        except apsw.Error as exc:
            raise classify_error(exc) from None
        self._db.set_busy_timeout(target.busy_timeout_ms)
        if target.foreign_keys:
            self._db.pragma("foreign_keys", True)
        self._cursor = self._db.cursor()
        self._statements: dict[str, Statement] = {}
        self._stats: Mapping[str, int] | None = None
        self._events = 0
        self._schema: tuple[dict, dict] | None = None
        self._estimating = target.estimate_rows
        #: Deferred mode: (meta, statement, counters, nested events, rows returned, changes,
        #: params, rows if the estimate reads them), in execution order; None when synchronous.
        self._pending: list[tuple] | None = None

    # --- the hot path ---------------------------------------------------------

    def execute(self, sql: str, params: Params = ()) -> Result:
        st = self._statements.get(sql)
        if st is None:
            st = self._analyse(sql, params)
        db = self._db
        pending = self._pending
        collect = st.traced if pending is None else st.hot
        if collect:
            self._stats = None
            self._events = 0
            db.trace_v2(_PROFILE, self._on_profile)
        t0 = _perf_ns()
        try:
            rows = self._cursor.execute(sql, params).fetchall()
        except apsw.Error as exc:
            if collect:
                db.trace_v2(0, None)
            raise classify_error(exc) from None
        t1 = _perf_ns()
        if st.readonly:
            changes = last_row_id = None
        else:
            changes, last_row_id = db.changes(), db.last_insert_rowid()
        if collect:
            db.trace_v2(0, None)
            status = self._stats
            extra = _EMPTY if status is None else {
                "vm_steps": status[_VM], "fullscan_steps": status[_FULLSCAN],
                "sort": status[_SORT], "autoindex": status[_AUTOINDEX]}
        else:
            status, extra = None, _EMPTY
        meta = _new(Meta)
        if st.estimator is None:
            rows_read = rows_written = None
        elif st.constant is not None:
            rows_read, rows_written = st.constant
        elif pending is not None:
            rows_read = rows_written = None
            events = self._events if collect else 0
            if events > NESTED_LIMIT and st.calibrate:
                # Each nested statement (FTS5's bm25 runs one per row) costs a callback
                # inside the timing: pause as the synchronous path would.
                st.hot, st.hot_countdown = False, NESTED_PAUSE
            elif not collect:
                st.hot_countdown -= 1
                st.hot = st.hot_countdown <= 0
            pending.append((meta, st, status, events, len(rows), changes or 0, params,
                            rows if st.estimator.needs_rows else None))
        else:
            rows_read, rows_written = self._settle(sql, st, status if collect else None,
                                                   self._events if collect else 0, len(rows),
                                                   changes or 0, params, rows)
        if st.ddl:
            self._schema_changed()
        _m_read(meta, rows_read)
        _m_written(meta, rows_written)
        _m_duration(meta, (t1 - t0) / 1e6)
        _m_changes(meta, changes)
        _m_rowid(meta, last_row_id)
        _m_attempts(meta, 1)
        _m_extra(meta, extra)
        result = _new(Result)
        _r_columns(result, st.columns)
        _r_rows(result, rows)
        _r_meta(result, meta)
        return result

    # --- the estimate, now or after the run ---------------------------------------

    def _settle(self, sql: str, st: Statement, status: Mapping[str, int] | None, events: int,
                nrows: int, changes: int, params: Params, rows: list | None
                ) -> tuple[int | None, int | None]:
        """One execution's estimate, and the statement's next counting decision.

        ``status`` is what the synchronous path collected (``None`` when it did
        not count this execution).  Called from :meth:`execute` (synchronous)
        or :meth:`finish_estimates` (deferred, in execution order): the same
        inputs, the same decisions, the same figures.
        """
        est = st.estimator
        assert est is not None
        if status is not None and events > NESTED_LIMIT and st.calibrate:
            # Counting cost a callback per nested statement (FTS5's bm25 runs
            # one per row): too slow to keep up; check again later.
            st.traced, st.countdown, st.agree = False, NESTED_PAUSE, 0
        rows = rows or []
        try:
            rows_read, rows_written, _ = est.rows(status, nrows, changes, params, rows)
            if st.calibrate:
                calibrate(st, est, status, rows_read, rows_written, nrows, changes,
                                params, rows)
        except Exception as exc:  # noqa: BLE001 - an estimate must never fail a request
            _warn_once(sql, exc)
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

        Runs each statement's counting decisions in execution order, as the
        synchronous path would have taken them: an execution the synchronous
        path counts uses the counters the hot path collected; one it would not
        count is estimated without them.
        """
        pending, self._pending = self._pending, ([] if self._pending is not None else None)
        if not pending:
            return 0
        sql_of = {id(st): sql for sql, st in self._statements.items()}
        for k, (meta, st, status, events, nrows, changes, params, rows) in enumerate(pending, 1):
            if tick is not None and k % 256 == 0:
                tick(256)
            counted = status if st.traced else None
            if counted is None and st.traced:
                events = 0
            rows_read, rows_written = self._settle(sql_of.get(id(st), "?"), st, counted, events,
                                                   nrows, changes, params, rows)
            _m_read(meta, rows_read)
            _m_written(meta, rows_written)
        return len(pending)

    def prepare(self, sql: str, params: Params = (), store: AnalysisStore | None = None) -> bool:
        """Analyse ``sql`` now, so that none of its executions waits for it.

        With ``store``, a stored analysis is used when there is one, and a new
        one is stored.  Returns ``False`` when the statement cannot even be
        prepared (its executions will report the error).
        """
        if sql in self._statements:
            return True
        found = store.load(sql) if store is not None else None
        if found is not None:
            columns, readonly, ddl, estimator, traced, constant, calibrate = found
            if estimator is not None:
                if not self._estimating:
                    estimator = constant = None
                    traced = calibrate = False
                else:
                    self._bind(estimator)
            self._remember(sql, Statement(columns, readonly, ddl, estimator, traced, constant,
                                           calibrate=calibrate, hot=traced))
            return True
        try:
            st = self._analyse(sql, params)
        except TargetError:
            return False
        if store is not None and (st.estimator is not None or not self._estimating):
            store.save(sql, st.stored())
        return True

    def _on_profile(self, event: dict) -> None:
        # Nested statements (FTS5's own) report first; the statement itself last.
        self._stats = event["stmt_status"]
        self._events += 1

    # --- analysis, once per SQL text -------------------------------------------

    def _analyse(self, sql: str, params: Params) -> Statement:
        db = self._db
        try:
            info = apsw.ext.query_info(db, sql, params)
        except apsw.Error as exc:
            raise classify_error(exc) from None
        columns = tuple(d[0] for d in info.description or ())
        ddl = bool(_DDL.match(sql))
        estimator = None
        target = self.target
        target.analyses += 1
        single = not (info.query_remaining or "").strip() and not info.is_explain
        if self._estimating and single:
            try:
                program = read_program(db, sql, params)
                btrees, vtabs = self._schema_maps()
                estimator = RowEstimator(program, params, btrees=btrees, vtabs=vtabs,
                                         **self._facts())
            except Exception as exc:  # noqa: BLE001 - no estimate rather than no request
                _warn_once(sql, exc)
        counters = target.counters
        traced = estimator is not None and (
            counters == "always" or (counters == "auto" and estimator.traced))
        constant = None
        if estimator is not None and estimator.constant is not None:
            constant = (estimator.constant.rows_read, estimator.constant.rows_written)
        st = Statement(columns, bool(info.is_readonly), ddl, estimator, traced, constant,
                        calibrate=traced and counters == "auto", hot=traced)
        self._remember(sql, st)
        return st

    def _facts(self) -> dict[str, Any]:
        """The data-fact callbacks an estimator asks, answered through this connection."""
        db, facts = self._db, self.target.facts
        return {"table_rows": lambda table: facts.table_rows(db, table),
                "fts_count": lambda table, expr: facts.fts_count(db, table, expr),
                "selectivity": lambda *args: facts.rejected_rows(db, *args)}

    def _bind(self, estimator: RowEstimator) -> RowEstimator:
        return estimator.bind(**self._facts())

    def _remember(self, sql: str, st: Statement) -> None:
        if len(self._statements) > 10_000:
            if self._pending:
                self.finish_estimates()  # pending records name the statements dropped here
            self._statements.clear()
        self._statements[sql] = st

    def _schema_maps(self) -> tuple[dict, dict]:
        """B-tree root pages and virtual-table handles of this connection's schema."""
        if self._schema is None:
            self._schema = schema_maps(self._db)
        return self._schema

    def _schema_changed(self) -> None:
        # Pending records keep their statements (and estimators) alive; the SQL names are
        # only for warnings.  Data facts are forgotten: deferred estimates of statements run
        # before the change then see the new schema's facts (a DDL inside a replay is rare).
        self._statements.clear()
        self._schema = None
        self.target.forget_data_facts()

    # --- the rest of the protocol ----------------------------------------------

    def explain(self, sql: str, params: Params = ()) -> list[PlanStep]:
        try:
            rows = self._db.execute(EXPLAIN + sql, params).fetchall()
        except apsw.Error as exc:
            raise classify_error(exc) from None
        return plan_steps(rows)

    def close(self) -> None:
        if self._pending:
            self.finish_estimates()
        self._statements.clear()
        self._db.close()


_warned: set[str] = set()


def _warn_once(sql: str, exc: BaseException) -> None:
    key = sql[:200]
    if key not in _warned:
        _warned.add(key)
        warnings.warn(f"d1bench: no rows-read estimate for {key!r}: {type(exc).__name__}: {exc}",
                      RuntimeWarning, stacklevel=3)
