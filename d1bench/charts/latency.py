"""Latency charts from a trace's requests frame and :func:`d1bench.summarize`'s table.

Response time (intended start to done) is the headline everywhere: it
includes the time a request waited for a free worker, so stalls show in
every request they delayed.  Warm-up and failed requests are left out, as
the summaries leave them out.  Latency is heavy-tailed, so time axes are
logarithmic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from d1bench.charts._style import PALETTE, color_for, finish, new_figure, no_data, styled

__all__ = [
    "claims_chart",
    "latency_cdf",
    "latency_histogram",
    "measured",
    "open_vs_closed",
    "percentile_chart",
    "rate_and_p99_over_time",
]

_PERCENTILE_COLUMNS = ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")
_PERCENTILE_LABELS = {"p50_ms": "p50", "p90_ms": "p90", "p99_ms": "p99", "p999_ms": "p99.9",
                      "max_ms": "max"}


def measured(requests: pd.DataFrame, column: str = "response_ms") -> pd.DataFrame:
    """Requests that count: not warm-up, not failed, with a value in ``column``."""
    keep = requests
    if "warmup" in keep:
        keep = keep[~keep["warmup"].fillna(False).astype(bool)]
    if "error_class" in keep:
        keep = keep[keep["error_class"].isna()]
    return keep[keep[column].notna()]


def _ms_axis(ax, axis: str = "x") -> None:
    """Log scale in milliseconds with plain-number labels: 1, 2 and 5 of each decade on a
    short range, one label per decade on a long one (so labels never collide)."""
    target = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    lo, hi = (ax.get_xlim() if axis == "x" else ax.get_ylim())
    decades = np.log10(hi / lo) if lo > 0 and hi > lo else 0
    # The scale resets locators and formatters, so these come after it.
    target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades <= 4 else (1.0,)))
    target.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
    target.set_minor_formatter(NullFormatter())


def _order(frame: pd.DataFrame, by: str, column: str, limit: int | None) -> list[str]:
    """Groups from slowest (by p99) to fastest, so the legend reads top down like the plot's tail."""
    p99 = frame.groupby(by)[column].quantile(0.99).sort_values(ascending=False)
    names = [str(n) for n in p99.index]
    return names[:limit] if limit else names


@styled
def latency_cdf(requests: pd.DataFrame, *, by: str = "template", column: str = "response_ms",
                limit: int | None = 8, title: str | None = None) -> Figure:
    """Cumulative distribution of response time per ``by`` group, log time axis.

    Read it as "this fraction of requests finished within x ms"; a curve far
    to the right, or with a long flat top, is a slow or erratic query.  Only
    the ``limit`` slowest groups (by p99) are drawn, to keep it readable.
    """
    data = measured(requests, column)
    fig, ax = new_figure(figsize=(8.5, 5))
    if data.empty:
        no_data(ax, "no successful measured requests")
        finish(ax, title or "Response time CDF", "", "")
        return fig
    names = _order(data, by, column, limit)
    colors = color_for(names)
    for name in names:
        values = np.sort(data.loc[data[by].astype(str) == name, column].to_numpy(float))
        frac = np.arange(1, len(values) + 1) / len(values)
        ax.step(values, frac, where="post", label=f"{name} (n={len(values):,})", color=colors[name])
    for q in (0.5, 0.99):
        ax.axhline(q, color="#999999", linewidth=0.8, linestyle=":")
        ax.annotate(f"p{q * 100:g}", (1.0, q), xycoords=("axes fraction", "data"),
                    ha="left", va="center", fontsize=8, color="#666666")
    _ms_axis(ax, "x")
    ax.set_ylim(0, 1.01)
    finish(ax, title or "Response time CDF per template",
           f"{column.replace('_ms', '').replace('_', ' ')} time (ms, log scale)",
           "fraction of requests", legend=False)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=8)
    return fig


@styled
def latency_histogram(requests: pd.DataFrame, *, by: str = "template",
                      column: str = "response_ms", limit: int | None = 6, bins: int = 40,
                      title: str | None = None) -> Figure:
    """Histogram of response time per group on log-spaced bins (so each decade gets equal room)."""
    data = measured(requests, column)
    fig, ax = new_figure(figsize=(8.5, 5))
    if data.empty or not (data[column] > 0).any():
        no_data(ax, "no successful measured requests")
        finish(ax, title or "Response time histogram", "", "")
        return fig
    names = _order(data, by, column, limit)
    values = data.loc[data[by].astype(str).isin(names), column].to_numpy(float)
    values = values[values > 0]
    edges = np.logspace(np.log10(values.min()), np.log10(values.max() * 1.0001), bins + 1)
    colors = color_for(names)
    for name in names:
        v = data.loc[data[by].astype(str) == name, column].to_numpy(float)
        ax.hist(v[v > 0], bins=edges, histtype="step", linewidth=1.5, label=name,
                color=colors[name])
    _ms_axis(ax, "x")
    ax.yaxis.get_major_locator().set_params(integer=True)
    finish(ax, title or "Response time histogram per template",
           "response time (ms, log-spaced bins)", "requests per bin", legend=False)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=8)
    return fig


@styled
def percentile_chart(summary: pd.DataFrame, *, percentiles: Sequence[str] = _PERCENTILE_COLUMNS,
                     title: str | None = None, threshold_ms: float | None = None) -> Figure:
    """Each template's p50, p90, p99, p99.9 and max on one log axis, slowest at the top.

    ``summary`` is :func:`d1bench.summarize`'s frame (one row per template, plus
    ``ALL``), with percentile columns ``p50_ms`` ... ``max_ms``.  ``threshold_ms`` draws a
    slow-query line (the seed alerts above 60 ms).
    """
    cols = [c for c in percentiles if c in summary.columns]
    frame = summary.copy()
    if "template" in frame.columns:
        frame = frame.set_index("template")
    frame = frame[cols].dropna(how="all")
    order = frame[cols[min(2, len(cols) - 1)]].sort_values().index if cols else frame.index
    frame = frame.loc[order]
    fig, ax = new_figure(figsize=(8.5, max(3.0, 0.38 * len(frame) + 1.4)))
    if frame.empty or not cols:
        no_data(ax, "no percentiles")
        finish(ax, title or "Latency percentiles", "", "")
        return fig
    y = np.arange(len(frame))
    markers = dict(zip(_PERCENTILE_COLUMNS, ("o", "s", "D", "^", "x")))
    ax.hlines(y, frame[cols].min(axis=1), frame[cols].max(axis=1), color="#cccccc", linewidth=2)
    for i, col in enumerate(cols):
        ax.plot(frame[col], y, linestyle="none", marker=markers.get(col, "o"),
                color=PALETTE[i % len(PALETTE)], label=_PERCENTILE_LABELS.get(col, col))
    if threshold_ms:
        ax.axvline(threshold_ms, color="#D55E00", linestyle="--", linewidth=1,
                   label=f"slow-query threshold {threshold_ms:g} ms")
    ax.set_yticks(y, [str(t) for t in frame.index])
    _ms_axis(ax, "x")
    ax.grid(axis="y", visible=False)
    finish(ax, title or "Latency percentiles per template", "response time (ms, log scale)", "",
           legend=False)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=8)
    return fig


@styled
def rate_and_p99_over_time(intervals: pd.DataFrame, *, target_rate: float | None = None,
                           title: str | None = None) -> Figure:
    """Achieved request rate and p50/p99 response time per interval (pgbench ``-P`` style).

    ``intervals`` is :func:`d1bench.analysis.intervals`'s frame (``t_s``,
    ``rate_per_s``, ``p50_ms``, ``p99_ms``; one line per ``run``).  A rate
    that falls short of the target while p99 climbs is a server (or client)
    that cannot keep up: requests queue and every later one waits.
    """
    fig, (top, bottom) = new_figure(2, 1, figsize=(8.5, 6), sharex=True)
    if intervals.empty:
        no_data(top, "no measured requests")
        return fig
    width = float(intervals["t_s"].diff().dropna().min()) if len(intervals) > 1 else 1.0
    runs = intervals.groupby("run") if "run" in intervals.columns else [(0, intervals)]
    for k, (run, data) in enumerate(runs):
        suffix = f" (run {run})" if len(intervals.get("run", pd.Series([0])).unique()) > 1 else ""
        top.plot(data["t_s"], data["rate_per_s"], drawstyle="steps-post", color=PALETTE[k],
                 label=f"achieved{suffix}")
        bottom.plot(data["t_s"], data["p99_ms"], drawstyle="steps-post", color=PALETTE[5],
                    label=f"p99{suffix}", alpha=1.0 if k == 0 else 0.6)
        bottom.plot(data["t_s"], data["p50_ms"], drawstyle="steps-post", color=PALETTE[2],
                    label=f"p50{suffix}", alpha=1.0 if k == 0 else 0.6)
    if target_rate:
        top.axhline(target_rate, color=PALETTE[5], linestyle="--", linewidth=1,
                    label=f"target: {target_rate:g} units/s (a session unit sends several)")
    top.set_ylim(bottom=0)
    finish(top, title or "Achieved rate and latency over time", "",
           f"statements per second\n({width:g} s intervals)")
    _ms_axis(bottom, "y")
    finish(bottom, "", "time since start (s)", "response time\n(ms, log scale)")
    return fig


@styled
def open_vs_closed(runs: Mapping[str, pd.DataFrame], *, column: str = "response_ms",
                   title: str | None = None) -> Figure:
    """The same workload under different schedules: CDF of all requests, one line per run.

    ``runs`` maps a label ("open loop, 200/s", "closed loop, 8 workers") to
    its requests frame.  Left: CDF on a log time axis.  Right: the tail as a
    percentile plot (x = percentile on a 1/(1-p) scale), where coordinated
    omission shows: the closed loop's tail stays low because a stalled worker
    stops sending.
    """
    fig, (left, right) = new_figure(1, 2, figsize=(11, 4.5))
    colors = dict(zip(runs, PALETTE))
    drawn = False
    for label, requests in runs.items():
        v = np.sort(measured(requests, column)[column].to_numpy(float))
        if v.size == 0:
            continue
        drawn = True
        frac = np.arange(1, v.size + 1) / v.size
        left.step(v, frac, where="post", color=colors[label], label=f"{label} (n={v.size:,})")
        ps = np.array([50, 75, 90, 95, 99, 99.5, 99.9])
        ps = ps[ps <= 100 * (1 - 1 / v.size)] if v.size > 1 else ps[:1]
        right.plot(1 / (1 - ps / 100), np.percentile(v, ps), marker="o", color=colors[label],
                   label=label)
    if not drawn:
        no_data(left, "no measured requests")
        return fig
    _ms_axis(left, "x")
    finish(left, title or "Open vs closed loop: response time CDF",
           f"{column.replace('_ms', '').replace('_', ' ')} time (ms, log scale)",
           "fraction of requests")
    left.legend(loc="lower right", fontsize=8)
    right.set_xscale("log")
    ticks = [2, 4, 10, 20, 100, 200, 1000]
    right.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0,), numticks=10))
    right.set_xticks(ticks, ["p50", "p75", "p90", "p95", "p99", "p99.5", "p99.9"])
    right.xaxis.set_minor_formatter(NullFormatter())
    _ms_axis(right, "y")
    finish(right, "Tail latency", "percentile", "response time (ms, log scale)")
    return fig


@styled
def claims_chart(table: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Measured latency per query family beside the figure the seed claims.

    ``table`` has one row per family with ``claimed_ms`` and measured columns
    (``mean_ms``, ``p50_ms``, ``p99_ms``; whichever are present).
    """
    frame = table.set_index("family") if "family" in table.columns else table
    measured_cols = [c for c in ("mean_ms", "p50_ms", "p99_ms") if c in frame.columns]
    cols = ["claimed_ms", *measured_cols]
    fig, ax = new_figure(figsize=(8.5, max(3.0, 0.7 * len(frame) + 1.4)))
    if frame.empty:
        no_data(ax, "no families")
        return fig
    y = np.arange(len(frame))
    height = 0.8 / len(cols)
    colors = {"claimed_ms": "#999999", "mean_ms": PALETTE[0], "p50_ms": PALETTE[2],
              "p99_ms": PALETTE[5]}
    labels = {"claimed_ms": "seed's claim (average)", "mean_ms": "measured mean",
              "p50_ms": "measured p50", "p99_ms": "measured p99"}
    for i, col in enumerate(cols):
        vals = frame[col].astype(float).to_numpy()
        ax.barh(y + (i - (len(cols) - 1) / 2) * height, np.where(np.isnan(vals), 0, vals),
                height=height * 0.95, color=colors[col], label=labels[col])
    ax.set_yticks(y, [str(i) for i in frame.index])
    ax.invert_yaxis()
    _ms_axis(ax, "x")
    ax.grid(axis="y", visible=False)
    finish(ax, title or "Seed 000's benchmark claims vs measured",
           "latency (ms, log scale)", "query family", legend=False)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=8)
    return fig
