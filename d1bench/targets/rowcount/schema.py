"""What the estimator needs to know about a database's schema: b-trees and virtual tables."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["schema_maps"]


def _quote(name: str) -> str:
    return name.replace('"', '""')


def schema_maps(db: Any) -> tuple[dict, dict]:
    """B-tree root pages and virtual-table handles of the schema ``db`` (an APSW connection) sees.

    ``btrees`` maps a root page to (name, table, partial index, index columns
    as table column numbers); ``vtabs`` maps a ``VOpen`` P4 to (table or
    module name, FTS5 column count or 0).
    """
    import apsw

    btrees = {}
    for root, name, table, kind, sql in db.execute(
            "SELECT rootpage, name, tbl_name, type, sql FROM sqlite_schema WHERE rootpage > 0"
            ).fetchall():
        partial = kind == "index" and bool(sql) and bool(re.search(r"\bWHERE\b", sql, re.IGNORECASE))
        columns: tuple[int, ...] = ()
        if kind == "index":
            columns = tuple(r[1] for r in db.execute(f'PRAGMA index_info("{_quote(name)}")'))
        btrees[root] = (name, table, partial, columns)
    vtabs = {}
    names = [(r[0], True) for r in db.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'")]
    for name, is_table in [*names, ("json_each", False), ("json_tree", False)]:
        try:
            ops = list(db.execute(f'EXPLAIN SELECT * FROM "{_quote(name)}"'))
            fts_cols = 0
            if is_table and _is_fts5(db, name):
                fts_cols = len(db.execute(f'PRAGMA table_info("{_quote(name)}")').fetchall())
        except apsw.Error:
            continue
        for op in ops:
            if op[1] == "VOpen":
                vtabs[str(op[5])] = (name, fts_cols)
    return btrees, vtabs


def _is_fts5(db: Any, name: str) -> bool:
    rows = db.execute("SELECT sql FROM sqlite_schema WHERE name = ?", (name,)).fetchall()
    return bool(rows) and bool(re.search(r"USING\s+fts5", rows[0][0] or "", re.IGNORECASE))
