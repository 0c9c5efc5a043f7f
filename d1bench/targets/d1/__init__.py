"""Cloudflare D1 (and the local D1) over the REST API.

Modules, one job each: ``target`` (the :class:`D1Target` and its request
path), ``_http`` (the lean HTTP/1.1 keep-alive client), ``retry`` (backoff),
``classify`` (error classes, redaction), ``limits`` (D1's limits, checked
before sending), ``guard`` (the read-only guard), ``config`` (specs,
wrangler files, database names), ``local`` (the local D1: Miniflare on
127.0.0.1, and its target) and ``detached`` (local D1 servers the CLI leaves
running).
"""

from __future__ import annotations

from d1bench.targets.d1.classify import classify_response, redact
from d1bench.targets.d1.config import (
    DEFAULT_BASE_URL,
    add_d1_arguments,
    d1_options,
    read_wrangler_config,
)
from d1bench.targets.d1.guard import (
    ReadOnlyVerdict,
    guard_read_only,
    is_read_only,
    read_only_verdict,
)
from d1bench.targets.d1.limits import check_statement, check_workload_limits
from d1bench.targets.d1.retry import RetryPolicy
from d1bench.targets.d1.target import D1Connection, D1Target

__all__ = [
    "DEFAULT_BASE_URL",
    "D1Connection",
    "D1Target",
    "ReadOnlyVerdict",
    "RetryPolicy",
    "add_d1_arguments",
    "check_statement",
    "check_workload_limits",
    "classify_response",
    "d1_options",
    "guard_read_only",
    "is_read_only",
    "read_only_verdict",
    "read_wrangler_config",
    "redact",
]
