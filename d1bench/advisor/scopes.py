"""The pieces of a template's shape: its table references and its SELECT scopes.

:class:`~d1bench.advisor.builder.QueryInfoBuilder` produces them while it walks a
statement and :class:`~d1bench.advisor.query.QueryInfo` holds them; they live
apart from both so that neither has to import the other to name them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Ref", "Scope"]


@dataclass(frozen=True, slots=True)
class Ref:
    """A table, view, CTE, subquery or table-valued function named in a FROM clause.

    Attributes:
        index: its position in :attr:`QueryInfo.refs`.
        name: the table (or CTE / function) name, lower-case.
        alias: the name the query (and EXPLAIN QUERY PLAN) calls it by.
        scope: the scope it belongs to.
        kind: ``table``, ``view``, ``fts``, ``virtual``, ``cte``, ``subquery``, ``function``.
        columns: the columns the query needs from it (``*`` for all).
        left_join: it is the right side of a LEFT JOIN.
    """

    index: int
    name: str
    alias: str
    scope: int
    kind: str
    columns: frozenset[str] = frozenset()
    left_join: bool = False


@dataclass(frozen=True, slots=True)
class Scope:
    """One SELECT (or the WHERE of an UPDATE/DELETE).

    Attributes:
        index: its position in :attr:`QueryInfo.scopes`.
        parent: the enclosing scope, if it is a subquery.
        refs: its references.
        order_by: ``(ref, key, desc)`` per ORDER BY term; ref is -1 when the
            term is not a key of one reference (bm25, a computed distance).
        group_by: ``(ref, key)`` per GROUP BY term, ref -1 as above.
        limit / offset: an int, a placeholder name, or ``None``.
        aggregate: aggregates without GROUP BY (one output row).
        distinct: SELECT DISTINCT.
        correlated: mentions columns of an enclosing scope.
        role: ``main``, ``cte``, ``derived``, ``subquery``, ``compound``.
        name: the CTE or alias name for ``cte``/``derived`` scopes.
    """

    index: int
    parent: int | None
    refs: tuple[int, ...] = ()
    order_by: tuple[tuple[int, str, bool], ...] = ()
    group_by: tuple[tuple[int, str], ...] = ()
    limit: Any = None
    offset: Any = None
    aggregate: bool = False
    distinct: bool = False
    correlated: bool = False
    role: str = "main"
    name: str | None = None
