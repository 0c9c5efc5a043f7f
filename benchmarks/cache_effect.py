"""What do the seed's cache and its "connection pooling" do, measured on local D1?

The seed claims a two-level cache (an in-memory Map in front of Workers KV,
with a TTL) and "connection pooling for 60 ms response times".  This replays
one workload through the bench Worker on a local D1 (Miniflare), with the
identical schedule of requests (same seed) under each configuration:

- no cache (the baseline);
- ``memory:TTL`` and ``kv:TTL`` at TTL 60 s and 300 s, once with ``CACHE_CHECK``
  (every hit is also run against the database, so stale answers and rows saved
  are counted exactly) and once without (for latency, which the check would
  inflate); and ``memory:60`` with invalidation on writes;
- pooling, without a cache, on primary-key lookups (where a per-request cost
  shows): keep-alive against a new HTTP connection per request, and inside the
  Worker the D1 binding's transport against a Sessions API object created per
  request or reused by the isolate; closed loop, 4 in flight, the variants
  alternating over ``--pool-rounds`` rounds, each round's ratio to the
  keep-alive/direct round beside it, the median reported.

Time is compressed so that a run of seconds stands for minutes of an
application's traffic: the workload's nominal rate (``--app-rate``, units a
second, 5 by default) is replayed at ``--rate`` (100), and every TTL is
divided by the same factor.  Which request hits, misses or reads stale data
depends only on the order of requests and writes and on the TTL in units of
traffic, all of which the compression keeps; latencies are wall-clock.

Every cache figure is per read statement (writes bypass the cache):
``hit_rate``, ``rows_read_saved`` (share of the rows reads would have read),
``stale_rate`` (stale hits / all hits), ``usd_saved_per_million`` reads (at
the paid plan's price, d1bench.cost), p50/p99 service time with the cache
and the baseline's without.

Run: ``python benchmarks/cache_effect.py [--workload medical] [--papers 2000]
[--units 3000] [--rate 100] [--app-rate 5]``; ``--db CORPUS --workload FILE``
for another schema.  Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

TTLS = (60, 300)

POOL_WORKLOAD = """
[workload]
name = "pk_lookups"
format = 1

[templates.item_by_id]
family = "retrieval"
weight = 1
sql = "SELECT id, title FROM bench_items WHERE id = ?"
params = [{ sampler = "int", min = 1, max = 1000 }]
"""

_READS: set[str] = set()


def _reads(trace: Any) -> Any:
    from d1bench.worker import worker_fields

    fields = worker_fields(trace)
    return fields[fields["template"].isin(_READS)]


def _latency(fields: Any) -> dict[str, float]:
    ms = fields["service_ms"].to_numpy(float)
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def _cache_figures(checked: Any, timed: Any, baseline_reads: Any) -> dict[str, Any]:
    from d1bench.cost import PLANS

    reads = _reads(checked)
    hits = reads[reads["cache"] == "hit"]
    billed = int(reads["rows_read"].fillna(0).sum())
    saved = int(hits["rows_read_saved"].fillna(0).sum())
    stale = int(hits["stale"].fillna(False).astype(bool).sum())
    price = PLANS["paid"].usd_per_million_read
    out = {"reads": len(reads), "hits": len(hits),
           "hit_rate": round(len(hits) / len(reads), 4) if len(reads) else None,
           "rows_read_saved": round(saved / (billed + saved), 4) if billed + saved else None,
           "stale_reads": stale,
           "stale_rate": round(stale / len(hits), 4) if len(hits) else None,
           "usd_saved_per_million": round(saved * price / len(reads), 6) if len(reads) else None}
    if timed is not None:
        out.update({f"with_{k}": v for k, v in _latency(_reads(timed)).items()})
        out.update({f"without_{k}": v for k, v in _latency(baseline_reads).items()})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="medical", help="workload name or file")
    parser.add_argument("--db", help="corpus to upload (default: a generated medical corpus)")
    parser.add_argument("--papers", type=int, default=2000, help="generated corpus size")
    parser.add_argument("--units", type=int, default=3000, help="units per configuration")
    parser.add_argument("--rate", type=float, default=50.0, help="units a second replayed")
    parser.add_argument("--pool-requests", type=int, default=400, help="requests per pool round")
    parser.add_argument("--pool-rounds", type=int, default=3, help="alternating pooling rounds")
    parser.add_argument("--app-rate", type=float, default=2.5,
                        help="the application's units a second that the replay stands for")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="memory level and TTL 60 only")
    parser.add_argument("--no-pool", action="store_true",
                        help="skip the pooling rounds (their table is the benchmark's own)")
    args = parser.parse_args(argv)

    from d1bench import generate_corpus
    from d1bench.runner import replay
    from d1bench.targets.d1 import is_read_only
    from d1bench.targets.d1.local import LocalD1
    from d1bench.targets.d1.seed import seed_from_sqlite
    from d1bench.worker import WorkerOptions
    from d1bench.workload import load_workload, parse_workload

    scale = args.rate / args.app_rate
    workload = load_workload(args.workload)
    _READS.update(name for name, t in workload.templates.items() if is_read_only(t.sql))
    _READS.add("item_by_id")
    pool_workload, problems = parse_workload(POOL_WORKLOAD, "pk_lookups.toml")
    assert pool_workload is not None, problems
    with tempfile.TemporaryDirectory(prefix="d1bench-cache-") as tmp:
        root = Path(tmp)
        corpus = Path(args.db) if args.db else root / "corpus.sqlite"
        if not args.db:
            generate_corpus(corpus, papers=args.papers, seed=args.seed)
        items = root / "items.sqlite"
        with sqlite3.connect(items) as db:
            db.execute("CREATE TABLE bench_items (id INTEGER PRIMARY KEY, title TEXT NOT NULL)")
            db.executemany("INSERT INTO bench_items VALUES (?, ?)",
                           [(i, f"item {i}") for i in range(1, 1001)])
        runs = 0

        def run(worker: WorkerOptions, wl: Any = workload, **target_options: Any) -> Any:
            # Every configuration starts from a fresh copy of the database: writes of
            # one run must not change what the next one reads.
            nonlocal runs
            runs += 1
            persist = root / f"run{runs}"
            seed_from_sqlite(corpus if wl is workload else items, persist)
            with LocalD1(persist, worker=worker) as local, \
                    local.target(allow_writes=True, **target_options) as target:
                if wl is workload:
                    trace = replay(wl, target, rate=args.rate, requests=args.units,
                                   seed=args.seed, progress=False, allow_writes=True)
                else:
                    trace = replay(wl, target, concurrency=4, requests=args.pool_requests,
                                   seed=args.seed, progress=False)
            shutil.rmtree(persist)
            return trace

        baseline = run(WorkerOptions())
        base_reads = _reads(baseline)
        levels = ("memory",) if args.quick else ("memory", "kv")
        ttls = TTLS[:1] if args.quick else TTLS
        cache: dict[str, Any] = {}
        for level in levels:
            for ttl in ttls:
                spec = f"{level}:{ttl / scale:g}"
                checked = run(WorkerOptions.from_strings(spec, check=True))
                timed = run(WorkerOptions.from_strings(spec))
                cache[f"{level}:{ttl}"] = _cache_figures(checked, timed, base_reads)
        invalidated = run(WorkerOptions.from_strings(f"memory:{60 / scale:g}", invalidate=True,
                                                     check=True))
        cache["memory:60+invalidate"] = _cache_figures(invalidated, None, base_reads)

        variants = {"keep_alive": {}, "new_connection": {"keep_alive": False},
                    "binding_api-per-request": {"binding": "api-per-request"},
                    "binding_api-reused": {"binding": "api-reused"}}
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
        for k in range(0 if args.no_pool else args.pool_rounds):
            names = list(variants) if k % 2 == 0 else list(variants)[::-1]
            for name in names:
                trace = run(WorkerOptions(), pool_workload, **variants[name])
                rounds[name].append(_latency(_reads(trace)))
        pooling: dict[str, Any] = {}
        for name, values in rounds.items() if not args.no_pool else ():
            pooling[name] = {
                "p50_ms": round(float(np.median([v["p50_ms"] for v in values])), 3),
                "p99_ms": round(float(np.median([v["p99_ms"] for v in values])), 3),
                "p50_ratio_to_keep_alive_direct": round(float(np.median(
                    [v["p50_ms"] / b["p50_ms"] for v, b in zip(values, rounds["keep_alive"])])), 3),
            }

    out = {
        "workload": workload.name, "corpus": str(args.db) if args.db else f"medical:{args.papers}",
        "target": "d1-local (Miniflare)", "units_per_run": args.units, "replay_rate": args.rate,
        "app_rate": args.app_rate, "time_scale": scale,
        "simulated_seconds": round(args.units / args.app_rate, 1),
        "baseline": {"reads": len(base_reads), **_latency(base_reads),
                     "rows_read_per_read": round(float(base_reads["rows_read"].fillna(0).mean()), 2)},
        "cache": cache,
        "pooling": pooling,
        "pool_rounds": args.pool_rounds, "pool_requests": args.pool_requests,
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
