"""Brute-force vector search over JSON: json_each over an embedding for every row."""

from __future__ import annotations

from collections.abc import Iterator

from d1bench.linter.context import Finding, LintContext, fix_rewrite

__all__ = ["RULE", "check"]

RULE = "vector_search_over_json"


def check(ctx: LintContext) -> Iterator[Finding]:
    from sqlglot import exp

    from d1bench.linter.rules.like_json import is_json_column

    for name, info in ctx.infos.items():
        if info.tree is None:
            continue
        hits = [f"{table}.{column}" for table, column in info.json_loops()
                if any(w in column.lower() for w in ("embedding", "vector", "emb"))
                or is_json_column(ctx, table, column)]
        arithmetic = info.tree.find(exp.Pow) is not None or info.tree.find(exp.Sum) is not None
        if not hits or not arithmetic:
            continue
        fix = ("distances computed in SQL over JSON arrays read every element of every vector "
               "(D1 counts each json_each row): keep an approximate index of random-hyperplane "
               "buckets in a keyed table and rank only the rows sharing a bucket (the DDL and "
               "query below; d1bench fix measures its recall), or use a vector index "
               "(Cloudflare Vectorize) and fetch the matching rows by id")
        fix_sql = _lsh(ctx, name)
        yield Finding(name, RULE, ctx.severity(name, "high"),
                      ctx.evidence(name, f"json_each over {', '.join(dict.fromkeys(hits))}"),
                      fix, fix_sql)


def _lsh(ctx: LintContext, name: str) -> str | None:
    """The fix plan's approximate index for the template: its DDL, its backfill, then its query."""
    from d1bench.fixer.kinds import vector

    rw = fix_rewrite(ctx, name, vector)
    return f"{rw.ddl}\n{rw.backfill_sql}\n{rw.sql};" if rw is not None else None
