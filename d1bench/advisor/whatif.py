"""What-if planning: the plan SQLite would choose if some indexes existed.

A schema-only copy of the corpus lives in ``:memory:``: its tables, views and
FTS5 tables, empty.  Into its ``sqlite_stat1`` go the statistics the corpus
really has, computed by :class:`~d1bench.advisor.stats.Stats` exactly as
``ANALYZE`` would write them, for the tables, for the constraint indexes and
for every candidate index, which is created empty.  After ``ANALYZE
sqlite_schema`` (which only reloads those rows) the planner believes it is
looking at the real data, and ``EXPLAIN QUERY PLAN`` says what it would do.

Creating an empty index takes microseconds, so a configuration is switched by
dropping and creating the difference.  Every plan is cached by template and by
the set of indexes that could matter to it, so the selection stage can ask the
same question a thousand times and pay once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

import apsw

from d1bench.advisor.stats import Stats
from d1bench.sql.catalog import Catalog, IndexDef, quote_ident
from d1bench.sql.session import EXPLAIN, PlanStep, plan_steps

__all__ = ["WhatIf"]

#: Indexes left in the copy between questions before it is cleared down to one configuration.
_MAX_CREATED = 64


class WhatIf:
    """The what-if engine of one corpus.

    Args:
        catalog: the corpus's shape.
        stats: its statistics (the source of every ``sqlite_stat1`` row).
    """

    def __init__(self, catalog: Catalog, stats: Stats) -> None:
        self.catalog = catalog
        self.stats = stats
        self.db = apsw.Connection(":memory:")
        self._cache: dict[tuple, tuple[PlanStep, ...]] = {}
        self._errors: dict[tuple, str] = {}
        self._current: dict[tuple, str] = {}  # shape -> name of the index now created
        self._refused: set[tuple] = set()
        self.calls = 0
        self.misses = 0
        self._build()

    def _build(self) -> None:
        for td in self.catalog.tables.values():
            if td.kind in ("table", "virtual") and td.sql:
                with contextlib.suppress(apsw.Error):
                    # a virtual table module this build lacks: queries on it will say so
                    self.db.execute(td.sql)
        for td in self.catalog.tables.values():
            if td.kind == "view" and td.sql:
                with contextlib.suppress(apsw.Error):
                    self.db.execute(td.sql)
        # ANALYZE of empty tables creates sqlite_stat1 without filling it
        self.db.execute("ANALYZE")
        self.db.execute("DELETE FROM sqlite_stat1")
        rows = []
        for td in self.catalog.real_tables:
            n = self.stats.row_count(td.name)
            rows.append((td.name, None, str(n)))
        for index in self.catalog.indexes:
            if index.origin != "c":
                stat = self.stats.stat1(index)
                if stat is not None:
                    rows.append((index.table, index.name, stat))
        self.db.executemany("INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (?, ?, ?)", rows)
        self.db.execute("ANALYZE sqlite_schema")

    # --- configurations -------------------------------------------------------------
    def configure(self, indexes: Iterable[IndexDef]) -> None:
        """Make exactly ``indexes`` (besides constraint indexes) exist in the copy."""
        wanted = {i.shape: i for i in indexes if i.origin in ("c", "advised")}
        drop = [shape for shape in self._current if shape not in wanted]
        add = [i for shape, i in wanted.items()
               if shape not in self._current and shape not in self._refused]
        if not drop and not add:
            return
        for shape in drop:
            name = self._current.pop(shape)
            self.db.execute(f"DROP INDEX {quote_ident(name)}")
            self.db.execute("DELETE FROM sqlite_stat1 WHERE idx = ?", (name,))
        for index in add:
            name = index.name
            try:
                self.db.execute(index.create_sql(name, if_not_exists=False))
            except apsw.Error:
                # an expression SQLite refuses in an index: that index cannot exist
                self._refused.add(index.shape)
                continue
            self._current[index.shape] = name
            stat = self.stats.stat1(index)
            if stat is not None:
                self.db.execute("INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (?, ?, ?)",
                                (self.catalog.table(index.table).name, name, stat))
        self.db.execute("ANALYZE sqlite_schema")

    @property
    def current(self) -> frozenset[tuple]:
        return frozenset(self._current)

    # --- plans --------------------------------------------------------------------------
    def plan(self, key: Any, sql: str, params: Sequence[Any],
             indexes: Iterable[IndexDef]) -> tuple[PlanStep, ...]:
        """EXPLAIN QUERY PLAN of ``sql`` with exactly ``indexes`` relevant to it.

        ``key`` names the template for the cache; ``indexes`` should be the
        ones that can matter to it (the caller decides), so that unrelated
        changes elsewhere in the configuration reuse the cached plan.
        Raises ``ValueError`` with SQLite's message if it cannot plan ``sql``.
        """
        indexes = list(indexes)
        cache = (key, frozenset(i.shape for i in indexes))
        self.calls += 1
        if cache in self._cache:
            return self._cache[cache]
        if cache in self._errors:
            raise ValueError(self._errors[cache])
        self.misses += 1
        wanted = {i.shape for i in indexes} - self._refused
        if len(self._current) > _MAX_CREATED:
            self.configure(indexes)  # keep the planner's choices few, and planning fast
        if not wanted <= self.current:
            # keep what is there (irrelevant to this template by the caller's word) and add
            self.configure([*self._created(), *indexes])
        try:
            rows = tuple(plan_steps(self.db.execute(EXPLAIN + sql, tuple(params))))
        except apsw.Error as exc:  # SQLite's own words
            self._errors[cache] = str(exc)
            raise ValueError(str(exc)) from None
        # plans must not depend on indexes outside the relevant set: drop extras
        # that SQLite used only if they are not in `wanted`
        used_extra = [name for shape, name in self._current.items()
                      if shape not in wanted and any(f" {name} " in f" {r.detail} " or
                                                     r.detail.endswith(" " + name) for r in rows)]
        if used_extra:
            self.configure(indexes)
            rows = tuple(plan_steps(self.db.execute(EXPLAIN + sql, tuple(params))))
        self._cache[cache] = rows
        return rows

    def _created(self) -> list[IndexDef]:
        return [_Stub(shape, name) for shape, name in self._current.items()]  # type: ignore[misc]

    def plan_exact(self, sql: str, params: Sequence[Any], indexes: Iterable[IndexDef]) -> tuple[PlanStep, ...]:
        """The plan with exactly ``indexes`` present (no cache), for final reports."""
        self.configure(indexes)
        return tuple(plan_steps(self.db.execute(EXPLAIN + sql, tuple(params))))


class _Stub:
    """An index already created in the copy, standing for itself in :meth:`WhatIf.configure`."""

    __slots__ = ("name", "origin", "shape")

    def __init__(self, shape: tuple, name: str) -> None:
        self.shape = shape
        self.name = name
        self.origin = "advised"

