"""OR across different columns: one index cannot serve both sides."""

from __future__ import annotations

from collections.abc import Iterator

from d1bench.linter.context import Finding, LintContext

__all__ = ["RULE", "check"]

RULE = "or_across_columns"


def check(ctx: LintContext) -> Iterator[Finding]:
    for name, info in ctx.infos.items():
        for p in info.preds:
            if p.op != "or":
                continue
            keys = set(str(p.literal or "").split(","))
            if len(keys) < 2:
                continue
            if "None" in keys:
                fix = ("the optional-filter idiom (col = ? OR ? IS NULL) keeps the planner from "
                       "using an index on col: build the statement with or without the filter "
                       "instead of one statement for both")
                fix_sql = None
            else:
                cols = sorted(k for k in keys if k != "None")
                fix = ("an OR over different columns needs an index on each and a MULTI-INDEX OR "
                       "plan, or a full scan: split it into a UNION ALL of one query per column")
                fix_sql = " UNION ALL ".join(f"SELECT ... WHERE {c} = ?" for c in cols)
            yield Finding(name, RULE, ctx.severity(name, "low"), ctx.evidence(name, p.sql), fix,
                          fix_sql)
