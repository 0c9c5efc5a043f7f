"""Estimate D1's rows read and rows written for a statement run on plain SQLite.

DOCSTRING-PLACEHOLDER
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import nnls

from d1bench.targets.vdbe import FlowModel, Program, _value, build_flow_model, json_length

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

# Weights of the soft rows: counters beat data facts beat priors; the ridge
# only makes the solution unique.  (The structure is exact.)
_W_OBSERVED = 1e2
_W_FACT = 10.0
_W_RIDGE = 1e-3
_MAX_REGIMES = 64


@dataclass(frozen=True, slots=True)
class Estimate:
    """One execution's estimate of what D1 would bill."""

    rows_read: int
    rows_written: int
    #: The counters, structure and data facts fix the answer (no prior was used).
    determined: bool


@dataclass(frozen=True, slots=True)
class _Regime:
    """One active set of the bounded problem: within it the solution is linear in y.

    ``stack`` rows: reads, writes, the runs of each ``Count`` opcode, then the
    rows whose sign proves the active set optimal for a given y (the free
    variables' values, >= 0, and the gradient on the held ones, >= 0).
    """

    stack: np.ndarray  # (2 + ncounts + nchecks, 1 + ny)
    head: int  # 2 + ncounts
    tolerance: float  # relative slack on the sign checks (degenerate optima need a little)


class _System:
    """min |C z - D [1; y]|^2  subject to  E z = F [1; y],  z >= 0.

    E holds the structure (exact); C the counters, data facts, priors and a
    small ridge (soft).  The optimum is piecewise linear in y: linear within
    each active set (which variables sit at zero).  Active sets met so far are
    kept with their linear maps, so an execution normally costs two small
    matrix-vector products and a sign check.
    """

    def __init__(self, model: FlowModel, obs_names: Sequence[str], input_names: Sequence[str],
                 limit_regime: str | None) -> None:
        nv = model.nvars
        ny = len(obs_names) + len(input_names) + len(model.limits)
        inputs = list(input_names)
        hard: list[tuple[dict[int, float], float, int]] = [(f, c, -1) for f, c in model.equations]
        soft: list[tuple[dict[int, float], float, int, float]] = []
        for k, name in enumerate(obs_names):
            soft.append((model.observables[name], 0.0, k, _W_OBSERVED))
        for form, const, name in model.facts:
            soft.append((form, const, len(obs_names) + inputs.index(name) if name else -1, _W_FACT))
        for j, (jumped, ran, _src) in enumerate(model.limits if limit_regime else ()):
            if limit_regime == "fits":  # fewer rows than the LIMIT: IfNotZero always jumped
                form = dict(jumped)
                for var, coef in ran.items():
                    form[var] = form.get(var, 0.0) - coef
                hard.append((form, 0.0, -1))
            else:  # the LIMIT was reached: it jumped exactly LIMIT times
                hard.append((jumped, 0.0, len(obs_names) + len(inputs) + j))
        for form, weight in model.priors:
            soft.append((form, 0.0, -1, weight))
        E = np.zeros((len(hard), nv))
        Fm = np.zeros((len(hard), 1 + ny))
        for r, (form, const, k) in enumerate(hard):
            for var, coef in form.items():
                E[r, var] += coef
            Fm[r, 0] = const
            if k >= 0:
                Fm[r, 1 + k] = 1.0
        C = np.zeros((len(soft) + nv, nv))
        D = np.zeros((len(soft) + nv, 1 + ny))
        for r, (form, const, k, weight) in enumerate(soft):
            for var, coef in form.items():
                C[r, var] += coef * weight
            D[r, 0] = const * weight
            if k >= 0:
                D[r, 1 + k] = weight
        C[len(soft):, :] = np.eye(nv) * _W_RIDGE
        self.E, self.F, self.C, self.D = E, Fm, C, D
        self.read = _vector(model.reads, nv)
        self.write = _vector(model.writes, nv)
        self.counts = [_vector(form, nv) for form, _tree, _reg in model.counts]
        self.regimes: list[_Regime] = []
        known = np.vstack([E, C[[r for r, row in enumerate(soft) if row[3] >= _W_FACT]]])
        self.determined = _in_row_space(known, [self.read + sum(self.counts, np.zeros(nv)),
                                                self.write])

    def solve(self, y: Sequence[float]) -> tuple[float, float, tuple[float, ...]]:
        """(reads, writes, runs of each Count) at the optimum for observations ``y``."""
        yhat = np.array(y, dtype=float)
        scale = 1.0 + max(map(abs, y))
        for k, reg in enumerate(self.regimes):
            v = reg.stack @ yhat
            if len(v) > reg.head and v[reg.head:].min() < -reg.tolerance * scale:
                continue
            if k:  # most recently useful first
                self.regimes.insert(0, self.regimes.pop(k))
            return float(v[0]), float(v[1]), tuple(v[2:reg.head].tolist())
        return self._discover(yhat)

    def _kkt(self, free: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Linear maps y -> (free values, gradient on held) for one active set.

        Null-space method: the structure fixes the free variables up to its
        null space, where the soft rows then decide by least squares.  (Solving
        the KKT matrix directly is far worse conditioned.)
        """
        nv = self.C.shape[1]
        held = np.setdiff1d(np.arange(nv), free)
        EF, CF = self.E[:, free], self.C[:, free]
        u, sv, vt = np.linalg.svd(EF, full_matrices=True)
        rank = int((sv > 1e-9 * max(1.0, sv[0] if sv.size else 1.0)).sum())
        Q = u[:, :rank].T  # an independent set of structural rows
        rows, null = vt[:rank], vt[rank:].T
        zp = rows.T @ ((Q @ self.F) / sv[:rank, None])  # particular solution, per y column
        if null.shape[1]:
            w, *_ = np.linalg.lstsq(CF @ null, self.D - CF @ zp, rcond=None)
            zF = zp + null @ w
        else:
            zF = zp
        resid = CF @ zF - self.D
        # Multipliers of the structure from stationarity on the free variables,
        # then the gradient of the Lagrangian on the held ones (>= 0 at the optimum).
        lam, *_ = np.linalg.lstsq((Q @ EF).T, -(CF.T @ resid), rcond=None)
        grad = self.C[:, held].T @ resid + (Q @ self.E[:, held]).T @ lam
        return zF, grad

    def _discover(self, yhat: np.ndarray) -> tuple[float, float, list[float]]:
        """Find the active set of the optimum at ``yhat`` and keep its linear maps."""
        nv = self.C.shape[1]
        W = 1e4  # weight turning the structure into penalty rows for the first guess only
        A = np.vstack([self.E * W, self.C])
        b = np.concatenate([self.F @ yhat * W, self.D @ yhat])
        z0, _ = nnls(A, b, maxiter=50 * nv)
        free = np.flatnonzero(z0 > 0)
        scale = 1.0 + float(np.abs(yhat).max())
        zF, grad = self._kkt(free)
        best = None
        for _ in range(nv):  # a few active-set steps from nnls's guess
            zy, gy = zF @ yhat, grad @ yhat
            worst = min(zy.min() if zy.size else 0.0, gy.min() if gy.size else 0.0)
            if best is None or worst > best[0]:
                best = (worst, free, zF, grad)
            held = np.setdiff1d(np.arange(nv), free)
            if zy.size and zy.min() < -1e-6 * scale:
                free = np.delete(free, int(np.argmin(zy)))
            elif gy.size and gy.min() < -1e-6 * scale:
                free = np.sort(np.append(free, held[int(np.argmin(gy))]))
            else:
                break
            zF, grad = self._kkt(free)
        else:  # degenerate: cycling between near-optimal sets; keep the least violated
            _worst, free, zF, grad = best
        tolerance = max(1e-6, -1.5 * min(0.0, best[0] if best else 0.0) / scale)
        stack = np.vstack([self.read[free] @ zF, self.write[free] @ zF,
                           *[c[free] @ zF for c in self.counts], zF, grad])
        reg = _Regime(stack, 2 + len(self.counts), tolerance)
        self.regimes.insert(0, reg)
        del self.regimes[_MAX_REGIMES:]
        v = stack[:reg.head] @ yhat
        return float(v[0]), float(v[1]), tuple(v[2:].tolist())


def _vector(form: Mapping[int, float], n: int) -> np.ndarray:
    vec = np.zeros(n)
    for var, coef in form.items():
        vec[var] += coef
    return vec


def _in_row_space(H: np.ndarray, targets: Sequence[np.ndarray]) -> bool:
    if not len(H):
        return all(not t.any() for t in targets)
    T = np.array(targets).T
    coef, *_ = np.linalg.lstsq(H.T, T, rcond=None)
    return bool(np.abs(H.T @ coef - T).max() < 1e-6 * max(1.0, float(np.abs(T).max())))


class RowEstimator:
    """Rows read and written for one SQL text on one connection.

    Built once from the statement's bytecode; :meth:`estimate` then costs a
    few matrix-vector products per execution (nothing at all when the answer
    does not depend on the execution, as for a primary-key lookup).

    ``traced`` says whether :meth:`estimate` wants the statement's
    ``stmt_status`` counters (see :data:`TRACE_COUNTERS`).  It is ``False``
    when the answer is constant, and for statements that call an FTS5
    auxiliary function per row: FTS5 runs a nested statement per call, and
    tracing each of those would slow the statement down several times.
    """

    def __init__(self, program: Program, params: Sequence[Any] | Mapping[str, Any], *,
                 btrees: Mapping[int, tuple[str, str, bool]] | None = None,
                 table_rows: Callable[[str], int | None] | None = None,
                 vtabs: Mapping[str, tuple[str, int]] | None = None,
                 fts_count: Callable[[str, Any], int | None] | None = None) -> None:
        self.program = program
        self._btrees = dict(btrees or {})
        self._table_rows = table_rows or (lambda name: None)
        self._vtabs = dict(vtabs or {})
        self._fts_count = fts_count or (lambda table, expr: None)
        tables = {tree[1] for tree in self._btrees.values()}
        self._rows_snapshot = {name: rows for name in tables
                               if (rows := self._table_rows(name)) is not None}
        self._systems: dict[tuple, _System] = {}
        model = self._model(params)
        self._shape_params = tuple(model.shape_params)
        self.traced = not model.fts_aux_calls
        self._obs_names = (*TRACE_COUNTERS, "rows", "changes") if self.traced else ("rows", "changes")
        self._input_names = tuple(model.inputs)
        self._inputs = dict(model.inputs)
        self._limit_sources = tuple(src for _j, _r, src in model.limits)
        self._count_columns = tuple(_result_column(program, reg) for _f, _t, reg in model.counts)
        self._count_trees = tuple(tree for _f, tree, _reg in model.counts)
        self.constant: Estimate | None = None
        system = self._system(model, self._regime_key(None, ()))
        # Without per-execution inputs one system serves every execution.
        self._default = system if not (self._input_names or self._limit_sources
                                       or self._shape_params) else None
        if not model.counts and _in_row_space(system.E, [system.read, system.write]):
            # The structure alone fixes the answer (a primary-key lookup, a
            # one-row insert): no counter needed, nothing to do per execution.
            z, *_ = np.linalg.lstsq(system.E, system.F[:, 0], rcond=None)
            self.constant = Estimate(max(0, round(float(system.read @ z))),
                                     max(0, round(float(system.write @ z))), True)
            self.traced = False

    def _model(self, params: Sequence[Any] | Mapping[str, Any]) -> FlowModel:
        return build_flow_model(self.program, btrees=self._btrees, table_rows=self._rows_snapshot,
                                vtabs=self._vtabs, params=params)

    def _regime_key(self, nrows: int | None, limits: Sequence[Any]) -> str | None:
        if not self._limit_sources or nrows is None or any(v is None for v in limits):
            return None
        return "full" if nrows >= min(limits) else "fits"

    def _system(self, model: FlowModel, regime: str | None, shape: tuple = ()) -> _System:
        key = (regime, shape)
        system = self._systems.get(key)
        if system is None:
            system = self._systems[key] = _System(model, self._obs_names, self._input_names, regime)
        return system

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
        if self.traced:
            if status is None:
                raise ValueError("this statement's estimate needs its stmt_status counters")
            y = [1.0, *[status[key] for key in _STATUS_KEYS], nrows, changes]
        else:
            y = [1.0, nrows, changes]
        system = self._default
        if system is None:  # LIMITs, FTS counts or JSON lengths: per-execution inputs
            for name in self._input_names:
                kind, (table, src) = self._inputs[name]
                k = self._fts_count(table, _value(src, params))
                y.append(float(k or 0) if kind == "fts" else float(bool(k)))
            limits = [_as_int(_value(src, params)) for src in self._limit_sources]
            y.extend(float(v or 0) for v in limits)
            shape = tuple(json_length(_value(("param", i), params)) for i in self._shape_params)
            regime = self._regime_key(nrows, limits)
            system = self._systems.get((regime, shape))
            if system is None:
                system = self._system(self._model(params), regime, shape)
        read, write, count_runs = system.solve(y)
        if count_runs:
            for col, tree, runs in zip(self._count_columns, self._count_trees, count_runs):
                entries = rows[0][col] if (col is not None and len(rows) == 1) else \
                    (self._table_rows(tree) if tree else None)
                if isinstance(entries, int):
                    read += entries * max(0.0, runs)
        return max(0, round(read)), max(0, round(write)), system.determined


_STATUS_KEYS = tuple(TRACE_COUNTERS.values())


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
