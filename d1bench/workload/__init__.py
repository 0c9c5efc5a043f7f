"""Workloads: query templates with weights, parameter samplers and sessions.

A workload file (TOML, see ``docs/workloads.md``) names the statements a
replay sends, how often, and where each ``?`` gets its value.  The package ships
one, ``medical``: the query families of seed 000, flaws included.

>>> from d1bench.workload import load_workload
>>> w = load_workload("medical")
>>> w.templates["paper_by_id"].is_write, w.templates["record_reading"].is_write
(False, True)
"""

from __future__ import annotations

from d1bench.workload.check import PROBLEM_COLUMNS, check_workload
from d1bench.workload.loader import (
    FORMAT_VERSION,
    Problem,
    WorkloadSource,
    available_workloads,
    load_workload,
    parse_workload,
)
from d1bench.workload.model import (
    FAMILIES,
    SEED_BENCHMARK_MS,
    BoundWorkload,
    Call,
    Session,
    Step,
    Template,
    Unit,
    Workload,
)
from d1bench.workload.samplers import SAMPLER_KINDS, Drawer, SamplerSpec
from d1bench.workload.show import describe_workload

__all__ = [
    "FAMILIES",
    "FORMAT_VERSION",
    "PROBLEM_COLUMNS",
    "SAMPLER_KINDS",
    "SEED_BENCHMARK_MS",
    "BoundWorkload",
    "Call",
    "Drawer",
    "Problem",
    "SamplerSpec",
    "Session",
    "Step",
    "Template",
    "Unit",
    "Workload",
    "WorkloadSource",
    "available_workloads",
    "check_workload",
    "describe_workload",
    "load_workload",
    "parse_workload",
]
