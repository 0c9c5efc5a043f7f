"""An N+1 session (a list, then one query per listed row) -> one batched query over a JSON list.

Each of the N follow-up queries is a request, and without an index on its key
each one scans; one query over ``json_each(?)`` (a single bound value, however
long the list, so D1's 100-parameter limit does not bite) reads the matches
once.  The batched query also returns the key columns, so the application can
hand each listed row its own rows; the check compares the rows of the N
queries with the batched rows, as multisets.
"""

from __future__ import annotations

from typing import Any

from d1bench.fixer.model import Context, Rewrite, Skip, Trial
from d1bench.fixer.sqlshape import parse, placeholder_index, to_sql

KIND = "n_plus_one"

#: Rows of the listing step a session is assumed to fan out over, when it names no max_rows.
DEFAULT_FANOUT = 20


def propose(name: str, ctx: Context) -> Rewrite | Skip | None:
    from sqlglot import exp

    session = ctx.workload.sessions[name]
    steps = session.steps
    loop = next((i for i, s in enumerate(steps) if s.for_each_row and i > 0), None)
    if loop is None:
        return None
    parent, child = steps[loop - 1], steps[loop]
    template = ctx.workload.templates[child.template]
    specs = child.params or template.params
    if template.is_write:
        return Skip(KIND, name, "the per-row step writes: batching writes changes what fails together")
    if not specs or any(s.kind != "from_row" for s in specs):
        return Skip(KIND, name, "the per-row step binds values not taken from the listed rows")
    parsed = parse(template.sql)
    if parsed is None or not isinstance(parsed.tree, exp.Select):
        return Skip(KIND, name, "the per-row step is not a plain SELECT")
    tree = parsed.tree
    if tree.args.get("limit") is not None:
        return Skip(KIND, name, "the per-row step has a LIMIT: one batched query cannot limit "
                    "each listed row's rows")
    keys: list[tuple[Any, str]] = []  # (column node, the listed row's column)
    for eq in (tree.args["where"].find_all(exp.EQ) if tree.args.get("where") else []):
        idx = placeholder_index(eq.expression)
        if idx is not None and isinstance(eq.this, exp.Column):
            keys.append((eq, specs[idx - 1].get("column")))
    if len(keys) != parsed.count:
        return Skip(KIND, name, "the per-row step's values are not all simple equalities")
    width = len(tree.expressions)
    cols = [eq.this.copy() for eq, _ in keys]
    if len(cols) == 1:
        batch = exp.condition(f"{cols[0].sql(dialect='sqlite')} IN (SELECT value FROM "
                              "json_each(:p1))", dialect="sqlite")
    else:
        picks = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(cols)))
        batch = exp.condition(f"({', '.join(c.sql(dialect='sqlite') for c in cols)}) IN "
                              f"(SELECT {picks} FROM json_each(:p1))", dialect="sqlite")
    for i, (eq, _) in enumerate(keys):
        eq.replace(batch if i == 0 else exp.true())
    for c in cols:
        tree.select(c.copy(), copy=False)
    order = tree.args.get("order")
    tree.set("order", exp.Order(expressions=[exp.Ordered(this=c.copy()) for c in cols]
                                + (list(order.expressions) if order else [])))
    sql = to_sql(tree)
    columns = [column for _, column in keys]
    fanout = child.max_rows or DEFAULT_FANOUT
    parent_sql = ctx.workload.templates[parent.template].sql

    def trial(params: tuple, conn: Any) -> Trial:
        import json

        listed = conn.execute(parent_sql, params)
        names = [c.lower() for c in listed.columns]
        rows = [tuple(r[names.index(c.lower())] for c in columns) for r in listed.rows[:fanout]]
        before = tuple((template.sql, r) for r in rows)
        value = json.dumps([r[0] for r in rows] if len(columns) == 1 else [list(r) for r in rows])
        return Trial(before=before, after=((sql, (value,)),), ordered=False, width=width)

    return Rewrite(KIND, name, sql, "", True,
                   f"{len(steps[loop:])} step(s) of {child.template} per listed row of "
                   f"{parent.template}: one query over json_each(?) (bind the listed "
                   f"{', '.join(columns)} as a JSON array) reads them once",
                   trial, templates={name: 1.0})
