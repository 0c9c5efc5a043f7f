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
    """Each named template, unchanged, on both copies of ``scratch`` (reads first, then writes)."""
    ordered = sorted(names, key=lambda n: workload.templates[n].is_write)
    return {n: check(identity(n, workload.templates[n].sql), scratch, params.get(n) or [])
            for n in ordered}
