"""``json_extract(col, '$.path') = ?`` -> a generated column with an index, and the query on it.

A predicate on a value inside a JSON document reads every row; a VIRTUAL
generated column computing the same expression can be indexed, and the
query then seeks.  ``ALTER TABLE ... ADD COLUMN`` may add a VIRTUAL generated
column (not a STORED one), so the migration needs no table rebuild.  But a new
column shows in ``SELECT *``: where a template of the workload reads the table
with ``SELECT *``, the same expression is indexed instead (SQLite's planner
matches the expression as written), and the query is left as it is.
"""

from __future__ import annotations

import re
from typing import Any

from d1bench.fixer.model import Context, Rewrite, Skip, Trial
from d1bench.fixer.sqlshape import parse, read_select, table_aliases, to_sql

KIND = "json_column"


def column_name(column: str, path: str) -> str:
    """The generated column's name for ``json_extract(column, path)``.

    >>> column_name("settings", "$.locale"), column_name("payload", "$.a[0].b")
    ('settings_locale', 'payload_a_0_b')
    """
    tail = re.sub(r"[^A-Za-z0-9]+", "_", path.lstrip("$")).strip("_")
    return f"{column}_{tail or 'value'}"


def _selects_star(ctx: Context, table: str) -> bool:
    from sqlglot import exp

    for t in ctx.workload.templates.values():
        parsed = parse(t.sql)
        if parsed is None:
            continue
        for select in parsed.tree.find_all(exp.Select):
            names = set(table_aliases(select).values())
            if table in names and any(isinstance(e, exp.Star) or (
                    isinstance(e, exp.Column) and isinstance(e.this, exp.Star))
                    for e in select.expressions):
                return True
    return False


def propose(name: str, ctx: Context) -> Rewrite | Skip | None:
    from sqlglot import exp

    found = read_select(ctx.workload, name)
    if found is None:
        return None
    template, parsed = found
    for call in parsed.tree.find_all(exp.JSONExtract, exp.JSONExtractScalar):
        pred = call.parent
        if not isinstance(pred, (exp.EQ, exp.In)) or call.find_ancestor(exp.Where) is None:
            continue
        col = call.this
        path_text = _literal(call.expression)
        if not isinstance(col, exp.Column) or path_text is None:
            continue
        select = call.find_ancestor(exp.Select)
        aliases = table_aliases(select)
        table = aliases.get(col.table) if col.table else ctx.catalog.column_table(
            col.name, aliases.values())
        td = ctx.catalog.table(table) if table is not None else None
        if table is None or td is None or td.kind != "table":
            return Skip(KIND, name, f"json_extract over {col.sql()}: not a column of a table")
        expr_sql = f"json_extract({col.name}, '{path_text}')"
        gen = column_name(col.name, path_text)
        keys = _keys(select, col.table or table, table, ctx)
        tail = _order_keys(select, col.table or table, table, ctx)
        if _selects_star(ctx, table):
            index = f"idx_{table}_{gen}_expr"
            ddl = (f"CREATE INDEX IF NOT EXISTS {index} ON {table} "
                   f"({', '.join([*keys, expr_sql, *tail])});")
            sql = template.sql
            note = (f"{expr_sql} = ? reads every row of {table}; an index on the expression "
                    f"serves it (not a generated column: a template reads {table} with SELECT *, "
                    "which would gain the column)")
        else:
            index = f"idx_{table}_{gen}"
            ddl = (f"ALTER TABLE {table} ADD COLUMN {gen} GENERATED ALWAYS AS ({expr_sql}) "
                   f"VIRTUAL;\nCREATE INDEX IF NOT EXISTS {index} ON {table} "
                   f"({', '.join([*keys, gen, *tail])});")
            call.replace(exp.column(gen, table=col.table or None))
            sql = to_sql(parsed.tree)
            note = (f"{expr_sql} = ? reads every row of {table}; the generated column {gen} "
                    f"with the index {index} lets it seek")
        ordered = bool(template.sql and re.search(r"\border\s+by\b", template.sql, re.IGNORECASE))

        def trial(params: tuple, _conn: Any, *, sql: str = sql, ordered: bool = ordered) -> Trial:
            return Trial(before=((template.sql, params),), after=((sql, params),), ordered=ordered)

        return Rewrite(KIND, name, sql, ddl, True, note, trial, templates={name: 1.0})
    return None


def _literal(node: Any) -> str | None:
    from sqlglot import exp

    if isinstance(node, exp.Literal) and node.is_string:
        return str(node.this)
    if isinstance(node, exp.JSONPath):
        return node.sql(dialect="sqlite").strip("'")
    return None


def _keys(select: Any, alias: str, table: str, ctx: Context) -> list[str]:
    """Plain columns of ``table`` compared by equality in the same WHERE: they lead the index."""
    from sqlglot import exp

    where = select.args.get("where")
    cols = set(ctx.catalog.table(table).columns)
    out: list[str] = []
    for eq in (where.find_all(exp.EQ) if where else []):
        c = eq.this
        if (isinstance(c, exp.Column) and (c.table in ("", alias)) and c.name in cols
                and c.name not in out):
            out.append(c.name)
    return out


def _order_keys(select: Any, alias: str, table: str, ctx: Context) -> list[str]:
    """ORDER BY's plain columns of ``table``, after the key: the index then also gives the order."""
    from sqlglot import exp

    cols = set(ctx.catalog.table(table).columns)
    out = []
    for o in (select.args.get("order").expressions if select.args.get("order") else []):
        c = o.this
        if not (isinstance(c, exp.Column) and c.table in ("", alias) and c.name in cols):
            return []
        out.append(c.name + (" DESC" if o.args.get("desc") else ""))
    return out
