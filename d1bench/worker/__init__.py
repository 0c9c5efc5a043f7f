"""The bench Worker: options, the wrangler project d1bench writes, and what its cache and sessions did."""

from __future__ import annotations

from d1bench.worker.options import SESSION_MODES, CacheSpec, WorkerOptions, check_session

__all__ = ["SESSION_MODES", "CacheSpec", "WorkerOptions", "check_session"]
