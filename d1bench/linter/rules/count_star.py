"""COUNT(*) over a large table: D1 counts every entry of the b-tree it counts as a row read.

Only two kinds of count are findings, the same line :mod:`d1bench.fixer.kinds.counter`
draws: an unfiltered count (a counter row kept by triggers answers it; its DDL
is the fix plan's), and a filtered one whose filter no index can serve (nothing
but a change of the filter helps).  A count whose filter an index can serve is
the advisor's, and a whole-table counter would not answer it anyway.
"""

from __future__ import annotations

from collections.abc import Iterator

from d1bench.linter.context import LARGE_TABLE_ROWS, Finding, LintContext

__all__ = ["RULE", "check"]

RULE = "count_star_large_table"


def check(ctx: LintContext) -> Iterator[Finding]:
    from sqlglot import exp

    from d1bench.fixer.kinds.counter import counter_ddl

    for name, info in ctx.infos.items():
        if info.tree is None or info.error:
            continue
        if not any(isinstance(c.this, exp.Star) for c in info.tree.find_all(exp.Count)):
            continue
        plan = [r.detail for r in ctx.plans.get(name, ())]
        big = []
        for scope in info.scopes:
            if not scope.aggregate or scope.group_by:
                continue  # COUNT(*) per group is a different question
            for ref in info.refs_of(scope.index):
                if ref.kind != "table":
                    continue
                n = ctx.stats.row_count(ref.name)
                scanned = any(d.split(" ")[:2] == ["SCAN", ref.alias] for d in plan)
                if n >= LARGE_TABLE_ROWS and scanned:
                    big.append((ref, n))
        if not big:
            continue
        ref, n = big[0]
        table = ref.name
        preds = [p for p in info.preds_of(ref.index)]
        if any(p.sargable for p in preds):
            continue  # an index serves the filter: the advisor's finding, not a counter's
        if preds:
            fix = (f"COUNT(*) reads all {n:,} rows of {table} because no index can serve its "
                   f"filter ({'; '.join(p.sql for p in preds)}): rewrite the filter on plain "
                   "columns an index can seek (a whole-table counter would not answer a "
                   "filtered count)")
            fix_sql = None
        else:
            fix = (f"COUNT(*) reads all {n:,} entries of {table} every time: keep the count in a "
                   "one-row table maintained by triggers (d1bench fix measures it), and read that row")
            counter, fix_sql = counter_ddl(table)
            fix_sql += f"\nSELECT n FROM {counter} WHERE id = 1;"
        yield Finding(name, RULE, ctx.severity(name, "medium"),
                      ctx.evidence(name, f"COUNT(*) over {table} ({n:,} rows)"), fix, fix_sql)
