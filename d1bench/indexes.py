"""Index sets: put a database under one named set of secondary indexes.

An index set is declarative: after :func:`apply_index_set`, the database's
secondary indexes are exactly those the set creates, besides the indexes that
enforce keys and UNIQUE constraints (which no set touches).  So the same
corpus can be replayed under ``none`` (keys only), ``seed`` (seed 000's
indexes), or an advised ``.sql`` file, in any order: ``seed`` then ``none``
leaves keys only.

A set is a ``.sql`` text of ``CREATE [UNIQUE] INDEX`` / ``DROP INDEX``
statements (plus ``ANALYZE`` / ``PRAGMA optimize``), shipped ones in
``d1bench/schema/indexes/`` or a file of the user's, checked line by line by
:func:`d1bench.schema.index_set_sql`.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pandas as pd

from d1bench.dbfile import check_database, open_database
from d1bench.errors import UsageError
from d1bench.schema import index_set_sql, statements_with_lines

__all__ = ["APPLY_COLUMNS", "INDEX_COLUMNS", "apply_index_set", "current_indexes"]

#: Columns of what :func:`apply_index_set` returns.
APPLY_COLUMNS = ["action", "index", "table", "sql", "line"]
#: Columns of what :func:`current_indexes` returns.
INDEX_COLUMNS = ["name", "table", "columns", "unique", "partial", "origin", "bytes", "sql"]

_CREATE = re.compile(
    r"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>\"[^\"]+\"|`[^`]+`|\[[^\]]+\]|[\w.$]+)"
    r"\s+ON\s+(?P<table>\"[^\"]+\"|`[^`]+`|\[[^\]]+\]|[\w$]+)", re.IGNORECASE | re.DOTALL)
_DROP = re.compile(r"^\s*DROP\s+INDEX\s+(?:IF\s+EXISTS\s+)?(?P<name>\"[^\"]+\"|`[^`]+`|\[[^\]]+\]|[\w.$]+)",
                   re.IGNORECASE | re.DOTALL)


def _unquote(name: str) -> str:
    name = name.split(".")[-1] if not name.startswith(('"', "`", "[")) else name
    if name[:1] in ('"', "`", "[") and len(name) > 1:
        return name[1:-1]
    return name


def _normal(sql: str) -> str:
    """An index's CREATE statement in a canonical form, to compare definitions."""
    text = re.sub(r"(?i)\bIF\s+NOT\s+EXISTS\b", " ", sql.strip().rstrip(";"))
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s*([(),])\s*", r"\1", text)
    return text.lower()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def apply_index_set(db_path: str | os.PathLike[str], index_set: str | os.PathLike[str]) -> pd.DataFrame:
    """Give the database at ``db_path`` exactly the secondary indexes of ``index_set``.

    ``index_set`` is ``none``, ``seed`` (or another set shipped with d1bench)
    or the path of a ``.sql`` file.  In one transaction: every secondary index
    the set does not create is dropped (key and UNIQUE indexes stay), the
    set's statements run in order (an index whose definition changed is
    rebuilt), and, if the database already had statistics, each new index is
    analysed.  Then ``PRAGMA optimize`` runs, as Cloudflare advises after a
    schema change.

    Why ANALYZE: once ``sqlite_stat1`` exists, SQLite's planner trusts it; an
    index missing from it looks worse than it is and may be ignored, so a
    replay would measure the wrong plans.  A database that was never analysed
    stays that way (the planner's defaults treat all indexes alike) unless
    ``PRAGMA optimize`` decides otherwise, which is exactly what D1 would do.

    Returns one row per index touched: ``action`` (``created``, ``dropped``,
    ``rebuilt``, ``kept``), ``index``, ``table``, ``sql``, ``line`` (of the
    statement in the set, if it came from one).  Bad input raises
    :class:`~d1bench.errors.UsageError` naming the file and line.
    """
    import apsw

    path = check_database(db_path)
    text = index_set_sql(index_set)  # validates names and statement kinds
    source = str(index_set)
    statements = statements_with_lines(text)
    wanted: dict[str, tuple[str, str, int]] = {}  # name -> (table, sql, line)
    for line, statement in statements:
        m = _CREATE.match(statement)
        if m:
            wanted[_unquote(m.group("name"))] = (_unquote(m.group("table")), statement, line)
        elif (d := _DROP.match(statement)) is not None:
            wanted.pop(_unquote(d.group("name")), None)

    db = open_database(path, readonly=False)
    rows: list[dict[str, Any]] = []
    try:
        had_stats = bool(db.execute(
            "SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_stat1'").fetchall())
        existing = {name: (table, sql) for name, table, sql in db.execute(
            "SELECT name, tbl_name, sql FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL")}
        created: list[str] = []
        with db:  # one transaction: a failing statement leaves the database as it was
            for name, (table, sql) in sorted(existing.items()):
                want = wanted.get(name)
                if want is None:
                    db.execute(f"DROP INDEX {_quote(name)}")
                    rows.append({"action": "dropped", "index": name, "table": table, "sql": sql,
                                 "line": None})
                elif _normal(want[1]) != _normal(sql):
                    db.execute(f"DROP INDEX {_quote(name)}")
            for line, statement in statements:
                m = _CREATE.match(statement)
                name = _unquote(m.group("name")) if m else None
                if name is not None and name in existing and name in wanted and \
                        _normal(wanted[name][1]) == _normal(existing[name][1]):
                    rows.append({"action": "kept", "index": name, "table": wanted[name][0],
                                 "sql": existing[name][1], "line": line})
                    continue
                try:
                    db.execute(statement)
                except apsw.Error as exc:
                    raise UsageError(f"{source}:{line}: {exc.args[0] if exc.args else exc}") from None
                if name is not None:
                    action = "rebuilt" if name in existing else "created"
                    rows.append({"action": action, "index": name, "table": wanted.get(name, ("",))[0]
                                 or _unquote(m.group("table")), "sql": statement.strip(),
                                 "line": line})
                    created.append(name)
                elif (d := _DROP.match(statement)) is not None:
                    dropped = _unquote(d.group("name"))
                    if dropped in existing and not any(r["index"] == dropped for r in rows):
                        rows.append({"action": "dropped", "index": dropped,
                                     "table": existing[dropped][0], "sql": existing[dropped][1],
                                     "line": line})
            if had_stats:
                for name in created:
                    if name in wanted:  # a later DROP in the set may have removed it
                        db.execute(f"ANALYZE {_quote(name)}")
        db.pragma("optimize")
    finally:
        db.close()
    frame = pd.DataFrame(rows, columns=APPLY_COLUMNS)
    frame["line"] = frame["line"].astype("Int64")
    return frame


def current_indexes(db_path: str | os.PathLike[str]) -> pd.DataFrame:
    """The indexes of ``db_path``: one row each, keys and UNIQUE constraints included.

    Columns: ``name``, ``table``, ``columns`` (list; expressions appear as
    ``<expr>``), ``unique``, ``partial``, ``origin`` (``c`` created by CREATE
    INDEX, ``u`` a UNIQUE constraint, ``pk`` a PRIMARY KEY), ``bytes`` (from
    the ``dbstat`` table when SQLite has it; missing for the key of a WITHOUT
    ROWID table, which is the table itself) and ``sql``.
    """
    import apsw

    db = open_database(db_path)
    try:
        sizes: dict[str, int] = {}
        try:
            sizes = dict(db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"))
        except apsw.Error:
            pass
        sql_of = dict(db.execute("SELECT name, sql FROM sqlite_schema WHERE type = 'index'"))
        tables = [r[0] for r in db.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name")]
        rows = []
        for table in tables:
            for _seq, name, unique, origin, partial in db.execute(
                    f"PRAGMA index_list({_quote(table)})"):
                cols = [c[2] if c[2] is not None else "<expr>" for c in db.execute(
                    f"PRAGMA index_xinfo({_quote(name)})") if c[5]]
                rows.append({"name": name, "table": table, "columns": cols, "unique": bool(unique),
                             "partial": bool(partial), "origin": origin,
                             "bytes": sizes.get(name) if sizes else None, "sql": sql_of.get(name)})
    finally:
        db.close()
    frame = pd.DataFrame(rows, columns=INDEX_COLUMNS)
    frame["bytes"] = frame["bytes"].astype("Int64")  # None where dbstat has no b-tree of its own
    return frame
