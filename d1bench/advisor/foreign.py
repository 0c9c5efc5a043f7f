"""Rows D1 reads for the foreign-key checks of a write, which no query plan shows.

D1 always enforces foreign keys (``PRAGMA foreign_keys`` cannot turn them off)
and the checks run inside the statement, so workerd counts the rows they read.
Measured on a local D1 (``tests/test_advisor_d1_rules.py`` holds the
statements and the counts):

* deleting a parent row, or changing its key, looks for its children in every
  table that references it: a seek on an index that begins with the child's
  column, which finds nothing (a delete that succeeds has no children left) and
  so reads nothing, or, when no index begins with that column, a scan of the
  whole child table for every parent row;
* inserting a child row, or changing its foreign-key column, looks the parent
  up: one row read per parent when the key is the parent's rowid, none when it
  is probed in an index (a composite or UNIQUE key; ``Found`` is not counted);
* a ``CHECK (col IN (...))`` constraint looks the value up in the list's b-tree:
  one row read per row written (not strictly a foreign key, but the same kind
  of read no plan shows);
* SQLite deletes a row while it scans (one pass) only when no foreign key or
  trigger is involved; otherwise it collects the rows first and seeks each one
  again, one more row read per row deleted, unless the WHERE pins one row.

EXPLAIN QUERY PLAN shows none of this, so the cost model adds it here, and an
index on a child's foreign-key column can be worth proposing to a workload that
never reads the child table at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from d1bench.advisor.query import QueryInfo
from d1bench.advisor.stats import Stats
from d1bench.sql.catalog import Catalog, ForeignKey, IndexDef

__all__ = ["check_lists", "child_keys", "children", "fk_reads", "fk_tables", "not_null_where",
           "serves_child"]


def children(catalog: Catalog, table: str) -> list[ForeignKey]:
    """The foreign keys of other tables (or of ``table`` itself) that reference ``table``."""
    table = table.lower()
    return [fk for fk in catalog.foreign_keys if fk.ref_table == table]


def _parent_columns(catalog: Catalog, fk: ForeignKey) -> set[str]:
    """The parent's columns ``fk`` points at (its primary key when the FK names none)."""
    if fk.ref_column:
        return {fk.ref_column.lower()}
    td = catalog.table(fk.ref_table)
    cols = {"rowid"}
    if td is not None and td.rowid_alias:
        cols.add(td.rowid_alias.lower())
    for idx in catalog.indexes_on(fk.ref_table):
        if idx.origin == "pk":
            cols.update(k.expr.lower() for k in idx.keys)
    return cols


def child_keys(catalog: Catalog, info: QueryInfo) -> list[ForeignKey]:
    """Foreign keys whose children a write must look for: those referencing the rows a
    DELETE removes, or the key columns an UPDATE changes."""
    if info.write_table is None or info.statement not in ("delete", "update"):
        return []
    fks = children(catalog, info.write_table)
    if info.statement == "delete":
        return fks
    changed = {c.lower() for c in info.set_columns}
    return [fk for fk in fks if _parent_columns(catalog, fk) & changed]


def not_null_where(column: str) -> str:
    """The WHERE of a partial index holding the rows whose ``column`` is set.

    SQLite knows that ``column = ?`` implies it, so such an index serves every
    equality on the column, a foreign-key check's probe for children included
    (checked on a local D1: ``tests/test_advisor_d1_rules.py``), in a fraction of
    the bytes when most rows leave the column NULL.

    >>> not_null_where("coupon_id")
    'coupon_id IS NOT NULL'
    """
    return f"{column} IS NOT NULL"


def serves_child(fk: ForeignKey, index: IndexDef) -> bool:
    """Can ``index`` find the children of one parent row for ``fk``'s check?"""
    return (index.table == fk.table and bool(index.keys)
            and (index.where is None
                 or index.where.strip().lower() == not_null_where(fk.column).lower())
            and index.keys[0].expr.lower() == fk.column.lower())


def _pk_served(catalog: Catalog, fk: ForeignKey) -> bool:
    td = catalog.table(fk.table)
    return td is not None and td.rowid_alias is not None and td.rowid_alias.lower() == fk.column.lower()


def fk_reads(catalog: Catalog, stats: Stats, info: QueryInfo, changed: float,
             indexes: Iterable[IndexDef], single_row: bool) -> float:
    """Rows the foreign-key checks of one execution of a write read (see the module docstring).

    Args:
        changed: rows the write inserts, updates or deletes.
        indexes: every index that exists (constraint indexes included).
        single_row: the WHERE pins at most one row (a rowid equality).
    """
    table = info.write_table
    if table is None or changed <= 0:
        return 0.0
    indexes = list(indexes)
    read = 0.0
    if info.statement == "insert" or info.statement == "update":
        own = [fk for fk in catalog.foreign_keys if fk.table == table]
        if info.statement == "update":
            set_cols = {c.lower() for c in info.set_columns}
            own = [fk for fk in own if fk.column.lower() in set_cols]
        # one parent lookup per foreign key per row, counted when it seeks the parent's
        # rowid; a parent key in an index is probed with Found, which D1 does not count
        parents = {fk.ref_table for fk in own if _rowid_parent(catalog, fk)}
        read += len(parents) * changed
        read += check_lists(catalog, table, info) * changed
    for fk in child_keys(catalog, info):
        if _pk_served(catalog, fk) or any(serves_child(fk, i) for i in indexes):
            continue  # a seek that finds no child reads nothing
        read += changed * stats.row_count(fk.table)
    if info.statement == "delete" and not single_row and _involved(catalog, table):
        read += changed  # no one-pass delete: every row is sought again
    return read


def _rowid_parent(catalog: Catalog, fk: ForeignKey) -> bool:
    td = catalog.table(fk.ref_table)
    if td is None or td.without_rowid:
        return False
    if fk.ref_column is None:
        return td.rowid_alias is not None
    return td.rowid_alias is not None and fk.ref_column.lower() == td.rowid_alias.lower()


_CHECK_IN = re.compile(r"(?is)\bCHECK\s*\(\s*\w+\s+IN\s*\(([^()]*)\)\s*\)")


def check_lists(catalog: Catalog, table: str, info: QueryInfo) -> int:
    """``CHECK (col IN (...))`` constraints a write evaluates per row: each looks its
    value up in the list's b-tree, one row read (measured on a local D1).  An UPDATE
    evaluates only those on the columns it sets.

    >>> import apsw
    >>> from d1bench.sql.catalog import read_catalog
    >>> from d1bench.advisor.query import analyze
    >>> db = apsw.Connection(":memory:")
    >>> _ = db.execute("CREATE TABLE t (k TEXT CHECK (k IN ('a', 'b', 'c')), v INTEGER)")
    >>> cat = read_catalog(db)
    >>> check_lists(cat, "t", analyze("INSERT INTO t VALUES ('a', 1)", cat))
    1
    >>> check_lists(cat, "t", analyze("UPDATE t SET v = 2", cat))
    0
    """
    td = catalog.table(table)
    if td is None or not td.sql:
        return 0
    found = 0
    for m in _CHECK_IN.finditer(td.sql):
        column = re.match(r"(?is)\s*CHECK\s*\(\s*(\w+)", m.group(0)[m.group(0).upper().index("CHECK"):])
        if info.statement == "update" and (column is None or column.group(1).lower() not in
                                           {c.lower() for c in info.set_columns}):
            continue
        if m.group(1).count(",") >= 1:
            found += 1
    return found


def _involved(catalog: Catalog, table: str) -> bool:
    return any(fk.table == table or fk.ref_table == table for fk in catalog.foreign_keys)


def fk_tables(catalog: Catalog, info: QueryInfo) -> Sequence[str]:
    """Child tables whose indexes can change what ``info``'s checks read."""
    return sorted({fk.table for fk in child_keys(catalog, info)})
