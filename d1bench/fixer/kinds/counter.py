"""An unfiltered ``SELECT COUNT(*) FROM t`` -> one row of a counter table kept by triggers.

D1 bills ``COUNT(*)`` as a read of every entry of the b-tree it counts, whatever
index exists; a counter row kept by an insert and a delete trigger is read as
one row, and costs each insert and delete of ``t`` one more row written
(measured with the workload's write templates, so the step's saving is net).
A count with a WHERE clause gets no whole-table counter: an index serves its
filter (the advisor's job), and lint says the same.
"""

from __future__ import annotations

from typing import Any

from d1bench.fixer.model import Context, Rewrite, Skip, Trial
from d1bench.fixer.sqlshape import read_select, table_aliases

KIND = "counter"


def counter_ddl(table: str) -> tuple[str, str]:
    """(counter table name, the DDL that creates, fills and maintains it)."""
    name = f"{table}_row_count"
    return name, (
        f"CREATE TABLE IF NOT EXISTS {name} (id INTEGER PRIMARY KEY CHECK (id = 1), "
        "n INTEGER NOT NULL);\n"
        f"INSERT OR REPLACE INTO {name} (id, n) SELECT 1, COUNT(*) FROM {table};\n"
        f"CREATE TRIGGER IF NOT EXISTS {name}_ai AFTER INSERT ON {table} BEGIN\n"
        f"    UPDATE {name} SET n = n + 1 WHERE id = 1;\nEND;\n"
        f"CREATE TRIGGER IF NOT EXISTS {name}_ad AFTER DELETE ON {table} BEGIN\n"
        f"    UPDATE {name} SET n = n - 1 WHERE id = 1;\nEND;")


def propose(name: str, ctx: Context) -> Rewrite | Skip | None:
    from sqlglot import exp

    found = read_select(ctx.workload, name)
    if found is None:
        return None
    template, parsed = found
    tree = parsed.tree
    outputs = tree.expressions
    if len(outputs) != 1 or not isinstance(outputs[0].unalias(), exp.Count) or not isinstance(
            outputs[0].unalias().this, exp.Star):
        return None
    aliases = table_aliases(tree)
    if tree.args.get("where") is not None:
        return Skip(KIND, name, "COUNT(*) with a WHERE clause: an index serves the filter, "
                    "a whole-table counter would not")
    if tree.args.get("joins") or tree.args.get("group") or len(aliases) != 1:
        return None
    table = next(iter(aliases.values()))
    td = ctx.catalog.table(table)
    if td is None or td.kind != "table":
        return None
    counter, ddl = counter_ddl(table)
    label = outputs[0].alias or "n"
    sql = f"SELECT n AS {label} FROM {counter} WHERE id = 1"

    def trial(params: tuple, _conn: Any) -> Trial:
        return Trial(before=((template.sql, params),), after=((sql, ()),))

    return Rewrite(KIND, name, sql, ddl, True,
                   f"COUNT(*) reads every row of {table}; the counter row {counter}, kept by "
                   "insert and delete triggers, is one row read", trial,
                   templates={name: 1.0}, writes=True, trigger_writes=_changes(ctx, table))


def _changes(ctx: Context, table: str) -> dict[str, float]:
    """Write templates that insert into or delete from ``table``: one counter update each."""
    import re

    pattern = re.compile(rf"\b(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|DELETE\s+FROM)\s+\"?{table}\b",
                         re.IGNORECASE)
    return {n: 1.0 for n, t in ctx.workload.templates.items()
            if t.is_write and pattern.search(t.sql)}
