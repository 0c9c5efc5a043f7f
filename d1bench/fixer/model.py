"""The records the fix stages exchange: a proposed :class:`Rewrite`, a :class:`Skip` with its reason,
and the :class:`Trial` that checks one sampled execution of a rewrite."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Context", "Rewrite", "Skip", "Stmt", "Trial"]

#: One statement to run: SQL and its bound values.
Stmt = tuple[str, tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Trial:
    """One sampled execution of a template and of its rewrite, to be compared.

    Attributes:
        before: statements the application sends today (run on the copy
            without the rewrite's DDL); their rows are concatenated.
        after: statements it sends after the rewrite (run on the copy with it).
        ordered: compare rows in order (the ORDER BY fixes one), else as multisets.
        width: compare only the first ``width`` columns of the ``after`` rows
            (a batched query returns its key columns as well); ``None``: all.
        probe: statements run on each copy after both sides, whose rows must
            agree too (a trigger rewrite is checked by what it leaves behind).
    """

    before: tuple[Stmt, ...]
    after: tuple[Stmt, ...]
    ordered: bool = True
    width: int | None = None
    probe: tuple[Stmt, ...] = ()


@dataclass(frozen=True, slots=True)
class Rewrite:
    """A change to one template (or session, or trigger) that a stage proposes.

    Attributes:
        kind: the stage that proposed it (``keyset``, ``fts_match``, ...).
        target: the template, session or trigger it changes.
        sql: the SQL the application sends instead (several statements for
            a keyset page: the first page, then the next ones).
        ddl: the schema change it needs, as migration statements ("" if none).
        exact: whether it claims the same rows; an approximate rewrite says
            what it gives up in ``note`` and is measured by its recall.
        note: what it does, in one or two sentences.
        trial: makes the :class:`Trial` for one sampled parameter tuple of the
            template, given a read connection to the copy without the DDL
            (a keyset page needs the previous page's last row).
        templates: the workload templates whose executions it replaces, with
            the weight each one's saving carries (a session's N+1 counts once
            per session).
        writes: whether its DDL adds triggers, so every write template of the
            workload is measured before and after too.
        recall_k: for an approximate rewrite, the k of its measured recall@k.
        trigger_writes: rows its triggers write per execution of each write
            template, by D1's rule (one per row a trigger statement changes):
            the floor of the measured figure, because the SQLite target's
            estimate does not yet see writes made inside triggers.
        backfill_sql: statements that fill what the DDL built for the rows
            already stored, for D1: each its own request after the migration
            (a migration is one request within D1's 30 s; these may not all
            fit), each safe to run again ("" if nothing to fill).
        backfill: fills the same on a scratch copy, given a writable APSW
            connection to it, faster than running ``backfill_sql`` (``None``:
            the scratch copies run ``backfill_sql``).
    """

    kind: str
    target: str
    sql: str
    ddl: str
    exact: bool
    note: str
    trial: Callable[[tuple[Any, ...], Any], Trial]
    templates: Mapping[str, float] = field(default_factory=dict)
    writes: bool = False
    recall_k: int | None = None
    trigger_writes: Mapping[str, float] = field(default_factory=dict)
    backfill_sql: str = ""
    backfill: Callable[[Any], None] | None = None


@dataclass(frozen=True, slots=True)
class Skip:
    """Why a stage proposed nothing for a template (every threshold is named in its module)."""

    kind: str
    target: str
    reason: str


@dataclass(frozen=True, slots=True)
class Context:
    """What every stage sees: the corpus's schema and a read connection to it.

    Attributes:
        catalog: the advisor's :class:`~d1bench.sql.catalog.Catalog` of the copy
            the rewrites start from (the advised indexes built).
        conn: a read-only APSW connection to that copy.
        workload: the checked workload.
        weights: executions of each template per unit of workload.
        params: sampled parameter tuples per template.
        session_weights: probability that a unit is each session.
    """

    catalog: Any
    conn: Any
    workload: Any
    weights: Mapping[str, float]
    params: Mapping[str, Sequence[tuple[Any, ...]]]
    session_weights: Mapping[str, float]

    def primary_key(self, table: str) -> tuple[str, ...]:
        """The columns that identify a row of ``table``: its PRIMARY KEY, else ``rowid``."""
        rows = list(self.conn.execute(f'SELECT name, pk FROM pragma_table_info("{table}")'))
        pk = [name for name, pos in sorted((r for r in rows if r[1]), key=lambda r: r[1])]
        return tuple(pk) or ("rowid",)
