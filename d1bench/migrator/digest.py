"""The validation checksum: per-row hashes summed, the same on both sides of a migration.

Both sides hash rows as Python values (the source's after the type rules,
the target's as SQLite returns them), so equal stored values give equal
hashes whatever engine they came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["MASK", "batch_digest", "row_digest", "table_digest"]

MASK = (1 << 64) - 1


def row_digest(row: Sequence[Any]) -> int:
    """A row's contribution to its table's checksum: the same for equal stored values.

    Values compare as SQLite returns them (an INTEGER 1 and a REAL 1.0 are one
    number, text and BLOB differ), and the per-row hashes are summed, so the
    order rows come in does not matter and a duplicated row does.  Python's
    hash is salted per process: both sides are hashed in the same process.
    """
    return hash(tuple(row))


def batch_digest(rows: Iterable[tuple[Any, ...]]) -> int:
    """The sum of :func:`row_digest` over ``rows`` (tuples), modulo 2**64."""
    return sum(map(hash, rows)) & MASK


def table_digest(rows: Iterable[Sequence[Any]]) -> tuple[int, int]:
    """(row count, checksum) of ``rows``."""
    total = count = 0
    for row in rows:
        total = (total + hash(tuple(row))) & MASK
        count += 1
    return count, total
