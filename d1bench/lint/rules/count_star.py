"""COUNT(*) over a large table: D1 counts every entry of the b-tree it counts as a row read."""

from __future__ import annotations

from collections.abc import Iterator

from d1bench.lint.context import LARGE_TABLE_ROWS, Finding, LintContext

__all__ = ["RULE", "check"]

RULE = "count_star_large_table"


def check(ctx: LintContext) -> Iterator[Finding]:
    from sqlglot import exp

    for name, info in ctx.infos.items():
        if info.tree is None or info.error:
            continue
        if not any(isinstance(c.this, exp.Star) for c in info.tree.find_all(exp.Count)):
            continue
        plan = [r.detail for r in ctx.plans.get(name, ())]
        big = []
        for scope in info.scopes:
            if not scope.aggregate:
                continue  # COUNT(*) per group is a different question
            for ref in info.refs_of(scope.index):
                if ref.kind != "table":
                    continue
                n = ctx.stats.row_count(ref.name)
                scanned = any(d.split(" ")[:2] == ["SCAN", ref.alias] for d in plan)
                if n >= LARGE_TABLE_ROWS and scanned:
                    big.append((ref.name, n))
        if not big:
            continue
        table, n = big[0]
        fix = (f"COUNT(*) reads all {n:,} entries of {table} every time: keep the count in a "
               "small table maintained by triggers (or in a cache), and read that row")
        fix_sql = (f"CREATE TABLE IF NOT EXISTS {table}_count (n INTEGER NOT NULL); "
                   f"CREATE TRIGGER {table}_count_ins AFTER INSERT ON {table} BEGIN "
                   f"UPDATE {table}_count SET n = n + 1; END; "
                   f"CREATE TRIGGER {table}_count_del AFTER DELETE ON {table} BEGIN "
                   f"UPDATE {table}_count SET n = n - 1; END;")
        yield Finding(name, RULE, ctx.severity(name, "medium"),
                      ctx.evidence(name, f"COUNT(*) over {table} ({n:,} rows)"), fix, fix_sql)
