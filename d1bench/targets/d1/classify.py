"""Sort D1's failures into d1bench's error classes, and keep secrets out of them.

D1 answers a failed statement with HTTP 400, code 7500 and SQLite's own
message; infrastructure trouble comes as a handful of fixed sentences, some of
which a retry fixes and some of which it makes worse.  The message is always
kept verbatim (less any secret) so that reports quote what D1 said.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterable

from d1bench.errors import TargetError
from d1bench.targets.d1._http import ConnectionDropped, ResponseTimeout

__all__ = [
    "OVERLOADED_MESSAGES",
    "RETRYABLE_MESSAGES",
    "classify_response",
    "error_from_exception",
    "error_from_response",
    "redact",
]

#: D1's transient failures: sending the same idempotent statement again may succeed.
RETRYABLE_MESSAGES = (
    "Network connection lost",
    "storage caused object to be reset",
    "reset because its code was updated",
    "Cannot resolve D1 DB due to transient issue",
    "Can't read from request stream because client disconnected",
)

#: The database is saturated: retrying adds load, the workload must shrink or spread.
OVERLOADED_MESSAGES = (
    "D1 DB is overloaded",
    "Too many requests queued",
    "exceeded timeout",
    "exceeded its CPU time limit",
    "exceeded its memory limit",
)

# (substrings, class): the first match wins, so the specific ones come first.
_SQL_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("constraint failed", "SQLITE_CONSTRAINT"), "constraint"),
    (("SQLITE_READONLY", "readonly database", "read-only"), "read_only"),
    (("too many SQL variables", "SQLITE_TOOBIG", "statement too long", "too big",
      "pattern too complex", "too many columns", "SQLITE_FULL", "database or disk is full",
      "not authorized", "SQLITE_AUTH", "too many terms"), "limit"),
    (("syntax error", "no such table", "no such column", "no such function",
      "incomplete input", "unrecognized token", "ambiguous column", "wrong number of arguments",
      "SQLITE_RANGE", "SQLITE_ERROR", "SQLITE_MISMATCH", "datatype mismatch",
      "no such index", "already exists"), "syntax"),
)

_AUTH_CODES = {10000, 10001, 7403, 9103, 9106, 9109}


def classify_response(status: int | None, code: int | None, message: str) -> tuple[str, bool]:
    """Return ``(error_class, retryable)`` for one failed call.

    >>> classify_response(400, 7500, "Network connection lost.")
    ('network', True)
    >>> classify_response(429, 7429, "D1 DB is overloaded. Requests queued for too long.")
    ('overloaded', False)
    >>> classify_response(400, 7500, "UNIQUE constraint failed: users.email: SQLITE_CONSTRAINT")
    ('constraint', False)
    >>> classify_response(429, 971, "Please wait and consider throttling your request speed")
    ('rate_limited', True)
    >>> classify_response(503, None, "upstream unavailable")
    ('other', True)
    """
    low = message.lower()
    if any(m.lower() in low for m in RETRYABLE_MESSAGES):
        return "network", True
    if any(m.lower() in low for m in OVERLOADED_MESSAGES):
        return "overloaded", False
    if status in (401, 403) or code in _AUTH_CODES or "authentication error" in low:
        return "auth", False
    if status == 404 or code == 7404:
        return "not_found", False
    if status == 429:
        return "rate_limited", True
    for needles, error_class in _SQL_RULES:
        if any(n.lower() in low for n in needles):
            return error_class, False
    if status is not None and status >= 500:
        return "other", True
    return "other", False


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret in ``text`` (secrets shorter than 4 characters are ignored).

    >>> redact("Bearer abcd1234 was refused", ["abcd1234"])
    'Bearer *** was refused'
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def _envelope_errors(body: bytes) -> tuple[int | None, str] | None:
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    errors = doc.get("errors") or []
    if not errors:
        # a statement-level failure inside an otherwise readable envelope
        for item in doc.get("result") or []:
            if isinstance(item, dict) and item.get("success") is False:
                return None, str(item.get("error") or item.get("message") or "statement failed")
        return None
    first = errors[0] if isinstance(errors[0], dict) else {"message": str(errors[0])}
    messages = [str(e.get("message", "")) if isinstance(e, dict) else str(e) for e in errors]
    code = first.get("code")
    code = int(code) if isinstance(code, int | float) else None
    return code, " | ".join(m for m in messages if m)


def error_from_response(status: int, body: bytes, *, secrets: Iterable[str] = (),
                        attempts: int = 1) -> TargetError:
    """Turn a failed HTTP answer into a classified :class:`TargetError`."""
    parsed = _envelope_errors(body)
    if parsed is None:
        snippet = body[:200].decode("utf-8", "replace").strip()
        code, message = None, f"HTTP {status}" + (f": {snippet}" if snippet else "")
    else:
        code, message = parsed
        message = message or f"HTTP {status}"
    message = redact(message, secrets)
    error_class, retryable = classify_response(status, code, message)
    return TargetError(message, error_class=error_class, retryable=retryable,
                       attempts=attempts, status=status, code=code)


def error_from_exception(exc: BaseException, *, secrets: Iterable[str] = (),
                         attempts: int = 1) -> TargetError:
    """Classify a transport failure: dropped connections, timeouts, refused connects."""
    text = redact(str(exc) or type(exc).__name__, secrets)
    if isinstance(exc, ResponseTimeout | TimeoutError):
        return TargetError(f"timeout: {text}", error_class="timeout", retryable=True,
                           attempts=attempts)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TargetError(f"TLS certificate rejected: {text}", error_class="network",
                           retryable=False, attempts=attempts)
    if isinstance(exc, ConnectionDropped | OSError):
        return TargetError(f"{type(exc).__name__}: {text}", error_class="network",
                           retryable=True, attempts=attempts)
    return TargetError(f"{type(exc).__name__}: {text}", error_class="other", retryable=False,
                       attempts=attempts)
