"""Samplers for the ``?`` of a production query, inferred from its SQL and the database.

Insights keep only the shape of each query, never its values, so every
placeholder needs a sampler.  Its place in the statement says what fits:

=====================================  =============================================
``col = ?``, ``col <> ?``, ``SET col = ?``  ``column`` over col (existing values, as often as
                                        they occur); ``id`` for an integer primary key
``col < ?``, ``BETWEEN ? AND ?``        ``column``: values from the column's own distribution
``col LIKE ?``                          ``prefix`` of col's values, ``format = "{}%"``
``col IN (?, ?)``                       ``column`` for each
``fts MATCH ?``                         ``term`` from the indexed text
``LIMIT ?`` / ``OFFSET ?``              a small ``int``
``INSERT ... VALUES (?)``               ``column`` of the inserted column (NULL for an
                                        integer primary key, so SQLite numbers the row)
=====================================  =============================================

Anything else (a value compared with an expression, a function's argument)
is *unresolved*: it gets a placeholder sampler and a reason, for the user to
fill in.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Guess", "Schema", "infer_params"]

#: What ``LIMIT ?`` and ``OFFSET ?`` draw when production did not say.
LIMIT_RANGE = (1, 50)
OFFSET_CHOICES = (0, 20, 40, 100)


@dataclass(frozen=True, slots=True)
class Guess:
    """One placeholder's sampler (as a TOML-ready dict) and how it was found.

    Attributes:
        spec: the sampler, e.g. ``{"sampler": "column", "table": "users", "column": "email"}``.
        why: the context it came from (``users.email = ?``), for the file's comments.
        resolved: False when nothing could be inferred and ``spec`` is a stand-in.
    """

    spec: dict[str, Any]
    why: str
    resolved: bool = True


@dataclass
class Schema:
    """The tables of the database a workload is inferred for: columns, keys, FTS5 tables."""

    columns: dict[str, list[str]] = field(default_factory=dict)
    int_pk: dict[str, str] = field(default_factory=dict)  # table -> its INTEGER PRIMARY KEY
    fts: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # fts -> (source, cols)

    @classmethod
    def read(cls, conn: sqlite3.Connection) -> Schema:
        """Read from an open SQLite connection."""
        out = cls()
        rows = conn.execute("SELECT name, sql FROM sqlite_schema WHERE type IN ('table', 'view') "
                            "AND name NOT LIKE 'sqlite_%'").fetchall()
        for name, sql in rows:
            info = conn.execute(f'PRAGMA table_info("{name.replace(chr(34), chr(34) * 2)}")').fetchall()
            out.columns[name.lower()] = [r[1] for r in info]
            pks = [r for r in info if r[5]]
            if len(pks) == 1 and str(pks[0][2]).upper() == "INTEGER" and "WITHOUT ROWID" not in \
                    (sql or "").upper():
                out.int_pk[name.lower()] = pks[0][1]
            m = re.search(r"(?is)USING\s+fts5\s*\((.*)\)", sql or "")
            if m:
                content = re.search(r"(?i)content\s*=\s*['\"]?(\w+)", m.group(1))
                cols = [c[1] for c in info]
                source = content.group(1) if content and content.group(1) else name
                out.fts[name.lower()] = (source, cols)
        return out

    def has(self, table: str, column: str) -> bool:
        return column.lower() in (c.lower() for c in self.columns.get(table.lower(), []))

    def spelled(self, table: str, column: str) -> str:
        """The column's name as the table spells it."""
        for c in self.columns.get(table.lower(), []):
            if c.lower() == column.lower():
                return c
        return column


def infer_params(sql: str, schema: Schema) -> list[Guess]:
    """One :class:`Guess` per placeholder of ``sql``, in placeholder order.

    >>> s = Schema(columns={"users": ["id", "email", "created_at"]}, int_pk={"users": "id"})
    >>> [g.spec["sampler"] for g in infer_params(
    ...     "SELECT * FROM users WHERE email LIKE ? AND created_at > ? AND id IN (?, ?) LIMIT ?", s)]
    ['prefix', 'column', 'id', 'id', 'int']
    """
    import sqlglot
    from sqlglot import exp

    from d1bench.sql.text import quiet_sqlglot

    with quiet_sqlglot():
        tree = sqlglot.parse_one(sql, read="sqlite")
    aliases: dict[str, str] = {}
    for t in tree.find_all(exp.Table):
        aliases[(t.alias_or_name or t.name).lower()] = t.name
        aliases[t.name.lower()] = t.name
    tables = list(dict.fromkeys(aliases.values()))
    guesses: dict[int, Guess] = {}
    for k, node in enumerate(tree.find_all(exp.Placeholder)):
        guesses[k] = _guess(node, tree, aliases, tables, schema, exp)
        node.replace(exp.column(f"d1bench_ph_{k}"))
    with quiet_sqlglot():
        rendered = tree.sql(dialect="sqlite")
    order = [int(m) for m in re.findall(r"\bd1bench_ph_(\d+)\b", rendered)]
    return [guesses[k] for k in order]


def _column(node: Any, aliases: dict[str, str], tables: list[str], schema: Schema,
            exp: Any) -> tuple[str, str] | None:
    """``(table, column)`` for a Column node: by its qualifier, else the first table that has it."""
    if not isinstance(node, exp.Column):
        return None
    name = node.name
    if node.table:
        table = aliases.get(node.table.lower(), node.table)
        return (table, schema.spelled(table, name)) if schema.has(table, name) else None
    for table in tables:
        if schema.has(table, name):
            return table, schema.spelled(table, name)
    return None


def _value_sampler(table: str, column: str, schema: Schema, op: str) -> dict[str, Any]:
    if op == "=" and schema.int_pk.get(table.lower(), "").lower() == column.lower():
        return {"sampler": "id", "table": table, "column": column}
    return {"sampler": "column", "table": table, "column": column}


def _guess(node: Any, tree: Any, aliases: dict[str, str], tables: list[str], schema: Schema,
           exp: Any) -> Guess:
    parent = node.parent

    def col(n: Any) -> tuple[str, str] | None:
        return _column(n, aliases, tables, schema, exp)

    if isinstance(parent, exp.Limit):
        lo, hi = LIMIT_RANGE
        return Guess({"sampler": "int", "min": lo, "max": hi}, "LIMIT ?")
    if isinstance(parent, exp.Offset):
        return Guess({"sampler": "choice", "values": list(OFFSET_CHOICES)}, "OFFSET ?")
    ops = {exp.EQ: "=", exp.NEQ: "<>", exp.GT: ">", exp.GTE: ">=", exp.LT: "<", exp.LTE: "<=",
           exp.Is: "IS"}
    for cls, op in ops.items():
        if isinstance(parent, cls):
            other = parent.left if parent.right is node else parent.right
            found = col(other)
            if found:
                table, column = found
                kind = "=" if op in ("=", "<>", "IS") else "range"
                return Guess(_value_sampler(table, column, schema, "=" if kind == "=" else op),
                             f"{table}.{column} {op} ?")
            return _unresolved(f"compared with {_text(other)}, not a column")
    if isinstance(parent, exp.Like | exp.ILike) and parent.expression is node:
        found = col(parent.this)
        if found:
            table, column = found
            return Guess({"sampler": "prefix", "table": table, "column": column, "length": 3,
                          "format": "{}%"}, f"{table}.{column} LIKE ? (a prefix)")
        return _unresolved(f"LIKE over {_text(parent.this)}, not a column")
    if isinstance(parent, exp.In):
        found = col(parent.this)
        if found:
            table, column = found
            return Guess(_value_sampler(table, column, schema, "="), f"{table}.{column} IN (...)")
        return _unresolved(f"IN list over {_text(parent.this)}, not a column")
    if isinstance(parent, exp.Between):
        found = col(parent.this)
        if found:
            table, column = found
            return Guess({"sampler": "column", "table": table, "column": column},
                         f"{table}.{column} BETWEEN (the {parent.args.get('low') is node and 'low' or 'high'} bound; "
                         "drawn independently, so some windows are empty)")
    if type(parent).__name__ == "Match":
        target = parent.this
        name = (target.name if isinstance(target, exp.Column | exp.Table) else "").lower()
        name = aliases.get(name, name).lower()
        if name in schema.fts:
            source, cols = schema.fts[name]
            return Guess({"sampler": "term", "table": source, "columns": cols},
                         f"{name} MATCH ? (terms of {source})")
        return _unresolved(f"MATCH over {_text(target)}, not a known FTS5 table")
    if isinstance(parent, exp.Tuple) and isinstance(parent.parent, exp.Values):
        insert = parent.parent.parent
        if isinstance(insert, exp.Insert):
            return _insert_value(node, parent, insert, schema, exp)
    return _unresolved(f"a value inside {_text(parent)}")


def _insert_value(node: Any, row: Any, insert: Any, schema: Schema, exp: Any) -> Guess:
    target = insert.this
    table = target.this.name if isinstance(target, exp.Schema) else target.name
    columns = ([c.name for c in target.expressions] if isinstance(target, exp.Schema)
               else schema.columns.get(table.lower(), []))
    index = next(i for i, e in enumerate(row.expressions) if e is node)
    if index >= len(columns) or not schema.has(table, columns[index]):
        return _unresolved(f"value {index + 1} of an INSERT into {table}")
    column = schema.spelled(table, columns[index])
    if schema.int_pk.get(table.lower(), "").lower() == column.lower():
        return Guess({"sampler": "fixed", "value": 0, "null_probability": 1.0},
                     f"{table}.{column}, the integer key: NULL, so SQLite numbers the row")
    return Guess({"sampler": "column", "table": table, "column": column},
                 f"inserted into {table}.{column} (existing values)")


def _unresolved(reason: str) -> Guess:
    return Guess({"sampler": "fixed", "value": ""}, f"FILL IN: {reason}", resolved=False)


def _text(node: Any) -> str:
    try:
        text = node.sql(dialect="sqlite")
    except Exception:  # noqa: BLE001 - only a label
        text = type(node).__name__
    return text if len(text) <= 60 else text[:57] + "..."
