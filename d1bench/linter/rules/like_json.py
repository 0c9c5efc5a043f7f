"""LIKE over JSON text: a substring test on serialised JSON, which reads every row."""

from __future__ import annotations

import json
from collections.abc import Iterator

from d1bench.linter.context import Finding, LintContext

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
                   "with an index (bind the element itself, without the % signs)")
            fix_sql = rewrite_with_json_each(ctx.workload.templates[name].sql)
            yield Finding(name, RULE, ctx.severity(name, "medium"), ctx.evidence(name, p.sql),
                          fix, fix_sql)


def rewrite_with_json_each(sql: str) -> str | None:
    """The template with each ``LIKE ?`` over JSON text written as an element test with json_each.

    >>> rewrite_with_json_each("SELECT id FROM t WHERE json_extract(t.tags, '$') LIKE ? AND n > ?")
    'SELECT id FROM t WHERE EXISTS(SELECT 1 FROM JSON_EACH(t.tags) WHERE value = ?1) AND n > ?2'
    """
    from sqlglot import exp

    from d1bench.fixer.sqlshape import parse, placeholder_index, to_sql

    parsed = parse(sql)
    if parsed is None:
        return None
    changed = False
    for like in list(parsed.tree.find_all(exp.Like)):
        target, index = like.this, placeholder_index(like.expression)
        if isinstance(target, (exp.JSONExtract, exp.JSONExtractScalar)):
            target = target.this
        if not isinstance(target, exp.Column) or index is None:
            continue
        like.replace(exp.condition(f"EXISTS (SELECT 1 FROM json_each({target.sql(dialect='sqlite')}) "
                                   f"WHERE value = :p{index})", dialect="sqlite"))
        changed = True
    return to_sql(parsed.tree) if changed else None
