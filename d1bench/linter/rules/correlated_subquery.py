"""Correlated subqueries: the inner query runs again for every outer row."""

from __future__ import annotations

from collections.abc import Iterator

from d1bench.linter.context import Finding, LintContext

__all__ = ["RULE", "check"]

RULE = "correlated_subquery"


def check(ctx: LintContext) -> Iterator[Finding]:
    for name, info in ctx.infos.items():
        plan = [r.detail for r in ctx.plans.get(name, ())]
        in_plan = [d for d in plan if d.startswith("CORRELATED ")]
        in_sql = [s for s in info.scopes if s.correlated and s.role == "subquery"]
        if not in_plan and not in_sql:
            continue
        what = in_plan[0] if in_plan else "a subquery that reads the outer query's columns"
        fix = ("the subquery runs once per outer row: join the inner table once and aggregate "
               "with GROUP BY (or precompute the value in a column)")
        yield Finding(name, RULE, ctx.severity(name, "medium"), ctx.evidence(name, what), fix, None)
