"""The monthly D1 bill, from :mod:`d1bench.cost`'s frames."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from d1bench.charts._style import PALETTE, finish, new_figure, no_data, styled

__all__ = ["bill_chart", "cost_curve_chart"]

_ITEMS = (("rows_read_usd", "rows read", PALETTE[0]),
          ("rows_written_usd", "rows written", PALETTE[1]),
          ("storage_usd", "storage", PALETTE[2]))


def _usd(value: float, _pos: object = None) -> str:
    if value >= 1000:
        return f"${value:,.0f}"
    if value >= 1 or value == 0:
        return f"${value:,.2f}".rstrip("0").rstrip(".")
    return f"${value:.2g}"


@styled
def bill_chart(costs: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Each scenario's monthly bill, stacked by item (rows read, rows written, storage).

    ``costs`` is :func:`d1bench.cost.compare_costs`'s frame (one row per
    scenario).  Totals are written at the end of each bar; a scenario that
    stays within the plan's allowances shows $0.
    """
    fig, ax = new_figure(figsize=(8.5, max(2.8, 0.6 * len(costs) + 1.6)))
    if costs.empty:
        no_data(ax, "no scenarios")
        return fig
    y = np.arange(len(costs))
    left = np.zeros(len(costs))
    for col, label, color in _ITEMS:
        vals = costs[col].astype(float).fillna(0).to_numpy()
        ax.barh(y, vals, left=left, color=color, label=label, height=0.6)
        left += vals
    top = max(float(left.max()), 1e-9)
    for yi, total in zip(y, left):
        ax.text(total + top * 0.01, yi, _usd(total), va="center", fontsize=9)
    ax.set_xlim(0, top * 1.18 if top > 1e-9 else 1)
    ax.set_yticks(y, [str(i) for i in costs.index])
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(FuncFormatter(_usd))
    ax.grid(axis="y", visible=False)
    rate = costs.attrs.get("requests_per_second")
    plan = costs.attrs.get("plan", "paid")
    at = f" at {rate:,.0f} requests/s" if rate else ""
    finish(ax, title or f"Monthly D1 bill{at} ({plan} plan)", "USD per month", "")
    ax.legend(loc="lower right", fontsize=8)
    return fig


@styled
def cost_curve_chart(curves: Mapping[str, pd.DataFrame], *, title: str | None = None,
                     mark_rate: float | None = None) -> Figure:
    """Monthly bill against request rate, one line per scenario, log-log.

    ``curves`` maps a scenario name to :func:`d1bench.cost.cost_curve`'s
    frame.  The bill is zero until the allowances are spent; zero is drawn at
    the bottom edge so a scenario that never pays still shows.
    """
    fig, ax = new_figure(figsize=(8.5, 4.8))
    nonzero = [c["total_usd"][c["total_usd"] > 0].min() for c in curves.values()
               if (c["total_usd"] > 0).any()]
    if not curves:
        no_data(ax, "no scenarios")
        return fig
    # Zero cannot sit on a log axis: draw it one decade below the smallest bill.
    floor = 10.0 ** (math.floor(math.log10(min(nonzero))) - 1) if nonzero else 0.01
    for i, (name, curve) in enumerate(curves.items()):
        total = curve["total_usd"].astype(float).clip(lower=floor)
        ax.plot(curve["requests_per_second"], total, marker="o", markersize=3,
                color=PALETTE[i % len(PALETTE)], label=name)
    if mark_rate:
        ax.axvline(mark_rate, color="#777777", linestyle=":", linewidth=1,
                   label=f"{mark_rate:g} requests/s")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    ax.yaxis.set_major_formatter(FuncFormatter(_usd))
    finish(ax, title or "Monthly D1 bill by request rate",
           "sustained requests per second (log scale)",
           f"USD per month (log scale; {_usd(floor)} = nothing billed)")
    return fig
