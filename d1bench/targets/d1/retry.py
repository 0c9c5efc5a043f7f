"""When to send a failed D1 request again, and how long to wait first.

Cloudflare's guidance for D1 is exponential backoff with jitter, up to five
attempts, and only for statements that are safe to repeat.  *Full* jitter
(a uniform draw between zero and the exponential ceiling) spreads a crowd of
clients that failed together, which a fixed or "equal" jitter does not.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from d1bench.errors import TargetError

__all__ = ["RetryPolicy", "parse_retry_after"]


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``retry-after`` header (delta-seconds form only).

    >>> parse_retry_after("3")
    3.0
    >>> parse_retry_after("0.25")
    0.25
    >>> parse_retry_after("Wed, 21 Oct 2026 07:28:00 GMT") is None
    True
    """
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(0.0, seconds)


@dataclass(slots=True)
class RetryPolicy:
    """Backoff settings for one target.

    Attributes:
        max_attempts: sends per request, the first included (Cloudflare: 5).
        base: the first backoff ceiling, in seconds; it doubles on each retry.
        cap: the largest ceiling, in seconds.
        max_retry_after: a 429 asking to wait longer than this is not retried:
            D1's rate limit blocks a token for five minutes, longer than any
            benchmark should sit still.
        retry_writes: also retry statements that are not read-only (a write
            whose answer was lost may then be applied twice).
        seed: seeds the jitter, so a replay's waits repeat with its seed.
    """

    max_attempts: int = 5
    base: float = 0.05
    cap: float = 2.0
    max_retry_after: float = 60.0
    retry_writes: bool = False
    seed: int | None = None
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._rng = random.Random(self.seed)

    def should_retry(self, error: TargetError, attempt: int, read_only: bool) -> bool:
        """May the request that failed on its ``attempt``-th send go again?"""
        return (error.retryable and attempt < self.max_attempts
                and (read_only or self.retry_writes))

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the ``attempt``-th send failed (full jitter).

        A server's ``retry-after`` is a floor: never come back sooner.
        """
        ceiling = min(self.cap, self.base * (2 ** (attempt - 1)))
        wait = self._rng.uniform(0.0, ceiling)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return wait
