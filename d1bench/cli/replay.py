"""``d1bench replay``, ``analyze`` and ``compare``: record a run, read it, diff two runs."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import pandas as pd

from d1bench._atomic import atomic_path
from d1bench.errors import UsageError
from d1bench.targets.d1.config import add_d1_arguments, d1_options

__all__ = ["format_summary", "register", "run_analyze", "run_compare", "run_replay"]


def _number(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            word = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {word}") from None
    return parse


def register(sub: argparse._SubParsersAction) -> None:
    rp = sub.add_parser(
        "replay",
        help="replay a workload against a target and write a trace",
        description="Send a workload's queries to a target and record every statement: "
        "response time from its intended start (free of coordinated omission), service time, "
        "schedule lag, rows returned, rows read and written, plan class and errors. Open loop "
        "by default (--rate units a second, Poisson arrivals); --concurrency N runs N workers "
        "back to back instead (closed loop: measures capacity, hides stalls). Without "
        "--rate, --concurrency, --duration or --requests it runs 100 units/s for 10 s. "
        "Ctrl-C stops the run and keeps what completed.",
    )
    rp.add_argument("--target", required=True, metavar="SPEC",
                    help="sqlite:PATH, d1-local, or d1://ACCOUNT_ID/DATABASE")
    rp.add_argument("--workload", default="medical", metavar="NAME|FILE",
                    help="a shipped workload (default: medical) or a workload file")
    rp.add_argument("--trace", required=True, metavar="PATH", help="Parquet trace to write")
    rp.add_argument("--reads-only", action="store_true",
                    help="leave out the workload's write templates (and sessions that write)")
    mode = rp.add_mutually_exclusive_group()
    mode.add_argument("--rate", type=_number(float), metavar="R",
                      help="open loop: units per second (default 100)")
    mode.add_argument("--concurrency", type=_number(int), metavar="N",
                      help="closed loop: N workers back to back")
    rp.add_argument("--arrival", choices=("poisson", "fixed"), default="poisson",
                    help="open loop: exponential gaps (default) or a fixed interval")
    rp.add_argument("--workers", type=_number(int), metavar="N",
                    help="open loop: worker threads, or requests in flight over HTTP "
                    "(default 8 / 32)")
    rp.add_argument("--duration", type=_number(float), metavar="S",
                    help="seconds to run after warm-up (default 10 unless --requests)")
    rp.add_argument("--requests", type=_number(int), metavar="N",
                    help="units to run after warm-up (a session counts once)")
    warm = rp.add_mutually_exclusive_group()
    warm.add_argument("--warmup", type=_number(float), default=0.0, metavar="S",
                      help="seconds at the start recorded as warm-up and left out of summaries")
    warm.add_argument("--warmup-requests", type=_number(int), default=0, metavar="N",
                      help="or: the first N units are warm-up (on top of --requests)")
    rp.add_argument("--seed", type=_number(int), default=0, metavar="N",
                    help="seeds arrivals, the units drawn and parameter pools (default 0)")
    rp.add_argument("--corpus", metavar="PATH",
                    help="corpus file the target holds, described in the trace (found "
                    "automatically for sqlite:PATH)")
    rp.add_argument("--no-estimate", action="store_true",
                    help="sqlite: skip the rows read/written estimate (raw speed; the trace "
                    "says so and has null rows read)")
    rp.add_argument("--in-place", action="store_true",
                    help="sqlite: let the workload's writes change the database file (by "
                    "default they run on a snapshot, removed afterwards)")
    rp.add_argument("--force", action="store_true", help="overwrite an existing trace")
    rp.add_argument("--no-progress", action="store_true", help="no live progress line")
    add_d1_arguments(rp)
    rp.set_defaults(func=run_replay)

    an = sub.add_parser(
        "analyze",
        help="print a trace's summary: latency percentiles, rows read, plans, index hit rate",
        description="Summarise a trace per query template and overall: count, errors, achieved "
        "rate, min/p50/p90/p99/p99.9/max/mean/stddev of response time, rows returned, read "
        "and written per execution, efficiency (returned / read), plan class and index hit "
        "rate. Warm-up is left out.",
    )
    an.add_argument("trace", metavar="TRACE", help="a trace written by `d1bench replay`")
    an.add_argument("--csv", metavar="OUT", help="also write every summary column as CSV")
    an.add_argument("--include-warmup", action="store_true", help="count warm-up requests too")
    an.add_argument("--force", action="store_true", help="overwrite an existing --csv file")
    an.set_defaults(func=run_analyze)

    cp = sub.add_parser(
        "compare",
        help="say which templates got faster or slower between two traces",
        description="Compare trace A (before) with trace B (after), per template: p50, p99 and "
        "mean response time, their ratio, rows read per execution, and whether the change is "
        "statistically significant (two-sided Mann-Whitney U test). Refuses traces taken on "
        "different machines or corpora unless --force.",
    )
    cp.add_argument("before", metavar="A", help="the trace before the change")
    cp.add_argument("after", metavar="B", help="the trace after the change")
    cp.add_argument("--alpha", type=_number(float), default=0.05,
                    help="significance level (default 0.05)")
    cp.add_argument("--csv", metavar="OUT", help="also write the comparison as CSV")
    cp.add_argument("--force", action="store_true",
                    help="compare traces from different machines or corpora; overwrite --csv")
    cp.set_defaults(func=run_compare)


def run_replay(args: argparse.Namespace) -> int:
    from d1bench.runner import replay
    from d1bench.targets import open_target
    from d1bench.trace import check_output_path
    from d1bench.workload import load_workload

    check_output_path(args.trace, force=args.force)  # before anything slow
    workload = load_workload(args.workload)
    if args.reads_only:
        workload = workload.reads_only()
    is_d1 = args.target.startswith(("d1://", "d1-local"))
    if not is_d1 and (args.allow_writes or args.base_url or args.wrangler_config):
        raise UsageError(f"--allow-writes, --base-url and --wrangler-config are for d1 and "
                         f"d1-local targets, not {args.target}")
    if args.target.startswith("d1-local") and (args.base_url or args.wrangler_config):
        raise UsageError("--base-url and --wrangler-config name a remote D1; "
                         "d1-local runs its own on 127.0.0.1")
    options = d1_options(args) if is_d1 else {}
    with open_target(args.target, **options) as target:
        trace = replay(workload, target, rate=args.rate, arrival=args.arrival,
                       concurrency=args.concurrency, duration=args.duration,
                       requests=args.requests, warmup=args.warmup,
                       warmup_requests=args.warmup_requests, seed=args.seed,
                       trace_path=args.trace, progress=not args.no_progress,
                       workers=args.workers, corpus=args.corpus, force=args.force,
                       allow_writes=args.allow_writes or None,
                       estimate=not args.no_estimate, in_place=args.in_place)
    meta = trace.meta
    print(f"{meta['statements']:,} statements in {meta['elapsed_s']:.1f} s, "
          f"{meta['errors']:,} errors; trace written to {trace.path}")
    if meta["interrupted"]:
        print("run interrupted: the trace holds the requests that completed", file=sys.stderr)
        return 130
    return 0


def _write_csv(frame: pd.DataFrame, out: str, force: bool) -> None:
    from d1bench.trace import check_output_path

    path = check_output_path(out, force=force)
    with atomic_path(path, force=force) as tmp:
        frame.to_csv(tmp, index=False)


_SHOWN = {
    "template": "template", "count": "count", "errors": "errors", "rate_per_s": "rate/s",
    "p50_ms": "p50 ms", "p90_ms": "p90 ms", "p99_ms": "p99 ms", "p999_ms": "p99.9 ms",
    "max_ms": "max ms", "mean_ms": "mean ms", "lag_p99_ms": "lag p99",
    "rows_read_per_exec": "read/exec", "rows_written_per_exec": "written/exec",
    "efficiency": "efficiency", "plan_class": "plan", "index_hit_rate": "hit rate",
}


def format_summary(summary: pd.DataFrame) -> str:
    """The summary's main columns as a text table."""
    table = summary[list(_SHOWN)].rename(columns=_SHOWN)
    return table.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:,.3g}"
                           if abs(v) < 100 else f"{v:,.0f}")


def run_analyze(args: argparse.Namespace) -> int:
    from d1bench.analysis import summarize
    from d1bench.trace import load_trace

    trace = load_trace(args.trace)
    if args.csv:
        # Checked before the work, so a refused --csv costs nothing.
        from d1bench.trace import check_output_path

        check_output_path(args.csv, force=args.force)
    summary = summarize(trace, include_warmup=args.include_warmup)
    meta = trace.meta
    sched = meta.get("schedule", {})
    target = meta.get("target", {}).get("target", "?")
    mode = (f"open loop, {sched.get('rate')}/s {sched.get('arrival')}"
            if sched.get("mode") == "open" else f"closed loop, {sched.get('concurrency')} workers")
    runs = f", {len(trace.runs)} runs" if len(trace.runs) > 1 else ""
    print(f"{args.trace}: {meta.get('workload', {}).get('name')} on {target}, {mode}, "
          f"{meta.get('elapsed_s', 0):.1f} s{runs}"
          + (" (INTERRUPTED)" if meta.get("interrupted") else ""))
    print(format_summary(summary))
    if args.csv:
        _write_csv(summary, args.csv, args.force)
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from d1bench.analysis import compare
    from d1bench.trace import load_trace

    a, b = load_trace(args.before), load_trace(args.after)
    table = compare(a, b, alpha=args.alpha, force=args.force)
    shown = table[["template", "p50_before_ms", "p50_after_ms", "ratio", "p99_before_ms",
                   "p99_after_ms", "rows_read_before", "rows_read_after", "p_value", "change"]]
    print(f"A = {args.before}\nB = {args.after}")
    print(shown.rename(columns={
        "p50_before_ms": "p50 A", "p50_after_ms": "p50 B", "p99_before_ms": "p99 A",
        "p99_after_ms": "p99 B", "rows_read_before": "read/exec A",
        "rows_read_after": "read/exec B", "p_value": "p"}).to_string(
        index=False, na_rep="-", float_format=lambda v: f"{v:,.3g}"))
    if args.csv:
        _write_csv(table, args.csv, args.force)
    return 0
