"""``col LIKE '%word%'`` -> a rowid lookup through an FTS5 MATCH on an index that covers ``col``.

A LIKE with a leading wildcard reads every row; an FTS5 index over the same
column answers from its postings.  They do not mean the same thing -- LIKE
matches substrings, case-blind for ASCII; MATCH matches tokens, after the
tokenizer's folding and stemming -- so the rewrite is only proposed as exact
when every sampled term gave the same rows (:mod:`d1bench.fixer.check`).  The
application binds ``col : "word"`` where it bound ``%word%``.
"""

from __future__ import annotations

import re
from typing import Any

from d1bench.fixer.model import Context, Rewrite, Skip, Trial
from d1bench.fixer.sqlshape import placeholder_index, read_select, table_aliases, to_sql

KIND = "fts_match"

_OPTION = re.compile(r"\b(content|content_rowid)\s*=\s*'([^']*)'", re.IGNORECASE)


def fts_indexes(catalog: Any) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(fts table, content table, content rowid, columns) for every external-content FTS5 table."""
    out = []
    for td in catalog.tables.values():
        if (td.module or "").lower() != "fts5":
            continue
        opts = {k.lower(): v for k, v in _OPTION.findall(td.sql or "")}
        if opts.get("content"):
            out.append((td.name, opts["content"].lower(), opts.get("content_rowid", "rowid"),
                        tuple(c.lower() for c in td.columns)))
    return out


def match_value(like: Any, column: str) -> str | None:
    """The MATCH expression for a ``%word%`` pattern on ``column``, or ``None`` if it has none.

    >>> match_value("%heart failure%", "body")
    'body : "heart failure"'
    >>> match_value("%a_b%", "body") is None, match_value("prefix%", "body") is None
    (True, True)
    """
    if not isinstance(like, str) or len(like) < 3 or not (like.startswith("%") and like.endswith("%")):
        return None
    word = like[1:-1]
    if not word.strip() or "%" in word or "_" in word:
        return None
    return f'{column} : "' + word.replace('"', '""') + '"'


def propose(name: str, ctx: Context) -> Rewrite | Skip | None:
    from sqlglot import exp

    found = read_select(ctx.workload, name)
    if found is None:
        return None
    template, parsed = found
    ftss = fts_indexes(ctx.catalog)
    for like in parsed.tree.find_all(exp.Like):
        col, ph = like.this, like.expression
        index = placeholder_index(ph)
        if not isinstance(col, exp.Column) or index is None:
            continue
        select = like.find_ancestor(exp.Select)
        aliases = table_aliases(select) if select else {}
        table = aliases.get(col.table) if col.table else (
            ctx.catalog.column_table(col.name, aliases.values()))
        fts = next((f for f in ftss if f[1] == (table or "").lower() and col.name.lower() in f[3]),
                   None)
        if fts is None:
            return Skip(KIND, name, f"{col.sql()} LIKE ?: no FTS5 index covers {table}.{col.name}")
        fts_name, _, rowid, _ = fts
        owner = col.table or table
        lookup = exp.condition(f"{owner}.{rowid} IN (SELECT rowid FROM {fts_name} "
                               f"WHERE {fts_name} MATCH :p{index})", dialect="sqlite")
        like.replace(lookup)
        sql = to_sql(parsed.tree)
        column = col.name

        def trial(params: tuple, _conn: Any, *, sql: str = sql, i: int = index - 1,
                  column: str = column) -> Trial:
            value = match_value(params[i], column)
            if value is None:
                raise_unmatched(params[i])
            after = params[:i] + (value,) + params[i + 1:]
            return Trial(before=((template.sql, params),), after=((sql, after),),
                         ordered=_ordered(template.sql))

        return Rewrite(KIND, name, sql, "", True,
                       f"{col.sql()} LIKE '%word%' reads every row of {table}; {fts_name} "
                       f"answers it from its index: bind '{column} : \"word\"' instead",
                       trial, templates={name: 1.0})
    return None


def raise_unmatched(value: Any) -> None:
    from d1bench.errors import TargetError

    raise TargetError(f"sampled pattern {value!r} is not a '%word%' search")


def _ordered(sql: str) -> bool:
    return bool(re.search(r"\border\s+by\b", sql, re.IGNORECASE))
