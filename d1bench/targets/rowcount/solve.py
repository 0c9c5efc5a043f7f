"""The bounded least-squares problem behind an estimate, solved once per active set.

min |C z - D [1; y]|^2  subject to  E z = F [1; y],  z >= 0

E holds the structure (exact); C the counters, data facts, samples, priors
and a small ridge (soft); y one execution's observations.  The optimum is
piecewise linear in y: linear within each active set (which unknowns sit at
zero).  Each active set met is kept as one small matrix whose product with
[1; y] gives D1's counts and the signs that prove the set still optimal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

from d1bench.targets.rowcount.model import FlowModel

__all__ = ["W_FACT", "W_OBSERVED", "W_RIDGE", "W_SAMPLE", "System"]

# Weights of the soft rows: counters beat data facts beat samples beat priors;
# the ridge only makes the solution unique.  (The structure is exact.)
W_OBSERVED = 1e2
W_FACT = 1e2  # as sure as a counter: the table has that many rows, the array that many elements
W_SAMPLE = 10.0  # estimated from a sample of a column: firmer than a prior, softer than a fact
W_RIDGE = 1e-3
MAX_REGIMES = 64


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


class System:
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
            soft.append((model.observables[name], 0.0, k, W_OBSERVED))
        for form, const, fact_input in model.facts:
            soft.append((form, const, len(obs_names) + inputs.index(fact_input) if fact_input
                         else -1, W_FACT))
        for form, name in model.samples:
            soft.append((form, 0.0, len(obs_names) + inputs.index(name), W_SAMPLE))
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
        C[len(soft):, :] = np.eye(nv) * W_RIDGE
        self.E, self.F, self.C, self.D = E, Fm, C, D
        self.read = vector(model.reads, nv)
        self.write = vector(model.writes, nv)
        self.counts = [vector(form, nv) for form, _tree, _reg in model.counts]
        self.regimes: list[_Regime] = []
        known = np.vstack([E, C[[r for r, row in enumerate(soft) if row[3] >= W_FACT]]])
        self.determined = in_row_space(known, [self.read + sum(self.counts, np.zeros(nv)),
                                                self.write])

    def solve(self, y: list[float]) -> tuple[float, float, tuple[float, ...]]:
        """(reads, writes, runs of each Count) at the optimum for observations ``y``.

        ``y`` starts with 1.0 and holds counts, all >= 0.  Plain lists and
        ``tolist`` beat numpy reductions on vectors this small.
        """
        scale = 1.0 + max(y)
        for k, reg in enumerate(self.regimes):
            v = reg.stack.dot(y).tolist()
            head = reg.head
            if len(v) > head and min(v[head:]) < -reg.tolerance * scale:
                continue
            if k:  # most recently useful first
                self.regimes.insert(0, self.regimes.pop(k))
            return v[0], v[1], tuple(v[2:head])
        return self._discover(np.array(y, dtype=float))

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

    def _discover(self, yhat: np.ndarray) -> tuple[float, float, tuple[float, ...]]:
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
            assert best is not None  # nv > 0, and every pass of the loop records one
            _worst, free, zF, grad = best
        tolerance = max(1e-6, -1.5 * min(0.0, best[0] if best else 0.0) / scale)
        stack = np.vstack([self.read[free] @ zF, self.write[free] @ zF,
                           *[c[free] @ zF for c in self.counts], zF, grad])
        reg = _Regime(stack, 2 + len(self.counts), tolerance)
        self.regimes.insert(0, reg)
        del self.regimes[MAX_REGIMES:]
        v = stack[:reg.head] @ yhat
        return float(v[0]), float(v[1]), tuple(v[2:].tolist())


def vector(form: Mapping[int, float], n: int) -> np.ndarray:
    vec = np.zeros(n)
    for var, coef in form.items():
        vec[var] += coef
    return vec


def in_row_space(H: np.ndarray, targets: Sequence[np.ndarray]) -> bool:
    if not len(H):
        return all(not t.any() for t in targets)
    T = np.array(targets).T
    coef, *_ = np.linalg.lstsq(H.T, T, rcond=None)
    return bool(np.abs(H.T @ coef - T).max() < 1e-6 * max(1.0, float(np.abs(T).max())))
