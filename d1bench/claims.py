"""Seed 000's benchmark table, reproduced: measured latency per query family beside its claims.

Seed 000 claims, for its medical platform at "1M+ papers", average times of
45 ms for search (FTS5), 25 ms for paper retrieval, 35 ms for citation
analysis and 55 ms for user analytics.  It says nothing of how it measured
them.  :func:`seed_claims` groups a trace's requests by their template's
family and puts the measured mean (with a 95% confidence interval), p50 and
p99 beside each claim, so a notebook can say which claims hold on this
corpus and target.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from d1bench.workload.model import SEED_BENCHMARK_MS

__all__ = ["TAIL_RUNS", "family_of", "runs_needed", "seed_claims", "seed_table"]

#: Runs beyond a percentile before it counts as measured.  With five slower
#: runs behind it, one outlier moves the estimate by one rank; with none, the
#: "p99" of fewer than 100 runs is simply the slowest run.  This gives p50 10
#: runs, p95 100 and p99 500: the order the usual advice gives (a few tens, a
#: hundred, several hundred), from one rule instead of three numbers.
TAIL_RUNS = 5


def runs_needed(quantile: float, tail: int = TAIL_RUNS) -> int:
    """Executions a percentile needs: ``tail`` runs beyond it, ``ceil(tail / (1 - q))``.

    >>> [runs_needed(q) for q in (0.5, 0.9, 0.95, 0.99)]
    [10, 50, 100, 500]
    """
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    return math.ceil(round(tail / (1.0 - quantile), 9))

_COLUMNS = ["family", "claimed_ms", "templates", "count", "mean_ms", "ci_low_ms", "ci_high_ms",
            "p50_ms", "p99_ms", "ratio", "verdict"]


def family_of(workload: Any) -> dict[str, str]:
    """Template name -> family, from a workload (or an already built mapping)."""
    if isinstance(workload, Mapping):
        return {str(k): str(v) for k, v in workload.items()}
    templates = getattr(workload, "templates", None)
    if templates is None and hasattr(workload, "workload"):  # a bound workload
        templates = workload.workload.templates
    assert templates is not None, f"not a workload: {workload!r}"
    return {name: t.family for name, t in templates.items()}


def seed_claims(requests: pd.DataFrame, workload: Any,
                claims: Mapping[str, float] = SEED_BENCHMARK_MS, *,
                include_unclaimed: bool = False) -> pd.DataFrame:
    """Measured response time per family beside the seed's claimed average.

    ``requests`` is a trace's requests frame (warm-up and failed requests are
    left out); ``workload`` gives each template's family.  One row per
    family with a claim (and, with ``include_unclaimed``, the others):
    ``claimed_ms``, the ``templates`` measured, ``count``, ``mean_ms`` with
    its 95% confidence interval (normal approximation), ``p50_ms``,
    ``p99_ms``, ``ratio`` (measured mean / claim) and ``verdict``:
    ``faster than claimed`` or ``slower than claimed`` when the interval
    lies wholly on one side of the claim, ``consistent with claim`` when it
    contains it, ``not measured`` when no request of the family ran.

    >>> frame = pd.DataFrame({"template": ["a", "a", "b", "b"], "response_ms": [1.0, 3.0, 80., 90.],
    ...                       "warmup": False, "error_class": None})
    >>> table = seed_claims(frame, {"a": "retrieval", "b": "analytics"})
    >>> table.set_index("family").loc[["retrieval", "analytics"], ["mean_ms", "verdict"]].values.tolist()
    [[2.0, 'faster than claimed'], [85.0, 'slower than claimed']]
    """
    families = family_of(workload)
    keep = requests
    if "warmup" in keep:
        keep = keep[~keep["warmup"].fillna(False).astype(bool)]
    if "error_class" in keep:
        keep = keep[keep["error_class"].isna()]
    keep = keep.assign(family=keep["template"].astype(str).map(families).fillna("other"))
    names = list(claims)
    if include_unclaimed:
        names += sorted(set(keep["family"]) - set(claims))
    rows = []
    for family in names:
        times = keep.loc[keep["family"] == family, "response_ms"].to_numpy(float)
        claimed = float(claims.get(family, math.nan))
        templates = sorted(set(keep.loc[keep["family"] == family, "template"].astype(str)))
        row: dict[str, Any] = {"family": family, "claimed_ms": claimed,
                               "templates": ", ".join(templates), "count": int(times.size)}
        if times.size:
            mean = float(times.mean())
            half = 1.96 * float(times.std(ddof=1)) / math.sqrt(times.size) if times.size > 1 else math.inf
            row.update(mean_ms=mean, ci_low_ms=mean - half, ci_high_ms=mean + half,
                       p50_ms=float(np.percentile(times, 50)),
                       p99_ms=float(np.percentile(times, 99)),
                       ratio=mean / claimed if claimed > 0 else math.nan)
            if math.isnan(claimed):
                row["verdict"] = "no claim"
            elif mean + half < claimed:
                row["verdict"] = "faster than claimed"
            elif mean - half > claimed:
                row["verdict"] = "slower than claimed"
            else:
                row["verdict"] = "consistent with claim"
        else:
            row.update(mean_ms=math.nan, ci_low_ms=math.nan, ci_high_ms=math.nan,
                       p50_ms=math.nan, p99_ms=math.nan, ratio=math.nan, verdict="not measured")
        rows.append(row)
    return pd.DataFrame(rows, columns=_COLUMNS)


_TABLE_COLUMNS = ["target", "index_set", "family", "claimed_ms", "templates", "n", "mean_ms",
                  "p50_ms", "p95_ms", "ratio", "verdict", "note"]


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values)
    v, w = values[order], weights[order]
    cum = np.cumsum(w) - 0.5 * w
    return float(np.interp(q * w.sum(), cum, v))


def seed_table(traces: Mapping[tuple[str, str], Any], workload: Any,
               claims: Mapping[str, float] = SEED_BENCHMARK_MS) -> pd.DataFrame:
    """Seed 000's benchmark table, measured: one row per (target, index set, claimed family).

    The example weights ``a`` three times ``b``: 20 runs each, but the mean
    is (3 x 1 + 1 x 100) / 4, what the workload's mix would see.

    ``traces`` maps ``(target, index set)`` to a trace (or its requests
    frame); ``workload`` gives each template's family (the mapping of the
    seed's four operations to templates, listed in ``templates``) and its
    mix.  A replay topped up with ``min_executions`` runs rare templates
    more often than the workload does, so a family's figures weight each
    template by its share of the workload's mix, not by its runs: ``mean_ms``
    is the mix-weighted mean of the templates' means, ``p50_ms``/``p95_ms``
    percentiles of the requests weighted the same way.  ``n`` counts the
    runs; ``verdict`` compares the mean with the claim through its 95%
    interval (``faster than claimed``, ``slower than claimed``,
    ``consistent with claim``), ``too few runs`` below
    ``runs_needed(0.5)``, ``not measured`` with none; ``note`` says when
    the p95 has fewer runs than ``runs_needed(0.95)``.

    >>> frame = pd.DataFrame({"template": ["a"] * 20 + ["b"] * 20, "warmup": False,
    ...                       "error_class": None, "response_ms": [1.0] * 20 + [100.0] * 20})
    >>> wl = {"a": ("retrieval", 3.0), "b": ("retrieval", 1.0)}
    >>> row = seed_table({("sqlite", "none"): frame}, wl).iloc[1]
    >>> row["family"], int(row["n"]), float(row["mean_ms"]), row["verdict"]
    ('retrieval', 40, 25.75, 'slower than claimed')
    """
    families, mix = _families_and_mix(workload)
    rows = []
    for (target, index_set), trace in traces.items():
        req = getattr(trace, "requests", trace)
        if "warmup" in req:
            req = req[~req["warmup"].fillna(False).astype(bool)]
        if "error_class" in req:
            req = req[req["error_class"].isna()]
        for family, claimed in claims.items():
            names = sorted(n for n, f in families.items() if f == family)
            part = req[req["template"].astype(str).isin(names)]
            ran = sorted(set(part["template"].astype(str)))
            row: dict[str, Any] = {"target": target, "index_set": index_set, "family": family,
                                   "claimed_ms": float(claimed), "templates": ", ".join(names),
                                   "n": len(part), "note": ""}
            if not ran:
                rows.append(row | {"mean_ms": math.nan, "p50_ms": math.nan, "p95_ms": math.nan,
                                   "ratio": math.nan, "verdict": "not measured"})
                continue
            share = {t: mix.get(t, 0.0) or 1e-12 for t in ran}
            total = sum(share.values())
            by = part.groupby(part["template"].astype(str))["response_ms"]
            means, variances, counts = by.mean(), by.var(ddof=1).fillna(0.0), by.size()
            mean = float(sum(share[t] * means[t] for t in ran) / total)
            half = 1.96 * math.sqrt(sum((share[t] / total) ** 2 * variances[t] / counts[t]
                                        for t in ran))
            values = part["response_ms"].to_numpy(float)
            weights = part["template"].astype(str).map(
                {t: share[t] / counts[t] for t in ran}).to_numpy(float)
            if len(part) < runs_needed(0.5) or (half == 0 and len(part) < 2):
                verdict = "too few runs"
            elif mean + half < claimed:
                verdict = "faster than claimed"
            elif mean - half > claimed:
                verdict = "slower than claimed"
            else:
                verdict = "consistent with claim"
            missing = [t for t in names if t not in ran and mix.get(t, 0.0) > 0]
            notes = []
            if len(part) < runs_needed(0.95):
                notes.append(f"p95 from {len(part)} runs (< {runs_needed(0.95)})")
            if missing:
                notes.append("not run: " + ", ".join(missing))
            rows.append(row | {"mean_ms": mean, "p50_ms": _weighted_quantile(values, weights, 0.5),
                               "p95_ms": _weighted_quantile(values, weights, 0.95),
                               "ratio": mean / claimed, "verdict": verdict,
                               "note": "; ".join(notes)})
    return pd.DataFrame(rows, columns=_TABLE_COLUMNS)


def _families_and_mix(workload: Any) -> tuple[dict[str, str], dict[str, float]]:
    """Template -> family and template -> share of the mix, from a workload or a plain mapping
    of template -> (family, share)."""
    if isinstance(workload, Mapping):
        return ({k: str(v[0]) for k, v in workload.items()},
                {k: float(v[1]) for k, v in workload.items()})
    if hasattr(workload, "workload") and not hasattr(workload, "template_frequencies"):
        workload = workload.workload  # a bound workload
    return family_of(workload), dict(workload.template_frequencies())
