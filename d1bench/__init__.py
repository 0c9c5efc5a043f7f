"""d1bench: how fast is this query on D1, what does it cost, and which index fixes it.

The public surface is listed in ``__all__``; each name is imported from the
module that owns it on first use, so ``import d1bench`` stays cheap for the CLI.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# name -> module that defines it
_EXPORTS = {
    "generate_corpus": "d1bench.corpus",
    "load_workload": "d1bench.workload",
    "check_workload": "d1bench.workload",
    "open_target": "d1bench.targets",
    "apply_index_set": "d1bench.indexes",
    "plan_report": "d1bench.plans",
    "replay": "d1bench.runner",
    "load_trace": "d1bench.trace",
    "summarize": "d1bench.analysis",
    "compare": "d1bench.analysis",
    "regressions": "d1bench.analysis",
    "check_thresholds": "d1bench.thresholds",
    "seed_alerts": "d1bench.thresholds",
    "check_database": "d1bench.dbfile",
        "LocalD1": "d1bench.targets.d1.local",
    "upload": "d1bench.upload",
    "lint": "d1bench.lint",
    "advise": "d1bench.advisor",
    "prepare": "d1bench.advisor",
    "Prepared": "d1bench.advisor",
    "fix": "d1bench.fix",
    "monthly_cost": "d1bench.cost",
    "migrate": "d1bench.migrator",
    "init_worker": "d1bench.worker",
    "deploy_worker": "d1bench.worker",
    "cache_effect": "d1bench.worker",
    "session_summary": "d1bench.worker",
}

__all__ = ["__version__", *_EXPORTS.keys()]  # noqa: PLE0604 - the names are strings


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'd1bench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
