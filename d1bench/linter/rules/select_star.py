"""SELECT *: every column travels, including large JSON ones the caller may never read."""

from __future__ import annotations

import re
from collections.abc import Iterator

from d1bench.linter.context import Finding, LintContext

__all__ = ["RULE", "check", "expand_star"]

RULE = "select_star"

#: Columns averaging at least this many bytes make SELECT * a medium finding.
WIDE_BYTES = 200


def expand_star(ctx: LintContext, name: str) -> str | None:
    """The template with each ``*`` / ``t.*`` written out as its columns."""
    from sqlglot import exp

    info = ctx.infos[name]
    if info.tree is None:
        return None
    tree = info.tree.copy()
    ctes = {c.alias_or_name.lower(): c.this for c in tree.find_all(exp.CTE)}
    # Innermost first, so a CTE's own star is written out before a SELECT * over the CTE.
    for select in list(tree.find_all(exp.Select))[::-1]:
        new = []
        changed = False
        refs = _refs_of(info, select)
        for proj in select.expressions:
            if isinstance(proj, exp.Star):
                changed = True
                for ref in refs:
                    new += _columns(ctx, ref, qualify=len(refs) > 1)
                for cte in _ctes_of(select, ctes):
                    names = [e.alias_or_name for e in cte.expressions]
                    if not names or any(n in ("", "*") for n in names):
                        return None  # a shape this rule cannot write out: no SQL rather than bad SQL
                    new += [exp.column(n) for n in names]
                if not new:
                    return None
            elif isinstance(proj, exp.Column) and isinstance(proj.this, exp.Star):
                changed = True
                ref = next((r for r in refs if r.alias == (proj.table or "").lower()), None)
                new += _columns(ctx, ref, qualify=True) if ref else [proj]
            else:
                new.append(proj)
        if changed:
            select.set("expressions", new)
    return re.sub(r":p\d+", "?", tree.sql("sqlite"))


def _ctes_of(select, ctes):
    from sqlglot import exp

    return [ctes[t.name.lower()] for t in select.find_all(exp.Table)
            if t.find_ancestor(exp.Select) is select and t.name.lower() in ctes]


def _refs_of(info, select):
    from sqlglot import exp

    names = set()
    for t in select.find_all(exp.Table):
        if t.find_ancestor(exp.Select) is select:
            names.add((t.alias or t.name).lower())
    return [r for r in info.refs if r.alias in names and r.kind in ("table", "view")]


def _columns(ctx: LintContext, ref, qualify: bool):
    from sqlglot import exp

    td = ctx.catalog.table(ref.name) if ref else None
    if td is None:
        return [exp.Star()]
    return [exp.column(c, table=ref.alias if qualify else None) for c in td.columns]


def check(ctx: LintContext) -> Iterator[Finding]:
    for name, info in ctx.infos.items():
        if not info.star or info.error:
            continue
        if not any("*" in r.columns and r.kind in ("table", "view") for r in info.refs):
            continue  # a star over a CTE or subquery the template itself shapes
        wide = []
        for ref in info.refs:
            if "*" in ref.columns and ref.kind == "table":
                td = ctx.catalog.table(ref.name)
                for col in td.columns if td else ():
                    if ctx.stats.avg_bytes(ref.name, col) >= WIDE_BYTES:
                        wide.append(f"{ref.name}.{col}")
        extra = "SELECT * " + (f"also returns wide columns {', '.join(wide)}" if wide else
                               "returns every column")
        fix = ("name the columns the caller uses; rows read stay the same on D1 but every "
               "byte of every column is read, sent and parsed")
        yield Finding(name, RULE, "medium" if wide else "low", ctx.evidence(name, extra), fix,
                      expand_star(ctx, name))
