"""``d1bench analyze`` and ``compare``: read a trace, hold it to thresholds, diff two traces.

Both can gate a CI run: ``analyze --threshold`` exits 1 when a threshold is
crossed, ``compare --fail-on`` when a template regressed significantly.
"""

from __future__ import annotations

import argparse

from d1bench.cli._format import number, table, usd, write_csv
from d1bench.cli.replay import number_type

__all__ = ["register", "run_analyze", "run_compare"]

THRESHOLD_HELP = """\
thresholds:
  [TEMPLATE:]METRIC OP VALUE, e.g. 'p99<200ms', 'search_papers:p95<60ms',
  'error_rate<0.05' (or 5%), 'rows_read_per_exec<10000', 'dollars_per_month<50'.
  TEMPLATE is a template's name or * (each template); without it the whole trace.
  METRIC: p50 p90 p95 p99 p99.9 mean max min (ms or s), error_rate, drop_rate,
  retry_rate, scan_rate (fractions or %), rows_read_per_exec,
  rows_written_per_exec, dollars_per_month, rate.  OP: < <= > >= (what must hold).
  --seed-alerts adds seed 000's: *:p99<60ms error_rate<0.05 scan_rate<0.3
  retry_rate<0.1.  Exit status: 0 all held, 1 any crossed, 2 a malformed
  threshold or bad input.
"""


def register(sub: argparse._SubParsersAction) -> None:
    an = sub.add_parser(
        "analyze",
        help="print a trace's summary and check it against thresholds (exit 1 if crossed)",
        description="Summarise a trace per query template and overall: count, errors, drops "
        "(units never sent because the schedule had passed) and retries apart; attempts and "
        "retry rate; achieved rate; p50/p90/p95/p99/p99.9/max/mean of response time; rows "
        "read and written per execution; plan class, scan rate; and D1's bill in dollars a "
        "month at the achieved rate (or --at-rate). Warm-up is left out. With --threshold "
        "or --seed-alerts, a table of what crossed and by how much.",
        epilog=THRESHOLD_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    an.add_argument("trace", metavar="TRACE", help="a trace written by `d1bench replay`")
    an.add_argument("--threshold", action="append", default=[], metavar="EXPR",
                    help="a condition the trace must meet (repeatable; grammar below)")
    an.add_argument("--seed-alerts", action="store_true",
                    help="also check seed 000's alerts (slow queries over 60 ms, errors, "
                    "scans, retries)")
    an.add_argument("--slow-ms", type=number_type(float), metavar="MS",
                    help="the slow-query limit --seed-alerts uses (default 60)")
    an.add_argument("--at-rate", type=number_type(float), metavar="R",
                    help="price the bill at R units a second (default: the achieved rate)")
    an.add_argument("--csv", metavar="OUT", help="also write every summary column as CSV")
    an.add_argument("--include-warmup", action="store_true", help="count warm-up requests too")
    an.add_argument("--force", action="store_true", help="overwrite an existing --csv file")
    an.set_defaults(func=run_analyze)

    cp = sub.add_parser(
        "compare",
        help="say which templates got faster, slower or read more rows between two traces",
        description="Compare trace A (before) with trace B (after), per template: p50, p99 and "
        "mean response time and their ratio, rows read and written per execution, D1's "
        "monthly bill at each trace's rate, and whether a change is statistically "
        "significant (two-sided Mann-Whitney U test). With --fail-on, exit 1 when a "
        "template got significantly slower (slower), read more rows (more-rows) or wrote "
        "more (more-writes). Refuses traces taken on different machines or corpora unless "
        "--force.",
    )
    cp.add_argument("before", metavar="A", help="the trace before the change")
    cp.add_argument("after", metavar="B", help="the trace after the change")
    cp.add_argument("--alpha", type=number_type(float), default=0.05,
                    help="significance level (default 0.05)")
    cp.add_argument("--fail-on", metavar="WHAT", default="",
                    help="comma-separated: slower, more-rows, more-writes; exit 1 on any")
    cp.add_argument("--csv", metavar="OUT", help="also write the comparison as CSV")
    cp.add_argument("--force", action="store_true",
                    help="compare traces from different machines or corpora; overwrite --csv")
    cp.set_defaults(func=run_compare)


_SHOWN = {
    "template": "template", "count": "count", "errors": "errors", "dropped": "dropped",
    "attempts": "attempts", "retry_rate": "retry rate", "rate_per_s": "rate/s",
    "p50_ms": "p50 ms", "p95_ms": "p95 ms", "p99_ms": "p99 ms", "p999_ms": "p99.9 ms",
    "max_ms": "max ms", "mean_ms": "mean ms", "lag_p99_ms": "lag p99",
    "rows_read_per_exec": "read/exec", "rows_written_per_exec": "written/exec",
    "plan_class": "plan", "scan_rate": "scan rate", "usd_per_month": "$/month",
}


def run_analyze(args: argparse.Namespace) -> int:
    from d1bench.analysis import summarize
    from d1bench.thresholds import check_thresholds, parse_threshold, seed_alerts
    from d1bench.trace import check_output_path, load_trace

    # Malformed thresholds and a refused --csv are found before any work.
    thresholds = [parse_threshold(t) for t in args.threshold]
    if args.seed_alerts:
        thresholds += seed_alerts() if args.slow_ms is None else seed_alerts(args.slow_ms)
    if args.csv:
        check_output_path(args.csv, force=args.force)
    trace = load_trace(args.trace)
    summary = summarize(trace, include_warmup=args.include_warmup, at_rate=args.at_rate)
    checked = check_thresholds(summary, thresholds)  # a misspelt template: exit 2, early
    meta = trace.meta
    sched = meta.get("schedule", {})
    target = meta.get("target", {}).get("target", "?")
    mode = (f"open loop, {sched.get('rate')}/s {sched.get('arrival')}"
            if sched.get("mode") == "open" else f"closed loop, {sched.get('concurrency')} workers")
    runs = f", {len(trace.runs)} runs" if len(trace.runs) > 1 else ""
    print(f"{args.trace}: {meta.get('workload', {}).get('name')} on {target}, {mode}, "
          f"{meta.get('elapsed_s', 0):.1f} s{runs}"
          + (" (INTERRUPTED)" if meta.get("interrupted") else ""))
    print(table(summary, _SHOWN, dollars=("usd_per_month",)))
    rate = (f"{args.at_rate:g} units/s" if args.at_rate is not None
            else f"the achieved {summary.attrs['units_per_s']:,.1f} units/s")
    total = summary.loc[summary["template"] == "ALL", "usd_per_month"]
    print(f"D1 bill (paid plan, allowances deducted) at {rate}: "
          f"{usd(total.iloc[0] if len(total) else float('nan'))} a month")
    if args.csv:
        write_csv(summary, args.csv, args.force)
    if not len(checked):
        return 0
    crossed = checked[checked["crossed"]]
    print(f"\nthresholds: {len(checked) - len(crossed)} held, {len(crossed)} crossed")
    shown = checked.assign(result=checked["crossed"].map({True: "CROSSED", False: "ok"}))
    print(table(shown, {"result": "", "threshold": "threshold", "template": "template",
                        "value": "value", "limit": "limit", "by": "by", "note": "note"}))
    return 1 if len(crossed) else 0


def run_compare(args: argparse.Namespace) -> int:
    from d1bench.analysis import compare, parse_fail_on, regressions
    from d1bench.trace import check_output_path, load_trace

    fail_on = parse_fail_on(args.fail_on)
    if args.csv:
        check_output_path(args.csv, force=args.force)
    a, b = load_trace(args.before), load_trace(args.after)
    frame = compare(a, b, alpha=args.alpha, force=args.force)
    print(f"A = {args.before}\nB = {args.after}")
    print(table(frame, {
        "template": "template", "p50_before_ms": "p50 A", "p50_after_ms": "p50 B",
        "ratio": "ratio", "p99_before_ms": "p99 A", "p99_after_ms": "p99 B",
        "rows_read_before": "read/exec A", "rows_read_after": "read/exec B",
        "rows_written_before": "written/exec A", "rows_written_after": "written/exec B",
        "usd_per_month_before": "$/month A", "usd_per_month_after": "$/month B",
        "p_value": "p", "change": "change"},
        dollars=("usd_per_month_before", "usd_per_month_after")))
    if args.csv:
        write_csv(frame, args.csv, args.force)
    if not fail_on:
        return 0
    found = regressions(frame, fail_on)
    if found.empty:
        print(f"no regression ({', '.join(fail_on)})")
        return 0
    for row in found.itertuples(index=False):
        if row.regression == "slower":
            what = (f"p50 {number(row.p50_before_ms)} -> {number(row.p50_after_ms)} ms, "
                    f"p = {number(row.p_value)}")
        else:
            kind = "read" if row.regression == "more-rows" else "written"
            what = (f"rows {kind} per execution {number(getattr(row, f'rows_{kind}_before'))}"
                    f" -> {number(getattr(row, f'rows_{kind}_after'))}")
        print(f"REGRESSION {row.regression}: {row.template}: {what}")
    return 1
