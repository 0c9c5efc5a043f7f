"""Reading and rewriting a template's SQL with sqlglot, placeholders kept numbered.

Every ``?`` of a template becomes ``:pN`` (its position) before parsing, so a
rewrite can move, drop or add a placeholder and still say which value binds
where; :func:`to_sql` writes them back as D1's ``?NNN``.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "ParsedSQL",
    "max_index",
    "number_placeholders",
    "parse",
    "placeholder_index",
    "read_select",
    "table_aliases",
    "to_sql",
]

_NAMED = re.compile(r":p(\d+)\b")


def number_placeholders(sql: str) -> str:
    """``?`` -> ``:pN`` in order (``?NNN`` keeps its number), as the advisor reads templates.

    >>> number_placeholders("SELECT '?' , ? , ?3 , ? -- ?")
    "SELECT '?' , :p1 , :p3 , :p4 -- ?"
    """
    from d1bench.sql.parsing import number_placeholders as numbered

    return numbered(sql)[0]


class ParsedSQL:
    """A template's statement parsed with numbered placeholders."""

    def __init__(self, sql: str) -> None:
        import sqlglot

        from d1bench.sql.text import quiet_sqlglot

        self.text = number_placeholders(sql)
        with quiet_sqlglot():
            self.tree = sqlglot.parse_one(self.text, read="sqlite")
        self.count = max((int(n) for n in _NAMED.findall(self.text)), default=0)


def parse(sql: str) -> ParsedSQL | None:
    """The statement parsed, or ``None`` if sqlglot cannot read it."""
    try:
        return ParsedSQL(sql)
    except Exception:  # noqa: BLE001 - any parse failure means "no rewrite"
        return None


def read_select(workload: Any, name: str) -> tuple[Any, ParsedSQL] | None:
    """(template, its parsed SELECT) for a read template a rewrite can work on, else ``None``."""
    from sqlglot import exp

    template = workload.templates[name]
    parsed = None if template.is_write else parse(template.sql)
    if parsed is None or not isinstance(parsed.tree, exp.Select):
        return None
    return template, parsed


def placeholder_index(node: Any) -> int | None:
    """The 1-based position of a placeholder node (``:pN``), else ``None``."""
    from sqlglot import exp

    if isinstance(node, exp.Placeholder) and str(node.this or "").startswith("p"):
        digits = str(node.this)[1:]
        return int(digits) if digits.isdigit() else None
    return None


def max_index(sql: str) -> int:
    """The largest ``?NNN`` in SQL written by :func:`to_sql` (how many values it binds).

    >>> max_index("SELECT ?1, ?3")
    3
    """
    return max((int(n) for n in re.findall(r"\?(\d+)", number_placeholders(sql).replace(
        ":p", "?"))), default=0)


def to_sql(tree: Any) -> str:
    """The expression as SQLite text, placeholders written as ``?NNN``."""
    return _NAMED.sub(lambda m: f"?{m.group(1)}", tree.sql(dialect="sqlite"))


def table_aliases(select: Any) -> dict[str, str]:
    """Alias (or name) -> table name for the tables of one SELECT's FROM and JOINs."""
    from sqlglot import exp

    out: dict[str, str] = {}
    for table in select.find_all(exp.Table):
        if table.find_ancestor(exp.Select) is not select:
            continue
        out[table.alias_or_name] = table.name
    return out
