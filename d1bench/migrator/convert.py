"""Source catalog -> SQLite/D1 DDL, and the conversion report the user reads first.

The DDL is built from the catalog records, not by passing the source's own
CREATE TABLE through sqlglot (which has carried ``GENERATED ... AS IDENTITY``
through unchanged): only expressions (CHECKs, defaults) go through
:func:`~d1bench.migrator.sqlfix.transpile`.  Every decision, carried or not,
becomes one row of the report; the whole DDL is then run on an in-memory
SQLite and passed through d1bench's D1 check before anything else happens.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from d1bench.errors import UsageError
from d1bench.migrator.model import SourceTable
from d1bench.migrator.sqlfix import transpile
from d1bench.migrator.types import TypeRule, rule_for
from d1bench.uploader.packing import quote

__all__ = ["Conversion", "TablePlan", "convert", "frame_markdown", "load_order"]

REPORT_COLUMNS = ("table", "column", "kind", "source", "target", "decision")


@dataclass(frozen=True)
class TablePlan:
    """How one table is copied: its target name and columns, their rules, the key to order by."""

    source: SourceTable
    name: str
    columns: tuple[str, ...]
    rules: tuple[TypeRule, ...]
    key: tuple[str, ...]  # source column names; empty: no key (copied whole, restarted whole)
    ddl: tuple[str, ...]  # CREATE TABLE, then its indexes
    sequence: int | None = None  # sqlite_sequence value to carry

    @property
    def key_index(self) -> tuple[int, ...]:
        names = [c.name for c in self.source.columns]
        return tuple(names.index(k) for k in self.key)


@dataclass(frozen=True)
class Conversion:
    """The converted schema: tables in load order, and every decision taken."""

    tables: tuple[TablePlan, ...]
    report: pd.DataFrame = field(repr=False)
    problems: tuple[str, ...] = ()  # things D1 cannot hold, each with its fix

    @property
    def ddl(self) -> str:
        """Every statement, tables in foreign-key order, indexes after their table."""
        return "\n".join(s + ";" for t in self.tables for s in t.ddl) + "\n"

    def text(self) -> str:
        """The report as plain text, one decision a line, grouped by table."""
        lines = []
        for table, group in self.report.groupby("table", sort=False):
            lines.append(f"{table}:")
            for row in group.itertuples():
                where = f"{row.column}: " if row.column else ""
                lines.append(f"  [{row.kind}] {where}{row.decision}")
        return "\n".join(lines) + "\n"

    def markdown(self) -> str:
        """The report as a Markdown table."""
        return frame_markdown(self.report[list(REPORT_COLUMNS)])


def frame_markdown(frame: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table (without pandas' optional tabulate).

    >>> print(frame_markdown(pd.DataFrame({"a": [1], "b": ["x|y"]})), end="")
    | a | b |
    |---|---|
    | 1 | x\\|y |
    """
    cols = [str(c) for c in frame.columns]
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    body = "".join("| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |\n"
                   for row in frame.itertuples(index=False))
    return head + body


def load_order(tables: Sequence[SourceTable]) -> list[SourceTable]:
    """Parents before children (self-references and cycles do not block; names break ties).

    >>> from d1bench.migrator.model import ForeignKey
    >>> a = SourceTable("a", (), foreign_keys=(ForeignKey(("b_id",), "b", ("id",)),))
    >>> [t.name for t in load_order([a, SourceTable("b", ())])]
    ['b', 'a']
    """
    by_name = {t.name: t for t in tables}
    done: list[SourceTable] = []
    seen: set[str] = set()

    def visit(t: SourceTable, path: set[str]) -> None:
        if t.name in seen or t.name in path:
            return
        for fk in t.foreign_keys:
            parent = by_name.get(fk.ref_table)
            if parent is not None and parent.name != t.name:
                visit(parent, path | {t.name})
        seen.add(t.name)
        done.append(t)

    for t in sorted(tables, key=lambda t: t.name):
        visit(t, set())
    return done


_NOW = re.compile(r"(?i)^(now\(\)|current_timestamp(\(\d*\))?|localtimestamp(\(\d*\))?|"
                  r"transaction_timestamp\(\)|statement_timestamp\(\))$")
_TODAY = re.compile(r"(?i)^(current_date|curdate\(\))$")


def _default(expr: str, rule: TypeRule, dialect: str) -> tuple[str | None, str]:
    """(SQLite default or None, what was decided)."""
    text = expr.strip()
    if _NOW.match(text):
        return "CURRENT_TIMESTAMP", f"DEFAULT {text} -> CURRENT_TIMESTAMP (UTC, SQLite's form)"
    if _TODAY.match(text):
        return "CURRENT_DATE", f"DEFAULT {text} -> CURRENT_DATE"
    bare = re.sub(r"::[\w\s\[\]\"().,]+$", "", text)
    if re.fullmatch(r"(?i)true|false|b'[01]'", bare):
        value = "1" if bare.lower() in ("true", "b'1'") else "0"
        return value, f"DEFAULT {text} -> {value}"
    if bare == "'{}'" and "JSON array" in rule.decision:
        return "'[]'", f"DEFAULT {text} -> '[]' (the empty array as JSON)"
    if re.fullmatch(r"-?\d+(\.\d+)?", bare.strip("()")):
        value = bare.strip("()")
        if rule.convert is not None and "0/1" in rule.decision:
            value = str(int(bool(float(value))))
        return value, f"DEFAULT {text} -> {value}"
    if re.fullmatch(r"'(?:[^']|'')*'", bare):
        return bare, f"DEFAULT {text} -> {bare}"
    try:
        converted = transpile(text, dialect)
    except UsageError:
        return None, f"DEFAULT {text} dropped: no SQLite equivalent (set it in the application)"
    return f"({converted})", f"DEFAULT {text} -> ({converted}), via sqlglot"


def _add(report: list[dict[str, Any]], table: str, column: str, kind: str, source: str,
         target: str, decision: str) -> None:
    report.append({"table": table, "column": column, "kind": kind, "source": source,
                   "target": target, "decision": decision})


def _plan_table(t: SourceTable, dialect: str, names: Mapping[str, str], renames: Mapping[str, str],
                max_id: int | None, report: list[dict[str, Any]], problems: list[str],
                migrated: set[str], used: set[str]) -> TablePlan:
    name = names.get(t.name, t.name)
    cname = {c.name: renames.get(f"{t.name}.{c.name}", c.name) for c in t.columns}
    rules = tuple(rule_for(c, t.name) for c in t.columns)
    integer_pk = (len(t.primary_key) == 1
                  and rules[[c.name for c in t.columns].index(t.primary_key[0])].sqlite_type
                  == "INTEGER")
    sequence = None
    lines = []
    for col, rule in zip(t.columns, rules, strict=True):
        target = cname[col.name]
        parts = [quote(target), rule.sqlite_type]
        if col.name != target:
            _add(report, name, target, "rename", col.name, target, f"renamed from {col.name}")
        _add(report, name, target, "type", col.type, rule.sqlite_type, rule.decision)
        if integer_pk and col.name == t.primary_key[0]:
            parts.append("PRIMARY KEY")
            how = "INTEGER PRIMARY KEY (the rowid)"
            if col.identity and t.next_id is not None and t.next_id > (max_id or 0) + 1:
                parts.append("AUTOINCREMENT")
                sequence = t.next_id - 1
                how += (f" AUTOINCREMENT, sqlite_sequence set to {sequence} so the next id is "
                        f"{t.next_id} as the source's sequence says (ids above the largest "
                        f"row, {max_id}, were used before)")
            elif col.identity:
                how += (f"; the next id is {(max_id or 0) + 1}, the same as the source's "
                        "sequence, without AUTOINCREMENT")
            _add(report, name, target, "key", col.type, "INTEGER PRIMARY KEY", how)
        if not col.nullable and not (integer_pk and col.name == t.primary_key[0]):
            parts.append("NOT NULL")
        if col.default is not None:
            value, decision = _default(col.default, rule, dialect)
            _add(report, name, target, "default", col.default, value or "", decision)
            if value is not None:
                parts.append(f"DEFAULT {value}")
        if rule.check:
            check = rule.check.format(col=quote(target))
            parts.append(f"CHECK ({check})")
        lines.append(" ".join(parts))
    if t.primary_key and not integer_pk:
        lines.append(f"PRIMARY KEY ({', '.join(quote(cname[c]) for c in t.primary_key)})")
        _add(report, name, "", "key", ",".join(t.primary_key), "PRIMARY KEY", "primary key kept")
    if not t.primary_key:
        _add(report, name, "", "key", "", "", "no primary key: the table is copied in one pass "
             "and, if interrupted, copied again from the start (no duplicates)")
    for cols in t.uniques:
        lines.append(f"UNIQUE ({', '.join(quote(cname[c]) for c in cols)})")
        _add(report, name, ",".join(cols), "unique", "UNIQUE", "UNIQUE",
             "kept (SQLite compares text with BINARY: values the source's collation called "
             "equal may now differ)")
    for fk in t.foreign_keys:
        if fk.ref_table not in migrated:
            _add(report, name, ",".join(fk.columns), "foreign key", f"-> {fk.ref_table}", "",
                 f"dropped: {fk.ref_table} is not migrated (add it to --tables to keep it)")
            continue
        ref = names.get(fk.ref_table, fk.ref_table)
        ref_cols = [renames.get(f"{fk.ref_table}.{c}", c) for c in fk.ref_columns]
        clause = (f"FOREIGN KEY ({', '.join(quote(cname[c]) for c in fk.columns)}) REFERENCES "
                  f"{quote(ref)} ({', '.join(quote(c) for c in ref_cols)})")
        if fk.on_delete not in ("NO ACTION", "RESTRICT"):
            clause += f" ON DELETE {fk.on_delete}"
        lines.append(clause)
        note = "kept; D1 always enforces it (rows load with PRAGMA defer_foreign_keys)"
        if fk.deferrable:
            note = ("DEFERRABLE dropped: D1 checks each statement unless the batch sets "
                    "PRAGMA defer_foreign_keys = on")
            problems.append(f"{name}: deferrable foreign key ({', '.join(fk.columns)}) -> "
                            f"{ref}: {note}")
        _add(report, name, ",".join(fk.columns), "foreign key", f"-> {fk.ref_table}", f"-> {ref}",
             note)
    for check in t.checks:
        try:
            converted = transpile(check, dialect)
        except UsageError as exc:
            _add(report, name, "", "check", check, "", f"dropped: {exc}")
            problems.append(f"{name}: CHECK {check} not converted ({exc}); rewrite it in SQLite")
            continue
        for source_col, target_col in cname.items():
            if source_col != target_col:
                converted = re.sub(rf'(?<![\w"]){re.escape(source_col)}(?![\w"])',
                                   quote(target_col), converted)
        lines.append(f"CHECK ({converted})")
        _add(report, name, "", "check", check, converted, "converted by sqlglot, run on SQLite")
    create = f"CREATE TABLE {quote(name)} (\n    " + ",\n    ".join(lines) + "\n)"
    statements = [create]
    for index in t.indexes:
        if index.definition is not None:
            _add(report, name, "", "index", index.definition, "",
                 "not converted: an expression or partial index; write it for SQLite by hand")
            problems.append(f"{name}: index {index.name} ({index.definition}) is an expression "
                            "or partial index: recreate it by hand in SQLite syntax")
            continue
        unique = "UNIQUE " if index.unique else ""
        iname = index.name
        if iname in used or iname in cname:
            # SQLite's index names are per database, MySQL's per table (and InnoDB
            # names a foreign key's index after its column): use d1bench's naming.
            iname = "idx_" + "_".join([name, *(cname[c] for c in index.columns)])
            _add(report, name, ",".join(index.columns), "rename", index.name, iname,
                 f"index {index.name} renamed {iname}: SQLite's index names are per database")
        used.add(iname)
        sql = (f"CREATE {unique}INDEX {quote(iname)} ON {quote(name)} "
               f"({', '.join(quote(cname[c]) for c in index.columns)})")
        statements.append(sql)
        _add(report, name, ",".join(index.columns), "index", index.name, iname, "kept")
    key = t.primary_key or next(iter(t.uniques), ())
    return TablePlan(t, name, tuple(cname[c.name] for c in t.columns), rules, tuple(key),
                     tuple(statements), sequence)


def convert(tables: Sequence[SourceTable], dialect: str, *, max_ids: Mapping[str, int | None],
            table_names: Mapping[str, str] | None = None,
            column_names: Mapping[str, str] | None = None,
            not_converted: Sequence[tuple[str, str]] = ()) -> Conversion:
    """Convert catalog records into DDL and a report; the DDL is run on SQLite and checked for D1.

    ``max_ids`` gives each table's largest identity value (to decide whether
    the sequence needs AUTOINCREMENT to carry); ``table_names`` and
    ``column_names`` (``"table.column"`` keys) rename.
    """
    from d1bench.schema import d1_problems

    report: list[dict[str, Any]] = []
    problems: list[str] = []
    used: set[str] = set()  # index names taken
    plans = [_plan_table(t, dialect, table_names or {}, column_names or {},
                         max_ids.get(t.name), report, problems, {t.name for t in tables}, used)
             for t in load_order(tables)]
    for kind, name in not_converted:
        table = name.split(".")[0] if kind == "trigger" else name
        _add(report, table, "", "not converted", kind, "",
             f"{kind} {name} is not carried: rewrite it in SQLite (a {kind} in the source's "
             "dialect does not convert mechanically)")
        problems.append(f"{kind} {name}: not carried; rewrite it for SQLite by hand")
    conversion = Conversion(tuple(plans), pd.DataFrame(report, columns=list(REPORT_COLUMNS)),
                            tuple(problems))
    _try_on_sqlite(conversion)
    refused = d1_problems(conversion.ddl)
    if refused:
        raise UsageError(f"converted DDL would be refused by D1: {refused[0]}")
    return conversion


def _try_on_sqlite(conversion: Conversion) -> None:
    import sqlite3

    conn = sqlite3.connect(":memory:")
    try:
        for plan in conversion.tables:
            for statement in plan.ddl:
                try:
                    conn.execute(statement)
                except sqlite3.Error as exc:
                    raise UsageError(f"table {plan.source.name}: converted DDL fails on SQLite: "
                                     f"{exc}") from None
    finally:
        conn.close()
