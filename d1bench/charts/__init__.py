"""Figures the notebooks draw: one module per topic, one look for all.

Every function takes DataFrames (as the analysis functions return them) and
returns a :class:`matplotlib.figure.Figure` with a title, units on its axes,
and log scales where the data is heavy-tailed.  Nothing here computes what the
analysis modules already compute; the charts only aggregate what they must to
draw (bins, intervals).

- :mod:`~d1bench.charts.corpus`: table sizes, citation in-degree, papers per
  year and specialty, term frequency by rank.
- :mod:`~d1bench.charts.latency`: CDF, histogram, percentiles, rate and p99
  over time, open versus closed loop, the seed's claims.
- :mod:`~d1bench.charts.plans`: plan classes, index hit rates, rows read.
- :mod:`~d1bench.charts.advice`: before and after an index set, index cost.
- :mod:`~d1bench.charts.d1`: local SQLite versus D1: time split, rows-read parity.
- :mod:`~d1bench.charts.cost`: the monthly D1 bill, and how it grows with traffic.
"""

from __future__ import annotations

from d1bench.charts._style import PALETTE, STYLE, style, styled

__all__ = [
    "PALETTE",
    "STYLE",
    "advice",
    "corpus",
    "cost",
    "d1",
    "latency",
    "plans",
    "style",
    "styled",
]


def __getattr__(name: str):
    # Topic modules load on first use: a notebook about the corpus need not import the rest.
    if name in {"corpus", "latency", "plans", "advice", "d1", "cost"}:
        from importlib import import_module

        module = import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
