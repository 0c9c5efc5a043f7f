"""The bench Worker: options, the wrangler project d1bench writes, and what its cache and sessions did."""

from __future__ import annotations

from d1bench.targets.d1.worker_options import SESSION_MODES, CacheSpec, WorkerOptions, check_session
from d1bench.worker.effect import cache_effect, cache_latency, session_summary, worker_fields
from d1bench.worker.project import DeployResult, WorkerProject, deploy_worker, init_worker

__all__ = [
    "SESSION_MODES",
    "CacheSpec",
    "DeployResult",
    "WorkerOptions",
    "WorkerProject",
    "cache_effect",
    "cache_latency",
    "check_session",
    "deploy_worker",
    "init_worker",
    "session_summary",
    "worker_fields",
]
