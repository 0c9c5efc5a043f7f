"""Query plans and index hit rates, from :func:`d1bench.plan_report` and trace summaries.

The plan classes are :data:`d1bench.plans.EXPENSE`'s, from most to least
expensive; colours run from warm (a full scan) to cool (a key lookup) so a
column of red cells is a set of templates that scan tables.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, NullFormatter, PercentFormatter

from d1bench.charts._style import PALETTE, finish, new_figure, no_data, styled, thousands

__all__ = ["CLASS_COLORS", "hit_rate_chart", "plan_class_chart", "rows_read_chart"]

#: Plan class -> colour, warm for expensive classes and cool for index and key lookups.
CLASS_COLORS: dict[str, str] = {
    "full_scan": "#D55E00",
    "automatic_index": "#E69F00",
    "temp_btree_group": "#F0C05A",
    "temp_btree_order": "#F5DC9A",
    "other_virtual": "#CC79A7",
    "fts": "#56B4E9",
    "index_search": "#009E73",
    "covering_index": "#66C2A5",
    "primary_key": "#0072B2",
    "subquery": "#BBBBBB",
    "constant": "#DDDDDD",
}
_UNKNOWN = "#FFFFFF"


@styled
def plan_class_chart(plans: Mapping[str, pd.DataFrame], *, title: str | None = None) -> Figure:
    """Each template's plan class under each index set: one row per template, one column per set.

    ``plans`` maps an index set's name to :func:`d1bench.plan_report`'s frame.
    Templates whose plan is a full scan under the first set come first.
    """
    names = list(plans)
    frames = {k: v.set_index("template") for k, v in plans.items()}
    templates = list(dict.fromkeys(t for f in frames.values() for t in f.index))
    order = {c: i for i, c in enumerate(CLASS_COLORS)}
    first = frames[names[0]] if names else pd.DataFrame()
    templates.sort(key=lambda t: (order.get(first["plan_class"].get(t), 99)
                                  if t in first.index else 99, t))
    fig, ax = new_figure(figsize=(4.0 + 2.4 * len(names), max(3.0, 0.3 * len(templates) + 1.6)))
    if not templates:
        no_data(ax, "no templates")
        return fig
    for j, name in enumerate(names):
        frame = frames[name]
        for i, t in enumerate(templates):
            cls = frame["plan_class"].get(t) if t in frame.index else None
            ax.add_patch(_cell(j, i, CLASS_COLORS.get(cls or "", _UNKNOWN)))
            ax.text(j + 0.5, i + 0.5, cls or "error", ha="center", va="center", fontsize=7.5,
                    color="white" if cls in ("full_scan", "primary_key") else "#222222")
    ax.set_xlim(0, len(names))
    ax.set_ylim(len(templates), 0)
    ax.set_xticks(np.arange(len(names)) + 0.5, names)
    ax.set_yticks(np.arange(len(templates)) + 0.5, templates)
    ax.xaxis.tick_top()
    ax.grid(False)
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    ax.tick_params(length=0)
    finish(ax, title or "Plan class per template and index set", "", "")
    ax.set_xlabel("index set")
    ax.xaxis.set_label_position("top")
    return fig


def _cell(x: float, y: float, color: str):
    from matplotlib.patches import Rectangle

    return Rectangle((x + 0.03, y + 0.05), 0.94, 0.9, facecolor=color, edgecolor="#999999",
                     linewidth=0.5)


@styled
def hit_rate_chart(rates: Mapping[str, pd.DataFrame], *, title: str | None = None) -> Figure:
    """Index hit rate by executions and by time, per index set (the ``ALL`` rows).

    ``rates`` maps an index set to :func:`d1bench.plans.index_hit_rates`'s
    frame.  By count, a workload of many key lookups looks well indexed; by
    time, the few full scans that take most of it show.
    """
    names = list(rates)
    fig, ax = new_figure(figsize=(7.5, 4.2))
    if not names:
        no_data(ax, "no index sets")
        return fig
    x = np.arange(len(names))
    width = 0.38
    count = [float(rates[n].set_index("template").loc["ALL", "hit_rate"]) for n in names]
    time = [float(rates[n].set_index("template").loc["ALL", "time_hit_rate"]) for n in names]
    for offset, values, label, color in ((-width / 2, count, "by executions", PALETTE[0]),
                                         (width / 2, time, "by database time", PALETTE[1])):
        bars = ax.bar(x + offset, values, width=width * 0.95, label=label, color=color)
        for bar, v in zip(bars, values):
            ax.text(bar.get_x() + bar.get_width() / 2, v + 0.01, f"{v:.0%}", ha="center",
                    va="bottom", fontsize=9)
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1.12)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.grid(axis="x", visible=False)
    finish(ax, title or "Index hit rate: share of work done through an index or key",
           "index set", "share of executions / of time (%)")
    ax.legend(loc="upper left", ncols=2, fontsize=8)
    return fig


@styled
def rows_read_chart(summaries: Mapping[str, pd.DataFrame], *, title: str | None = None,
                    plan_classes: Mapping[str, str] | None = None) -> Figure:
    """Rows read per execution of each template under each index set, log scale.

    ``summaries`` maps an index set to :func:`d1bench.summarize`'s frame.
    Lines join a template's points, so a long line to the left is an index
    that saves rows (and D1 dollars).  ``plan_classes`` (template -> class
    under the first set) colours the template labels of full scans.
    """
    names = list(summaries)
    frames = {n: s.set_index("template")["rows_read_per_exec"].drop("ALL", errors="ignore")
              for n, s in summaries.items()}
    table = pd.DataFrame(frames)
    table = table[(table > 0).any(axis=1)]
    fig, ax = new_figure(figsize=(9, max(3.0, 0.3 * len(table) + 1.6)))
    if table.empty:
        no_data(ax, "no rows-read figures")
        return fig
    table = table.sort_values(names[0], ascending=True)
    y = np.arange(len(table))
    lo = table.where(table > 0).min(axis=1)
    hi = table.max(axis=1)
    ax.hlines(y, lo, hi, color="#cccccc", linewidth=2)
    markers = ("o", "D", "s", "^")
    for k, name in enumerate(names):
        vals = table[name].where(table[name] > 0)
        ax.plot(vals, y, linestyle="none", marker=markers[k % 4], color=PALETTE[k % len(PALETTE)],
                label=name, markersize=6)
    ax.set_yticks(y, table.index.tolist())
    if plan_classes:
        for label in ax.get_yticklabels():
            if plan_classes.get(label.get_text()) == "full_scan":
                label.set_color(CLASS_COLORS["full_scan"])
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: thousands(v) if v >= 1 else f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(axis="y", visible=False)
    finish(ax, title or "Rows read per execution, by index set", "rows read per execution "
           "(log scale; what D1 bills)", "", legend=False)
    handles, labels = ax.get_legend_handles_labels()
    if plan_classes:
        handles.append(Patch(color=CLASS_COLORS["full_scan"]))
        labels.append("red label: full scan without indexes")
    fig.legend(handles, labels, loc="outside right upper", fontsize=8)
    return fig
