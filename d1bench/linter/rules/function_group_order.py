"""A function over a column in GROUP BY or ORDER BY: no index gives that order, so SQLite sorts.

``GROUP BY date(ts)`` computes the function for every row read and sorts the
results in a temporary b-tree (which D1 counts too); an index on ``ts`` cannot
hand rows over in ``date(ts)`` order.  The finding rests on the plan: only a
template whose plan builds a temporary b-tree for that clause is flagged.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from d1bench.linter.context import Finding, LintContext

if TYPE_CHECKING:
    from sqlglot import exp

__all__ = ["RULE", "check", "functions_in"]

RULE = "function_in_group_or_order"


def functions_in(tree: exp.Expression) -> list[tuple[str, str]]:
    """``(clause, expression)`` for every GROUP BY / ORDER BY term that is a function over a column.

    Terms naming a select-list alias are read through it (``GROUP BY day`` where
    ``date(ts) AS day``).

    >>> import sqlglot
    >>> functions_in(sqlglot.parse_one("SELECT date(ts) AS d, n FROM t GROUP BY d ORDER BY lower(x), n", read="sqlite"))
    [('GROUP BY', 'DATE(ts)'), ('ORDER BY', 'LOWER(x)')]
    """
    from sqlglot import exp

    out: list[tuple[str, str]] = []
    for select in tree.find_all(exp.Select):
        aliases = {e.alias: e.this for e in select.expressions if isinstance(e, exp.Alias)}
        group = select.args.get("group")
        order = select.args.get("order")
        terms = [("GROUP BY", t) for t in (group.expressions if group else [])]
        terms += [("ORDER BY", t.this) for t in (order.expressions if order else [])]
        for clause, term in terms:
            if isinstance(term, exp.Column) and not term.table and term.name in aliases:
                term = aliases[term.name]
            if (isinstance(term, exp.Func) and not isinstance(term, exp.AggFunc)
                    and term.find(exp.Column) is not None and term.find(exp.AggFunc) is None):
                out.append((clause, term.sql(dialect="sqlite")))
    return out


def check(ctx: LintContext) -> Iterator[Finding]:
    for name, info in ctx.infos.items():
        if info.tree is None or info.error:
            continue
        details = [r.detail for r in ctx.plans.get(name, ())]
        for clause, expr in functions_in(info.tree):
            if not any(d.startswith("USE TEMP B-TREE FOR") and clause in d for d in details):
                continue
            fix = (f"{clause} {expr} is computed for every row read and sorted in a temporary "
                   "b-tree: no index gives that order.  Group or sort by a stored column (a "
                   "generated column with an index), or, for date buckets over large ranges, "
                   "read a rollup table kept by triggers")
            yield Finding(name, RULE, ctx.severity(name, "low"),
                          ctx.evidence(name, f"{clause} {expr}"), fix, None)
            break
