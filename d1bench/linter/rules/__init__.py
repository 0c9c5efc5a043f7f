"""One module per anti-pattern, each exposing ``RULE`` (its name) and ``check(ctx)``.

A rule yields :class:`~d1bench.linter.context.Finding` values.  Rules read the
template as :mod:`d1bench.advisor.query` reads it (sqlglot, dialect sqlite),
its plan on the corpus, and the trace when there is one.
"""

from __future__ import annotations

from d1bench.linter.rules import (
    correlated_subquery,
    count_star,
    fk_unindexed,
    function_group_order,
    function_on_column,
    like_json,
    like_wildcard,
    n_plus_one,
    offset_pagination,
    or_columns,
    order_limit_sort,
    select_star,
    vector_json,
)

#: Every rule, in the order findings are listed.
RULES = (
    n_plus_one,
    like_wildcard,
    function_on_column,
    function_group_order,
    like_json,
    select_star,
    offset_pagination,
    or_columns,
    count_star,
    correlated_subquery,
    order_limit_sort,
    fk_unindexed,
    vector_json,
)

__all__ = ["RULES"]
