"""What the corpus looks like, from :mod:`d1bench.corpus.stats`'s frames.

Real literature is skewed everywhere: a few papers gather most citations,
a few specialties most papers, a few terms most words.  Those skews decide
how selective a query is, so the charts use log-log axes for the
distributions that follow a power law, and the two helpers here put a
number on the skew (:func:`top_share`, :func:`zipf_exponent`) that a
notebook can assert and report.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from d1bench.charts._style import PALETTE, finish, new_figure, no_data, styled, thousands

__all__ = [
    "in_degree_chart",
    "papers_per_specialty_chart",
    "papers_per_year_chart",
    "table_sizes_chart",
    "term_rank_chart",
    "top_share",
    "zipf_exponent",
]


def top_share(in_degree: pd.DataFrame, fraction: float = 0.01) -> float:
    """Share of all citations held by the most-cited ``fraction`` of papers.

    ``in_degree`` is :func:`~d1bench.corpus.stats.citation_in_degree`'s
    frame (``in_degree``, ``papers``).  Ties at the cut are split evenly.

    >>> frame = pd.DataFrame({"in_degree": [0, 1, 50], "papers": [90, 9, 1]})
    >>> round(top_share(frame, 0.01), 3)  # one paper of 100 holds 50 of 59 citations
    0.847
    """
    frame = in_degree.sort_values("in_degree", ascending=False)
    total_papers = int(frame["papers"].sum())
    total_cites = float((frame["in_degree"] * frame["papers"]).sum())
    if total_papers == 0 or total_cites == 0:
        return math.nan
    want = max(1, math.ceil(fraction * total_papers))
    held = 0.0
    for degree, papers in zip(frame["in_degree"], frame["papers"]):
        take = min(int(papers), want)
        held += take * float(degree)
        want -= take
        if want == 0:
            break
    return held / total_cites


def _by_occurrence(terms: pd.DataFrame) -> pd.DataFrame:
    ranked = terms.sort_values(["occurrences", "term"], ascending=[False, True])
    return ranked.assign(rank=np.arange(1, len(ranked) + 1))


def zipf_exponent(terms: pd.DataFrame, *, low: int = 10, high: int = 1000) -> float:
    """Slope of log(occurrences) against log(rank) over ranks ``low``-``high``, negated.

    Natural language gives about 1 (Zipf's law).  The head (function words)
    and the tail (terms seen once) bend away from the line, so the fit uses
    the middle ranks.  ``terms`` is :func:`~d1bench.corpus.stats.term_frequencies`'s frame.

    >>> ranks = np.arange(1, 2001)
    >>> frame = pd.DataFrame({"term": ranks.astype(str), "occurrences": (1e6 / ranks).astype(int)})
    >>> round(zipf_exponent(frame), 2)
    1.0
    """
    ranked = _by_occurrence(terms)
    mid = ranked[(ranked["rank"] >= low) & (ranked["rank"] <= high) & (ranked["occurrences"] > 0)]
    if len(mid) < 3:
        return math.nan
    slope, _ = np.polyfit(np.log10(mid["rank"]), np.log10(mid["occurrences"]), 1)
    return float(-slope)


@styled
def table_sizes_chart(sizes: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Rows and on-disk bytes per table (indexes included), side by side, log scales."""
    frame = sizes.sort_values("bytes", ascending=True)
    fig, (left, right) = new_figure(1, 2, figsize=(10, max(3.0, 0.4 * len(frame) + 1.4)),
                                    sharey=True)
    if frame.empty:
        no_data(left, "no tables")
        return fig
    y = np.arange(len(frame))
    left.barh(y, frame["rows"].clip(lower=1), color=PALETTE[0])
    right.barh(y, frame["bytes"].clip(lower=1) / 1e6, color=PALETTE[1])
    left.set_yticks(y, frame["table"].tolist())
    def size(mb: float) -> str:
        return f"{mb:,.1f} MB" if mb >= 1 else f"{mb * 1000:,.0f} kB"

    for ax, values, fmt in ((left, frame["rows"], lambda v: f"{int(v):,}"),
                            (right, frame["bytes"] / 1e6, size)):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(axis="y", visible=False)
        for yi, v in zip(y, values):
            ax.text(max(v, 1e-9), yi, " " + fmt(v), va="center", fontsize=8)
        ax.set_xlim(right=ax.get_xlim()[1] * 8)
    left.xaxis.set_major_formatter(thousands)
    finish(left, title or "Table sizes", "rows (log scale)", "")
    finish(right, "", "size on disk including indexes (MB, log scale)", "")
    return fig


@styled
def in_degree_chart(in_degree: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Citation in-degree distribution on log-log axes, with the share the top 1% hold.

    Preferential attachment gives a straight-ish line: many papers cited a
    few times, a few cited hundreds of times.  Papers never cited cannot sit
    on a log axis; their count is written on the chart instead.
    """
    cited = in_degree[in_degree["in_degree"] > 0]
    fig, ax = new_figure(figsize=(7.5, 5))
    if cited.empty:
        no_data(ax, "no citations")
        return fig
    ax.scatter(cited["in_degree"], cited["papers"], s=14, color=PALETTE[0], zorder=3,
               label="papers with that many citations")
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())
    never = int(in_degree.loc[in_degree["in_degree"] == 0, "papers"].sum())
    total = int(in_degree["papers"].sum())
    share = top_share(in_degree, 0.01)
    ax.text(0.98, 0.97,
            f"top 1% of papers hold {share:.0%} of citations\n"
            f"{never:,} of {total:,} papers never cited",
            transform=ax.transAxes, ha="right", va="top", fontsize=9,
            bbox={"facecolor": "white", "edgecolor": "#cccccc"})
    finish(ax, title or "Citation in-degree distribution (log-log)",
           "citations received (log scale)", "papers (log scale)", legend=False)
    return fig


@styled
def papers_per_year_chart(per_year: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Papers published each year: the literature grows, so recent years weigh more."""
    fig, ax = new_figure(figsize=(8.5, 4))
    if per_year.empty:
        no_data(ax, "no papers")
        return fig
    ax.bar(per_year["year"], per_year["papers"], color=PALETTE[0], width=0.8)
    ax.yaxis.set_major_formatter(thousands)
    ax.grid(axis="x", visible=False)
    finish(ax, title or "Papers per publication year", "publication year", "papers")
    return fig


@styled
def papers_per_specialty_chart(per_specialty: pd.DataFrame, *, top: int = 25,
                               title: str | None = None) -> Figure:
    """Papers per medical specialty, largest first, with each one's share."""
    frame = per_specialty.sort_values("papers", ascending=False).head(top)
    fig, ax = new_figure(figsize=(8.5, max(3.0, 0.3 * len(frame) + 1.4)))
    if frame.empty:
        no_data(ax, "no papers")
        return fig
    y = np.arange(len(frame))
    ax.barh(y, frame["papers"], color=PALETTE[2])
    share = frame["papers"] / per_specialty["papers"].sum()
    for yi, (n, s) in enumerate(zip(frame["papers"], share)):
        ax.text(n, yi, f" {s:.1%}", va="center", fontsize=8)
    ax.set_yticks(y, frame["medical_specialty"].astype(str).tolist())
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(thousands)
    ax.set_xlim(right=float(frame["papers"].max()) * 1.15)
    ax.grid(axis="y", visible=False)
    shown = "" if len(frame) == len(per_specialty) else f" (top {len(frame)} of {len(per_specialty)})"
    finish(ax, title or f"Papers per medical specialty{shown}", "papers", "")
    return fig


@styled
def term_rank_chart(terms: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Term frequency by rank on log-log axes, with the fitted Zipf line.

    A straight line means a few terms are in almost every paper (a full-text
    query on them matches everything) and most are rare (very selective).
    """
    ranked = _by_occurrence(terms)
    ranked = ranked[ranked["occurrences"] > 0]
    fig, ax = new_figure(figsize=(7.5, 5))
    if ranked.empty:
        no_data(ax, "no terms")
        return fig
    ax.plot(ranked["rank"], ranked["occurrences"], color=PALETTE[0], linewidth=1.4,
            label="terms (Porter stems)")
    s = zipf_exponent(terms)
    if not math.isnan(s):
        mid = ranked[(ranked["rank"] >= 10) & (ranked["rank"] <= 1000)]
        intercept = float(np.mean(np.log10(mid["occurrences"]) + s * np.log10(mid["rank"])))
        xs = np.array([1, float(ranked["rank"].max())])
        ax.plot(xs, 10 ** (intercept - s * np.log10(xs)), color=PALETTE[5], linestyle="--",
                linewidth=1, label=f"Zipf fit, exponent {s:.2f} (ranks 10-1,000)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(lambda v, _p: thousands(v) if v >= 1 else f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())
    finish(ax, title or "Term frequency by rank (log-log)", "rank (log scale)",
           "occurrences in the corpus (log scale)")
    return fig
