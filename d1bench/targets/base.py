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

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

# A target's connections speak the ground floor's session types; they are named
# here too because they are the target protocol's vocabulary.
from d1bench.sql.session import Connection, Meta, Params, PlanStep, Result

if TYPE_CHECKING:
    from d1bench.workload.model import Workload

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
    #: Connections refuse statements that write unless the target was opened with
    #: ``allow_writes=True`` (remote databases); a local file takes every statement.
    guards_writes: ClassVar[bool] = False
    #: Statements D1 would refuse (too many parameters, too long...) are refused
    #: before they are sent, with error class ``limit``.
    checks_d1_limits: ClassVar[bool] = False
    #: Requests can carry a D1 session (a bookmark) from one to the next: the bench Worker's.
    supports_sessions: ClassVar[bool] = False
    #: The client estimates rows read/written itself, and its connections can put that
    #: work off until after a run (:meth:`prepare_estimates`, then each connection's
    #: ``finish_estimates``).
    defers_estimates: ClassVar[bool] = False
    #: The target is a database file on this machine (:meth:`corpus_path`) that
    #: :meth:`sibling` opens again read-only or over a copy: replay runs a workload
    #: that writes on a snapshot and one that only reads on the file read-only.
    local_file: ClassVar[bool] = False
    #: ``Meta.duration_ms`` is timed around the driver's call alone, the region an
    #: application's own call covers: the trace's service time is that duration, and the
    #: target's bookkeeping around the call (building ``Meta``) falls between requests,
    #: where it shows as the next request's schedule lag instead of as latency.
    times_statements: ClassVar[bool] = False
    #: The command-line options (``argparse`` dest names) this kind accepts besides
    #: ``--target``; any other target option given with it is refused by name.
    cli_options: ClassVar[frozenset[str]] = frozenset()
    #: Whether statements that write may be sent (always, unless the kind guards writes).
    allow_writes: bool = True
    #: ``supports_sessions`` targets: the D1 session constraint of each simulated user's
    #: first request; ``none`` sends every request to the primary and chains no bookmarks.
    session: str = "none"

    @classmethod
    @abstractmethod
    def from_spec(cls, spec: str, **options: Any) -> Self:
        """Open the target a spec string names (see :func:`d1bench.targets.open_target`)."""

    @property
    @abstractmethod
    def url(self) -> str:
        """The target as the user wrote it, with any secret removed."""

    @abstractmethod
    def connect(self, *, allow_writes: bool | None = None) -> Connection:
        """Open a new connection (one per worker thread).

        ``allow_writes``: for a target that guards writes, let this connection
        write (``None``: as the target was opened).  Others ignore it.
        """

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

    def corpus_path(self) -> Path | None:
        """The corpus file this target reads, when it is one (described in traces)."""
        return None

    def check_writes(self, workload: Workload, allow_writes: bool | None = None) -> None:
        """Refuse, before anything is sent, a workload whose writes this target would refuse.

        ``allow_writes``: what the caller asked for (``None``: what the target
        was opened with).  Raises :class:`d1bench.errors.UsageError` naming the
        writes.  A target that does not guard writes takes them all.
        """

    def prepare_estimates(self, conns: Sequence[Connection],
                          statements: Sequence[tuple[str, Params]], *, estimate: bool,
                          corpus: Mapping[str, Any] | None,
                          calibration: Mapping[str, Sequence[Params]] | None = None
                          ) -> dict[str, Any]:
        """``defers_estimates`` targets: switch ``conns`` to deferred estimates and analyse
        each statement (SQL, sample parameters) on each, before a run's clock starts.

        ``estimate=False`` asks for no estimate at all; ``corpus`` is the corpus
        metadata (its content digest keys stored analyses); ``calibration`` (SQL
        -> parameter sets drawn as the run draws them) decides, once for all
        ``conns``, which statements collect the database's counters during the
        run.  Returns what the trace says about the estimate (``counted`` and
        ``uncounted`` statements among them).
        """
        raise NotImplementedError(f"{self.kind} target does not estimate rows itself")

    def sibling(self, path: str | os.PathLike[str] | None = None, **overrides: Any) -> Self:
        """``local_file`` targets: one with the same options over ``path`` (a snapshot of
        the file), or over the same file with ``overrides`` (``readonly=True``)."""
        raise NotImplementedError(f"{self.kind} target is not a local file")

    def offline_file(self) -> AbstractContextManager[Path] | None:
        """A context giving the database's own SQLite file while no server holds it,
        for a bulk load to write directly (a local D1 this process runs); ``None``
        when the target has no such file or must only be reached by its protocol
        (remote D1, always)."""
        return None

    def close(self) -> None:
        """Release shared resources (HTTP pools, child processes)."""

    async def aclose(self) -> None:
        """Release what the running event loop holds (call before ``asyncio.run`` returns)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
