"""One reasoning for lint and advise: a lint finding's index is the advisor's index for the template.

A rule sees one template and would propose the index that template wants; the
advisor weighs the whole workload (composites over singles, the write cost,
prefixes already covered).  Left apart they disagree, so a finding whose fix is
a CREATE INDEX takes the advisor's indexes for that template instead, or says
why the advisor proposes none.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from d1bench.linter.context import Finding

__all__ = ["agree_with_advice"]


def agree_with_advice(findings: Iterable[Finding], advice: Any) -> list[Finding]:
    """The findings, each CREATE INDEX fix replaced by what ``advice`` proposes for its template."""
    from dataclasses import replace

    by_template: dict[str, list[str]] = {}
    for row in advice.indexes.itertuples(index=False):
        for name in row.templates:
            by_template.setdefault(name, []).append(row.sql)
    reasons = dict(zip(advice.templates["template"], advice.templates["reason"], strict=False))
    out = []
    for f in findings:
        if not (f.fix_sql or "").lstrip().upper().startswith("CREATE INDEX"):
            out.append(f)
            continue
        advised = by_template.get(f.template)
        if advised:
            out.append(replace(f, fix_sql="\n".join(advised),
                               fix=f.fix + " (the index d1bench advise proposes for this "
                               "template, weighed against the whole workload)"))
        else:
            why = reasons.get(f.template) or "no index pays for itself in this workload"
            out.append(replace(f, fix_sql=None, fix=f.fix + f"; but d1bench advise proposes no "
                               f"index for this template: {why}"))
    return out
