"""``AFTER UPDATE ON t`` -> ``AFTER UPDATE OF <the columns it reads> ON t``.

A trigger that keeps an FTS index or a summary in step reads a few columns of
the row, but without ``OF`` it fires on every update of the table: an update
of a timestamp deletes and re-inserts the row's FTS entry, writing rows for
nothing.  Limited to the columns its body reads (``new.x`` / ``old.x``), it
does the same work whenever those change and none otherwise.  Checked by an
update of a column it does not read: the rows written before and after.
"""

from __future__ import annotations

import re
from typing import Any

from d1bench.fixer.model import Context, Rewrite, Skip, Trial

KIND = "trigger_of"

_HEAD = re.compile(r"^(?P<head>\s*CREATE\s+TRIGGER\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>\S+)\s+"
                   r"(?:AFTER|BEFORE)\s+UPDATE)\s+ON\s+(?P<table>\S+)", re.IGNORECASE)
_REFS = re.compile(r"\b(?:new|old)\s*\.\s*\"?(\w+)\"?", re.IGNORECASE)


def narrowed(sql: str, columns: list[str]) -> str | None:
    """The trigger's SQL with ``OF <columns>``; ``None`` if it is not a plain UPDATE trigger.

    >>> narrowed("CREATE TRIGGER t_au AFTER UPDATE ON t BEGIN SELECT new.a; END", ["a"])
    'CREATE TRIGGER t_au AFTER UPDATE OF a ON t BEGIN SELECT new.a; END'
    """
    m = _HEAD.match(sql)
    if m is None:
        return None
    return sql[:m.end("head")] + f" OF {', '.join(columns)} ON {m.group('table')}" + sql[m.end():]


def propose(name: str, ctx: Context) -> Rewrite | Skip | None:
    sql = ctx.catalog.triggers[name]
    m = _HEAD.match(sql or "")
    if m is None:
        return None
    table = m.group("table").strip('"')
    td = ctx.catalog.table(table)
    if td is None or td.kind != "table":
        return None
    body = sql[m.end():]
    read = [c for c in td.columns if c.lower() in {r.lower() for r in _REFS.findall(body)}]
    rowid = ctx.primary_key(table)
    others = [c for c in td.columns if c not in read and c not in rowid]
    if not read or not others:
        return Skip(KIND, name, "the trigger reads every column of its table: OF would not narrow it")
    new_sql = narrowed(sql, read)
    if new_sql is None:
        return None
    ddl = f"DROP TRIGGER IF EXISTS {m.group('name')};\n{new_sql.rstrip().rstrip(';')};"
    probe_col = others[0]
    key = " AND ".join(f"{k} = ?" for k in rowid)
    ids = [tuple(r) for r in ctx.conn.execute(
        f"SELECT {', '.join(rowid)} FROM {table} ORDER BY {', '.join(rowid)} LIMIT 5")]

    def trial(params: tuple, _conn: Any) -> Trial:
        update = f"UPDATE {table} SET {probe_col} = {probe_col} WHERE {key}"
        return Trial(before=tuple((update, i) for i in ids), after=tuple((update, i) for i in ids),
                     ordered=False)

    return Rewrite(KIND, name, new_sql, ddl, True,
                   f"{m.group('name')} fires on every update of {table} but reads only "
                   f"{', '.join(read)}: with OF it skips updates of other columns "
                   f"(measured: an update of {probe_col})", trial,
                   templates={}, writes=True)
