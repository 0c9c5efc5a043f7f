"""``d1bench compare-production``: a replay's figures beside production's, per template.

Templates are matched to production's query shapes by name: a workload made
by ``workload from-insights`` names each shape's template with
:func:`~d1bench.production.generate.name_shapes`, and the same function names
the shapes of the insights file here.  A template whose SQL is the shape's
(whitespace aside) matches too, whatever its name, when the trace records
the workload's SQL.

Where the two part, the reason is said in words, from the one thing the
replay knows that production's figures do not: the plan it ran.

- close: average rows read within a factor of :data:`CLOSE_FACTOR`;
- data size: the replay read fewer rows through the same kind of access
  (both scan, or both use keys), so production's tables are larger;
- a different plan: the replay's plan uses an index or key for every table
  while production read many times more rows per row returned, so production
  lacks an index the replay database has (or the reverse, when the replay scans
  and production reads little);
- the replay reads more: the local data is larger, or production has an index
  this database lacks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from d1bench.production.generate import name_shapes
from d1bench.production.insights import read_insights

if TYPE_CHECKING:
    import pandas as pd

    from d1bench.trace import Trace

__all__ = ["CLOSE_FACTOR", "COMPARE_COLUMNS", "compare_production"]

#: Average rows read within this factor of production's count as "close".
CLOSE_FACTOR = 2.0
#: Production reading this many rows per row returned is a scan's signature.
SCAN_EFFICIENCY = 0.1

#: Columns of the frame :func:`compare_production` returns.
COMPARE_COLUMNS = [
    "template", "production_runs", "replay_count", "production_rows_read", "replay_rows_read",
    "rows_read_ratio", "production_ms", "replay_p50_ms", "replay_mean_ms", "plan_class",
    "production_efficiency", "replay_efficiency", "verdict",
]


def compare_production(trace: Trace | str | os.PathLike[str], insights: str | os.PathLike[str],
                       *, fmt: str = "auto") -> pd.DataFrame:
    """One row per production query shape: production's figures, the replay's, and a verdict.

    ``rows_read_ratio`` is replay / production (average rows read per run);
    ``production_ms`` is production's average duration inside D1 (network
    excluded), ``replay_p50_ms``/``replay_mean_ms`` the replay's response time.
    Shapes the replay did not run have ``replay_count`` 0 and the verdict
    ``not replayed``.
    """
    import pandas as pd

    from d1bench.analysis import summarize
    from d1bench.trace import load_trace

    if not hasattr(trace, "requests"):
        trace = load_trace(Path(trace))
    shapes = read_insights(insights, fmt)
    summary = summarize(trace).set_index("template")
    rows = []
    for name, shape in zip(name_shapes(shapes), shapes, strict=True):
        got = summary.loc[name] if name in summary.index else None
        replay_read = float(got["rows_read_per_exec"]) if got is not None else None
        prod_read = shape.avg_rows_read
        ratio = (replay_read / prod_read if replay_read is not None and prod_read
                 else None)
        plan = got["plan_class"] if got is not None else None
        rows.append({
            "template": name, "production_runs": shape.runs,
            "replay_count": int(got["count"]) if got is not None else 0,
            "production_rows_read": prod_read, "replay_rows_read": replay_read,
            "rows_read_ratio": ratio, "production_ms": shape.avg_duration_ms,
            "replay_p50_ms": float(got["p50_ms"]) if got is not None else None,
            "replay_mean_ms": float(got["mean_ms"]) if got is not None else None,
            "plan_class": plan, "production_efficiency": shape.efficiency,
            "replay_efficiency": float(got["efficiency"]) if got is not None
            and pd.notna(got["efficiency"]) else None,
            "verdict": _verdict(got is not None, ratio, plan, shape.efficiency,
                                got["index_hit_rate"] if got is not None else None),
        })
    return pd.DataFrame(rows, columns=COMPARE_COLUMNS)


def _verdict(ran: bool, ratio: float | None, plan: str | None, prod_eff: float | None,
             hit_rate: float | None) -> str:
    """Why the replay's rows read differ from production's, in words.

    >>> _verdict(True, 0.1, "scan", 0.01, 0.0)
    'data size: production reads 10.0x the rows through the same kind of plan (a scan); its tables are larger'
    >>> _verdict(True, 0.02, "index", 0.001, 1.0)
    'a different plan: the replay uses an index or key for every table, production reads 1000 rows per row returned (a scan): production lacks an index this database has'
    """
    if not ran:
        return "not replayed"
    if ratio is None:
        return "no rows-read figures to compare"
    if 1 / CLOSE_FACTOR <= ratio <= CLOSE_FACTOR:
        return "close"
    indexed = hit_rate is not None and hit_rate >= 0.99
    prod_scans = prod_eff is not None and prod_eff < SCAN_EFFICIENCY
    if ratio < 1:
        factor = 1 / ratio
        if indexed and prod_scans:
            # efficiency 0: production read rows and returned none, which no ratio states
            reads = (f"reads {1 / prod_eff:.0f} rows per row returned" if prod_eff
                     else "returns none of the rows it reads")
            return (f"a different plan: the replay uses an index or key for every table, "
                    f"production {reads} (a scan): production lacks an index this database has")
        kind = "a scan" if not indexed else "keys and indexes"
        return (f"data size: production reads {factor:.1f}x the rows through the same kind "
                f"of plan ({kind}); its tables are larger")
    if not indexed and not prod_scans and prod_eff is not None:
        return (f"a different plan: the replay scans and reads {ratio:.1f}x production's rows, "
                "while production reads few rows per row returned: production has an index "
                "this database lacks")
    return (f"the replay reads {ratio:.1f}x production's rows: the local data is larger, "
            "or production has an index this database lacks")
