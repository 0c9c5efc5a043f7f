"""N+1: a session step that runs one query per row of the step before it."""

from __future__ import annotations

from collections.abc import Iterator

from d1bench.linter.context import Finding, LintContext

__all__ = ["RULE", "check"]

RULE = "n_plus_one"


def check(ctx: LintContext) -> Iterator[Finding]:
    templates = ctx.workload.templates
    for session in ctx.workload.sessions.values():
        for i, step in enumerate(session.steps):
            if not step.for_each_row or i == 0:
                continue
            before = session.steps[i - 1].template
            per_session = _measured_calls(ctx, session.name, step.template)
            calls = (f"{per_session:,.1f} calls per session (measured)" if per_session is not None
                     else f"one call per row {before} returns")
            column = next((p.column for p in step.params or () if p.kind == "from_row"), None)
            fix = (f"fetch the rows for all of {before}'s results in one statement: "
                   f"WHERE <key> IN (SELECT {column or 'id'} FROM (<{before}>)) or a JOIN, "
                   "one round trip instead of N")
            yield Finding(step.template, RULE, "high",
                          ctx.evidence(step.template,
                                       f"session {session.name}: step {i + 1} runs {step.template} "
                                       f"for each row of {before}; {calls}"),
                          fix, _rewrite(templates[step.template].sql, templates[before].sql,
                                        step, column))


def _measured_calls(ctx: LintContext, session: str, template: str) -> float | None:
    frame = ctx.trace
    if frame is None or "unit" not in frame:
        return None
    mine = frame[(frame["unit"] == session)]
    if mine.empty:
        return None
    sessions = mine["unit_index"].nunique()
    return float((mine["template"] == template).sum()) / max(sessions, 1)


def _rewrite(sql: str, before_sql: str, step, column: str | None) -> str | None:
    """The step's SQL with its per-row parameter replaced by the previous step as a subquery."""
    from sqlglot import exp

    from d1bench.sql.parsing import ParseFailure, number_placeholders, parse_statement

    rows = [i for i, p in enumerate(step.params or ()) if p.kind == "from_row"]
    if len(rows) != 1 or column is None:
        return None
    target = f"p{rows[0] + 1}"
    try:
        tree = parse_statement(number_placeholders(sql)[0]).copy()
        inner = parse_statement(number_placeholders(before_sql)[0]).copy()
    except ParseFailure:
        return None
    for node in list(tree.find_all(exp.EQ)):
        side = node.expression if isinstance(node.expression, exp.Placeholder) else None
        if side is not None and side.name == target:
            sub = exp.select(exp.column(column)).from_(inner.subquery("prev"))
            node.replace(exp.In(this=node.this.copy(), query=exp.Subquery(this=sub)))
            text = tree.sql("sqlite")
            for p in inner.find_all(exp.Placeholder):
                p.replace(exp.Placeholder())
            import re

            return re.sub(r":p\d+", "?", text)
    return None
