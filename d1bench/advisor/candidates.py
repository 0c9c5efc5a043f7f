"""Candidate indexes: what each template's predicates, sorts and groups ask for.

For every table a template reads, the keys come from its conjuncts and
clauses:

* equality keys (``=``, ``IN``, ``IS NULL``, join columns), most selective first;
* range keys (``<``, ``>``, ``BETWEEN``, a LIKE an index can serve);
* ORDER BY keys (kept with their directions when they are mixed), which let a
  plan stop at its LIMIT instead of sorting everything; where a constant IN list
  or IS NULL would stand between the equalities and the order (each IN value is
  a run of its own, so the rows are sorted again), the order follows the other
  equalities, bare and with those predicates as the index's WHERE;
* GROUP BY keys, which let groups stream out of an index;
* covering indexes (the keys above, then every other column the template
  needs), which save time on D1 though not rows read;
* partial indexes for a selective constant predicate (``abstract IS NULL``,
  ``stage = 'final'``): the same keys, a fraction of the entries; and, where a
  key is an equality's (a foreign-key check's included) and most rows leave it
  NULL, the same index ``WHERE key IS NOT NULL``, which every equality on it implies;
* expression keys (``json_extract(col, '$.a')``, ``lower(col)``) where the
  predicate wraps a column in one.

The selection stage grows indexes one key at a time along these candidates, so
every prefix of a candidate is a candidate too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from d1bench.advisor.foreign import child_keys, not_null_where
from d1bench.advisor.query import ALL_COLUMNS, ROWID, Pred, QueryInfo, Ref
from d1bench.advisor.stats import Stats
from d1bench.sql.catalog import Catalog, IndexDef, Key
from d1bench.sql.naming import Namer
from d1bench.sql.parsing import ParseFailure, parse_statement

__all__ = ["EQ_OPS", "MAX_COVERING_KEYS", "PARTIAL_MAX_FRACTION", "Candidate", "generate"]

#: A constant predicate holding for at most this fraction of a table's rows
#: makes a partial index worth proposing.
PARTIAL_MAX_FRACTION = 0.25
#: Covering indexes are proposed only up to this many keys.
MAX_COVERING_KEYS = 6
#: Predicate operators that pin a key to one value (or a few).
EQ_OPS = ("eq", "in", "isnull")


@dataclass
class Candidate:
    """A candidate index and the templates that asked for it (and why)."""

    index: IndexDef
    templates: set[str] = field(default_factory=set)
    kinds: set[str] = field(default_factory=set)


@dataclass
class _Wants:
    eq: list[str] = field(default_factory=list)
    range: list[str] = field(default_factory=list)
    order: list[tuple[str, bool]] = field(default_factory=list)
    group: list[str] = field(default_factory=list)
    needed: set[str] = field(default_factory=set)
    partial: list[tuple[str, str]] = field(default_factory=list)  # (key, predicate text)
    eq_param: list[str] = field(default_factory=list)  # keys compared with a value (not NULL)
    local: list[str] = field(default_factory=list)  # equality keys that are not join keys
    constant: list[tuple[str, str]] = field(default_factory=list)  # every (key, constant predicate)


def generate(infos: Mapping[str, QueryInfo], catalog: Catalog, stats: Stats,
             namer: Namer, params: Mapping[str, Mapping[str, Any]] | None = None
             ) -> dict[tuple, Candidate]:
    """Candidates for every template, keyed by index shape (table, keys, where).

    Existing indexes are left out: they are part of the starting configuration.
    """
    existing = {i.shape for i in catalog.indexes}
    out: dict[tuple, Candidate] = {}

    def add(table: str, keys: list[tuple[str, bool]], where: str | None, template: str,
            kind: str) -> None:
        seen: list[tuple[str, bool]] = []
        for k in keys:
            if k[0] == ROWID or any(k[0] == s[0] for s in seen):
                continue
            seen.append(k)
        if not seen:
            return
        shape_keys = tuple(Key(k, d) for k, d in seen)
        shape = (table, shape_keys, where)
        if shape in existing:
            return
        if shape not in out:
            name = namer.name(table, shape_keys, where)
            out[shape] = Candidate(IndexDef(table, shape_keys, where, name=name))
        out[shape].templates.add(template)
        out[shape].kinds.add(kind)

    for name, info in infos.items():
        if info.error:
            continue
        for fk in child_keys(catalog, info):
            add(fk.table, [(fk.column, False)], None, name, "foreign key")
            if _mostly_null(stats, fk.table, fk.column):
                add(fk.table, [(fk.column, False)], not_null_where(fk.column), name,
                    "foreign key")
        for ref in info.refs:
            if ref.kind != "table":
                continue
            table = ref.name
            wants = _wants(info, ref, catalog, stats, (params or {}).get(name, {}))
            eq = [(k, False) for k in wants.eq]
            for k in wants.eq + wants.range + [o for o, _ in wants.order[:1]] + wants.group[:1]:
                add(table, [(k, False)], None, name, "single")
            if eq:
                add(table, eq, None, name, "equality")
                if wants.eq_param and wants.eq_param[0] == eq[0][0] \
                        and _mostly_null(stats, table, eq[0][0]):
                    add(table, eq + _directions(wants.order), not_null_where(eq[0][0]), name,
                        "partial")
            for r in wants.range:
                add(table, eq + [(r, False)], None, name, "range")
            order = _directions(wants.order)
            alias = _rowid_alias(catalog, table) if eq else None
            # the ORDER BY or GROUP BY after the equality keys; and after this table's own
            # equalities alone, for a table the plan reads first (its join keys then come
            # from the tables after it, and in an index before the order they would break it)
            local = [(k, False) for k in wants.local]
            for keys in ([eq, local] if local != eq else [eq]):
                if order:
                    add(table, keys + _named_rowid(order, alias), None, name, "order")
                if wants.group:
                    add(table, keys + _named_rowid([(g, False) for g in wants.group], alias),
                        None, name, "group")
            if ALL_COLUMNS not in wants.needed:
                for base in ([*eq, *order], [*eq, *[(r, False) for r in wants.range[:1]]]):
                    rest = sorted(c for c in wants.needed
                                  if c != ROWID and c not in {k for k, _ in base})
                    if base and rest and len(base) + len(rest) <= MAX_COVERING_KEYS:
                        add(table, base + [(c, False) for c in rest], None, name, "covering")
            for key, predicate in wants.partial:
                rest_eq = [(k, False) for k in wants.eq if k != key]
                keys = rest_eq + (order or [(r, False) for r in wants.range[:1]]) or [(key, False)]
                add(table, keys, predicate, name, "partial")
            if order and wants.constant:
                # An IN list or an IS NULL before the ORDER BY's keys breaks the index's
                # order (each IN value is a run of its own), so the rows are sorted and a
                # LIMIT stops nothing.  Keyed by the other equalities, then the order, with
                # the constant predicates as the index's WHERE (or left to the filter), the
                # plan walks the rows in order and stops at its LIMIT.
                pinned = {k for k, _ in wants.constant}
                keys = [(k, False) for k in wants.eq if k not in pinned] + order
                add(table, keys, None, name, "order")
                where = " AND ".join(dict.fromkeys(p for _, p in wants.constant))
                add(table, keys, where, name, "partial")
    return out


def _rowid_alias(catalog: Catalog, table: str) -> str | None:
    td = catalog.table(table)
    return td.rowid_alias if td is not None and not td.without_rowid else None


def _named_rowid(keys: list[tuple[str, bool]], alias: str | None) -> list[tuple[str, bool]]:
    """Keys with the rowid spelt as its column, after an equality: ``(specialty, id)``.

    An index on ``(specialty)`` alone gives the rowid order too, but beside a
    composite ``(specialty, citation_count)`` it is prefix-redundant and goes;
    naming the column keeps the order a ``GROUP BY p.id`` streams from.
    """
    if alias is None:
        return keys
    return [(alias, d) if k == ROWID else (k, d) for k, d in keys]


def _directions(order: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """ORDER BY keys for an index: all ascending unless the directions are mixed
    (SQLite walks an index backwards for free, but not half of it)."""
    if not order:
        return []
    if len({d for _, d in order}) == 1:
        return [(k, False) for k, _ in order]
    return list(order)


def _wants(info: QueryInfo, ref: Ref, catalog: Catalog, stats: Stats,
           params: Mapping[str, Any]) -> _Wants:
    w = _Wants()
    td = catalog.table(ref.name)
    rowid = td.rowid_alias if td is not None and not td.without_rowid else None
    eq: list[str] = []
    matched: dict[str, float] = {}  # fraction of the rows each equality key lets through
    for p in info.preds:
        if p.op == "join":
            if p.ref == ref.index and p.key:
                eq.append(p.key)
            elif p.other_ref == ref.index and p.other_key:
                eq.append(p.other_key)
            continue
        if p.ref != ref.index or p.refs - {ref.index} or p.key is None:
            continue
        if p.op in EQ_OPS and p.sargable or p.op == "eq" and p.value == "outer":
            eq.append(p.key)
            if p.op in ("eq", "in") and p.value in ("param", "literal"):
                w.eq_param.append(p.key)
            matched[p.key] = min(matched.get(p.key, 1.0), _matched(stats, ref.name, p, params))
        elif p.op in ("range",) or (p.op == "like" and p.sargable):
            w.range.append(p.key)
        if p.value in ("literal", "none") and p.op in ("eq", "isnull", "notnull", "in") \
                and not (p.op == "isnull" and p.key in (ROWID, rowid)):
            # (an anti-join's `c.id IS NULL` is about the join, never a row's value)
            predicate = _partial_text(p)
            if predicate is not None:
                w.constant.append((p.key, predicate))
                if _fraction(stats, ref.name, predicate) <= PARTIAL_MAX_FRACTION:
                    w.partial.append((p.key, predicate))
    # most selective first, by the rows the template's own values let through (a
    # `deleted_at IS NULL` that holds for half the table goes after `country = ?`),
    # then by distinct values: the shared prefix of several templates tends to be
    # the selective key
    w.eq = sorted(dict.fromkeys(eq), key=lambda k: (
        matched.get(k, 1.0 / max(_distinct(stats, ref.name, k), 1)), -_distinct(stats, ref.name, k)))
    w.range = [r for r in dict.fromkeys(w.range) if r not in w.eq]
    w.local = [k for k in w.eq if k in matched]
    scope = info.scopes[ref.scope]
    if scope.order_by and all(r == ref.index for r, _k, _d in scope.order_by):
        w.order = [(k, d) for _r, k, d in scope.order_by]
    if scope.group_by and all(r == ref.index for r, _k in scope.group_by):
        w.group = [k for _r, k in scope.group_by]
    w.needed = set(ref.columns)
    return w


def _partial_text(p: Pred) -> str | None:
    """The predicate as a partial index's WHERE (no table qualifier), if it is a plain one."""
    from d1bench.sql.parsing import render_predicate

    try:
        tree = parse_statement(f"SELECT 1 WHERE {p.sql}")
    except ParseFailure:
        return None
    where = tree.args.get("where")
    if where is None:
        return None
    text = render_predicate(where.this, strip_tables=True)
    return None if ":p" in text else text


def _mostly_null(stats: Stats, table: str, key: str) -> bool:
    """Do so few rows set ``key`` that an index of the set ones is worth proposing?"""
    return stats.row_count(table) > 0 and \
        1.0 - stats.null_fraction(table, key) <= PARTIAL_MAX_FRACTION


def _fraction(stats: Stats, table: str, predicate: str) -> float:
    n = stats.row_count(table)
    return stats.entries(table, predicate) / n if n else 1.0


def _matched(stats: Stats, table: str, p: Pred, params: Mapping[str, Any]) -> float:
    """Fraction of ``table``'s rows an equality-like predicate keeps, with the template's values."""
    key = p.key
    assert key is not None  # the caller passes only predicates on a column
    if p.op == "isnull":
        return stats.null_fraction(table, key)
    if p.op == "eq" and p.value == "literal":
        return stats.eq_fraction(table, key, [p.literal])
    if p.op == "eq" and p.value == "param" and p.params and p.params[0] in params:
        return stats.eq_fraction(table, key, [params[p.params[0]]])
    return 1.0 / max(_distinct(stats, table, key), 1)


def _distinct(stats: Stats, table: str, key: str) -> int:
    return stats.distinct(table, [key])
