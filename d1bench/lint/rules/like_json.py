"""LIKE over JSON text: a substring test on serialised JSON, which reads every row."""

from __future__ import annotations

import json
from collections.abc import Iterator

from d1bench.lint.context import Finding, LintContext

__all__ = ["RULE", "check", "is_json_column"]

RULE = "like_over_json"


def is_json_column(ctx: LintContext, table: str, column: str) -> bool:
    """Most sampled non-null values of ``table.column`` are JSON arrays or objects."""
    td = ctx.catalog.table(table)
    if td is None or td.kind != "table" or column not in td.columns:
        return False
    values = ctx.stats.values(table, column).dropna()
    sample = [v for v in values.head(200).tolist() if isinstance(v, str)]
    if not sample:
        return False
    ok = 0
    for v in sample:
        if v[:1] in "[{":
            try:
                json.loads(v)
                ok += 1
            except ValueError:
                pass
    return ok >= 0.8 * len(sample)


def check(ctx: LintContext) -> Iterator[Finding]:
    for name, info in ctx.infos.items():
        for p in info.preds:
            if p.op != "like" or p.key is None or not (0 <= p.ref < len(info.refs)):
                continue
            table = info.refs[p.ref].name
            column = p.key
            if p.expression and p.key.startswith("json_extract("):
                column = p.key[len("json_extract("):].split(",")[0].strip()
            elif not is_json_column(ctx, table, column):
                continue
            fix = ("LIKE on JSON text matches inside keys, quotes and other elements and reads "
                   "every row: test the elements with json_each, or keep them in a child table "
                   "with an index")
            fix_sql = (f"SELECT ... FROM {table} WHERE EXISTS (SELECT 1 FROM json_each({table}.{column}) "
                       "WHERE json_each.value = ?)")
            yield Finding(name, RULE, ctx.severity(name, "medium"), ctx.evidence(name, p.sql),
                          fix, fix_sql)
