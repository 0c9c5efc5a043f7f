"""d1bench: how fast is this query on D1, what does it cost, and which index fixes it.

The public surface is listed in ``__all__``; each name is imported from the
module that owns it on first use, so ``import d1bench`` stays cheap for the CLI.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # What a type checker sees; at run time each name is imported on first use (below).
    from d1bench.advisor import Prepared as Prepared
    from d1bench.advisor import prepare as prepare
    from d1bench.advisor.advise import advise as advise
    from d1bench.analysis import compare as compare
    from d1bench.analysis import regressions as regressions
    from d1bench.analysis import summarize as summarize
    from d1bench.corpus import generate_corpus as generate_corpus
    from d1bench.cost import monthly_cost as monthly_cost
    from d1bench.dbfile import check_database as check_database
    from d1bench.fixer import fix as fix
    from d1bench.indexes import apply_index_set as apply_index_set
    from d1bench.linter import lint as lint
    from d1bench.migrator import migrate as migrate
    from d1bench.plans import plan_report as plan_report
    from d1bench.runner import ReplayOptions as ReplayOptions
    from d1bench.runner import replay as replay
    from d1bench.targets import open_target as open_target
    from d1bench.targets.d1.local import LocalD1 as LocalD1
    from d1bench.thresholds import check_thresholds as check_thresholds
    from d1bench.thresholds import seed_alerts as seed_alerts
    from d1bench.trace import load_trace as load_trace
    from d1bench.uploader import upload as upload
    from d1bench.worker import cache_effect as cache_effect
    from d1bench.worker import deploy_worker as deploy_worker
    from d1bench.worker import init_worker as init_worker
    from d1bench.worker import session_summary as session_summary
    from d1bench.workload import check_workload as check_workload
    from d1bench.workload import load_workload as load_workload

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
    "ReplayOptions": "d1bench.runner",
    "load_trace": "d1bench.trace",
    "summarize": "d1bench.analysis",
    "compare": "d1bench.analysis",
    "regressions": "d1bench.analysis",
    "check_thresholds": "d1bench.thresholds",
    "seed_alerts": "d1bench.thresholds",
    "check_database": "d1bench.dbfile",
        "LocalD1": "d1bench.targets.d1.local",
    "upload": "d1bench.uploader",
    "lint": "d1bench.linter",
    "advise": "d1bench.advisor",
    "prepare": "d1bench.advisor",
    "Prepared": "d1bench.advisor",
    "fix": "d1bench.fixer",
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
