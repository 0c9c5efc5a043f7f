"""Brute-force vector search over JSON: json_each over an embedding for every row."""

from __future__ import annotations

from collections.abc import Iterator

from d1bench.lint.context import Finding, LintContext

__all__ = ["RULE", "check"]

RULE = "vector_search_over_json"


def check(ctx: LintContext) -> Iterator[Finding]:
    from sqlglot import exp

    from d1bench.lint.rules.like_json import is_json_column

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
               "(D1 counts each json_each row): use a vector index (Cloudflare Vectorize) and "
               "fetch the matching rows by id, or precompute nearest neighbours")
        fix_sql = "SELECT ... FROM papers WHERE id IN (?, ?, ...)  -- ids returned by the vector index"
        yield Finding(name, RULE, ctx.severity(name, "high"),
                      ctx.evidence(name, f"json_each over {', '.join(dict.fromkeys(hits))}"),
                      fix, fix_sql)
