"""What a database is made of: tables, columns, keys, indexes, foreign keys.

Read once from ``sqlite_schema`` and SQLite's table-valued pragmas (all of
which D1 allows too), so that the lint and advisor stages never have to ask the
database about its shape again.  Index keys are kept as :class:`Key` values in
the canonical text the advisor also produces from queries, so an existing index
and a candidate with the same key compare equal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["Catalog", "ForeignKey", "IndexDef", "Key", "TableDef", "parse_create_index", "quote_ident",
           "read_catalog"]


@dataclass(frozen=True, slots=True, order=True)
class Key:
    """One key of an index: a column name, or an expression in canonical text.

    >>> Key("a").sql, Key("a", desc=True).sql
    ('a', 'a DESC')
    >>> Key("lower(title)").is_column
    False
    """

    expr: str
    desc: bool = False

    @property
    def is_column(self) -> bool:
        return re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.expr) is not None

    @property
    def sql(self) -> str:
        text = quote_ident(self.expr) if self.is_column else self.expr
        return f"{text} DESC" if self.desc else text


@dataclass(frozen=True, slots=True)
class IndexDef:
    """An index, existing or proposed.

    Attributes:
        table: the table it indexes.
        keys: its keys in order.
        where: the predicate of a partial index (SQLite text), else ``None``.
        name: its name (existing indexes keep theirs; candidates get one from
            :mod:`d1bench.sql.naming`).
        unique: a UNIQUE index.
        origin: ``"c"`` created by CREATE INDEX, ``"u"`` by a UNIQUE
            constraint, ``"pk"`` by a PRIMARY KEY, ``"advised"`` for a candidate.
    """

    table: str
    keys: tuple[Key, ...]
    where: str | None = None
    name: str = ""
    unique: bool = False
    origin: str = "advised"

    @property
    def shape(self) -> tuple[str, tuple[Key, ...], str | None]:
        """What the planner sees: table, keys and predicate, without the name."""
        return (self.table, self.keys, self.where)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(k.expr for k in self.keys)

    @property
    def droppable(self) -> bool:
        """Indexes made by constraints can only go with the table."""
        return self.origin == "c"

    def create_sql(self, name: str | None = None, *, if_not_exists: bool = True) -> str:
        """``CREATE INDEX`` text for this index (under ``name`` if given)."""
        keys = ", ".join(k.sql for k in self.keys)
        head = "CREATE UNIQUE INDEX" if self.unique else "CREATE INDEX"
        if if_not_exists:
            head += " IF NOT EXISTS"
        where = f" WHERE {self.where}" if self.where else ""
        return f"{head} {quote_ident(name or self.name)} ON {quote_ident(self.table)} ({keys}){where}"

    def describe(self) -> str:
        """``table(a, b DESC) WHERE ...``, for messages."""
        where = f" WHERE {self.where}" if self.where else ""
        return f"{self.table}({', '.join(k.sql for k in self.keys)}){where}"

    def is_prefix_of(self, other: IndexDef) -> bool:
        """Every lookup this index serves, ``other`` serves as well (same table and predicate)."""
        return (self.table == other.table and self.where == other.where
                and len(self.keys) <= len(other.keys)
                and other.keys[: len(self.keys)] == self.keys)


@dataclass(frozen=True, slots=True)
class ForeignKey:
    """``table.column`` references ``ref_table.ref_column``."""

    table: str
    column: str
    ref_table: str
    ref_column: str | None


@dataclass(frozen=True, slots=True)
class TableDef:
    """A table or view.

    Attributes:
        name: its name as created.
        kind: ``"table"``, ``"view"``, ``"virtual"`` (FTS5 and other modules).
        columns: column names in order.
        sql: its ``CREATE`` statement.
        rowid_alias: the INTEGER PRIMARY KEY column, if it has one.
        without_rowid: a WITHOUT ROWID table.
        module: the virtual table module (``fts5``), else ``None``.
        nocase: columns declared ``COLLATE NOCASE`` (LIKE can use their indexes).
    """

    name: str
    kind: str
    columns: tuple[str, ...]
    sql: str
    rowid_alias: str | None = None
    without_rowid: bool = False
    module: str | None = None
    nocase: frozenset[str] = frozenset()

    @property
    def is_fts(self) -> bool:
        return (self.module or "").startswith("fts")


@dataclass(frozen=True, slots=True)
class Catalog:
    """The shape of one database (see :func:`read_catalog`)."""

    tables: Mapping[str, TableDef]
    indexes: tuple[IndexDef, ...]
    foreign_keys: tuple[ForeignKey, ...]
    triggers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def table(self, name: str) -> TableDef | None:
        """The table (or view) called ``name``, case-insensitively."""
        return self.tables.get(name.lower())

    def indexes_on(self, table: str) -> list[IndexDef]:
        return [i for i in self.indexes if i.table == table.lower()]

    @property
    def real_tables(self) -> list[TableDef]:
        return [t for t in self.tables.values() if t.kind == "table"]

    def column_table(self, column: str, among: Iterable[str]) -> str | None:
        """The single table among ``among`` that has ``column``, if exactly one has."""
        found = [t for t in among if (td := self.table(t)) and column.lower() in
                 {c.lower() for c in td.columns}]
        return found[0] if len(found) == 1 else None


def quote_ident(name: str) -> str:
    """``name`` as an SQL identifier, quoted only when it has to be.

    >>> quote_ident("title"), quote_ident("order"), quote_ident('a"b')
    ('title', '"order"', '"a""b"')
    """
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and name.upper() not in _RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


# Words that must be quoted when used as identifiers (the ones likely in schemas).
_RESERVED = {"ORDER", "GROUP", "INDEX", "TABLE", "SELECT", "WHERE", "FROM", "KEY", "VALUES",
             "DEFAULT", "CHECK", "REFERENCES", "LIMIT", "OFFSET", "TO", "AS", "BY", "IN",
             "IS", "NOT", "NULL", "AND", "OR", "ON", "JOIN", "UNION", "CASE", "WHEN", "END"}


def read_catalog(conn: Any) -> Catalog:
    """Read the schema of the ``main`` database of an APSW or sqlite3 connection."""
    rows = list(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_schema"))
    kinds = {r[0]: r[1] for r in conn.execute("SELECT name, type FROM pragma_table_list "
                                                "WHERE schema = 'main'")}
    tables: dict[str, TableDef] = {}
    triggers: dict[str, str] = {}
    index_rows = []
    for typ, name, tbl_name, sql in rows:
        if typ == "trigger":
            triggers[name] = sql or ""
        if typ == "index":
            index_rows.append((name, tbl_name, sql))
        if typ not in ("table", "view") or name.startswith("sqlite_"):
            continue
        kind = kinds.get(name, typ)
        if kind == "shadow":
            continue
        cols = [r for r in conn.execute("SELECT cid, name, type, pk, hidden FROM pragma_table_xinfo(?)",
                                        (name,))]
        names = tuple(r[1] for r in cols if r[4] in (0, 2, 3))
        pk_cols = [r for r in cols if r[3]]
        rowid_alias = None
        without_rowid = bool(sql and re.search(r"(?i)\)\s*WITHOUT\s+ROWID", sql))
        if kind == "table" and len(pk_cols) == 1 and (pk_cols[0][2] or "").upper() == "INTEGER" \
                and not without_rowid:
            rowid_alias = pk_cols[0][1]
        module = None
        if kind == "virtual" and sql:
            m = re.search(r"(?i)\bUSING\s+(\w+)", sql)
            module = m.group(1).lower() if m else None
        nocase = frozenset(c for c in names if sql and re.search(
            rf"(?is)\b{re.escape(c)}\b[^,]*?\bCOLLATE\s+NOCASE", sql))
        tables[name.lower()] = TableDef(name=name, kind=kind, columns=names, sql=sql or "",
                                        rowid_alias=rowid_alias, without_rowid=without_rowid,
                                        module=module, nocase=nocase)
    indexes = []
    for table in [t for t in tables.values() if t.kind == "table"]:
        for _seq, iname, unique, origin, partial in conn.execute(
                "SELECT seq, name, \"unique\", origin, partial FROM pragma_index_list(?)",
                (table.name,)):
            sql = next((r[2] for r in index_rows if r[0] == iname), None)
            indexes.append(_index_def(conn, table.name.lower(), iname, bool(unique), origin, sql))
    fks = []
    for table in [t for t in tables.values() if t.kind == "table"]:
        for row in conn.execute("SELECT \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?)",
                                (table.name,)):
            fks.append(ForeignKey(table.name.lower(), row[1], row[0].lower(), row[2]))
    return Catalog(MappingProxyType(tables), tuple(indexes), tuple(fks),
                   MappingProxyType(triggers))


def _index_def(conn: Any, table: str, name: str, unique: bool, origin: str,
               sql: str | None) -> IndexDef:
    keys: list[Key] = []
    where = None
    parsed = parse_create_index(sql) if sql else None
    if parsed is not None:
        keys, where = parsed
    else:
        for _seqno, cid, cname, desc, _coll, is_key in conn.execute(
                "SELECT seqno, cid, name, desc, coll, key FROM pragma_index_xinfo(?)", (name,)):
            if not is_key or cid == -1:
                continue
            keys.append(Key(cname if cname is not None else f"expr{cid}", bool(desc)))
    return IndexDef(table=table, keys=tuple(keys), where=where, name=name, unique=unique,
                    origin=origin)


def parse_create_index(sql: str) -> tuple[list[Key], str | None] | None:
    """Keys and WHERE of a CREATE INDEX statement, in the advisor's canonical text."""
    from sqlglot import exp

    from d1bench.sql.parsing import canonical_key, parse_statement

    try:
        tree = parse_statement(sql)
    except ValueError:
        return None
    if not isinstance(tree, exp.Create):
        return None
    index = tree.this
    params = index.args.get("params") if isinstance(index, exp.Index) else None
    if params is None:
        return None
    keys = []
    for col in params.args.get("columns") or []:
        node = col.this if isinstance(col, exp.Ordered) else col
        desc = bool(col.args.get("desc")) if isinstance(col, exp.Ordered) else False
        if isinstance(node, exp.Ordered):  # some sqlglot versions nest Ordered
            desc = desc or bool(node.args.get("desc"))
            node = node.this
        keys.append(Key(canonical_key(node), desc))
    where_node = params.args.get("where")
    where = None
    if where_node is not None:
        from d1bench.sql.parsing import render_predicate

        where = render_predicate(where_node.this)
    return keys, where
