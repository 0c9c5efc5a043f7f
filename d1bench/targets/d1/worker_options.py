"""The bench Worker's options, as the CLI spells them and as the Worker's bindings carry them.

One home for the formats: ``--cache memory:TTL[,SIZE]`` / ``kv:TTL`` / ``off``,
``--session none|first-primary|first-unconstrained``.  ``worker.mjs`` reads the
same strings from its ``CACHE``, ``CACHE_INVALIDATE`` and ``CACHE_CHECK`` bindings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from d1bench.errors import UsageError

__all__ = ["COMPATIBILITY_DATE", "DEFAULT_CACHE_SIZE", "SESSION_MODES", "CacheSpec", "WorkerOptions", "check_session"]

#: ``--session`` values: no session (the primary, as ``env.DB.prepare()``), or a
#: Sessions API constraint for each simulated user's first query.
SESSION_MODES = ("none", "first-primary", "first-unconstrained")

#: The Workers runtime date the bench Worker is written for, locally and deployed.
COMPATIBILITY_DATE = "2026-07-01"

#: Entries the in-memory level keeps when SIZE is not given (the Worker's default too).
DEFAULT_CACHE_SIZE = 10_000

_SPEC = re.compile(r"^(memory|kv):([0-9]*\.?[0-9]+)(?:,([0-9]+))?$")


def check_session(mode: str) -> str:
    """``mode`` if it is a ``--session`` value, else a UsageError naming it.

    >>> check_session("first-primary")
    'first-primary'
    >>> check_session("primary")
    Traceback (most recent call last):
    ...
    d1bench.errors.UsageError: --session 'primary': expected none, first-primary or first-unconstrained
    """
    if mode not in SESSION_MODES:
        raise UsageError(f"--session {mode!r}: expected none, first-primary or first-unconstrained")
    return mode


@dataclass(frozen=True, slots=True)
class CacheSpec:
    """One cache level in front of D1: ``memory`` (a Map per isolate) or ``kv`` (Workers KV).

    Attributes:
        level: ``memory`` or ``kv``.
        ttl_s: seconds an answer is served from the cache.
        size: entries the memory level keeps (least recently used go first); ``None`` for kv.
    """

    level: str
    ttl_s: float
    size: int | None = None

    @classmethod
    def parse(cls, text: str) -> CacheSpec | None:
        """``memory:TTL[,SIZE]``, ``kv:TTL`` or ``off`` (``None``).

        >>> CacheSpec.parse("memory:60,500")
        CacheSpec(level='memory', ttl_s=60.0, size=500)
        >>> CacheSpec.parse("kv:300").spec
        'kv:300'
        >>> CacheSpec.parse("kv:60,5")
        Traceback (most recent call last):
        ...
        d1bench.errors.UsageError: --cache 'kv:60,5': expected off, memory:TTL[,SIZE] or kv:TTL (TTL in seconds)
        """
        text = text.strip()
        if text in ("", "off"):
            return None
        m = _SPEC.match(text)
        if not m or (m[1] == "kv" and m[3] is not None) or float(m[2]) <= 0:
            raise UsageError(f"--cache {text!r}: expected off, memory:TTL[,SIZE] or kv:TTL "
                             "(TTL in seconds)")
        size = None if m[1] == "kv" else int(m[3]) if m[3] else DEFAULT_CACHE_SIZE
        if size is not None and size < 1:
            raise UsageError(f"--cache {text!r}: SIZE must be at least 1")
        return cls(m[1], float(m[2]), size)

    @property
    def spec(self) -> str:
        """The spec as the Worker's ``CACHE`` binding carries it."""
        ttl = f"{self.ttl_s:g}"
        return f"memory:{ttl},{self.size}" if self.level == "memory" else f"kv:{ttl}"


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """What the bench Worker does in front of D1.

    Attributes:
        cache: the cache level, or ``None`` for none.
        invalidate: a write empties the cache (otherwise entries live out their TTL).
        check: every hit is also run against the database, so that a stale answer
            (one a write has changed since it was cached) is counted exactly; it
            costs a read per hit, so latency is measured with it off.
    """

    cache: CacheSpec | None = None
    invalidate: bool = False
    check: bool = False

    @classmethod
    def from_strings(cls, cache: str | None = None, *, invalidate: bool = False,
                     check: bool = False) -> WorkerOptions:
        return cls(CacheSpec.parse(cache) if cache else None, invalidate, check)

    def bindings(self) -> dict[str, str]:
        """The Worker's plain-text bindings for these options.

        >>> WorkerOptions(CacheSpec("memory", 0.5, 10), invalidate=True).bindings()
        {'CACHE': 'memory:0.5,10', 'CACHE_INVALIDATE': '1', 'CACHE_CHECK': '0'}
        """
        return {"CACHE": self.cache.spec if self.cache else "off",
                "CACHE_INVALIDATE": "1" if self.invalidate else "0",
                "CACHE_CHECK": "1" if self.check else "0"}
