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

Both give the same figures.  Before a replay's clock starts,
:meth:`SQLiteConnection.prepare` analyses each SQL text (``EXPLAIN``, the
flow model; kept across runs by
:class:`~d1bench.targets.rowcount.store.AnalysisStore`) and calibrates it on
drawn parameters: its executions then collect SQLite's counters (APSW's
profile callback, inside ``duration_ms``: about 2 µs, and one more per
nested statement) only if its estimate uses them.  A statement nobody
calibrated follows the adaptive rule, which the deferred pass replays in
execution order (:mod:`~d1bench.targets.rowcount.counting`).

``duration_ms`` is timed around ``cursor.execute(sql, params).fetchall()``
alone, as an application's call would be, and the trace's service time is
that duration (:attr:`~d1bench.targets.base.Target.times_statements`): what
the hot path does around the call (looking the statement up, building
``Meta``) is d1bench's own work, and falls between requests.

Connections enforce foreign keys, as D1 does (it also makes inserts read the
parent rows they reference, which D1 bills).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import apsw
import apsw.ext

from d1bench.dbfile import check_database
from d1bench.errors import UsageError
from d1bench.sql.session import EXPLAIN, plan_steps
from d1bench.targets.base import Connection, Meta, Params, PlanStep, Result, Target
from d1bench.targets.rowcount import TRACE_COUNTERS, DataFacts, RowEstimator, read_program
from d1bench.targets.rowcount.counting import Statement, pause_after
from d1bench.targets.rowcount.schema import schema_maps
from d1bench.targets.rowcount.store import store_for
from d1bench.targets.sqlite_errors import classify_error
from d1bench.targets.sqlite_estimates import (
    EstimatesMixin,
    set_rows_read,
    set_rows_written,
    warn_once,
)

__all__ = ["SQLiteConnection", "SQLiteTarget", "classify_error"]

_PROFILE = apsw.SQLITE_TRACE_PROFILE
_perf_ns = time.perf_counter_ns
_new = object.__new__
# Frozen dataclasses set their fields through object.__setattr__, which costs
# about a microsecond per Meta; these slot setters build the same objects in
# half the time (the replay's overhead budget is counted in microseconds).
_m_read, _m_written = set_rows_read, set_rows_written
(_m_duration, _m_changes, _m_rowid, _m_attempts, _m_extra) = (
    getattr(Meta, name).__set__ for name in
    ("duration_ms", "changes", "last_row_id", "attempts", "extra"))
_r_columns, _r_rows, _r_meta = (getattr(Result, name).__set__ for name in ("columns", "rows", "meta"))
_EMPTY: Mapping[str, Any] = Meta().extra  # the protocol's shared empty mapping
_VM, _FULLSCAN, _SORT, _AUTOINDEX = (TRACE_COUNTERS[k] for k in
                                     ("vm_steps", "fullscan_steps", "sort", "autoindex"))
_DDL = re.compile(r"^\s*(CREATE|DROP|ALTER|ANALYZE|VACUUM|REINDEX)\b", re.IGNORECASE)


class _Uncached:
    """The connection as the analyses see it: their statements stay out of APSW's cache.

    A cached statement keeps the lookaside slots it was prepared with, and
    the analyses prepare dozens (``PRAGMA index_info`` per index, ``EXPLAIN``,
    the data facts' counts).  With the slots held, the workload's own
    statements allocate from malloc instead: ``citation_network`` ran 7%
    slower than a bare APSW loop on the same file, every time.
    """

    __slots__ = ("_db",)

    def __init__(self, db: apsw.Connection) -> None:
        self._db = db

    def execute(self, sql: str, params: Params | None = None) -> apsw.Cursor:
        return self._db.execute(sql, params, can_cache=False)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


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
    times_statements: ClassVar[bool] = True

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
        #: SQL text -> whether its estimate uses counters (``None``: calibration could not say).
        self.verdicts: dict[str, bool | None] = {}

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
                          corpus: Mapping[str, Any] | None,
                          calibration: Mapping[str, Sequence[Params]] | None = None
                          ) -> dict[str, Any]:
        estimating = estimate and self.estimate_rows
        start = time.perf_counter()
        store = store_for(self.path, corpus, foreign_keys=self.foreign_keys,
                          counters=self.counters) if estimating else None
        before = self.analyses
        for conn in conns:
            assert isinstance(conn, SQLiteConnection)  # one of this target's, or a sibling's
            conn.defer_estimates(estimate=estimating)
            for sql, params in statements:
                conn.prepare(sql, params, store, (calibration or {}).get(sql, ()) if estimating
                             else ())
        verdicts = [(sql, self.verdicts.get(sql)) for sql, _ in statements]
        return {
            "rows": "estimated after the run" if estimating else "not estimated (--no-estimate)",
            "estimated": estimating, "analysed": self.analyses - before,
            "from_cache": store.hits if store is not None else 0,
            # Whose executions collect SQLite's counters on the timed path, and whose do not.
            "counted": [sql for sql, v in verdicts if v],
            "uncounted": [sql for sql, v in verdicts if v is False],
            "prepare_s": round(time.perf_counter() - start, 4),
        }

    def forget_data_facts(self) -> None:
        """Drop cached table sizes, column samples, FTS match counts and counting verdicts."""
        self.facts.forget()
        self.verdicts.clear()


class SQLiteConnection(EstimatesMixin, Connection):
    """One APSW connection; use it from one thread at a time."""

    target: SQLiteTarget

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
        self._adb = _Uncached(self._db)
        self._statements: dict[str, Statement] = {}
        self._stats: Mapping[str, int] | None = None
        self._events = 0
        self._schema: tuple[dict, dict] | None = None
        self._estimating = target.estimate_rows
        self._pending: list[tuple] | None = None  # see EstimatesMixin

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
            if st.verdict or st.calibrate:
                # Each nested statement (FTS5's bm25 runs one per row) costs a callback
                # inside the timing: pause after an execution that ran many.
                st.hot, st.hot_countdown = pause_after(collect, st.hot_countdown, events)
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
                program = read_program(self._adb, sql, params)
                btrees, vtabs = self._schema_maps()
                estimator = RowEstimator(program, params, btrees=btrees, vtabs=vtabs,
                                         **self._facts())
            except Exception as exc:  # noqa: BLE001 - no estimate rather than no request
                warn_once(sql, exc)
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
        db, facts = self._adb, self.target.facts
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
            self._schema = schema_maps(self._adb)
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
            rows = self._adb.execute(EXPLAIN + sql, params).fetchall()
        except apsw.Error as exc:
            raise classify_error(exc) from None
        return plan_steps(rows)

    def close(self) -> None:
        if self._pending:
            self.finish_estimates()
        self._statements.clear()
        self._db.close()

    # --- scratch work: trials on a copy, undone afterwards ---------------------

    @contextmanager
    def rolled_back(self) -> Iterator[None]:
        """Undo everything done on this connection inside the block: rows, schema, statistics.

        A savepoint, rolled back however the block ends; what the estimates
        learnt of the schema inside is forgotten with it.  For scratch work
        on a copy (a fix step's DDL and its trials): nothing written inside
        is kept.
        """
        outermost = self._db.getautocommit()
        self._db.execute("SAVEPOINT d1bench_rolled_back")
        try:
            yield
        finally:
            if self._pending:
                self.finish_estimates()
            if self._db.getautocommit():
                pass  # an error rolled it all back already
            elif outermost:  # the whole transaction is ours: the file is left as it was
                self._db.execute("ROLLBACK")
            else:
                self._db.execute("ROLLBACK TO d1bench_rolled_back; RELEASE d1bench_rolled_back")
            self._schema_changed()

    def fetch(self, sql: str, params: Params = ()) -> list[tuple]:
        """The rows of a statement that is not a request: no estimate, no timing, not cached."""
        try:
            return [tuple(r) for r in self._adb.execute(sql, params)]
        except apsw.Error as exc:
            raise classify_error(exc) from None

    def run_script(self, sql: str = "",
                   fills: Sequence[Callable[[apsw.Connection], None]] = ()) -> None:
        """Run statements that are not requests (DDL, a backfill), then each of ``fills``
        with the APSW connection (a backfill faster than SQL); the estimates then forget
        what they knew of the schema."""
        try:
            if sql.strip():
                self._db.execute(sql)
            for fill in fills:
                fill(self._db)
        except apsw.Error as exc:
            raise classify_error(exc) from None
        finally:
            self._schema_changed()
