"""Rows read and written for one SQL text: the per-connection entry point."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from d1bench.targets.rowcount.flow import build_flow_model
from d1bench.targets.rowcount.model import FlowModel
from d1bench.targets.rowcount.program import Program, compare_outcome, json_length, value_of
from d1bench.targets.rowcount.solve import System, in_row_space

__all__ = ["TRACE_COUNTERS", "Estimate", "RowEstimator"]

#: stmt_status counters the estimator reads, by our name -> APSW's key.
TRACE_COUNTERS = {
    "vm_steps": "SQLITE_STMTSTATUS_VM_STEP",
    "fullscan_steps": "SQLITE_STMTSTATUS_FULLSCAN_STEP",
    "autoindex": "SQLITE_STMTSTATUS_AUTOINDEX",
    "sort": "SQLITE_STMTSTATUS_SORT",
    "filter_hit": "SQLITE_STMTSTATUS_FILTER_HIT",
    "filter_miss": "SQLITE_STMTSTATUS_FILTER_MISS",
}


@dataclass(frozen=True, slots=True)
class Estimate:
    """One execution's estimate of what D1 would bill."""

    rows_read: int
    rows_written: int
    #: The counters, structure and data facts fix the answer (no prior was used).
    determined: bool


class RowEstimator:
    """Rows read and written for one SQL text on one connection.

    Built once from the statement's bytecode; :meth:`estimate` then costs a
    few matrix-vector products per execution (nothing at all when the answer
    does not depend on the execution, as for a primary-key lookup).

    ``traced`` says whether :meth:`estimate` can use the statement's
    ``stmt_status`` counters (see :data:`TRACE_COUNTERS`); it is ``False``
    when the answer is constant.  Without counters (``status=None``) the
    estimate relies on the rows returned and changed, the data facts and the
    priors alone.
    """

    def __init__(self, program: Program, params: Sequence[Any] | Mapping[str, Any], *,
                 btrees: Mapping[int, tuple[str, str, bool]] | None = None,
                 table_rows: Callable[[str], int | None] | None = None,
                 vtabs: Mapping[str, tuple[str, int]] | None = None,
                 fts_count: Callable[[str, Any], int | None] | None = None,
                 selectivity: Callable[..., float | None] | None = None) -> None:
        self.program = program
        #: (table, column number, compare opcode, column is P3, P5, value) ->
        #: how many of the table's rows the compare jumps on (rejects).
        self._selectivity = selectivity or (lambda *args: None)
        self._btrees = dict(btrees or {})
        self._table_rows = table_rows or (lambda name: None)
        self._vtabs = dict(vtabs or {})
        self._fts_count = fts_count or (lambda table, expr: None)
        tables = {tree[1] for tree in self._btrees.values()}
        self._rows_snapshot = {name: rows for name in tables
                               if (rows := self._table_rows(name)) is not None}
        self._systems: dict[tuple, System] = {}
        model = self._model(params)
        self._shape_params = tuple(model.shape_params)
        self._shape_tests = tuple(model.shape_tests)
        self._presence = tuple(model.presence)
        self.traced = True
        #: Each execution runs nested statements (FTS5 looking up document sizes
        #: for bm25, once per row): counting costs a profile callback for each.
        self.nested_statements = model.fts_aux_calls
        self._clears = model.clears
        self._obs_names = (*TRACE_COUNTERS, "rows", "changes")
        self._input_names = tuple(model.inputs)
        self._inputs = dict(model.inputs)
        self._limit_sources = tuple(src for _j, _r, src in model.limits)
        self._count_columns = tuple(_result_column(program, reg) for _f, _t, reg in model.counts)
        self._count_trees = tuple(tree for _f, tree, _reg in model.counts)
        self.constant: Estimate | None = None
        system = self._system(model, self._regime_key(None, ()), (), self.traced)
        # Without per-execution inputs one system serves every execution.
        simple = not (self._input_names or self._limit_sources or self._shape_params
                      or self._shape_tests or self._presence)
        self._default = system if simple else None
        self._default_blind = self._system(model, self._regime_key(None, ()), (), False) \
            if simple else None
        self._memo: dict[tuple[int, int], tuple[int, int, bool]] = {}
        if not model.counts and not model.clears and \
                in_row_space(system.E, [system.read, system.write]):
            # The structure alone fixes the answer (a primary-key lookup, a
            # one-row insert): no counter needed, nothing to do per execution.
            z, *_ = np.linalg.lstsq(system.E, system.F[:, 0], rcond=None)
            self.constant = Estimate(max(0, round(float(system.read @ z))),
                                     max(0, round(float(system.write @ z))), True)
            self.traced = False

    def __getstate__(self) -> dict[str, Any]:
        # The data-fact callbacks are bound to a connection: a stored estimator
        # (see :mod:`~.store`) is re-bound to its new connection with :meth:`bind`.
        state = dict(self.__dict__)
        for name in _CALLBACKS:
            state[name] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.bind()

    def bind(self, *, table_rows: Callable[[str], int | None] | None = None,
             fts_count: Callable[[str, Any], int | None] | None = None,
             selectivity: Callable[..., float | None] | None = None) -> RowEstimator:
        """Attach the data facts of a connection (after unpickling, or to another connection)."""
        self._table_rows = table_rows or (lambda name: None)
        self._fts_count = fts_count or (lambda table, expr: None)
        self._selectivity = selectivity or (lambda *args: None)
        return self

    def _model(self, params: Sequence[Any] | Mapping[str, Any]) -> FlowModel:
        model = build_flow_model(self.program, btrees=self._btrees,
                                 table_rows=self._rows_snapshot, vtabs=self._vtabs, params=params)
        # A column nobody can sample gives no fact (rather than a wrong "none rejected").
        unusable = set()
        for name, (kind, (table, src)) in model.inputs.items():
            if kind == "sel":
                colno, opcode, col_is_p3, p5, value_src = src
                value = value_of(value_src, params) if value_src is not None else None
                if self._selectivity(table, colno, opcode, col_is_p3, p5, value) is None:
                    unusable.add(name)
        if unusable:
            model.samples = [(f, n) for f, n in model.samples if n not in unusable]
            model.inputs = {n: v for n, v in model.inputs.items() if n not in unusable}
        for (i, *_spec), present in zip(model.presence, self._present(model.presence, params)):
            if present is not None and i in model.jump_vars:
                # a miss jumps every time the seek runs, a hit never
                form = {model.jump_vars[i]: 1.0}
                run = model.op_vars[i]
                form[run] = form.get(run, 0.0) - (0.0 if present else 1.0)
                model.facts.append((form, 0.0, None))
        return model

    def _present(self, presence: Sequence[tuple], params: Sequence[Any] | Mapping[str, Any]
                 ) -> tuple[bool | None, ...]:
        """Whether each fixed-value seek's value is in its table (``None``: unknown)."""
        out = []
        for _i, table, colno, src in presence:
            value = value_of(src, params)
            found = None if value is None else self._selectivity(table, colno, "Exists", True,
                                                                 0, value)
            out.append(None if found is None else found > 0)
        return tuple(out)

    def _regime_key(self, nrows: int | None, limits: Sequence[Any]) -> str | None:
        if not self._limit_sources or nrows is None or any(v is None for v in limits):
            return None
        return "full" if nrows >= min(limits) else "fits"

    def _system(self, model: FlowModel, regime: str | None, shape: tuple = (),
                counted: bool = True) -> System:
        key = (regime, shape, counted)
        system = self._systems.get(key)
        if system is None:
            names = self._obs_names if counted else ("rows", "changes")
            system = self._systems[key] = System(model, names, self._input_names, regime)
        return system

    @property
    def needs_rows(self) -> bool:
        """Whether :meth:`rows` reads the returned rows themselves (a ``count(*)`` result)."""
        return bool(self._count_columns)

    def estimate(self, status: Mapping[str, int] | None, nrows: int, changes: int,
                 params: Sequence[Any] | Mapping[str, Any],
                 rows: Sequence[Sequence[Any]] = ()) -> Estimate:
        """Apply the model to one execution's observations.

        ``status`` is the statement's ``stmt_status`` mapping as APSW's
        profile trace gives it (needed when :attr:`traced`); ``nrows`` and
        ``changes`` are the rows returned and changed; ``rows`` the rows
        themselves (a ``count(*)`` result is read from them).
        """
        if self.constant is not None:
            return self.constant
        read, write, determined = self.rows(status, nrows, changes, params, rows)
        return Estimate(read, write, determined)

    def rows(self, status: Mapping[str, int] | None, nrows: int, changes: int,
             params: Sequence[Any] | Mapping[str, Any],
             rows: Sequence[Sequence[Any]] = ()) -> tuple[int, int, bool]:
        """:meth:`estimate` without building an object: (read, written, determined)."""
        if self.constant is not None:
            c = self.constant
            return c.rows_read, c.rows_written, c.determined
        if status is not None and self.traced:
            y = [1.0, *[status[key] for key in _STATUS_KEYS], nrows, changes]
            return self._finish(self._default, y, True, nrows, params, rows)
        # No counters this time: the model of rows and changes only.  When
        # nothing else varies, the answer depends on (rows, changes) alone.
        if self._default_blind is not None and not self._count_columns:
            key = (nrows, changes)
            hit = self._memo.get(key)
            if hit is None:
                if len(self._memo) > 4096:
                    self._memo.clear()
                hit = self._memo[key] = self._finish(self._default_blind, [1.0, nrows, changes],
                                                     False, nrows, params, rows)
            return hit
        return self._finish(self._default_blind, [1.0, nrows, changes], False, nrows, params, rows)

    def _finish(self, system: System | None, y: list[float], counted: bool, nrows: int,
                params: Sequence[Any] | Mapping[str, Any],
                rows: Sequence[Sequence[Any]]) -> tuple[int, int, bool]:
        if system is None:  # LIMITs, FTS counts or JSON lengths: per-execution inputs
            for name in self._input_names:
                kind, (table, src) = self._inputs[name]
                if kind == "sel":
                    colno, opcode, col_is_p3, p5, value_src = src
                    value = value_of(value_src, params) if value_src is not None else None
                    y.append(float(self._selectivity(table, colno, opcode, col_is_p3, p5, value)
                                   or 0.0))
                    continue
                k = self._fts_count(table, value_of(src, params))
                y.append(float(k or 0) if kind == "fts" else float(bool(k)))
            limits = [_as_int(value_of(src, params)) for src in self._limit_sources]
            y.extend(float(v or 0) for v in limits)
            shape = (*(json_length(value_of(("param", i), params)) for i in self._shape_params),
                     *(compare_outcome(spec, params) for spec in self._shape_tests),
                     *self._present(self._presence, params))
            regime = self._regime_key(nrows, limits)
            system = self._systems.get((regime, shape, counted))
            if system is None:
                system = self._system(self._model(params), regime, shape, counted)
        read, write, count_runs = system.solve(y)
        if count_runs:
            for col, tree, runs in zip(self._count_columns, self._count_trees, count_runs):
                entries = rows[0][col] if (col is not None and len(rows) == 1) else \
                    (self._table_rows(tree) if tree else None)
                if isinstance(entries, int):
                    read += entries * max(0.0, runs)
        if self._clears:
            write += y[self._fixed_len(counted) - 1]  # the rows it changed
        return max(0, round(read)), max(0, round(write)), system.determined

    @staticmethod
    def _fixed_len(counted: bool) -> int:
        """Length of y before the per-execution inputs: 1, counters, rows, changes."""
        return 3 + (len(TRACE_COUNTERS) if counted else 0)


_STATUS_KEYS = tuple(TRACE_COUNTERS.values())
_CALLBACKS = ("_table_rows", "_fts_count", "_selectivity")


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _result_column(program: Program, reg: int) -> int | None:
    """The result column that is register ``reg``, if a ResultRow outputs it."""
    for op in program.program(0):
        if op.opcode == "ResultRow" and op.p1 <= reg < op.p1 + op.p2:
            return reg - op.p1
    return None
