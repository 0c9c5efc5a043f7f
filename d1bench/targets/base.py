"""The one protocol every target speaks.

A *target* is a database d1bench can send SQL to: a local SQLite file, a local
D1 (Miniflare) or Cloudflare D1 over its REST API.  Replay, analysis and the
tests talk only to this module's types, so they never care which one ran.

A target hands out *connections*; each replay worker thread owns one (SQLite
connections must not be shared between threads that run at once).  Targets that
speak HTTP can also run requests on an asyncio loop (``supports_async``).

Optional abilities are declared as class attributes rather than probed with
``isinstance``, so callers and tests can ask up front and say why a target
cannot do something.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Self

# A target's connections speak the ground floor's session types; they are named
# here too because they are the target protocol's vocabulary.
from d1bench.sql.session import Connection, Meta, Params, PlanStep, Result

__all__ = ["Connection", "Meta", "Params", "PlanStep", "Result", "Target"]


class Target(ABC):
    """A database to send SQL to.  Subclasses declare what they can do."""

    #: Short kind name, recorded in traces: ``sqlite``, ``d1-local`` or ``d1``.
    kind: ClassVar[str]
    #: ``Meta.rows_read``/``rows_written`` come from the database itself, not an estimate.
    exact_rows_read: ClassVar[bool] = False
    #: ``execute_async`` is available (HTTP targets).
    supports_async: ClassVar[bool] = False
    #: Several connections may run statements at the same time.
    supports_concurrency: ClassVar[bool] = True
    #: The client estimates rows read/written itself, and its connections can put that
    #: work off until after a run (``prepare``, ``defer_estimates``, ``finish_estimates``).
    defers_estimates: ClassVar[bool] = False

    @property
    @abstractmethod
    def url(self) -> str:
        """The target as the user wrote it, with any secret removed."""

    @abstractmethod
    def connect(self) -> Connection:
        """Open a new connection (one per worker thread)."""

    async def execute_async(self, sql: str, params: Params = ()) -> Result:
        raise NotImplementedError(f"{self.kind} target has no asyncio interface")

    def health(self) -> dict[str, Any]:
        """Check, before a run, that the target answers and holds a schema.

        Returns what was found; raises :class:`d1bench.errors.UsageError` saying
        what to fix.  A local file needs no check beyond opening it.
        """
        return {}

    def describe(self) -> dict[str, Any]:
        """Metadata recorded with every trace taken against this target."""
        return {"target": self.url, "target_kind": self.kind}

    def close(self) -> None:
        """Release shared resources (HTTP pools, child processes)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
