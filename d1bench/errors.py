"""Exceptions d1bench raises, and the one rule the CLI applies to them.

`UsageError` means the user gave us something we cannot use (a bad argument,
a malformed workload file, a path that exists without ``--force``).  The CLI
prints its message on one line and exits with status 2.  Everything else is a
bug or an environment failure and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["ERROR_CLASSES", "D1benchError", "TargetError", "UsageError"]


class D1benchError(Exception):
    """Base class of every error d1bench raises on purpose."""


class UsageError(D1benchError):
    """Bad input: the message names the file, line, template or value at fault."""


#: The classes a failed request is sorted into, in the trace and in reports.
ERROR_CLASSES = (
    "network",
    "timeout",
    "overloaded",
    "rate_limited",
    "auth",
    "not_found",
    "syntax",
    "constraint",
    "limit",
    "read_only",
    "interrupted",
    "other",
)


class TargetError(D1benchError):
    """A request a target could not complete.

    ``error_class`` is one of :data:`ERROR_CLASSES`; ``message`` is the
    database's own words, kept verbatim (never containing credentials);
    ``retryable`` says whether sending the same idempotent statement again may
    succeed.
    """

    def __init__(self, message: str, *, error_class: str = "other", retryable: bool = False,
                 attempts: int = 1, status: int | None = None, code: int | None = None) -> None:
        if error_class not in ERROR_CLASSES:
            raise ValueError(f"unknown error class {error_class!r}")
        super().__init__(message)
        self.message = message
        self.error_class = error_class
        self.retryable = retryable
        self.attempts = attempts
        self.status = status
        self.code = code
        #: When the request was retried: each attempt's error class, and the waits between.
        self.attempt_errors: list[str] = []
        self.backoff_s: list[float] = []

    def __str__(self) -> str:
        return f"[{self.error_class}] {self.message}"
