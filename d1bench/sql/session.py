"""What a database session is, at the least: run a statement, explain it.

Every layer that talks to a database speaks these types: the workload binds
its samplers through a :class:`Connection`, the targets implement it, the
analyses read its :class:`Result` and :class:`PlanStep` values.  They live on
the ground floor so that none of those layers has to import another to name them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Self

__all__ = ["EXPLAIN", "Connection", "Meta", "Params", "PlanStep", "Result", "plan_steps"]

#: The prefix that turns a statement into its query plan.
EXPLAIN = "EXPLAIN QUERY PLAN "

Params = Sequence[Any]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Meta:
    """What the database said about one statement, beyond its rows.

    Attributes:
        rows_read: rows read as D1 bills them; exact from D1, estimated from
            SQLite (see ``d1bench.targets.sqlite`` for the method). ``None``
            when the target cannot tell.
        rows_written: rows written as D1 bills them (index entries included).
        duration_ms: time spent inside the database, excluding the network,
            as the target reports it.
        changes: rows changed by an INSERT/UPDATE/DELETE.
        last_row_id: rowid of the last inserted row.
        attempts: how many times the request was sent (retries included).
        extra: every other field the target reported (D1's ``served_by_region``,
            ``total_attempts``, ``timings`` ...), kept verbatim for the trace.
    """

    rows_read: int | None = None
    rows_written: int | None = None
    duration_ms: float | None = None
    changes: int | None = None
    last_row_id: int | None = None
    attempts: int = 1
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True)
class Result:
    """Rows a statement returned, with the database's metadata."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    meta: Meta = field(default_factory=Meta)


@dataclass(frozen=True, slots=True)
class PlanStep:
    """One row of ``EXPLAIN QUERY PLAN``: SQLite's and D1's shapes are the same."""

    id: int
    parent: int
    detail: str


class Connection(ABC):
    """One session with a target; used by one thread at a time."""

    @abstractmethod
    def execute(self, sql: str, params: Params = ()) -> Result:
        """Run one statement; raise :class:`d1bench.errors.TargetError` on failure."""

    @abstractmethod
    def explain(self, sql: str, params: Params = ()) -> list[PlanStep]:
        """Return the statement's query plan without running it."""

    # Deferred estimates: connections of a target that declares ``defers_estimates``
    # (it works D1's rows read out itself) implement these three; no other does.
    def defer_estimates(self, defer: bool = True, *, estimate: bool = True) -> None:
        """Put the rows-read estimate off until :meth:`finish_estimates` (``defer=False``:
        back to estimating as each statement runs); ``estimate=False``: no estimate."""
        raise NotImplementedError(f"{type(self).__name__} does not estimate rows itself")

    @property
    def pending_estimates(self) -> int:
        """Executions whose estimate :meth:`finish_estimates` has still to work out."""
        raise NotImplementedError(f"{type(self).__name__} does not estimate rows itself")

    def finish_estimates(self, tick: Callable[[int], object] | None = None) -> int:
        """Work out every pending estimate and fill its ``Meta``; returns how many
        (``tick(n)`` after every ``n``, for a progress bar)."""
        raise NotImplementedError(f"{type(self).__name__} does not estimate rows itself")

    def close(self) -> None:
        """Release the session's resources."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def plan_steps(rows: Iterable[Sequence[Any]]) -> list[PlanStep]:
    """Rows of ``EXPLAIN QUERY PLAN`` (``id, parent, notused, detail``) as steps.

    >>> plan_steps([(2, 0, 0, "SCAN t")])
    [PlanStep(id=2, parent=0, detail='SCAN t')]
    """
    return [PlanStep(int(r[0]), int(r[1]), str(r[3])) for r in rows]
