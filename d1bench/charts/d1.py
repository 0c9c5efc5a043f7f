"""Local SQLite against D1: where the time goes, and whether rows read agree.

Both charts take the requests frames of runs of one workload on several
targets (``{"SQLite": trace.requests, "local D1": ...}``).  The small tidy
tables they draw are built by :func:`time_split` and :func:`rows_read_parity`,
so a notebook can show and assert the same numbers it plots.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from d1bench.charts._style import PALETTE, finish, new_figure, no_data, styled
from d1bench.charts.latency import measured

__all__ = ["rows_read_parity", "rows_read_parity_chart", "time_split", "time_split_chart"]


def time_split(runs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Median response time per target and template, split into database and the rest.

    ``database_ms`` is the target's own report of time inside the database
    (D1's ``meta.duration``; SQLite's statement time); ``other_ms`` is the
    median of response minus database time per request: network, HTTP, the
    Worker and queueing.  Columns: ``target``, ``template``, ``count``,
    ``response_ms``, ``database_ms``, ``other_ms``, ``database_share``.

    >>> frame = pd.DataFrame({"template": ["q", "q"], "response_ms": [4.0, 6.0],
    ...                       "db_duration_ms": [1.0, 1.0], "warmup": [False, False],
    ...                       "error_class": [None, None]})
    >>> time_split({"D1": frame})[["response_ms", "database_ms", "other_ms"]].values.tolist()
    [[5.0, 1.0, 4.0]]
    """
    rows = []
    for target, requests in runs.items():
        data = measured(requests)
        for template, g in data.groupby("template", sort=True):
            db = g["db_duration_ms"].astype(float)
            rest = (g["response_ms"] - db).clip(lower=0)
            rows.append({
                "target": target, "template": str(template), "count": len(g),
                "response_ms": float(g["response_ms"].median()),
                "database_ms": float(db.median()) if db.notna().any() else np.nan,
                "other_ms": float(rest.median()) if rest.notna().any() else np.nan,
            })
    out = pd.DataFrame(rows, columns=["target", "template", "count", "response_ms",
                                      "database_ms", "other_ms"])
    out["database_share"] = out["database_ms"] / (out["database_ms"] + out["other_ms"])
    return out


@styled
def time_split_chart(split: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Stacked bars per template and target: database time and everything else, log-free ms.

    ``split`` is :func:`time_split`'s frame.  Templates are sorted by their
    slowest target's response time, slowest at the top.
    """
    targets = list(dict.fromkeys(split["target"]))
    order = (split.groupby("template")["response_ms"].max().sort_values(ascending=False).index
             .tolist())
    fig, ax = new_figure(figsize=(9, max(3.0, 0.32 * len(order) * max(1, len(targets)) + 1.6)))
    if split.empty:
        no_data(ax, "no measured requests")
        return fig
    height = 0.8 / len(targets)
    y0 = np.arange(len(order))
    hatches = ("", "//", "xx", "..")
    for k, target in enumerate(targets):
        part = split[split["target"] == target].set_index("template").reindex(order)
        y = y0 + (k - (len(targets) - 1) / 2) * height
        db = part["database_ms"].fillna(0).to_numpy()
        other = part["other_ms"].fillna(0).to_numpy()
        ax.barh(y, db, height=height * 0.95, color=PALETTE[0], hatch=hatches[k % 4],
                edgecolor="white", label=f"database ({target})")
        ax.barh(y, other, left=db, height=height * 0.95, color=PALETTE[1], hatch=hatches[k % 4],
                edgecolor="white", label=f"network, Worker, queue ({target})")
    ax.set_yticks(y0, order)
    ax.invert_yaxis()
    ax.grid(axis="y", visible=False)
    finish(ax, title or "Where the time goes: database vs the rest (median per request)",
           "median response time (ms)", "", legend=False)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=8)
    return fig


def rows_read_parity(runs: Mapping[str, pd.DataFrame], *, reference: str | None = None) -> pd.DataFrame:
    """Mean rows read per execution of each template on each target, and the ratio to ``reference``.

    D1 counts rows read itself; on SQLite the workbench estimates them.  A
    ratio near 1 means the local estimate predicts the bill.  Columns: one
    per target, then ``ratio_<target>`` for the others against ``reference``
    (default: the first target).

    >>> a = pd.DataFrame({"template": ["q"], "rows_read": [10], "warmup": [False], "error_class": [None]})
    >>> b = pd.DataFrame({"template": ["q"], "rows_read": [12], "warmup": [False], "error_class": [None]})
    >>> float(rows_read_parity({"SQLite": a, "D1": b}).loc["q", "ratio_D1"])
    1.2
    """
    names = list(runs)
    reference = reference or names[0]
    cols = {}
    for target, requests in runs.items():
        data = measured(requests, "rows_read")
        cols[target] = data.groupby("template")["rows_read"].mean().astype(float)
    out = pd.DataFrame(cols)
    out.index = out.index.astype(str)
    out.index.name = "template"
    for target in names:
        if target != reference:
            out[f"ratio_{target}"] = out[target] / out[reference].where(out[reference] > 0)
    return out


@styled
def rows_read_parity_chart(parity: pd.DataFrame, x: str, y: str, *,
                           title: str | None = None) -> Figure:
    """Rows read per execution on target ``y`` against target ``x``, one dot per template, log-log.

    Dots on the diagonal agree; the dotted lines mark a factor of two.
    """
    data = parity[[x, y]].dropna()
    data = data[(data[x] > 0) & (data[y] > 0)]
    fig, ax = new_figure(figsize=(6.5, 6))
    if data.empty:
        no_data(ax, "no rows-read figures on both targets")
        return fig
    lo = float(min(data[x].min(), data[y].min())) / 2
    hi = float(max(data[x].max(), data[y].max())) * 2
    line = np.array([lo, hi])
    ax.plot(line, line, color="#777777", linewidth=1, label="equal")
    ax.plot(line, line * 2, color="#bbbbbb", linewidth=0.8, linestyle=":", label="2x")
    ax.plot(line, line / 2, color="#bbbbbb", linewidth=0.8, linestyle=":")
    ax.scatter(data[x], data[y], color=PALETTE[0], zorder=3)
    for name, row in data.iterrows():
        ax.annotate(str(name), (row[x], row[y]), fontsize=7, xytext=(4, 2),
                    textcoords="offset points", color="#333333")
    ax.set_xscale("log")
    ax.set_yscale("log")
    # Scales reset formatters, so these come after them.
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    finish(ax, title or f"Rows read per execution: {y} vs {x}",
           f"{x}: rows read per execution (log scale)",
           f"{y}: rows read per execution (log scale)")
    return fig
