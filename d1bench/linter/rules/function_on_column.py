"""A function over a column in WHERE or JOIN: the plain index on the column cannot serve it."""

from __future__ import annotations

from collections.abc import Iterator

from d1bench.linter.context import Finding, LintContext

__all__ = ["FUNCTIONS", "RULE", "check"]

RULE = "function_on_column"

#: Functions whose use over a column hides it from its index.
FUNCTIONS = {"json_extract": "json_extract", "jsonextractscalar": "json_extract",
             "json_extract_scalar": "json_extract", "lower": "lower", "upper": "upper",
             "substr": "substr", "substring": "substr", "date": "date", "datetime": "datetime",
             "strftime": "strftime", "timetostr": "strftime", "julianday": "julianday",
             "tsordstotimestamp": "strftime"}


def check(ctx: LintContext) -> Iterator[Finding]:
    from d1bench.sql.catalog import Key
    from d1bench.sql.naming import index_name

    for name, info in ctx.infos.items():
        for p in info.preds:
            wrapped = sorted({FUNCTIONS[w] for w in p.wraps if w in FUNCTIONS})
            if not wrapped or p.op in ("match",):
                continue
            table = info.refs[p.ref].name if 0 <= p.ref < len(info.refs) else None
            served = table is not None and p.key is not None and any(
                k.expr == p.key for i in ctx.indexes_on(table) for k in i.keys[:1])
            if served:
                continue
            fn = wrapped[0]
            fix_sql = None
            if p.expression and p.key and table and p.op in ("eq", "in", "range", "isnull"):
                fix = (f"{fn}() hides the column from its index: add an expression index on "
                       "exactly this expression (the query must spell it the same way)")
                fix_sql = f"CREATE INDEX {index_name(table, [Key(p.key)])} ON {table} ({p.key});"
            elif fn in ("date", "datetime", "strftime", "julianday"):
                fix = (f"compare the column itself: {fn}(col) >= ? becomes col >= ? with the bound "
                       "rewritten to the column's text format, which a plain index serves")
            elif fn == "substr":
                fix = "match a prefix with a range instead: col >= 'abc' AND col < 'abd'"
            else:
                fix = (f"{fn}() over the column is evaluated for every row: store the value "
                       "in its own column (or a generated column) and index that")
            yield Finding(name, RULE, ctx.severity(name, "low"),
                          ctx.evidence(name, f"{p.sql}"), fix, fix_sql)
