"""``ORDER BY ... LIMIT n OFFSET ?`` -> keyset pagination: seek past the previous page's last row.

OFFSET k reads the k skipped rows on every page (and D1 bills them); a page
that starts after the last row of the page before reads only its own rows,
given an index that holds the order.  The order must be total for that, so the
rewrite appends the table's key to the ORDER BY (the original's order among
ties was SQLite's choice, not the application's), and the check compares the
keyset page with the OFFSET page in that order.  The application keeps the
first-page query and sends the next-page one with the last row's sort values.
"""

from __future__ import annotations

from typing import Any

from d1bench.fixer.model import Context, Rewrite, Skip, Trial
from d1bench.fixer.sqlshape import max_index, placeholder_index, read_select, table_aliases, to_sql

KIND = "keyset"


def propose(name: str, ctx: Context) -> Rewrite | Skip | None:
    from sqlglot import exp

    found = read_select(ctx.workload, name)
    if found is None:
        return None
    _template, parsed = found
    tree = parsed.tree
    assert isinstance(tree, exp.Select)  # read_select returns SELECTs only
    offset = tree.args.get("offset")
    k_index = placeholder_index(offset.expression) if offset is not None else None
    if k_index is None:
        return None
    aliases = table_aliases(tree)
    if tree.args.get("joins") or tree.args.get("group") or len(aliases) != 1:
        return Skip(KIND, name, "OFFSET over a join or a GROUP BY: keyset needs one table's order")
    table = next(iter(aliases.values()))
    td = ctx.catalog.table(table)
    order = tree.args.get("order")
    terms = order.expressions if order is not None else []
    if td is None or td.kind != "table" or not terms:
        return Skip(KIND, name, "OFFSET without an ORDER BY over a table: pages have no order")
    cols = [t.this for t in terms]
    descs = {bool(t.args.get("desc")) for t in terms}
    if len(descs) != 1 or not all(isinstance(c, exp.Column) for c in cols):
        return Skip(KIND, name, "ORDER BY mixes directions or sorts by an expression")
    desc = descs.pop()
    fixed = _equalities(tree)
    order_cols = [c.name for c in cols]
    pk = [c for c in ctx.primary_key(table) if c not in fixed and c not in order_cols]
    pk = [td.rowid_alias or c for c in pk] if pk != ["rowid"] else [td.rowid_alias or "rowid"]
    keys = order_cols + [c for c in pk if c not in order_cols]
    direction = " DESC" if desc else ""
    tiebroken = tree.copy()
    outputs = {e.alias_or_name.lower() for e in tiebroken.expressions}
    if not any(isinstance(e, exp.Star) for e in tiebroken.expressions):
        # The next page binds the last row's sort key, so the page must return it.
        for k in keys:
            if k.lower() not in outputs:
                tiebroken.select(exp.column(k), copy=False)
    tiebroken.set("order", exp.Order(expressions=[
        exp.Ordered(this=exp.column(c), desc=desc) for c in keys]))
    first = tiebroken.copy()
    first.set("offset", None)
    nxt = first.copy()
    start = parsed.count + 1
    cursor = f"({', '.join(keys)}) {'<' if desc else '>'} (" + ", ".join(
        f":p{start + i}" for i in range(len(keys))) + ")"
    nxt = nxt.where(exp.condition(cursor, dialect="sqlite"), dialect="sqlite")
    first_sql, next_sql, ordered_sql = to_sql(first), to_sql(nxt), to_sql(tiebroken)
    ddl = ""
    if _needs_index(ctx, next_sql, parsed.count + len(keys)):
        index = f"idx_{table}_{'_'.join([*fixed, *keys])}"
        ddl = (f"CREATE INDEX IF NOT EXISTS {index} ON {table} "
               f"({', '.join([*fixed, *(k + direction for k in keys)])});")
    width = len(keys)
    first_count = max_index(first_sql)

    def trial(params: tuple, conn: Any) -> Trial:
        k = int(params[k_index - 1] or 0)
        before = ((ordered_sql, params),)
        if k <= 0:
            return Trial(before=before, after=((first_sql, params[:first_count]),))
        # The previous page's last row is the first row from offset k - 1.
        previous = conn.execute(ordered_sql, _with_offset(params, k_index, k - 1)).rows
        if not previous:  # past the end: the page is empty both ways
            return Trial(before=before, after=before)
        names = [c.lower() for c in conn.execute(ordered_sql, _with_offset(
            params, k_index, k - 1)).columns]
        try:
            last = tuple(previous[0][names.index(c.lower())] for c in keys)
        except ValueError:
            raise_missing(keys, names)
        return Trial(before=before, after=((next_sql, (*params, *last)),))

    sql = (f"-- first page\n{first_sql};\n-- next pages: bind the previous page's last "
           f"{', '.join(keys)} as ?{start}..?{start + width - 1}\n{next_sql};")
    return Rewrite(KIND, name, sql, ddl, True,
                   f"OFFSET reads every skipped row; seeking past the last row read "
                   f"({', '.join(keys)}) reads only the page", trial, templates={name: 1.0})


def _with_offset(params: tuple, index: int, value: int) -> tuple:
    return params[:index - 1] + (value,) + params[index:]


def _equalities(tree: Any) -> list[str]:
    from sqlglot import exp

    where = tree.args.get("where")
    out = []
    for eq in where.find_all(exp.EQ) if where else []:
        if isinstance(eq.this, exp.Column) and isinstance(eq.expression,
                                                          (exp.Placeholder, exp.Literal)):
            out.append(eq.this.name)
    return out


def _needs_index(ctx: Context, sql: str, count: int) -> bool:
    """Whether the next-page query still scans or sorts on the copy the rewrites start from."""
    try:
        plan = [r[-1] for r in ctx.conn.execute("EXPLAIN QUERY PLAN " + sql, [None] * count)]
    except Exception:  # noqa: BLE001 - an unplannable query gets the index; the check decides
        return True
    return any("TEMP B-TREE" in d or d.startswith("SCAN") for d in plan)


def raise_missing(keys: list[str], names: list[str]) -> None:
    from d1bench.errors import TargetError

    raise TargetError(f"the page does not return its sort key ({', '.join(keys)}; it returns "
                      f"{', '.join(names)}): add them to the SELECT list for keyset pagination")
