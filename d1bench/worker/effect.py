"""What the bench Worker's cache and sessions did in a replay, from its trace.

The Worker writes its own fields into each statement's ``meta``, which the
trace keeps in its ``extra`` column: ``cache`` (off, miss, hit, bypass),
``rows_read_saved`` (the rows the cached answer cost when it was read from
D1), ``stale`` (on hits, with ``CACHE_CHECK``: whether the database answered
differently at that moment), ``bookmark``, ``served_by_region``,
``served_by_primary``, ``total_attempts``, ``sql_duration_ms`` and
``worker_ms``.  These functions turn them into DataFrames, one row per template.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from d1bench.cost import PLANS

__all__ = ["WORKER_FIELDS", "cache_effect", "cache_latency", "session_summary", "worker_fields"]

#: The per-statement fields the bench Worker adds; null where D1 (or Miniflare) leaves them out.
WORKER_FIELDS = ("bookmark", "session_in", "served_by_region", "served_by_primary", "total_attempts",
                 "sql_duration_ms", "worker_ms", "cache", "rows_read_saved", "cache_age_ms",
                 "stale", "check_rows_read")


def worker_fields(trace: Any) -> pd.DataFrame:
    """One row per measured, successful statement: its template, times and the Worker's fields."""
    requests = trace.measured
    requests = requests[requests["error_class"].isna()]
    extra = [json.loads(text) if isinstance(text, str) else {} for text in requests["extra"]]
    fields = pd.DataFrame([{name: e.get(name) for name in WORKER_FIELDS} for e in extra],
                          index=requests.index, columns=list(WORKER_FIELDS))
    base = requests[["template", "session_id", "step", "response_ms", "service_ms",
                     "rows_read", "db_duration_ms"]]
    return pd.concat([base, fields], axis=1).reset_index(drop=True)


def _pct(values: pd.Series, q: float) -> float:
    return float(np.percentile(values.to_numpy(float), q)) if len(values) else float("nan")


def cache_effect(trace: Any, *, plan: str = "paid") -> pd.DataFrame:
    """Per template: hits, misses, hit rate, stale reads, rows read and dollars saved, latency.

    Columns: ``requests``, ``hits``, ``misses``, ``bypassed`` (writes, batches),
    ``hit_rate`` (hits / (hits + misses)), ``checked`` (hits compared with the
    database), ``stale`` and ``stale_rate`` (stale / checked; NaN when no hit was
    checked), ``rows_read`` (billed), ``rows_read_saved``, ``saved_fraction``
    (saved / (billed + saved)), ``usd_saved`` and ``usd_saved_per_million``
    requests at the plan's price beyond its allowance, ``p50_hit_ms``,
    ``p50_miss_ms``, ``p99_hit_ms``, ``p99_miss_ms`` (service time).
    """
    price = PLANS[plan].usd_per_million_read / 1e6
    fields = worker_fields(trace)
    rows = []
    for template, g in fields.groupby("template", sort=True):
        hits, misses = g[g["cache"] == "hit"], g[g["cache"] == "miss"]
        checked = hits[hits["stale"].notna()]
        stale = int(checked["stale"].astype(bool).sum())
        read = int(g["rows_read"].fillna(0).sum())
        saved = int(hits["rows_read_saved"].fillna(0).sum())
        looked = len(hits) + len(misses)
        rows.append({
            "template": template, "requests": len(g), "hits": len(hits), "misses": len(misses),
            "bypassed": int((g["cache"] == "bypass").sum()),
            "hit_rate": len(hits) / looked if looked else float("nan"),
            "checked": len(checked), "stale": stale,
            "stale_rate": stale / len(checked) if len(checked) else float("nan"),
            "rows_read": read, "rows_read_saved": saved,
            "saved_fraction": saved / (read + saved) if read + saved else float("nan"),
            "usd_saved": saved * price,
            "usd_saved_per_million": saved * price * 1e6 / len(g),
            "p50_hit_ms": _pct(hits["service_ms"], 50), "p50_miss_ms": _pct(misses["service_ms"], 50),
            "p99_hit_ms": _pct(hits["service_ms"], 99), "p99_miss_ms": _pct(misses["service_ms"], 99),
        })
    return pd.DataFrame(rows).set_index("template") if rows else pd.DataFrame()


def cache_latency(with_cache: Any, without: Any) -> pd.DataFrame:
    """Per template: p50/p99 response time with the cache and without it, and their ratio."""
    rows = []
    a, b = worker_fields(with_cache), worker_fields(without)
    for template in sorted(set(a["template"]) & set(b["template"])):
        x, y = a[a["template"] == template]["response_ms"], b[b["template"] == template]["response_ms"]
        rows.append({"template": template, "p50_with_ms": _pct(x, 50), "p50_without_ms": _pct(y, 50),
                     "p99_with_ms": _pct(x, 99), "p99_without_ms": _pct(y, 99)})
    frame = pd.DataFrame(rows).set_index("template") if rows else pd.DataFrame()
    if rows:
        frame["p50_ratio"] = frame["p50_with_ms"] / frame["p50_without_ms"]
    return frame


def session_summary(trace: Any) -> pd.DataFrame:
    """Per template: what D1 said about where each statement ran and how often it tried.

    Columns: ``requests``, ``with_bookmark``, ``served_by_primary`` (share, NaN
    when D1 did not say: Miniflare never does), ``regions`` (the distinct
    ``served_by_region`` values, comma-joined; empty when unknown),
    ``retried`` (statements D1 ran more than once; NaN when unknown),
    ``p50_service_ms`` (client side), ``p50_worker_ms`` (inside the Worker) and
    ``p50_sql_ms`` (``timings.sql_duration_ms``; NaN when unknown).
    """
    fields = worker_fields(trace)
    rows = []
    for template, g in fields.groupby("template", sort=True):
        primary = g["served_by_primary"].dropna()
        attempts = g["total_attempts"].dropna()
        sql = g["sql_duration_ms"].dropna()
        rows.append({
            "template": template, "requests": len(g),
            "with_bookmark": int(g["bookmark"].notna().sum()),
            "served_by_primary": float(primary.astype(bool).mean()) if len(primary) else float("nan"),
            "regions": ",".join(sorted(str(r) for r in g["served_by_region"].dropna().unique())),
            "retried": int((attempts.astype(float) > 1).sum()) if len(attempts) else float("nan"),
            "p50_service_ms": _pct(g["service_ms"], 50),
            "p50_worker_ms": _pct(g["worker_ms"].dropna(), 50),
            "p50_sql_ms": _pct(sql, 50) if len(sql) else float("nan"),
        })
    return pd.DataFrame(rows).set_index("template") if rows else pd.DataFrame()
