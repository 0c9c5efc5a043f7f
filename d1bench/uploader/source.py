"""What an upload copies, read from the source database itself: any SQLite schema.

Tables come in an order D1 accepts (each after the tables its foreign keys
name: D1 enforces foreign keys on every batch), FTS5 tables with what they
index, and the indexes, triggers and views to create once the rows are in.
What D1 refuses is found here, before anything is sent, each with its fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from d1bench.errors import UsageError
from d1bench.sql.limits import MAX_COLUMNS
from d1bench.uploader.packing import Table, quote

__all__ = ["FtsTable", "SourceSchema", "read_source_schema"]

_FTS5 = re.compile(r"(?is)^\s*CREATE\s+VIRTUAL\s+TABLE\s+.*?\bUSING\s+fts5\s*\((.*)\)\s*$")
_VIRTUAL = re.compile(r"(?is)^\s*CREATE\s+VIRTUAL\s+TABLE\s+.*?\bUSING\s+(\w+)")
_OPTION = r"(?is)(?:^|,)\s*{name}\s*=\s*(?:'((?:[^']|'')*)'|\"([^\"]*)\"|(\w+))"


@dataclass(frozen=True, slots=True)
class FtsTable:
    """An FTS5 table: its DDL, and the table its text lives in.

    Attributes:
        name: the FTS5 table.
        sql: its CREATE VIRTUAL TABLE statement.
        content: the external-content table (rebuilt from it after the rows are
            in), or ``None`` when the FTS table holds its own text (copied as rows).
        content_rowid: the content table's key column (``rowid`` by default).
        columns: the indexed columns.
    """

    name: str
    sql: str
    content: str | None
    content_rowid: str
    columns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SourceSchema:
    """Everything an upload creates and copies, in order.

    Attributes:
        tables: the tables whose rows are copied (FTS5 tables with their own
            text among them), parents before children.
        creates: CREATE TABLE / CREATE VIRTUAL TABLE statements, in that order.
        fts: the FTS5 tables.
        indexes, triggers, views: their CREATE statements, made idempotent.
    """

    tables: tuple[Table, ...]
    creates: tuple[str, ...]
    fts: tuple[FtsTable, ...]
    indexes: tuple[str, ...]
    triggers: tuple[str, ...]
    views: tuple[str, ...]

    @property
    def trigger_names(self) -> tuple[str, ...]:
        return tuple(_name_of(sql) for sql in self.triggers)


def _option(args: str, name: str) -> str | None:
    m = re.search(_OPTION.format(name=name), args)
    if not m:
        return None
    return next(g for g in m.groups() if g is not None).replace("''", "'")


def _if_not_exists(sql: str, kind: str) -> str:
    pattern = rf"(?is)^\s*CREATE\s+((?:UNIQUE\s+|VIRTUAL\s+)?){kind}\s+(?!IF\s+NOT\s+EXISTS)"
    return re.sub(pattern, lambda m: f"CREATE {m.group(1)}{kind} IF NOT EXISTS ", sql, count=1)


def _name_of(sql: str) -> str:
    m = re.search(r'(?is)^\s*CREATE\s+\w+\s+(?:IF\s+NOT\s+EXISTS\s+)?("(?:[^"]|"")*"|\S+)', sql)
    return m.group(1).strip('"') if m else ""


def read_source_schema(source: Any, path: Path) -> SourceSchema:
    """Read the schema of the source database (an APSW connection opened read-only)."""
    rows = list(source.execute("SELECT type, name, tbl_name, sql FROM sqlite_schema "
                               "WHERE sql IS NOT NULL ORDER BY rowid"))
    problems: list[str] = []
    fts: list[FtsTable] = []
    shadow: set[str] = set()
    for kind, name, _tbl, sql in rows:
        if kind != "table" or not sql.lstrip().upper().startswith("CREATE VIRTUAL"):
            continue
        m = _FTS5.match(sql)
        if m is None:
            module = _VIRTUAL.match(sql)
            problems.append(f"table {name}: D1 refuses virtual tables USING "
                            f"{module.group(1) if module else '?'} (only FTS5 is allowed): "
                            "drop it from the copy you upload, or rebuild it as an FTS5 table "
                            "or a plain table")
            continue
        args = m.group(1)
        content = _option(args, "content")
        if content == "":
            problems.append(f"table {name}: a contentless FTS5 table (content='') keeps no text "
                            "to copy: create it on D1 and index your rows there")
            continue
        columns = tuple(r[1] for r in source.execute(f"PRAGMA table_info({quote(name)})"))
        fts.append(FtsTable(name, sql, content, _option(args, "content_rowid") or "rowid",
                            columns))
        shadow |= {f"{name}_{part}" for part in ("data", "idx", "content", "docsize", "config")}
    plain = [(name, sql) for kind, name, _t, sql in rows
             if kind == "table" and name not in shadow and not name.startswith(("sqlite_", "_cf_"))
             and not sql.lstrip().upper().startswith("CREATE VIRTUAL")]
    tables: dict[str, Table] = {}
    parents: dict[str, set[str]] = {}
    for name, sql in plain:
        info = list(source.execute(f"PRAGMA table_info({quote(name)})"))
        if len(info) > MAX_COLUMNS:
            problems.append(f"table {name}: {len(info)} columns, over D1's {MAX_COLUMNS}: "
                            "split it into tables of at most 100 columns")
        columns = tuple(r[1] for r in info)
        without = bool(re.search(r"(?is)\)\s*(?:STRICT\s*,\s*)?WITHOUT\s+ROWID\s*(?:,\s*STRICT)?\s*;?\s*$",
                                 sql))
        pks = sorted((r[5], r[1]) for r in info if r[5])
        alias = len(pks) == 1 and str(next(r[2] for r in info if r[5]).upper()) == "INTEGER"
        tables[name] = Table(name, columns, explicit_rowid=not alias and not without,
                             key=tuple(c for _, c in pks) if without else ())
        parents[name] = {r[2] for r in source.execute(f"PRAGMA foreign_key_list({quote(name)})")}
    for f in fts:
        if f.content is None:  # it holds its own text: copy its rows like a table's
            tables[f.name] = Table(f.name, f.columns, explicit_rowid=True)
            parents[f.name] = set()
        elif f.content not in tables:
            problems.append(f"table {f.name}: its content table {f.content!r} is not in the "
                            "database: add it, or drop the FTS5 table")
    if problems:
        raise UsageError(f"{path}: D1 would refuse {len(problems)} thing(s):\n  "
                         + "\n  ".join(problems))
    order = _parents_first(list(tables), parents)
    sql_of = dict(plain) | {f.name: f.sql for f in fts}
    creates = [_if_not_exists(sql_of[n], "TABLE") for n in order if n in dict(plain)]
    creates += [_if_not_exists(f.sql, "TABLE") for f in fts]

    def pick(kind: str) -> tuple[str, ...]:
        return tuple(_if_not_exists(sql, kind.upper()) for k, _n, _t, sql in rows if k == kind)

    return SourceSchema(tuple(tables[n] for n in order), tuple(creates), tuple(fts),
                        pick("index"), pick("trigger"), pick("view"))


def _parents_first(names: list[str], parents: dict[str, set[str]]) -> list[str]:
    """Tables ordered so each comes after the tables it references, otherwise in
    the source's creation order (a cycle keeps creation order).

    >>> _parents_first(["b", "a", "c"], {"b": {"a"}, "a": set(), "c": {"c"}})
    ['a', 'b', 'c']
    """
    done: list[str] = []
    left = list(names)
    while left:
        ready = [n for n in left if not (parents.get(n, set()) - {n}) & set(left)]
        chosen = ready[0] if ready else left[0]
        done.append(chosen)
        left.remove(chosen)
    return done
