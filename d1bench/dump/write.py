"""Writing a SQLite database as a D1 export dump, byte for byte in the format
``wrangler d1 export`` and Miniflare produce.

The format (Miniflare's ``dumpSql``, the code D1 runs): ``PRAGMA
defer_foreign_keys=TRUE;``, then per table its ``CREATE TABLE`` (``CREATE TABLE
IF NOT EXISTS`` when the name was quoted) and one ``INSERT INTO "t"
("c1","c2") VALUES(...);`` per row, then indexes, triggers and views; no
BEGIN/COMMIT.  Strings double their quotes, and a newline or carriage return
becomes ``\\n`` / ``\\r`` inside ``replace('...','\\n',char(10))``; BLOBs are
``X'..'``.  ``_cf_*`` and ``sqlite_*`` tables are skipped; a database with a
virtual table cannot be exported, as on D1.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from d1bench.errors import UsageError

__all__ = ["dump_lines", "quote_value", "write_dump"]


def _id(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_value(value: Any) -> str:
    """One cell as D1's dump writes it.

    >>> quote_value(None), quote_value(3), quote_value(b"\\x01\\xff"), quote_value("it's")
    ('NULL', '3', "X'01ff'", "'it''s'")
    >>> print(quote_value("a\\nb"))
    replace('a\\nb','\\n',char(10))
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # JavaScript's Number#toString: integral floats print without ".0"
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"X'{bytes(value).hex()}'"
    text = str(value)
    lf, cr = "\n" in text, "\r" in text
    out = "'" + text.replace("'", "''").replace("\n", "\\n").replace("\r", "\\r") + "'"
    if cr:
        out = f"replace({out},'\\r',char(13))"
    if lf:
        out = f"replace({out},'\\n',char(10))"
    return out


def dump_lines(conn: sqlite3.Connection, *, tables: list[str] | None = None,
               virtual: str = "refuse") -> Iterator[str]:
    """The statements of the dump of ``conn``, one string each (no newline).

    ``virtual="schema"`` writes a virtual table's CREATE statement (and none of
    its rows or shadow tables) where D1 would refuse the export: the dump a
    user gets by exporting without their FTS5 table and adding its DDL back,
    which ``import`` then rebuilds from the content table.
    """
    yield "PRAGMA defer_foreign_keys=TRUE;"
    rows = conn.execute("SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND sql NOT NULL "
                        "ORDER BY tbl_name = 'sqlite_sequence', rowid").fetchall()
    wanted = set(tables or ())
    virtuals = [name for name, sql in rows if sql.startswith("CREATE VIRTUAL TABLE")]
    deferred: list[str] = []
    for name, sql in rows:
        if wanted and name not in wanted:
            continue
        if virtual == "schema" and (name in virtuals
                                    or any(name.startswith(f"{v}_") for v in virtuals)):
            if name in virtuals:
                deferred.append(f"{sql};")
            continue
        if name == "sqlite_sequence":
            yield "DELETE FROM sqlite_sequence;"
        elif name.startswith("sqlite_stat"):
            yield "ANALYZE sqlite_schema;"
        else:
            if sql.startswith("CREATE VIRTUAL TABLE"):
                raise UsageError(f"table {name} is a virtual table: D1 cannot export a database "
                                 "with virtual tables (fts5), and neither does this")
            if name.startswith(("_cf_", "sqlite_")):
                continue
            quoted = sql.startswith(("CREATE TABLE '", 'CREATE TABLE "'))
            yield f"CREATE TABLE IF NOT EXISTS {sql[13:]};" if quoted else f"{sql};"
        cols = [r[1] for r in conn.execute(f"PRAGMA table_info={_id(name)}")]
        names = ",".join(_id(c) for c in cols)
        head = f"INSERT INTO {_id(name)} ({names}) VALUES("
        select = f"SELECT {', '.join(_id(c) for c in cols)} FROM {_id(name)}"
        for row in conn.execute(select):
            yield head + ",".join(map(quote_value, row)) + ");"
    yield from deferred
    for name, sql in conn.execute("SELECT name, sql FROM sqlite_schema WHERE sql NOT NULL AND "
                                  "type IN ('index', 'trigger', 'view') ORDER BY type COLLATE NOCASE"):
        if not wanted or name in wanted:
            yield f"{sql};"


def write_dump(db: str | os.PathLike[str], out: str | os.PathLike[str], *,
               force: bool = False, virtual: str = "refuse") -> Path:
    """Write the D1 export dump of the SQLite database ``db`` to ``out``
    (atomically: a temporary file renamed into place); ``virtual`` as for
    :func:`dump_lines`."""
    from d1bench._atomic import publish
    from d1bench.corpus.build import check_destination

    src = Path(db)
    if not src.is_file():
        raise UsageError(f"{src}: no such database file")
    path = check_destination(out, force)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    conn = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            # wrangler joins the statements with newlines, with none after the last
            first = True
            for line in dump_lines(conn, virtual=virtual):
                fh.write(line if first else "\n" + line)
                first = False
        publish(tmp, path, force=force)
    finally:
        conn.close()
        tmp.unlink(missing_ok=True)
    return path
