"""A read-only connection to a corpus file, for drawing workload parameters.

Stand-in used only while :func:`d1bench.targets.open_target` is unavailable;
binding a workload needs nothing but plain SELECTs.
"""

from __future__ import annotations

import os
from typing import Any

import apsw

from d1bench.errors import TargetError
from d1bench.targets.base import Connection, Meta, PlanStep, Result

__all__ = ["ReadOnlyConnection"]


class ReadOnlyConnection(Connection):
    """Plain SELECTs against a SQLite file, opened read-only with APSW."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.db = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)

    def execute(self, sql: str, params: Any = ()) -> Result:
        try:
            cursor = self.db.execute(sql, tuple(params))
            rows = [tuple(r) for r in cursor]
            try:
                columns = tuple(d[0] for d in cursor.get_description())
            except apsw.ExecutionCompleteError:
                columns = ()
        except apsw.Error as exc:
            raise TargetError(str(exc), error_class="other") from None
        return Result(columns, rows, Meta())

    def explain(self, sql: str, params: Any = ()) -> list[PlanStep]:
        return [PlanStep(int(r[0]), int(r[1]), str(r[3]))
                for r in self.db.execute("EXPLAIN QUERY PLAN " + sql, tuple(params))]

    def close(self) -> None:
        self.db.close()
