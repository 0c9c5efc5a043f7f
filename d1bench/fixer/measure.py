"""Sampling parameters and measuring plain templates: the yardsticks every step is held against."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from d1bench.fixer.check import Measured, Scratch, check
from d1bench.fixer.model import Rewrite, Trial

__all__ = ["identity", "measure_templates", "sample_params"]


def sample_params(workload: Any, db_path: Path, seed: int, samples: int
                  ) -> dict[str, list[tuple[Any, ...]]]:
    """``samples`` parameter tuples per template, drawn from the corpus by the workload's samplers."""
    from d1bench.errors import TargetError, UsageError
    from d1bench.targets import open_target
    from d1bench.workload.samplers import SamplerError

    conn = open_target(f"sqlite:{db_path}", readonly=True, estimate_rows=False).connect()
    try:
        bound = workload.bind(conn, seed)
    finally:
        conn.close()
    out: dict[str, list[tuple[Any, ...]]] = {}
    for name in workload.templates:
        rng = random.Random(f"{seed}:{name}")
        try:
            out[name] = [tuple(bound.draw_params(name, rng)) for _ in range(samples)]
        except (UsageError, TargetError, SamplerError):
            out[name] = []
    return out


def identity(name: str, sql: str, *, ordered: bool = False) -> Rewrite:
    """The template unchanged: measures what a schema change alone does to it.

    Rows are compared as multisets: an index may legitimately reorder ties.
    """
    def trial(params: tuple, _conn: Any) -> Trial:
        return Trial(before=((sql, params),), after=((sql, params),), ordered=ordered)

    return Rewrite("identity", name, sql, "", True, "unchanged", trial, templates={name: 1.0})


def measure_templates(scratch: Scratch, workload: Any, params: Mapping[str, Sequence[tuple]],
                      names: Sequence[str]) -> dict[str, Measured]:
    """Each named template, unchanged, on both copies of ``scratch`` (reads first, then writes).

    A read whose query plan is the same on both copies for every sampled tuple is run on
    the before copy only: the same plan over the same rows reads the same rows and returns
    them (at a million papers, a brute-force search the indexes cannot serve takes half a
    minute a run).
    """
    ordered = sorted(names, key=lambda n: workload.templates[n].is_write)
    out = {}
    for n in ordered:
        template, samples = workload.templates[n], params.get(n) or []
        side = scratch
        if not template.is_write and _same_plans(scratch, template.sql, samples):
            side = scratch.before_only()
        out[n] = check(identity(n, template.sql), side, samples)
    return out


def _same_plans(scratch: Scratch, sql: str, samples: Sequence[tuple]) -> bool:
    """Whether ``sql`` has the same query plan on both copies for each of ``samples``."""
    from d1bench.errors import TargetError

    if not samples:
        return False
    try:
        return all(_plan(scratch.before, sql, p) == _plan(scratch.after, sql, p) for p in samples)
    except TargetError:
        return False


def _plan(conn: Any, sql: str, params: tuple) -> list[tuple]:
    return [(step.id, step.parent, step.detail) for step in conn.explain(sql, params)]
