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

from d1bench.charts._style import PALETTE, finish, new_figure, no_data, styled, thousands
from d1bench.charts.latency import measured

__all__ = ["rows_read_parity", "rows_read_parity_chart", "time_split", "time_split_chart"]


def time_split(runs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Median response time per target and template, split into where it went.

    Per request: ``queue_ms`` is the schedule lag (intended to sent: waiting
    for a free worker), ``database_ms`` the target's own report of time inside
    the database (D1's ``meta.duration``; SQLite's statement time), and
    ``other_ms`` the rest of the service time (sent to done minus database):
    network, HTTP and the Worker on D1, the driver on SQLite.  Each column is
    the median of that component over the template's requests.  Columns:
    ``target``, ``template``, ``count``, ``response_ms``, ``queue_ms``,
    ``database_ms``, ``other_ms``, ``database_share`` (of service time).

    >>> frame = pd.DataFrame({"template": ["q", "q"], "response_ms": [5.0, 7.0],
    ...                       "service_ms": [4.0, 6.0], "lag_ms": [1.0, 1.0],
    ...                       "db_duration_ms": [1.0, 1.0], "warmup": [False, False],
    ...                       "error_class": [None, None]})
    >>> time_split({"D1": frame})[["response_ms", "queue_ms", "database_ms", "other_ms"]].values.tolist()
    [[6.0, 1.0, 1.0, 4.0]]
    """
    rows = []
    for target, requests in runs.items():
        data = measured(requests)
        for template, g in data.groupby("template", sort=True):
            db = g["db_duration_ms"].astype(float)
            rest = (g["service_ms"] - db).clip(lower=0)
            rows.append({
                "target": target, "template": str(template), "count": len(g),
                "response_ms": float(g["response_ms"].median()),
                "queue_ms": float(g["lag_ms"].clip(lower=0).median()),
                "database_ms": float(db.median()) if db.notna().any() else np.nan,
                "other_ms": float(rest.median()) if rest.notna().any() else np.nan,
            })
    out = pd.DataFrame(rows, columns=["target", "template", "count", "response_ms", "queue_ms",
                                      "database_ms", "other_ms"])
    out["database_share"] = out["database_ms"] / (out["database_ms"] + out["other_ms"])
    return out


@styled
def time_split_chart(split: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Stacked bars per template, one panel per target: database, the rest, and waiting, in ms.

    ``split`` is :func:`time_split`'s frame.  Each target gets its own time
    axis (a saturated target would otherwise flatten the other's bars);
    templates are in the same order in every panel, slowest first.
    """
    targets = list(dict.fromkeys(split["target"]))
    order = (split.groupby("template")["response_ms"].max().sort_values(ascending=False).index
             .tolist())
    n = max(1, len(targets))
    fig, axes = new_figure(1, n, figsize=(5.5 * n, max(3.0, 0.3 * len(order) + 2.0)), sharey=True)
    axes = np.atleast_1d(axes)
    if split.empty:
        no_data(axes[0], "no measured requests")
        return fig
    y = np.arange(len(order))
    parts = (("database_ms", "database (as the target reports it)", PALETTE[0]),
             ("other_ms", "rest of the service time: network, HTTP, Worker / driver", PALETTE[1]),
             ("queue_ms", "waiting for a free worker", "#BBBBBB"))
    for ax, target in zip(axes, targets):
        part = split[split["target"] == target].set_index("template").reindex(order)
        left = np.zeros(len(order))
        for col, label, color in parts:
            vals = part[col].fillna(0).to_numpy()
            ax.barh(y, vals, left=left, height=0.7, color=color, label=label)
            left += vals
        ax.set_yticks(y, order)
        ax.grid(axis="y", visible=False)
        finish(ax, target, "milliseconds (median of each component)", "", legend=False)
    axes[0].invert_yaxis()  # shared: slowest at the top of every panel
    fig.suptitle(title or "Where the time goes, per request", fontweight="bold", x=0.01,
                 ha="left", fontsize=12)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=3,
               fontsize=8)
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
        axis.set_major_formatter(FuncFormatter(lambda v, _p: thousands(v) if v >= 1 else f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    finish(ax, title or f"Rows read per execution: {y} vs {x}",
           f"{x}: rows read per execution (log scale)",
           f"{y}: rows read per execution (log scale)")
    return fig
