"""The ``d1-worker:https://HOST`` target: D1 through the deployed bench Worker.

The Worker speaks the protocol the local D1 speaks (D1's REST API paths,
``meta`` per statement), so this is the D1 REST client pointed at the Worker,
with two additions both Worker targets share (:class:`SessionRequests`):
requests may carry a D1 session (``--session``, bookmarks chained through
each simulated user's steps by the replay engine), and the Worker adds its own
fields to ``meta`` (cache, bookmark, region, Worker-side time).

The shared secret comes from ``D1BENCH_WORKER_SECRET`` (or ``secret=``) and
travels as a bearer token; like the API token it is held in a
:class:`~d1bench.targets.d1.results.Secret` and redacted from every error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from d1bench.errors import UsageError
from d1bench.targets.d1.classify import redact
from d1bench.targets.d1.config import WORKER_OPTIONS
from d1bench.targets.d1.target import D1Target
from d1bench.targets.d1.worker_options import check_session

__all__ = ["BINDINGS", "SECRET_ENV", "SessionRequests", "WorkerTarget"]

#: How the Worker reaches D1 (``x-d1bench-binding``): measured by benchmarks/cache_effect.py.
BINDINGS = ("direct", "api-per-request", "api-reused")

#: Where the bench Worker's shared secret is read from (never from argv).
SECRET_ENV = "D1BENCH_WORKER_SECRET"

# Bookmarks are D1's own tokens (hex groups and dashes); anything else would be
# a header injection, not a bookmark.
_BOOKMARK = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")


class SessionRequests:
    """Session headers for the bench Worker (mixed into D1Target subclasses).

    ``session`` is the constraint of each simulated user's first request; later
    steps of the same user carry the bookmark the previous step returned.
    """

    supports_sessions: ClassVar[bool] = True
    session: str = "none"
    binding: str = "direct"
    _first_line: bytes = b""
    _binding_line: bytes = b""

    def _set_session(self, session: str | None, binding: str | None = None) -> None:
        """``binding`` (to measure pooling inside the Worker): ``direct`` (the binding's
        transport), ``api-per-request`` (a new Sessions API object per request) or
        ``api-reused`` (one per Worker isolate)."""
        self.session = check_session(session or "none")
        self.binding = binding or "direct"
        if self.binding not in BINDINGS:
            raise UsageError(f"binding {self.binding!r}: expected one of {', '.join(BINDINGS)}")
        self._binding_line = (b"" if self.binding == "direct"
                              else f"x-d1bench-binding: {self.binding}\r\n".encode("ascii"))
        self._first_line = self._binding_line + (
            b"" if self.session == "none"
            else f"x-d1bench-session: {self.session}\r\n".encode("ascii"))

    def _session_headers(self, bookmark: str | None) -> bytes:
        if bookmark is None or self.session == "none":
            return self._first_line
        if not _BOOKMARK.match(bookmark):
            raise UsageError(f"not a D1 bookmark: {bookmark[:40]!r}")
        return self._binding_line + f"x-d1bench-bookmark: {bookmark}\r\n".encode("ascii")


class WorkerTarget(SessionRequests, D1Target):
    """D1 through a deployed bench Worker; spec ``d1-worker:https://HOST``.

    Args:
        origin: the Worker's URL (``https://NAME.ACCOUNT.workers.dev``; ``http://``
            is accepted for a Worker served locally).
        secret: the shared secret (default: ``D1BENCH_WORKER_SECRET``).
        session: ``none``, ``first-primary`` or ``first-unconstrained``.
        Every other keyword goes to :class:`~d1bench.targets.d1.D1Target`.

    Opening the target asks the Worker's ``/health`` (with the secret) which
    account and database ids its REST paths use, and what its cache does.
    """

    kind: ClassVar[str] = "d1-worker"
    cli_options: ClassVar[frozenset[str]] = D1Target.cli_options | WORKER_OPTIONS

    def __init__(self, origin: str, *, secret: str | None = None, session: str | None = None,
                 binding: str | None = None, env: Mapping[str, str] | None = None,
                 **options: Any) -> None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
            raise UsageError(f"d1-worker:{origin}: expected d1-worker:https://HOST")
        if parts.username or parts.password:
            raise UsageError(f"d1-worker:{parts.hostname}: the URL must not carry credentials; "
                             f"set {SECRET_ENV}")
        secret = secret or (env if env is not None else os.environ).get(SECRET_ENV)
        if not secret:
            raise UsageError(f"d1-worker:{origin}: no shared secret: set {SECRET_ENV} to the value "
                             "given to `wrangler secret put TOKEN`")
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self._set_session(session, binding)
        self.worker_info = _worker_health(self.origin, secret, options.get("timeout", 30.0))
        super().__init__(f"{self.origin}/client/v4", str(self.worker_info["account_id"]),
                         str(self.worker_info["database_id"]), secret, **options)

    @classmethod
    def from_spec(cls, spec: str, **options: Any) -> WorkerTarget:
        """Open ``d1-worker:https://HOST``; ``secret``, ``session`` and D1 options as keywords."""
        kind, _, rest = spec.partition(":")
        if kind != "d1-worker" or not rest:
            raise UsageError(f"{spec!r}: expected d1-worker:https://HOST")
        for name in ("wrangler_config", "binding", "base_url", "account_id", "token"):
            if options.pop(name, None):
                raise UsageError(f"{spec}: --{name.replace('_', '-')} is for d1:// targets; the "
                                 "Worker knows its database")
        return cls(rest, **options)

    @property
    def url(self) -> str:
        return f"d1-worker:{self.origin}"

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(session=self.session, worker_binding=self.binding,
                    worker_cache=self.worker_info.get("cache"),
                    worker_cache_invalidate=self.worker_info.get("cache_invalidate"),
                    worker_cache_check=self.worker_info.get("cache_check"))
        return info


def _worker_health(origin: str, secret: str, timeout: float) -> dict[str, Any]:
    """``GET /health`` with the secret: the Worker's ids and cache options."""
    import httpx

    try:
        response = httpx.get(f"{origin}/health", timeout=min(timeout, 30.0),
                             headers={"Authorization": f"Bearer {secret}"})
    except httpx.HTTPError as exc:
        raise UsageError(redact(f"d1-worker:{origin}: cannot reach the Worker: "
                                f"{type(exc).__name__}: {exc}", [secret])) from None
    if response.status_code == 401:
        raise UsageError(f"d1-worker:{origin}: the Worker refused the secret: set {SECRET_ENV} "
                         "to the value given to `wrangler secret put TOKEN`")
    try:
        result = response.json()["result"]
        if response.status_code != 200 or "database_id" not in result:
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"d1-worker:{origin}: /health answered HTTP {response.status_code}; is "
                         "this the d1bench Worker? (`d1bench worker deploy` ships it)") from None
    return dict(result)
