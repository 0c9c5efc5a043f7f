"""``GROUP BY date(ts) ... WHERE ts >= ? AND ts < ?`` -> a daily rollup table kept by triggers.

A chart that groups raw rows by day reads every row of its window on every
view.  A rollup table holds, per day and group, the count and the sums the
query needs (``COUNT(*)``, ``COUNT(x)``, ``SUM(x)``, ``AVG(x)`` = sum over
count), kept exact by insert, delete and update triggers.  The window's edges
rarely fall on midnight, so the rewrite reads whole days inside the window from
the rollup and the partial days at either edge from the raw rows (two index
ranges), then adds them up: the same groups and values as the original, which
the check confirms on sampled windows.  Each insert into the table writes one
more row (the rollup's), counted in the step.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from d1bench.fixer.model import Context, Rewrite, Skip, Trial
from d1bench.fixer.sqlshape import read_select, table_aliases

if TYPE_CHECKING:
    from sqlglot import exp

KIND = "rollup"

_AGGS = ("count", "sum", "avg")


def _terms(tree: Any) -> tuple[exp.Column, list[str], list[tuple[str, str, str | None]]] | None:
    """(the date column, the other group columns, outputs as (kind, alias, column)) or None."""
    from sqlglot import exp

    aliases = {e.alias: e.this for e in tree.expressions if isinstance(e, exp.Alias)}
    group = tree.args.get("group")
    if group is None:
        return None
    day_col: exp.Column | None = None
    plain: list[str] = []
    for term in group.expressions:
        if isinstance(term, exp.Column) and not term.table and term.name in aliases:
            term = aliases[term.name]
        if isinstance(term, (exp.Date, exp.TsOrDsToDate)) or (
                isinstance(term, exp.Anonymous) and str(term.this).lower() == "date"):
            inner = term.this if not isinstance(term, exp.Anonymous) else term.expressions[0]
            if not isinstance(inner, exp.Column) or day_col is not None or (
                    isinstance(term, exp.Anonymous) and len(term.expressions) != 1):
                return None
            day_col = inner
        elif isinstance(term, exp.Column):
            plain.append(term.name)
        else:
            return None
    if day_col is None:
        return None
    outputs: list[tuple[str, str, str | None]] = []
    for e in tree.expressions:
        alias = e.alias_or_name
        node = e.this if isinstance(e, exp.Alias) else e
        if isinstance(node, exp.Count) and isinstance(node.this, exp.Star):
            outputs.append(("count_star", alias, None))
        elif isinstance(node, (exp.Count, exp.Sum, exp.Avg)) and isinstance(node.this, exp.Column):
            if isinstance(node, exp.Count) and node.args.get("distinct"):
                return None
            outputs.append((type(node).__name__.lower(), alias, node.this.name))
        elif isinstance(node, (exp.Date, exp.TsOrDsToDate, exp.Anonymous)) and (
                col := node.find(exp.Column)) is not None and col.name == day_col.name:
            outputs.append(("day", alias, None))
        elif isinstance(node, exp.Column) and node.name in plain:
            outputs.append(("group", alias, node.name))
        else:
            return None
    return day_col, plain, outputs


def _window(tree: Any, column: str) -> tuple[str, str] | None:
    """(low, high) of ``WHERE column >= low AND column < high``, and nothing else in the WHERE."""
    from sqlglot import exp

    where = tree.args.get("where")
    if where is None:
        return None
    conj = list(where.this.flatten()) if isinstance(where.this, exp.And) else [where.this]
    low = high = None
    for c in conj:
        if not (isinstance(c.this, exp.Column) and c.this.name == column
                and c.expression.find(exp.Column) is None):
            return None
        if isinstance(c, exp.GTE):
            low = c.expression.sql(dialect="sqlite")
        elif isinstance(c, exp.LT):
            high = c.expression.sql(dialect="sqlite")
        else:
            return None
    return (low, high) if low and high and len(conj) == 2 else None


def propose(name: str, ctx: Context) -> Rewrite | Skip | None:
    found = read_select(ctx.workload, name)
    if found is None:
        return None
    template, parsed = found
    tree = parsed.tree
    shape = _terms(tree)
    if shape is None:
        return None
    day_col, plain, outputs = shape
    aliases = table_aliases(tree)
    if tree.args.get("joins") or len(aliases) != 1 or tree.args.get("having"):
        return Skip(KIND, name, "GROUP BY date(...) over a join or with HAVING: no rollup of one table")
    table = next(iter(aliases.values()))
    col = day_col.name
    window = _window(tree, col)
    if window is None:
        return Skip(KIND, name, f"the WHERE is not just {col} >= ? AND {col} < ?: a daily rollup "
                    "cannot answer other filters")
    info = {r[0]: bool(r[1]) for r in ctx.conn.execute(
        f'SELECT name, "notnull" FROM pragma_table_info("{table}")')}
    if not all(info.get(c, False) for c in [col, *plain]):
        return Skip(KIND, name, "a grouped column may be NULL, which a rollup's key cannot hold")
    lo, hi = window
    measures = sorted({c for kind, _a, c in outputs if c is not None and kind in _AGGS})
    rollup = f"{table}_daily" + "".join(f"_{c}" for c in plain)
    keys = ["day", *plain]
    cols = ["n", *(f"{p}_{m}" for m in measures for p in ("s", "c"))]
    ddl = _ddl(table, rollup, col, plain, measures, keys, cols, ctx)
    d1 = f"(CASE WHEN {lo} = datetime(date({lo})) THEN date({lo}) ELSE date({lo}, '+1 day') END)"
    d2 = f"date({hi})"
    raw = (f"SELECT date({col}) AS day{''.join(f', {p}' for p in plain)}, COUNT(*) AS n"
           + "".join(f", SUM({m}) AS s_{m}, COUNT({m}) AS c_{m}" for m in measures)
           + f" FROM {table} WHERE {col} >= {{lo}} AND {col} < {{hi}} GROUP BY {', '.join(['1', *plain])}")
    parts = [f"SELECT {', '.join(keys + cols)} FROM {rollup} WHERE day >= {d1} AND day < {d2}",
             raw.format(lo=lo, hi=f"min({hi}, datetime({d1}))"),
             raw.format(lo=f"max({lo}, datetime({d2}), datetime({d1}))", hi=hi)]
    select = []
    for kind, alias, c in outputs:
        expr = {"day": "day", "group": c, "count_star": "SUM(n)", "count": f"SUM(c_{c})",
                "sum": f"SUM(s_{c})", "avg": f"SUM(s_{c}) / SUM(c_{c})"}[kind]
        select.append(f"{expr} AS {alias}")
    order = tree.args.get("order")
    text = (f"SELECT {', '.join(select)} FROM ({' UNION ALL '.join(parts)}) GROUP BY "
            f"{', '.join(keys)}" + (f" {order.sql(dialect='sqlite')}" if order else ""))
    sql = re.sub(r":p(\d+)", r"?\1", text)

    def trial(params: tuple, _conn: Any) -> Trial:
        return Trial(before=((template.sql, params),), after=((sql, params),),
                     ordered=order is not None)

    return Rewrite(KIND, name, sql, ddl, True,
                   f"GROUP BY date({col}) reads every row of the window; the rollup {rollup} "
                   "(kept by triggers) answers whole days, raw rows only the partial days at the "
                   "edges", trial, templates={name: 1.0}, writes=True,
                   trigger_writes=_inserts(ctx, table))


def _ddl(table: str, rollup: str, col: str, plain: list[str], measures: list[str],
         keys: list[str], cols: list[str], ctx: Context) -> str:
    values = lambda row: [f"date({row}.{col})", *(f"{row}.{p}" for p in plain)]
    where = lambda row: " AND ".join(f"{k} = {v}" for k, v in zip(keys, values(row), strict=True))
    add_values = [*values("new"), "1", *(x for m in measures for x in (f"new.{m}",
                                                                        f"new.{m} IS NOT NULL"))]
    sums = "".join(f", s_{m} = CASE WHEN excluded.s_{m} IS NULL THEN s_{m} ELSE coalesce(s_{m}, 0) "
                   f"+ excluded.s_{m} END, c_{m} = c_{m} + excluded.c_{m}" for m in measures)
    add = (f"INSERT INTO {rollup} ({', '.join(keys + cols)}) VALUES ({', '.join(add_values)}) "
           f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET n = n + 1{sums};")
    subs = "".join(f", s_{m} = CASE WHEN c_{m} - (old.{m} IS NOT NULL) = 0 THEN NULL ELSE s_{m} - "
                   f"coalesce(old.{m}, 0) END, c_{m} = c_{m} - (old.{m} IS NOT NULL)" for m in measures)
    remove = (f"UPDATE {rollup} SET n = n - 1{subs} WHERE {where('old')};\n    "
              f"DELETE FROM {rollup} WHERE {where('old')} AND n = 0;")
    types = "".join(f", s_{m} REAL, c_{m} INTEGER NOT NULL" for m in measures)
    fill = (f"SELECT date({col}){''.join(f', {p}' for p in plain)}, COUNT(*)"
            + "".join(f", SUM({m}), COUNT({m})" for m in measures)
            + f" FROM {table} GROUP BY {', '.join(['1', *plain])}")
    watched = ", ".join(dict.fromkeys([col, *plain, *measures]))
    index = ""
    if not any(i.keys and i.keys[0].expr == col for i in ctx.catalog.indexes_on(table)):
        index = f"\nCREATE INDEX IF NOT EXISTS idx_{table}_{col} ON {table} ({col});"
    return (f"CREATE TABLE IF NOT EXISTS {rollup} (day TEXT NOT NULL"
            f"{''.join(f', {p} NOT NULL' for p in plain)}, n INTEGER NOT NULL{types}, "
            f"PRIMARY KEY ({', '.join(keys)})) WITHOUT ROWID;\n"
            f"INSERT OR REPLACE INTO {rollup} ({', '.join(keys + cols)}) {fill};\n"
            f"CREATE TRIGGER IF NOT EXISTS {rollup}_ai AFTER INSERT ON {table} BEGIN\n    {add}\nEND;\n"
            f"CREATE TRIGGER IF NOT EXISTS {rollup}_ad AFTER DELETE ON {table} BEGIN\n    {remove}\nEND;\n"
            f"CREATE TRIGGER IF NOT EXISTS {rollup}_au AFTER UPDATE OF {watched} ON {table} BEGIN\n"
            f"    {remove}\n    {add}\nEND;{index}")


def _inserts(ctx: Context, table: str) -> dict[str, float]:
    """Write templates inserting into ``table``: one rollup row written each."""
    pattern = re.compile(rf"\bINSERT\s+(?:OR\s+\w+\s+)?INTO\s+\"?{table}\b", re.IGNORECASE)
    return {n: 1.0 for n, t in ctx.workload.templates.items() if t.is_write and pattern.search(t.sql)}
