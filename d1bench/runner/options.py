"""``ReplayOptions``: everything a replay is told, as one checked, frozen value."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from d1bench.errors import UsageError

__all__ = ["DEFAULT_DURATION", "DEFAULT_RATE", "ReplayOptions"]

#: Open loop at 100 requests a second for 10 s when the caller names neither.
DEFAULT_RATE = 100.0
DEFAULT_DURATION = 10.0


def _positive(name: str, value: object, *, integer: bool = False, zero_ok: bool = False) -> None:
    if value is None:
        return
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    number = value if ok_type and not isinstance(value, bool) else None
    if not isinstance(number, (int, float)) or not math.isfinite(number) \
            or number < 0 or (number == 0 and not zero_ok):
        kind = "a whole number" if integer else "a number"
        bound = ">= 0" if zero_ok else "> 0"
        raise UsageError(f"{name} must be {kind} {bound}, got {value!r}")


@dataclass(frozen=True)
class ReplayOptions:
    """How to replay: the keywords of :func:`d1bench.replay`, checked once when made.

    The defaults are filled in here: open loop at ``DEFAULT_RATE`` when neither
    ``rate`` nor ``concurrency`` is given, for ``DEFAULT_DURATION`` seconds when
    neither ``duration`` nor ``requests`` is.

    >>> ReplayOptions().rate, ReplayOptions().duration, ReplayOptions().open_loop
    (100.0, 10.0, True)
    >>> ReplayOptions(concurrency=4, requests=50).rate is None
    True
    >>> ReplayOptions(rate=-1)
    Traceback (most recent call last):
    ...
    d1bench.errors.UsageError: rate must be a number > 0, got -1
    """

    rate: float | None = None
    arrival: Literal["poisson", "fixed"] = "poisson"
    concurrency: int | None = None
    duration: float | None = None
    requests: int | None = None
    warmup: float = 0.0
    warmup_requests: int = 0
    seed: int = 0
    trace_path: str | os.PathLike[str] | None = None
    progress: bool = True
    workers: int | None = None
    corpus: str | os.PathLike[str] | None = None
    force: bool = False
    overrun: float | None = None
    allow_writes: bool | None = None
    estimate: bool = True
    in_place: bool = False
    min_executions: int | None = None
    topup_caps: Mapping[str, int] | None = None

    def __post_init__(self) -> None:
        if self.rate is not None and self.concurrency is not None:
            raise UsageError("give either rate (open loop) or concurrency (closed loop), not both")
        if self.arrival not in ("poisson", "fixed"):
            raise UsageError(f"arrival must be 'poisson' or 'fixed', got {self.arrival!r}")
        _positive("rate", self.rate)
        _positive("concurrency", self.concurrency, integer=True)
        _positive("duration", self.duration)
        _positive("requests", self.requests, integer=True)
        _positive("warmup", self.warmup, zero_ok=True)
        _positive("warmup_requests", self.warmup_requests, integer=True, zero_ok=True)
        if self.warmup and self.warmup_requests:
            raise UsageError("give warm-up in seconds or in requests, not both")
        _positive("workers", self.workers, integer=True)
        _positive("overrun", self.overrun, zero_ok=True)
        _positive("min_executions", self.min_executions, integer=True)
        if self.min_executions is not None and not self.open_loop:
            raise UsageError("min_executions tops up an open-loop schedule: give a rate, "
                             "not concurrency")
        for name, cap in (self.topup_caps or {}).items():
            _positive(f"topup cap of {name}", cap, integer=True, zero_ok=True)
        if self.topup_caps and self.min_executions is None:
            raise UsageError("topup_caps limit min_executions' top-up: give min_executions too")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise UsageError(f"seed must be a whole number, got {self.seed!r}")
        # Frozen: the defaults are filled in once, here, so every reader sees the same run.
        if self.open_loop and self.rate is None:
            object.__setattr__(self, "rate", DEFAULT_RATE)
        if self.duration is None and self.requests is None:
            object.__setattr__(self, "duration", DEFAULT_DURATION)

    @property
    def open_loop(self) -> bool:
        """Units start on a schedule (``rate``), not as soon as a worker is free."""
        return self.concurrency is None
