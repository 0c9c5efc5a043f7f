"""Anti-pattern lint: what in a workload's SQL makes D1 read (and bill) too many rows.

:func:`lint` reads every template with sqlglot (dialect ``sqlite``), plans it on
the corpus, and runs each rule of :mod:`d1bench.linter.rules` over it.  A finding
names the template, the rule, its severity, the evidence (the plan, and rows
read per execution, measured from a trace when one is given, else estimated
by the advisor's cost model) and the fix, in words and in SQL where there is one.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pandas as pd

from d1bench.linter.agree import agree_with_advice
from d1bench.linter.context import Finding, LintContext, build_context
from d1bench.trace import TraceSource
from d1bench.workload.loader import WorkloadSource

if TYPE_CHECKING:
    from d1bench.advisor.advise import Advice

__all__ = ["LINT_COLUMNS", "Finding", "LintContext", "lint", "rule_names"]

LINT_COLUMNS = ["template", "rule", "severity", "evidence", "fix", "fix_sql"]

_SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2, "info": 3}


def rule_names() -> list[str]:
    """Names of every rule, in the order findings are listed."""
    from d1bench.linter.rules import RULES

    return [r.RULE for r in RULES]


def lint(workload: WorkloadSource, db_path: str | os.PathLike[str],
         trace: TraceSource | None = None, *, advice: Advice | None = None) -> pd.DataFrame:
    """Anti-patterns in ``workload``'s templates, one row per finding.

    Args:
        workload: ``"medical"``, a workload file, or a ``Workload``.
        db_path: the corpus the templates run against (opened read-only).
        trace: a trace (or its path) of the workload: its measured rows read
            replace the estimates in the evidence, and N+1 sessions show
            their measured calls per session.
        advice: the :class:`~d1bench.advisor.Advice` for the same workload and
            corpus, if already computed; else it is computed here, because a
            finding's index is always the advisor's (:mod:`d1bench.linter.agree`).

    Returns a frame with columns ``template``, ``rule``, ``severity`` (high,
    medium, low), ``evidence``, ``fix`` and ``fix_sql`` (``None`` where no SQL
    says it), sorted by severity then template.  A template that does not parse
    yields one ``unparsed`` finding, one SQLite cannot plan (a missing table,
    say) an ``unplannable`` one, and the others are still checked.
    """
    from d1bench.linter.rules import RULES

    ctx = build_context(workload, db_path, trace)
    rows: list[Finding] = []
    for name, info in ctx.infos.items():
        if info.error is not None:
            rows.append(Finding(name, "unparsed", "low", f"sqlglot: {info.error}",
                                "the rules could not read this template; check its SQL", None))
        elif name in ctx.plan_errors:
            rows.append(Finding(name, "unplannable", "high", f"SQLite: {ctx.plan_errors[name]}",
                                "SQLite refuses this statement on this database: it would fail "
                                "on D1 too", None))
    for rule in RULES:
        rows.extend(rule.check(ctx))
    if advice is None:
        from d1bench.advisor import advise

        advice = advise(db_path, ctx.workload, params=ctx.params)
    rows = agree_with_advice(rows, advice)
    frame = pd.DataFrame([{c: getattr(f, c) for c in LINT_COLUMNS} for f in rows],
                         columns=LINT_COLUMNS)
    frame["fix_sql"] = frame["fix_sql"].astype(object).where(frame["fix_sql"].notna(), None)
    if not frame.empty:
        order = {name: i for i, name in enumerate(rule_names())}
        frame = frame.assign(_s=frame["severity"].map(_SEVERITY_ORDER),
                             _r=frame["rule"].map(lambda r: order.get(r, -1)))
        frame = frame.sort_values(["_s", "template", "_r"], kind="stable").drop(columns=["_s", "_r"])
        frame = frame.reset_index(drop=True)
    return frame
