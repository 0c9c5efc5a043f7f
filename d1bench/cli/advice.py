"""``d1bench lint`` and ``d1bench advise``: anti-patterns, and indexes proven by a second replay."""

from __future__ import annotations

import argparse
from typing import Any

from d1bench.cli._args import add_db, add_no_progress, add_trace, add_workload
from d1bench.cli._format import usd

__all__ = ["register", "run_advise", "run_lint"]


def _size(text: str) -> float:
    """Bytes from ``5000000``, ``500k``, ``20MB``, ``1.5GiB`` (k/M/G are powers of 1000).

    >>> _size("20MB"), _size("1KiB"), _size("1500")
    (20000000.0, 1024.0, 1500.0)
    """
    import re

    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmMgG]?)(i?)[bB]?\s*", text)
    if m is None:
        raise argparse.ArgumentTypeError(f"not a size in bytes: {text!r} (e.g. 5000000, 500k, 20MB)")
    base = 1024 if m.group(3) else 1000
    power = {"": 0, "k": 1, "m": 2, "g": 3}[m.group(2).lower()]
    return float(m.group(1)) * base**power


def register(sub: argparse._SubParsersAction) -> None:
    lint = sub.add_parser(
        "lint",
        help="find anti-patterns in a workload's SQL, with evidence and fixes",
        description="Read every template with sqlglot and its plan on the database, and report "
        "what makes D1 read (and bill) too many rows: N+1 sessions, LIKE with a leading "
        "wildcard, functions over columns, LIKE over JSON text, SELECT *, OFFSET pagination, "
        "OR across columns, COUNT(*) over large tables, correlated subqueries, ORDER BY ... "
        "LIMIT that sorts a whole table, foreign keys without an index, and brute-force vector "
        "search over JSON. Each finding gives the evidence (plan, rows read per execution, "
        "measured from --trace or estimated) and the fix, in words and SQL. The database is "
        "opened read-only.",
    )
    add_db(lint, "SQLite corpus the workload runs on")
    add_workload(lint)
    add_trace(lint, "trace of the workload: measured rows read")
    lint.add_argument("--severity", choices=("low", "medium", "high"), default="low",
                      help="show findings of at least this severity (default low: all)")
    lint.set_defaults(func=run_lint)

    advise = sub.add_parser(
        "advise",
        help="advise indexes for a whole workload, in D1's rows read and written",
        description="Propose the indexes (and drops) that cut the workload's D1 bill: rows read "
        "plus rows written times --write-weight, each template weighted by its frequency "
        "(from --trace if given). Candidates are costed what-if on an empty copy carrying the "
        "corpus's statistics and chosen greedily (Extend) under --budget. Every template that "
        "gets nothing says why. --migrations writes wrangler's NNNN_d1bench_indexes.sql; "
        "--verify builds the set on a copy of the corpus and replays the workload before and "
        "after, reporting measured rows read and latency per template. The database itself "
        "is only read.",
    )
    add_db(advise, "SQLite corpus to advise on")
    add_workload(advise)
    add_trace(advise, "trace of the workload: template frequencies")
    advise.add_argument("--budget", type=_size, metavar="BYTES",
                        help="most bytes the new indexes may take (e.g. 20MB; default no limit)")
    advise.add_argument("--write-weight", type=float, default=1000.0, metavar="X",
                        help="a row written costs X rows read (D1's prices: 1000)")
    advise.add_argument("--verify", action="store_true",
                        help="build the set on a copy and replay before and after")
    advise.add_argument("--check-on-d1", action="store_true",
                        help="also run every value the predictions averaged over on a local D1 "
                             "(Miniflare) holding the advised set, and show each template's "
                             "predicted rows read beside D1's own count and the SQLite "
                             "target's estimate of it")
    advise.add_argument("--requests", type=int, default=300, metavar="N",
                        help="units of the whole workload --verify replays first (default 300)")
    advise.add_argument("--max-requests", type=int, default=None, metavar="N",
                        help="most units --verify replays on each copy while it makes every "
                        "template's mean rows read known within 5%% (default 2000, or --requests "
                        "if more)")
    advise.add_argument("--max-seconds", type=float, default=None, metavar="S",
                        help="after its first round, --verify replays no longer than S seconds, "
                        "the cheapest templates first (a million papers without indexes take "
                        "seconds a unit; default: no limit but --max-requests)")
    advise.add_argument("--min-effect", type=float, default=None, metavar="F",
                        help="--verify calls a template slower only when its median response "
                        "time grew by more than this fraction, significantly (default 0.25)")
    advise.add_argument("--migrations", metavar="DIR",
                        help="write the migration into this wrangler migrations folder")
    advise.add_argument("--force", action="store_true",
                        help="replace a d1bench migration that is still the newest in --migrations")
    advise.add_argument("--seed", type=int, default=0, metavar="S",
                        help="seed for parameters, sampling and replays (default 0)")
    advise.add_argument("--at-rate", type=float, metavar="R",
                        help="price D1's bill at R units of workload a second "
                        "(default: the --trace's rate, else 100)")
    add_no_progress(advise)
    advise.set_defaults(func=run_advise)


def _rate(args: argparse.Namespace) -> float:
    """Units a second to price the bill at: --at-rate, the trace's achieved rate, or replay's default."""
    from d1bench.errors import UsageError
    from d1bench.runner.run import DEFAULT_RATE

    if args.at_rate is not None:
        if not args.at_rate > 0:
            raise UsageError(f"--at-rate {args.at_rate:g}: must be a positive number of units a second")
        return float(args.at_rate)
    if args.trace:
        from d1bench.analysis import summarize
        from d1bench.trace import load_trace

        achieved = summarize(load_trace(args.trace)).attrs.get("units_per_s")
        if achieved and achieved > 0:
            return float(achieved)
    return DEFAULT_RATE


def _bill(read_per_unit: float, written_per_unit: float, rate: float) -> float:
    from d1bench.cost import monthly_cost

    return float(monthly_cost(read_per_unit, written_per_unit, rate).loc["total", "cost_usd"])


def run_lint(args: argparse.Namespace) -> int:
    from d1bench.linter import lint

    frame = lint(args.workload, args.db, trace=args.trace)
    keep = {"low": ("low", "medium", "high"), "medium": ("medium", "high"), "high": ("high",)}
    frame = frame[frame["severity"].isin(keep[args.severity])]
    if frame.empty:
        print("no findings")
        return 0
    for row in frame.itertuples(index=False):
        print(f"[{row.severity}] {row.template}: {row.rule}")
        print(f"    evidence: {row.evidence}")
        print(f"    fix: {row.fix}")
        if row.fix_sql:
            print(f"    sql: {row.fix_sql}")
    counts = frame["severity"].value_counts()
    print(", ".join(f"{counts.get(s, 0)} {s}" for s in ("high", "medium", "low")))
    return 0


def _check_on_d1(args: argparse.Namespace, advice: Any) -> None:
    """Predicted rows read against local D1's own count, with the SQLite estimate beside."""
    from d1bench.advisor.verify import FIDELITY_TOLERANCE, fidelity

    f = fidelity(args.db, args.workload, advice, on="local-d1")
    print("checked on local D1 (each template run on the values its prediction averaged over; "
          "rows read per execution: predicted / D1's count / SQLite's estimate):")
    for row in f.itertuples(index=False):
        flag = "" if row.within else f"  OFF by {row.error:+.0%}"
        print(f"  {row.template}: {row.rows_read_predicted:,.1f} / {row.rows_read_measured:,.1f} / "
              f"{row.rows_read_sqlite_estimate:,.1f}{flag}")
    failed = f.attrs["d1_failed_values"]
    if failed:
        print("  values local D1 refused (left out of the means above): " + ", ".join(
            f"{name} {count}" for name, count in sorted(failed.items())))
    if not len(f):
        print("no template could be checked on local D1")
        return
    print(f"predicted within {FIDELITY_TOLERANCE:.0%} of D1's count for {f.attrs['fidelity']:.0%} "
          f"of templates; SQLite's estimate within {FIDELITY_TOLERANCE:.0%} of it for "
          f"{f.attrs['estimate_within']:.0%}")


def run_advise(args: argparse.Namespace) -> int:
    from d1bench.advisor import advise
    from d1bench.advisor.sequential import STOPPED

    rate = _rate(args)  # a bad --at-rate or --trace fails before the work
    advice = advise(args.db, args.workload, trace=args.trace, budget_bytes=args.budget,
                    write_weight=args.write_weight, verify=args.verify,
                    migrations_dir=args.migrations, force=args.force, seed=args.seed,
                    verify_requests=args.requests, verify_max_requests=args.max_requests,
                    verify_max_seconds=args.max_seconds,
                    min_effect=args.min_effect, progress=not args.no_progress)
    s = advice.summary
    print(f"{len(advice.indexes)} index(es) to create, {len(advice.drops)} to drop; predicted "
          f"weighted rows read per unit {s['rows_read_before']:,.0f} -> {s['rows_read_after']:,.0f}, "
          f"rows written {s['rows_written_before']:,.2f} -> {s['rows_written_after']:,.2f}")
    before, after = (_bill(s[f"rows_read_{w}"], s[f"rows_written_{w}"], rate)
                     for w in ("before", "after"))
    print(f"D1 bill at {rate:,.4g} units/s (paid plan): {usd(before)} -> {usd(after)} a month")
    for row in advice.indexes.itertuples(index=False):
        print(f"  + {row.sql}\n      {row.reason}; ~{row.bytes / 1e6:,.2f} MB")
    for row in advice.drops.itertuples(index=False):
        print(f"  - {row.sql}\n      {row.reason}")
    print("templates:")
    for row in advice.templates.itertuples(index=False):
        what = ", ".join(row.indexes) if row.indexes else row.reason
        print(f"  {row.template}: {row.rows_read_before:,.0f} -> {row.rows_read_after:,.0f} rows "
              f"read per execution; {what}")
    left = advice.remaining()
    left = left[left["share"] >= 0.005].head(5)
    if len(left):
        print("rows read left after the advice: " + ", ".join(
            f"{row.template} {row.share:.0%}" for row in left.itertuples()))
    if advice.verification is not None:
        v = advice.verification
        print(f"verified by replay (measured; {v.attrs['requests_replayed']:,} units on each copy "
              f"in {v.attrs['rounds']} round(s), until each mean rows read was known within "
              f"{v.attrs['target_rse']:.0%} or the cap; {STOPPED.get(v.attrs['stopped'], '')}):")
        if v.attrs["unmeasured"]:
            print(f"  not run on both copies (missing from the totals): "
                  f"{', '.join(v.attrs['unmeasured'])}")
        for row in v.itertuples(index=False):
            flag = f"  WORSE: {row.why}" if row.worse else ""
            print(f"  {row.template} ({row.executions_after:,} runs): rows read "
                  f"{row.rows_read_before:,.1f} -> {row.rows_read_after:,.1f} "
                  f"(predicted {row.rows_read_predicted:,.1f}, measured "
                  f"{row.rows_read_same_values:,.1f} on the same values), rows written "
                  f"{row.rows_written_before:,.2f} -> {row.rows_written_after:,.2f}, p50 ms "
                  f"{row.p50_before_ms:.3f} -> {row.p50_after_ms:.3f} ({row.latency_change}){flag}")
        print(f"predicted rows read within 15% of measured (same values) for "
              f"{v.attrs['fidelity']:.0%} of templates")
    if args.check_on_d1:
        _check_on_d1(args, advice)
    if advice.migration_path is not None:
        print(f"wrote {advice.migration_path}")
    elif not args.migrations:
        print("\n" + advice.migration_sql, end="")
    return 0
