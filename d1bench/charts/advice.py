"""Index advice, before and after: :func:`d1bench.advise`'s frames drawn.

Savings are drawn as dumbbells on log axes (a template that reads 60,000
rows before and 20 after is a long bar), and costs as the bytes each index
takes and the rows each write now also writes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from d1bench.charts._style import PALETTE, finish, new_figure, no_data, styled, thousands

__all__ = ["before_after_chart", "index_cost_chart"]

_WORSE = "#D55E00"


def _log_axis(axis, values) -> None:
    """Log ticks at 1, 2, 5 per decade on a short range, one per decade on a long one."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    decades = np.log10(v.max() / v.min()) if v.size else 0
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades <= 3 else (1.0,)))
    axis.set_major_formatter(FuncFormatter(lambda v, _p: thousands(v) if v >= 1 else f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _dumbbell(ax, y, before, after) -> None:
    ax.hlines(y, np.minimum(before, after), np.maximum(before, after), color="#cccccc",
              linewidth=2)
    ax.plot(before, y, "o", color=PALETTE[5], label="before", markersize=6)
    ax.plot(after, y, "D", color=PALETTE[2], label="after", markersize=6)


@styled
def before_after_chart(verification: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Rows read per execution and p50 latency of each template, before and after the advice.

    ``verification`` is :attr:`d1bench.advisor.Advice.verification` (measured
    on two copies of the corpus, the same requests replayed on each).  A
    template the advice made worse has a red label.
    """
    frame = verification.copy()
    frame = frame[(frame["rows_read_before"] > 0) | (frame["rows_read_after"] > 0)]
    fig, (left, right) = new_figure(1, 2, figsize=(11, max(3.0, 0.32 * len(frame) + 1.8)),
                                    sharey=True)
    if frame.empty:
        no_data(left, "nothing measured")
        return fig
    frame["saved"] = frame["rows_read_before"] - frame["rows_read_after"]
    frame = frame.sort_values("rows_read_before", ascending=True)
    y = np.arange(len(frame))
    _dumbbell(left, y, frame["rows_read_before"].clip(lower=0.5),
              frame["rows_read_after"].clip(lower=0.5))
    p50 = frame[["p50_before_ms", "p50_after_ms"]].clip(lower=1e-3)
    _dumbbell(right, y, p50["p50_before_ms"], p50["p50_after_ms"])
    left.set_yticks(y, frame["template"].tolist())
    for label, worse in zip(left.get_yticklabels(), frame["worse"].astype(bool)):
        if worse:
            label.set_color(_WORSE)
    for ax, values in ((left, frame[["rows_read_before", "rows_read_after"]].clip(lower=0.5)),
                       (right, p50)):
        ax.set_xscale("log")
        _log_axis(ax.xaxis, values.to_numpy().ravel())
        ax.grid(axis="y", visible=False)
    finish(left, title or "Before and after the advised indexes",
           "rows read per execution (log scale)", "", legend=False)
    finish(right, "", "median latency per execution (ms, log scale)", "", legend=False)
    handles, labels = left.get_legend_handles_labels()
    if frame["worse"].any():
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], color=_WORSE, linestyle="none", marker="s"))
        labels.append("red label: worse after")
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=8)
    return fig


@styled
def index_cost_chart(indexes: pd.DataFrame, templates: pd.DataFrame | None = None, *,
                     title: str | None = None) -> Figure:
    """What the advice costs: each index's size, and the rows each write statement writes.

    ``indexes`` and ``templates`` are :attr:`~d1bench.advisor.Advice.indexes`
    and :attr:`~d1bench.advisor.Advice.templates`.  On D1 a row written costs
    a thousand rows read, and every index on a table is one more row written
    per insert into it.
    """
    writes = pd.DataFrame()
    if templates is not None and "rows_written_before" in templates.columns:
        writes = templates[(templates["rows_written_before"] > 0)
                           | (templates["rows_written_after"] > 0)]
    ncols = 2 if not writes.empty else 1
    fig, axes = new_figure(1, ncols, figsize=(11 if ncols == 2 else 7.5,
                                              max(3.0, 0.32 * len(indexes) + 1.8)))
    left = axes[0] if ncols == 2 else axes
    if indexes.empty:
        no_data(left, "no indexes advised")
        return fig
    frame = indexes.sort_values("bytes", ascending=True)
    y = np.arange(len(frame))
    kb = frame["bytes"].astype(float) / 1e3
    left.barh(y, kb, color=PALETTE[0])
    for yi, v in zip(y, kb):
        left.text(v, yi, f" {v:,.0f} kB", va="center", fontsize=8)
    left.set_yticks(y, frame["name"].tolist())
    left.set_xlim(right=float(kb.max()) * 1.25 if len(kb) else 1)
    left.grid(axis="y", visible=False)
    total = float(frame["bytes"].sum()) / 1e6
    finish(left, title or f"Cost of the advice: {total:,.1f} MB of indexes",
           "index size (kB, estimated)", "")
    if ncols == 2:
        right = axes[1]
        w = writes.sort_values("template")
        yw = np.arange(len(w))
        right.barh(yw - 0.2, w["rows_written_before"], height=0.38, color=PALETTE[5],
                   label="before")
        right.barh(yw + 0.2, w["rows_written_after"], height=0.38, color=PALETTE[2],
                   label="after")
        right.set_yticks(yw, w["template"].tolist())
        right.invert_yaxis()
        right.grid(axis="y", visible=False)
        right.xaxis.get_major_locator().set_params(integer=True)
        finish(right, "Rows written per write", "rows written per execution", "")
    return fig
