"""A workload at a glance: one row per template and session."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from d1bench.workload.loader import load_workload
from d1bench.workload.model import Workload

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DESCRIBE_COLUMNS", "describe_workload"]

#: Columns of the frame :func:`describe_workload` returns.
DESCRIBE_COLUMNS = ["name", "kind", "family", "weight", "share", "calls_per_unit", "params",
                    "line", "description"]


def describe_workload(workload: Workload | str | Path) -> pd.DataFrame:
    """Templates and sessions of a workload, in file order.

    Columns: ``name``; ``kind`` (``read``, ``write`` or ``session``);
    ``family``; ``weight`` as written; ``share``, the probability a drawn unit
    is this one; ``calls_per_unit``, the expected executions of a template per
    drawn unit (sessions included, assuming 20 rows per N+1 loop); ``params``,
    the samplers (for a session, its steps); ``line``; ``description``.
    """
    import pandas as pd

    w = load_workload(workload)
    shares = w.shares()
    freq = w.template_frequencies()
    rows = []
    for t in w.templates.values():
        rows.append({"name": t.name, "kind": t.kind, "family": t.family, "weight": t.weight,
                     "share": shares.get(t.name, 0.0), "calls_per_unit": freq.get(t.name, 0.0),
                     "params": ", ".join(p.describe() for p in t.params), "line": t.line,
                     "description": t.description})
    for s in w.sessions.values():
        steps = " -> ".join(step.template + (" (each row)" if step.for_each_row else "")
                            for step in s.steps)
        rows.append({"name": s.name, "kind": "session", "family": "session", "weight": s.weight,
                     "share": shares.get(s.name, 0.0), "calls_per_unit": None, "params": steps,
                     "line": s.line, "description": s.description})
    return pd.DataFrame(rows, columns=DESCRIBE_COLUMNS)
