"""ORDER BY ... LIMIT that sorts a whole table to return a few rows."""

from __future__ import annotations

from collections.abc import Iterator

from d1bench.linter.context import Finding, LintContext

__all__ = ["RULE", "check"]

RULE = "order_by_limit_full_sort"


def check(ctx: LintContext) -> Iterator[Finding]:
    from d1bench.sql.catalog import Key
    from d1bench.sql.naming import index_name

    for name, info in ctx.infos.items():
        plan = ctx.plans.get(name, ())
        details = [r.detail for r in plan]
        if not any(d.startswith("USE TEMP B-TREE FOR") and "ORDER BY" in d for d in details):
            continue
        for scope in info.scopes:
            if scope.limit is None or not scope.order_by:
                continue
            refs = {r for r, _k, _d in scope.order_by}
            if len(refs) != 1 or -1 in refs:
                continue
            ref = info.refs[refs.pop()]
            scanned = any(d == f"SCAN {ref.alias}" or d.startswith(f"SCAN {ref.alias} ")
                          and " USING " not in d for d in details)
            if ref.kind != "table" or not scanned:
                continue
            eq = [p.key for p in info.preds_of(ref.index)
                  if p.op in ("eq", "in", "isnull") and p.key and p.sargable and not p.refs - {ref.index}]
            order = [(k, d) for _r, k, d in scope.order_by]
            mixed = len({d for _k, d in order}) > 1
            keys = [Key(k) for k in dict.fromkeys(eq)] + [Key(k, d and mixed) for k, d in order]
            sql = (f"CREATE INDEX {index_name(ref.name, keys)} ON {ref.name} "
                   f"({', '.join(k.sql for k in keys)});")
            n = ctx.stats.row_count(ref.name)
            fix = (f"the plan reads and sorts all of {ref.name} ({n:,} rows) to keep "
                   f"{scope.limit if not isinstance(scope.limit, str) else 'a few'} rows: an index "
                   "on the equality columns then the ORDER BY columns returns them in order and "
                   "stops at the LIMIT")
            yield Finding(name, RULE, ctx.severity(name, "medium"),
                          ctx.evidence(name, f"ORDER BY {', '.join(k for k, _ in order)} LIMIT"),
                          fix, sql)
            break
