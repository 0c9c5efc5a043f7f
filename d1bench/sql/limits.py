"""D1's limits: one table of facts, imported wherever one is checked.

The figures are Cloudflare's published limits for D1 (see the reference notes
on D1, "Limits").  The workload loader checks templates against the
per-statement ones, the D1 targets check every statement before it leaves the
machine, the uploader packs rows into statements that stay under them, and
``d1bench size`` holds a corpus against the size of a database; all read them
here so that a change in D1 is one edit.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["D1_LIMITS", "MAX_COLUMNS", "MAX_DATABASE_BYTES", "MAX_PARAMS", "MAX_PATTERN_BYTES", "MAX_SQL_BYTES", "MAX_VALUE_BYTES",
           "Limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    """What one statement may be.

    Attributes:
        params: bound parameters per statement.
        sql_bytes: bytes of SQL text per statement.
        value_bytes: bytes in one string or BLOB value.
        pattern_bytes: bytes in one LIKE or GLOB pattern.
    """

    params: int
    sql_bytes: int
    value_bytes: int
    pattern_bytes: int


#: D1's limits, as Cloudflare publishes them.
D1_LIMITS = Limits(params=100, sql_bytes=100_000, value_bytes=2_000_000, pattern_bytes=50)

#: D1 refuses a statement with more bound parameters than this.
MAX_PARAMS = D1_LIMITS.params
#: D1 refuses a statement longer than this many bytes.
MAX_SQL_BYTES = D1_LIMITS.sql_bytes
#: D1 refuses a string or BLOB value longer than this many bytes.
MAX_VALUE_BYTES = D1_LIMITS.value_bytes
#: D1 refuses a LIKE or GLOB pattern longer than this many bytes.
MAX_PATTERN_BYTES = D1_LIMITS.pattern_bytes
#: The most one database may hold, per plan (decimal units, as Cloudflare states them).
MAX_DATABASE_BYTES = {"paid": 10_000_000_000, "free": 500_000_000}
#: D1 refuses a table with more columns than this.
MAX_COLUMNS = 100
