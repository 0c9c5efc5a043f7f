"""Thresholds a trace must stay within, as k6 writes them: ``p99<200ms``, ``error_rate<0.05``.

Grammar (one threshold per string; spaces are ignored)::

    threshold := [TEMPLATE ":"] METRIC OP VALUE [UNIT]
    OP        := "<" | "<=" | ">" | ">="
    TEMPLATE  := a template's name, or "*" for every template one by one

With no ``TEMPLATE`` the threshold applies to the whole trace (the ``ALL``
row of :func:`d1bench.analysis.summarize`).  The condition says what must
hold: ``p99<200ms`` is crossed when p99 is 200 ms or more.  Metrics:

- latency, of successful measured requests: ``p50 p90 p95 p99 p99.9 mean max
  min``, with ``ms`` (the default) or ``s``;
- shares, a fraction or a percentage (``0.05``, ``5%``): ``error_rate``
  (failed / sent), ``drop_rate`` (not sent, the schedule had passed / all),
  ``retry_rate`` (sent more than once / sent), ``scan_rate`` (executions
  whose plan scans a table / all);
- ``rows_read_per_exec``, ``rows_written_per_exec`` (D1's billed rows);
- ``dollars_per_month`` (``$`` allowed), D1's bill at the achieved rate or the
  rate asked for;
- ``rate`` (statements a second achieved).

:data:`SEED_ALERTS` are seed 000's alerts in this grammar.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from d1bench.errors import UsageError

__all__ = ["METRICS", "SEED_ALERTS", "SLOW_QUERY_MS", "Threshold", "check_thresholds",
           "parse_threshold", "seed_alerts"]

#: Seed 000's slow-query threshold (``slowQueryThreshold: 60``, "alert on >60ms queries").
SLOW_QUERY_MS = 60.0

#: metric -> (summary column, kind).  Kinds decide the units a value may carry.
METRICS: dict[str, tuple[str, str]] = {
    "p50": ("p50_ms", "ms"), "p90": ("p90_ms", "ms"), "p95": ("p95_ms", "ms"),
    "p99": ("p99_ms", "ms"), "p99.9": ("p999_ms", "ms"), "mean": ("mean_ms", "ms"),
    "max": ("max_ms", "ms"), "min": ("min_ms", "ms"),
    "error_rate": ("error_rate", "share"), "drop_rate": ("drop_rate", "share"),
    "retry_rate": ("retry_rate", "share"), "scan_rate": ("scan_rate", "share"),
    "rows_read_per_exec": ("rows_read_per_exec", "count"),
    "rows_written_per_exec": ("rows_written_per_exec", "count"),
    "dollars_per_month": ("usd_per_month", "usd"),
    "rate": ("rate_per_s", "count"),
}

_OPS = {"<": lambda v, x: v < x, "<=": lambda v, x: v <= x,
        ">": lambda v, x: v > x, ">=": lambda v, x: v >= x}

_FORM = re.compile(r"(?:(?P<template>[^:<>=]+):)?(?P<metric>[a-z_][a-z0-9_.]*)"
                   r"(?P<op><=|>=|<|>)(?P<value>.+)")
_NUMBER = re.compile(r"\$?(?P<n>[0-9]+(?:\.[0-9]*)?(?:e-?[0-9]+)?|\.[0-9]+)(?P<unit>[a-z%]*)")


@dataclass(frozen=True, slots=True)
class Threshold:
    """One condition a trace must meet.

    Attributes:
        text: as written, for messages and tables.
        metric: a key of :data:`METRICS`.
        op: ``<``, ``<=``, ``>`` or ``>=``: what must hold.
        limit: the value in the metric's own unit (ms, a fraction, rows, dollars).
        template: ``None`` for the whole trace, ``"*"`` for each template, or a name.
    """

    text: str
    metric: str
    op: str
    limit: float
    template: str | None = None

    def holds(self, value: float) -> bool:
        """Whether ``value`` meets the condition (a missing value does: there is nothing to judge).

        >>> parse_threshold("p99<200ms").holds(150.0), parse_threshold("p99<200ms").holds(200.0)
        (True, False)
        """
        return math.isnan(value) or bool(_OPS[self.op](value, self.limit))


def parse_threshold(text: str) -> Threshold:
    """Read one threshold (grammar in the module docstring); UsageError names what is wrong.

    >>> parse_threshold("search_papers:p95 < 0.06s")
    Threshold(text='search_papers:p95 < 0.06s', metric='p95', op='<', limit=60.0, template='search_papers')
    >>> parse_threshold("error_rate<5%").limit
    0.05
    >>> parse_threshold("p99<fast")
    Traceback (most recent call last):
    ...
    d1bench.errors.UsageError: threshold 'p99<fast': 'fast' is not a number with a unit (e.g. 200ms, 0.2s)
    """
    compact = "".join(str(text).split())
    m = _FORM.fullmatch(compact)
    if m is None:
        raise UsageError(f"threshold {text!r}: expected [TEMPLATE:]METRIC OP VALUE, "
                         "e.g. 'p99<200ms' or 'search_papers:error_rate<0.05'")
    metric, op, value = m.group("metric"), m.group("op"), m.group("value")
    if metric not in METRICS:
        raise UsageError(f"threshold {text!r}: unknown metric {metric!r}; "
                         f"choose from {', '.join(METRICS)}")
    kind = METRICS[metric][1]
    limit = _value(text, kind, value)
    template = m.group("template")
    return Threshold(text=str(text), metric=metric, op=op, limit=limit, template=template)


def _value(text: str, kind: str, value: str) -> float:
    example = {"ms": "200ms, 0.2s", "share": "0.05, 5%", "count": "10000", "usd": "$50, 50"}[kind]
    m = _NUMBER.fullmatch(value.lower())
    if m is None:
        raise UsageError(f"threshold {text!r}: {value!r} is not a number with a unit "
                         f"(e.g. {example})")
    number, unit = float(m.group("n")), m.group("unit")
    if value.startswith("$") and kind != "usd":
        raise UsageError(f"threshold {text!r}: '$' is for dollars_per_month")
    scale = {"ms": {"": 1.0, "ms": 1.0, "s": 1000.0}, "share": {"": 1.0, "%": 0.01},
             "count": {"": 1.0}, "usd": {"": 1.0}}[kind]
    if unit not in scale:
        raise UsageError(f"threshold {text!r}: unit {unit!r} does not fit this metric "
                         f"(e.g. {example})")
    limit = number * scale[unit]
    if kind == "share" and limit > 1:
        raise UsageError(f"threshold {text!r}: a rate is a fraction from 0 to 1 (or 0-100%)")
    return limit


def seed_alerts(slow_ms: float = SLOW_QUERY_MS) -> tuple[Threshold, ...]:
    """Seed 000's alerts as thresholds: every template's p99 under the slow-query limit,
    fewer than 5% errors, scans in under 30% of executions, retries under 10%.

    A "slow query" alert fires on one query over the limit; p99 keeps a single
    outlier among thousands from failing a run while still catching a template
    that is slow in earnest.

    >>> [t.text for t in seed_alerts()]
    ['*:p99<60ms', 'error_rate<0.05', 'scan_rate<0.3', 'retry_rate<0.1']
    """
    return tuple(parse_threshold(t) for t in (
        f"*:p99<{slow_ms:g}ms", "error_rate<0.05", "scan_rate<0.3", "retry_rate<0.1"))


#: Seed 000's alert values: see :func:`seed_alerts`.
SEED_ALERTS = seed_alerts()


def check_thresholds(summary: pd.DataFrame,
                     thresholds: Iterable[Threshold | str]) -> pd.DataFrame:
    """Hold a summary (:func:`d1bench.analysis.summarize`) against thresholds.

    One row per threshold and template it applies to (``*`` expands to every
    template): ``threshold``, ``template``, ``metric``, ``op``, ``limit``,
    ``value``, ``crossed`` (the condition does not hold), ``by`` (how far
    past the limit, in the metric's unit; 0 when not crossed) and ``by_ratio``
    (value / limit).  A value that cannot be judged (no successful request,
    no rows measured) is not crossed and says so in ``note``.  A template the
    summary does not have is a UsageError, so that a misspelt name cannot pass
    a CI run unnoticed.
    """
    from d1bench.analysis import ALL

    rows = summary.set_index("template")
    templates = [t for t in rows.index if t != ALL]
    out = []
    for item in thresholds:
        th = parse_threshold(item) if isinstance(item, str) else item
        column = METRICS[th.metric][0]
        if th.template == "*":
            names: Sequence[str] = templates
        elif th.template is None:
            names = [ALL]
        elif th.template in rows.index:
            names = [th.template]
        else:
            raise UsageError(f"threshold {th.text!r}: the trace has no template "
                             f"{th.template!r}; it has {', '.join(templates) or 'none'}")
        for name in names:
            raw = rows.loc[name, column] if name in rows.index else math.nan
            value = math.nan if raw is None or raw is pd.NA or pd.isna(raw) else float(raw)
            crossed = not th.holds(value)
            out.append({
                "threshold": th.text, "template": name, "metric": th.metric, "op": th.op,
                "limit": th.limit, "value": value, "crossed": crossed,
                "by": abs(value - th.limit) if crossed else 0.0,
                "by_ratio": value / th.limit if th.limit and not math.isnan(value) else math.nan,
                "note": "no data" if math.isnan(value) else "",
            })
    return pd.DataFrame(out, columns=["threshold", "template", "metric", "op", "limit", "value",
                                      "crossed", "by", "by_ratio", "note"])
