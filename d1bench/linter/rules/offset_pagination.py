"""OFFSET pagination: page N reads (and throws away) every row of the pages before it."""

from __future__ import annotations

from collections.abc import Iterator

from d1bench.linter.context import Finding, LintContext, fix_rewrite, param_values

__all__ = ["RULE", "check"]

RULE = "offset_pagination"


def check(ctx: LintContext) -> Iterator[Finding]:
    from d1bench.fixer.kinds import keyset

    for name, info in ctx.infos.items():
        for scope in info.scopes:
            if scope.offset is None:
                continue
            if isinstance(scope.offset, str):
                values = [v for v in param_values(ctx, name, (scope.offset,)) if isinstance(v, int)]
                seen = f"OFFSET ? (drawn values up to {max(values):,})" if values else "OFFSET ?"
            else:
                seen = f"OFFSET {scope.offset:,}"
            keys = [k for r, k, _d in scope.order_by if r >= 0]
            key = ", ".join(keys) if keys else "the sort key"
            fix = (f"D1 bills the skipped rows too: page by key instead (keyset pagination), "
                   f"remembering the last row's {key} and asking for the rows after it")
            rw = fix_rewrite(ctx, name, keyset)
            fix_sql = rw.sql if rw is not None else None
            if rw is not None and rw.ddl:
                fix += " (d1bench fix measures it, with the index the next-page query needs)"
            yield Finding(name, RULE, ctx.severity(name, "medium"), ctx.evidence(name, seen), fix,
                          fix_sql)
