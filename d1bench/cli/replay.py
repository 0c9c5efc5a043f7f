"""``d1bench replay``: record a run (``analyze`` and ``compare`` read it: cli/analyze.py)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from d1bench.cli._args import add_no_progress, add_trace, add_workload
from d1bench.cli.worker import add_worker_arguments, worker_target_options
from d1bench.targets.d1.config import D1_OPTION_DEFAULTS, add_d1_arguments, d1_options

__all__ = ["number_type", "register", "run_replay"]


def number_type(kind: type) -> Any:
    """An argparse ``type`` that names the bad value in one line."""
    def parse(text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            word = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {word}") from None
    return parse


def _cap(text: str) -> tuple[str, int]:
    name, sep, count = text.partition("=")
    if not sep or not name or not count.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not TEMPLATE=N (N a whole number)")
    return name, int(count)


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
                    help="sqlite:PATH, d1-local, d1://ACCOUNT_ID/DATABASE or d1-worker:https://HOST")
    add_workload(rp, default="medical")
    add_trace(rp, "Parquet trace to write", required=True)
    rp.add_argument("--reads-only", action="store_true",
                    help="leave out the workload's write templates (and sessions that write)")
    mode = rp.add_mutually_exclusive_group()
    mode.add_argument("--rate", type=number_type(float), metavar="R",
                      help="open loop: units per second (default 100)")
    mode.add_argument("--concurrency", type=number_type(int), metavar="N",
                      help="closed loop: N workers back to back")
    rp.add_argument("--arrival", choices=("poisson", "fixed"), default="poisson",
                    help="open loop: exponential gaps (default) or a fixed interval")
    rp.add_argument("--workers", type=number_type(int), metavar="N",
                    help="open loop: worker threads, or requests in flight over HTTP "
                    "(default 8 / 32)")
    rp.add_argument("--duration", type=number_type(float), metavar="S",
                    help="seconds to run after warm-up (default 10 unless --requests)")
    rp.add_argument("--requests", type=number_type(int), metavar="N",
                    help="units to run after warm-up (a session counts once)")
    warm = rp.add_mutually_exclusive_group()
    warm.add_argument("--warmup", type=number_type(float), default=0.0, metavar="S",
                      help="seconds at the start recorded as warm-up and left out of summaries")
    warm.add_argument("--warmup-requests", type=number_type(int), default=0, metavar="N",
                      help="or: the first N units are warm-up (on top of --requests)")
    rp.add_argument("--min-executions", type=number_type(int), metavar="N",
                    help="open loop: after the mix, top up every query template that ran fewer "
                    "than N times with targeted units, sent back to back by one worker once "
                    "the mix is sent (p50 needs 10, p95 100, p99 500: five runs beyond the "
                    "percentile)")
    rp.add_argument("--topup-cap", type=_cap, action="append", default=[],
                    metavar="TEMPLATE=N", help="at most N executions of TEMPLATE from the top-up "
                    "(a template taking seconds a run); repeatable")
    rp.add_argument("--seed", type=number_type(int), default=0, metavar="N",
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
    add_no_progress(rp)
    add_d1_arguments(rp)
    add_worker_arguments(rp)
    rp.set_defaults(func=run_replay)


def run_replay(args: argparse.Namespace) -> int:
    from d1bench.runner import replay
    from d1bench.targets import open_target, target_options
    from d1bench.trace import check_output_path
    from d1bench.workload import load_workload

    check_output_path(args.trace, force=args.force)  # before anything slow
    workload = load_workload(args.workload)
    if args.reads_only:
        workload = workload.reads_only()
    # The target's kind says which options it takes; any other given is refused by name.
    options = {**target_options(args.target, d1_options(args), D1_OPTION_DEFAULTS),
               **worker_target_options(args)}
    with open_target(args.target, **options) as target:
        trace = replay(workload, target, rate=args.rate, arrival=args.arrival,
                       concurrency=args.concurrency, duration=args.duration,
                       requests=args.requests, warmup=args.warmup,
                       warmup_requests=args.warmup_requests, seed=args.seed,
                       trace_path=args.trace, progress=not args.no_progress,
                       workers=args.workers, corpus=args.corpus, force=args.force,
                       allow_writes=args.allow_writes or None,
                       estimate=not args.no_estimate, in_place=args.in_place,
                       min_executions=args.min_executions,
                       topup_caps=dict(args.topup_cap) or None)
    meta = trace.meta
    print(f"{meta['statements']:,} statements in {meta['elapsed_s']:.1f} s, "
          f"{meta['errors']:,} errors; trace written to {trace.path}")
    added = meta["schedule"].get("topup")
    if added:
        print(f"topped up to {args.min_executions} executions: "
              + ", ".join(f"{name} +{n}" for name, n in added.items()))
    if meta["interrupted"]:
        print("run interrupted: the trace holds the requests that completed", file=sys.stderr)
        return 130
    return 0
