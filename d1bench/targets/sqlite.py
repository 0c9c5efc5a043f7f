"""The local SQLite target: a database file opened with APSW.

Each replay worker gets its own :class:`SQLiteConnection` (APSW releases the
GIL while SQLite works, so workers run in parallel).  Besides rows and timing,
every execution carries an estimate of what D1 would bill for it, computed by
:mod:`d1bench.targets.rowcount` from the statement's bytecode and SQLite's
per-statement counters.

The hot path is kept short because replay measures it: the analysis of a SQL
text (``EXPLAIN``, the flow model) happens once, on its first execution and
outside the timed region; statements whose estimate does not depend on the
data (a primary-key lookup, a one-row insert) then cost a dictionary lookup,
and the others a few small matrix-vector products after the timed region.
While a statement's estimate needs SQLite's counters, APSW's profile callback
collects them (about 2 µs, and it runs as the statement finishes, so inside
its ``duration_ms``); statements stop collecting once their estimate is shown
not to need them (see :mod:`d1bench.targets.rowcount`).

Connections enforce foreign keys, as D1 does (it also makes inserts read the
parent rows they reference, which D1 bills).
"""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import apsw
import apsw.ext

from d1bench.errors import TargetError, UsageError
from d1bench.sql.session import EXPLAIN, plan_steps
from d1bench.targets.base import Connection, Meta, Params, PlanStep, Result, Target
from d1bench.targets.rowcount import TRACE_COUNTERS, DataFacts, RowEstimator, read_program

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
_AGREE = 8  # agreeing executions before a statement stops collecting counters
_NESTED_LIMIT = 64  # nested statements per execution beyond which counting costs too much
_NESTED_PAUSE = 8  # executions left uncounted after one that ran too many
_RECHECK = 64  # count-free executions between two checks
_DDL = re.compile(r"^\s*(CREATE|DROP|ALTER|ANALYZE|VACUUM|REINDEX)\b", re.IGNORECASE)

#: APSW exception -> (error class, retryable)
_ERROR_CLASSES: dict[type, tuple[str, bool]] = {
    apsw.SQLError: ("syntax", False),
    apsw.BindingsError: ("syntax", False),
    apsw.RangeError: ("syntax", False),
    apsw.ConstraintError: ("constraint", False),
    apsw.MismatchError: ("constraint", False),
    apsw.ReadOnlyError: ("read_only", False),
    apsw.TooBigError: ("limit", False),
    apsw.FullError: ("limit", False),
    apsw.BusyError: ("overloaded", True),
    apsw.LockedError: ("overloaded", True),
    apsw.InterruptError: ("interrupted", False),
    apsw.AuthError: ("auth", False),
    apsw.CantOpenError: ("not_found", False),
}


def classify_error(exc: BaseException) -> TargetError:
    """Turn an APSW exception into a :class:`TargetError`, keeping SQLite's words.

    >>> import apsw
    >>> classify_error(apsw.ConstraintError("UNIQUE constraint failed: t.a")).error_class
    'constraint'
    """
    error_class, retryable = "other", False
    for cls in type(exc).__mro__:
        if cls in _ERROR_CLASSES:
            error_class, retryable = _ERROR_CLASSES[cls]
            break
    message = str(exc.args[0]) if exc.args else type(exc).__name__
    return TargetError(message, error_class=error_class, retryable=retryable,
                       code=getattr(exc, "extendedresult", None))


@dataclass(slots=True)
class _Statement:
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

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False,
                 estimate_rows: bool = True, counters: str = "auto", foreign_keys: bool = True,
                 busy_timeout_ms: int = 5000, statement_cache: int = 256) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UsageError(f"sqlite target {str(path)!r}: no such database file")
        if counters not in ("auto", "always", "never"):
            raise UsageError(f"counters={counters!r}: choose auto, always or never")
        self.readonly = readonly
        self.estimate_rows = estimate_rows
        self.counters = counters
        self.foreign_keys = foreign_keys
        self.busy_timeout_ms = busy_timeout_ms
        self.statement_cache = statement_cache
        #: Facts about the data the estimator uses, shared by all connections.
        self.facts = DataFacts()

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

    def connect(self) -> SQLiteConnection:
        return SQLiteConnection(self)

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

    def forget_data_facts(self) -> None:
        """Drop cached table sizes, column samples and FTS match counts (after bulk changes)."""
        self.facts.forget()


def _quote(name: str) -> str:
    return name.replace('"', '""')


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
        self._statements: dict[str, _Statement] = {}
        self._stats: Mapping[str, int] | None = None
        self._events = 0
        self._schema: tuple[dict, dict] | None = None

    # --- the hot path ---------------------------------------------------------

    def execute(self, sql: str, params: Params = ()) -> Result:
        st = self._statements.get(sql)
        if st is None:
            st = self._analyse(sql, params)
        db = self._db
        if st.traced:
            self._stats = None
            self._events = 0
            db.trace_v2(_PROFILE, self._on_profile)
        t0 = _perf_ns()
        try:
            rows = self._cursor.execute(sql, params).fetchall()
        except apsw.Error as exc:
            if st.traced:
                db.trace_v2(0, None)
            raise classify_error(exc) from None
        t1 = _perf_ns()
        if st.readonly:
            changes = last_row_id = None
        else:
            changes, last_row_id = db.changes(), db.last_insert_rowid()
        est = st.estimator
        if st.traced:
            db.trace_v2(0, None)
            status = self._stats
            if self._events > _NESTED_LIMIT and st.calibrate:
                # Counting cost a callback per nested statement (FTS5's bm25 runs
                # one per row): too slow to keep up; check again later.
                st.traced, st.countdown, st.agree = False, _NESTED_PAUSE, 0
            extra = _EMPTY if status is None else {
                "vm_steps": status[_VM], "fullscan_steps": status[_FULLSCAN],
                "sort": status[_SORT], "autoindex": status[_AUTOINDEX]}
        else:
            status, extra = None, _EMPTY
        if est is None:
            rows_read = rows_written = None
        elif st.constant is not None:
            rows_read, rows_written = st.constant
        else:
            try:
                rows_read, rows_written, _ = est.rows(status, len(rows), changes or 0, params, rows)
                if st.calibrate:
                    self._calibrate(st, est, status, rows_read, rows_written, len(rows),
                                    changes or 0, params, rows)
            except Exception as exc:  # noqa: BLE001 - an estimate must never fail a request
                _warn_once(sql, exc)
                rows_read = rows_written = None
        if st.ddl:
            self._schema_changed()
        meta = _new(Meta)
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

    @staticmethod
    def _calibrate(st: _Statement, est: RowEstimator, status: Mapping[str, int] | None,
                   rows_read: int, rows_written: int, nrows: int, changes: int, params: Params,
                   rows: list) -> None:
        """Stop collecting counters for a statement whose estimate does not need them.

        Collecting them costs a few microseconds per execution (APSW's profile
        callback), a lot for an indexed lookup.  After each counted execution
        the count-free estimate is computed too; after _AGREE agreeing
        executions in a row the statement runs without counters, with one
        counted execution every _RECHECK to catch a change.
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
            if st.agree >= _AGREE:
                st.traced, st.countdown = False, _RECHECK
        else:
            st.agree, st.traced = 0, True

    def _on_profile(self, event: dict) -> None:
        # Nested statements (FTS5's own) report first; the statement itself last.
        self._stats = event["stmt_status"]
        self._events += 1

    # --- analysis, once per SQL text -------------------------------------------

    def _analyse(self, sql: str, params: Params) -> _Statement:
        db = self._db
        try:
            info = apsw.ext.query_info(db, sql, params)
        except apsw.Error as exc:
            raise classify_error(exc) from None
        columns = tuple(d[0] for d in info.description or ())
        ddl = bool(_DDL.match(sql))
        estimator = None
        target = self.target
        facts = target.facts
        single = not (info.query_remaining or "").strip() and not info.is_explain
        if target.estimate_rows and single:
            try:
                program = read_program(db, sql, params)
                btrees, vtabs = self._schema_maps()
                estimator = RowEstimator(
                    program, params, btrees=btrees, vtabs=vtabs,
                    table_rows=lambda table: facts.table_rows(db, table),
                    fts_count=lambda table, expr: facts.fts_count(db, table, expr),
                    selectivity=lambda *args: facts.rejected_rows(db, *args))
            except Exception as exc:  # noqa: BLE001 - no estimate rather than no request
                _warn_once(sql, exc)
        counters = target.counters
        traced = estimator is not None and (
            counters == "always" or (counters == "auto" and estimator.traced))
        constant = None
        if estimator is not None and estimator.constant is not None:
            constant = (estimator.constant.rows_read, estimator.constant.rows_written)
        st = _Statement(columns, bool(info.is_readonly), ddl, estimator, traced, constant,
                        calibrate=traced and counters == "auto")
        if len(self._statements) > 10_000:
            self._statements.clear()
        self._statements[sql] = st
        return st

    def _schema_maps(self) -> tuple[dict, dict]:
        """B-tree root pages and virtual-table handles of this connection's schema."""
        if self._schema is None:
            db = self._db
            btrees = {}
            for root, name, table, kind, sql in db.execute(
                    "SELECT rootpage, name, tbl_name, type, sql FROM sqlite_schema WHERE rootpage > 0"
                    ).fetchall():
                partial = kind == "index" and bool(sql) and bool(re.search(r"\bWHERE\b", sql, re.IGNORECASE))
                columns: tuple[int, ...] = ()
                if kind == "index":
                    columns = tuple(r[1] for r in db.execute(
                        f'PRAGMA index_info("{_quote(name)}")'))
                btrees[root] = (name, table, partial, columns)
            vtabs = {}
            names = [(r[0], True) for r in db.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'")]
            for name, is_table in [*names, ("json_each", False), ("json_tree", False)]:
                try:
                    ops = list(db.execute(f'EXPLAIN SELECT * FROM "{_quote(name)}"'))
                    fts_cols = 0
                    if is_table and self._is_fts5(name):
                        fts_cols = len(db.execute(f'PRAGMA table_info("{_quote(name)}")').fetchall())
                except apsw.Error:
                    continue
                for op in ops:
                    if op[1] == "VOpen":
                        vtabs[str(op[5])] = (name, fts_cols)
            self._schema = (btrees, vtabs)
        return self._schema

    def _is_fts5(self, name: str) -> bool:
        rows = self._db.execute("SELECT sql FROM sqlite_schema WHERE name = ?", (name,)).fetchall()
        return bool(rows) and bool(re.search(r"USING\s+fts5", rows[0][0] or "", re.IGNORECASE))

    def _schema_changed(self) -> None:
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
        self._statements.clear()
        self._db.close()


_warned: set[str] = set()


def _warn_once(sql: str, exc: BaseException) -> None:
    key = sql[:200]
    if key not in _warned:
        _warned.add(key)
        warnings.warn(f"d1bench: no rows-read estimate for {key!r}: {type(exc).__name__}: {exc}",
                      RuntimeWarning, stacklevel=3)
