"""LIKE with a leading wildcard: no index can serve ``LIKE '%term%'``, every row is read."""

from __future__ import annotations

from collections.abc import Iterator

from d1bench.linter.context import Finding, LintContext, fix_rewrite, param_values

__all__ = ["RULE", "check", "leading_wildcard"]

RULE = "like_leading_wildcard"


def leading_wildcard(ctx: LintContext, template: str, pred) -> bool:
    """Does this LIKE's pattern start with ``%`` or ``_`` (literally, or in the drawn values)?"""
    if pred.value == "literal":
        return isinstance(pred.literal, str) and pred.literal[:1] in ("%", "_")
    if _concatenated_wildcard(pred.sql):
        return True  # '%' || ? || '%'
    values = [v for v in param_values(ctx, template, pred.params) if isinstance(v, str)]
    return bool(values) and all(v[:1] in ("%", "_") for v in values)


def check(ctx: LintContext) -> Iterator[Finding]:
    from d1bench.fixer.kinds import fts_match

    for name, info in ctx.infos.items():
        for p in info.preds:
            if p.op != "like" or not leading_wildcard(ctx, name, p):
                continue
            fts = _fts_for(ctx, info, p)
            fix = ("a leading wildcard defeats every index: search words with the FTS5 table"
                   if fts else "a leading wildcard defeats every index: match on a prefix "
                   "('term%', served by an index with COLLATE NOCASE or GLOB), or index the "
                   "words with an FTS5 table")
            rw = fix_rewrite(ctx, name, fts_match) if fts else None
            fix_sql = rw.sql if rw is not None else None
            if rw is not None:
                fix += ", binding 'column : \"word\"' for '%word%' (d1bench fix checks on sampled words whether MATCH returns the same rows)"
            yield Finding(name, RULE, ctx.severity(name, "medium"),
                          ctx.evidence(name, f"{p.sql}"), fix, fix_sql)


def _fts_for(ctx: LintContext, info, pred) -> str | None:
    """An FTS5 table whose content is this predicate's table and that indexes its column."""
    if pred.ref < 0 or pred.key is None:
        return None
    table = info.refs[pred.ref].name
    for td in ctx.catalog.tables.values():
        if td.is_fts and f"content = '{table}'" in td.sql.replace("content='", "content = '") \
                and any(c.lower() in pred.key.lower() for c in td.columns):
            return td.name
    return None


def _concatenated_wildcard(sql: str) -> bool:
    """``x LIKE '%' || ? || '%'``: the pattern is built with a leading wildcard."""
    from sqlglot import exp

    from d1bench.sql.parsing import ParseFailure, parse_statement

    try:
        tree = parse_statement(f"SELECT 1 WHERE {sql}")
    except ParseFailure:
        return False
    like = tree.find(exp.Like)
    pattern = like.expression if like is not None else None
    while isinstance(pattern, exp.DPipe):
        pattern = pattern.this
    return isinstance(pattern, exp.Literal) and pattern.is_string and pattern.this[:1] in ("%", "_")
