"""What every lint rule may look at: templates read, plans, row counts, measured reads."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import apsw

from d1bench.advisor.costmodel import CostModel
from d1bench.advisor.preparation import prepare
from d1bench.advisor.query import QueryInfo
from d1bench.advisor.stats import Stats
from d1bench.sql.catalog import Catalog, IndexDef
from d1bench.sql.session import EXPLAIN, PlanStep, plan_steps

__all__ = [
    "LARGE_TABLE_ROWS",
    "Finding",
    "LintContext",
    "build_context",
    "param_values",
    "severity_for",
]

#: A table with at least this many rows is "large": scanning or counting it is worth a finding.
LARGE_TABLE_ROWS = 10_000


@dataclass(frozen=True, slots=True)
class Finding:
    """One anti-pattern found in one template (or in the schema, template ``(schema)``)."""

    template: str
    rule: str
    severity: str
    evidence: str
    fix: str
    fix_sql: str | None = None


@dataclass
class LintContext:
    """Everything the rules share, computed once.

    Attributes:
        workload: the workload (templates and sessions).
        catalog / stats: the corpus's shape and data statistics.
        infos: each template read by :func:`~d1bench.advisor.query.analyze`.
        plans: each template's plan on the corpus as it is.
        plan_errors: SQLite's refusal, for templates it cannot plan.
        params: drawn parameter tuples per template.
        measured: mean rows read per execution per template, from the trace.
        executions: executions per template in the trace (per session for sessions).
        trace: the trace's requests frame, if one was given.
        conn: the read-only connection to the corpus.
    """

    workload: Any
    catalog: Catalog
    stats: Stats
    infos: Mapping[str, QueryInfo]
    plans: dict[str, tuple[PlanStep, ...]]
    params: Mapping[str, list[tuple]]
    measured: dict[str, float] = field(default_factory=dict)
    trace: Any = None
    model: CostModel | None = None
    plan_errors: dict[str, str] = field(default_factory=dict)
    conn: Any = None
    _estimates: dict[str, float] = field(default_factory=dict)

    def rows_read(self, template: str) -> tuple[float | None, str]:
        """Rows read per execution and where the figure comes from (trace or estimate)."""
        if template in self.measured:
            return self.measured[template], "measured"
        if template not in self._estimates:
            info = self.infos[template]
            plan = self.plans.get(template)
            if info.error is not None or plan is None or self.model is None:
                return None, "unknown"
            named = [{f"p{i + 1}": v for i, v in enumerate(p)} for p in self.params.get(template) or
                     [tuple([None] * info.n_params)]]
            indexes = {i.name: i for i in self.catalog.indexes}
            self._estimates[template] = sum(
                self.model.estimate(info, plan, n, indexes).rows_read for n in named) / len(named)
        return self._estimates[template], "estimated"

    def evidence(self, template: str, extra: str = "") -> str:
        """``plan: ...; rows read per execution: N (measured|estimated)``, plus ``extra``."""
        parts = []
        if extra:
            parts.append(re.sub(r":p(\d+)", r"?\1", extra))
        plan = self.plans.get(template)
        if plan:
            parts.append("plan: " + " | ".join(r.detail for r in plan))
        value, source = self.rows_read(template)
        if value is not None:
            parts.append(f"rows read per execution: {value:,.0f} ({source})")
        return "; ".join(parts)

    def severity(self, template: str, floor: str = "low") -> str:
        value, _ = self.rows_read(template)
        return severity_for(value, floor)

    def indexes_on(self, table: str) -> list[IndexDef]:
        return self.catalog.indexes_on(table)


_ORDER = ["info", "low", "medium", "high"]


def severity_for(rows_read: float | None, floor: str = "low") -> str:
    """``high`` from 10,000 rows read per execution, ``medium`` from 1,000, else ``floor``.

    >>> severity_for(25_000), severity_for(1_500), severity_for(3), severity_for(3, "medium")
    ('high', 'medium', 'low', 'medium')
    """
    level = "low"
    if rows_read is not None and rows_read >= 10_000:
        level = "high"
    elif rows_read is not None and rows_read >= 1_000:
        level = "medium"
    return max(level, floor, key=_ORDER.index)


def build_context(workload: Any, db_path: str | os.PathLike[str], trace: Any = None,
                  *, seed: int = 0, samples: int = 2) -> LintContext:
    """Open the corpus read-only, read every template, plan it, and load the trace."""
    prep = prepare(db_path, workload, trace, seed=seed, samples=samples)
    conn, wl, catalog, stats, infos, params = (prep.conn, prep.workload, prep.catalog, prep.stats,
                                               prep.infos, prep.params)
    plans: dict[str, tuple[PlanStep, ...]] = {}
    plan_errors: dict[str, str] = {}
    for name, t in wl.templates.items():
        values = (params.get(name) or [tuple([None] * infos[name].n_params)])[0]
        try:
            plans[name] = tuple(plan_steps(conn.execute(EXPLAIN + t.sql, tuple(values))))
        except apsw.Error as exc:  # reported as its own finding
            plan_errors[name] = str(exc)
    measured: dict[str, float] = {}
    frame = prep.trace
    if frame is not None:
        ok = frame[frame["error_class"].isna()] if "error_class" in frame else frame
        if "rows_read" in ok:
            means = ok.dropna(subset=["rows_read"]).groupby("template")["rows_read"].mean()
            measured = {str(k): float(v) for k, v in means.items()}
    return LintContext(workload=wl, catalog=catalog, stats=stats, infos=infos, plans=plans,
                       params=params, measured=measured, trace=frame,
                       model=CostModel(catalog, stats), plan_errors=plan_errors, conn=conn)


def param_values(ctx: LintContext, template: str, names: tuple[str, ...]) -> list[Any]:
    """The drawn values of the named placeholders (``p1``...) of ``template``."""
    out = []
    for tup in ctx.params.get(template) or []:
        for name in names:
            i = int(name[1:]) - 1 if name[1:].isdigit() else -1
            if 0 <= i < len(tup):
                out.append(tup[i])
    return out




def fix_rewrite(ctx: LintContext, template: str, kind: Any) -> Any:
    """What the fix plan's stage ``kind`` (a :mod:`d1bench.fixer.kinds` module) proposes for
    ``template``: lint shows the fix plan's SQL, so the two never tell different stories."""
    from d1bench.fixer.model import Context, Rewrite

    if ctx.conn is None:
        return None
    out = kind.propose(template, Context(ctx.catalog, ctx.conn, ctx.workload, {}, ctx.params, {}))
    return out if isinstance(out, Rewrite) else None
