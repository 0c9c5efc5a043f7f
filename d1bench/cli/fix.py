"""``d1bench fix``: one plan of indexes, rewrites and summary tables, each checked and measured."""

from __future__ import annotations

import argparse

from d1bench.cli._args import add_db, add_workload

__all__ = ["register", "run_fix"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fix",
        help="a plan beyond indexes: rewrites and summary tables, proven equivalent and measured",
        description="Start from the advisor's indexes, then try every rewrite kind on every "
        "template: keyset pagination for OFFSET, FTS5 MATCH for LIKE '%%x%%', a generated "
        "column with an index for json_extract, a counter table for unfiltered COUNT(*), one "
        "batched query for an N+1 session, AFTER UPDATE OF for triggers that fire on every "
        "update. Each proposal is run on scratch copies of the database (with and without its "
        "DDL) on sampled parameters: the same rows (in order where ORDER BY fixes one), and its "
        "rows read and written, triggers' writes included. The plan is ordered by dollars a "
        "month saved at --rate; proposals that gave other rows are listed as rejected, with "
        "why. --migrations writes the schema parts as wrangler's NNNN_d1bench_fix.sql, and "
        "a backfill of what they build for the rows already stored (the vector buckets) as "
        "NNNN_d1bench_fix.backfill, one statement a line to send one request each. The "
        "database itself is only read.",
    )
    add_db(p, "SQLite corpus to fix")
    add_workload(p)
    p.add_argument("--verify", action="store_true",
                   help="apply every step together on one more copy and check each rewrite again")
    p.add_argument("--migrations", metavar="DIR",
                   help="write the migration into this wrangler migrations folder")
    p.add_argument("--force", action="store_true",
                   help="replace a fix migration that is still the newest in --migrations")
    p.add_argument("--rate", type=float, default=100.0, metavar="RPS",
                   help="units of workload a second the dollars are priced at (default 100)")
    p.add_argument("--samples", type=int, default=5, metavar="N",
                   help="sampled parameter tuples per equivalence check (default 5)")
    p.add_argument("--no-indexes", action="store_true",
                   help="start from the schema as it is, not from the advisor's indexes")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="seed for parameter sampling (default 0)")
    p.set_defaults(func=run_fix)


def run_fix(args: argparse.Namespace) -> int:
    from d1bench.fixer import fix

    plan = fix(args.db, args.workload, verify=args.verify, migrations_dir=args.migrations,
               force=args.force, seed=args.seed, samples=args.samples, rate=args.rate,
               indexes=not args.no_indexes, progress=True)
    s = plan.summary
    print(f"weighted rows read per unit {s['rows_read_none']:,.0f} -> {s['rows_read_after']:,.0f} "
          f"({s['rows_read_cut']:.1%} less); rows written {s['rows_written_none']:,.2f} -> "
          f"{s['rows_written_after']:,.2f}; at {s['rate']:g} units/s "
          f"${s['usd_month_before']:,.2f} -> ${s['usd_month_after']:,.2f} a month")
    for row in plan.steps.itertuples(index=False):
        exact = (f"equivalent on {row.equivalent}/{row.trials} trials" if row.exact
                 else f"APPROXIMATE, recall {row.recall:.2f}")
        print(f"{row.step}. [{row.kind}] {row.target}: ${row.usd_month_saved:,.2f}/month; rows "
              f"read {row.rows_read_before:,.1f} -> {row.rows_read_after:,.1f}, written "
              f"{row.rows_written_before:,.2f} -> {row.rows_written_after:,.2f} per execution; "
              f"{exact}; +{row.bytes / 1e6:,.2f} MB")
        print(f"    {row.note}")
        if row.sql:
            print("    sql: " + row.sql.replace("\n", "\n         "))
    for row in plan.rejected.itertuples(index=False):
        print(f"not proposed [{row.kind}] {row.target}: {row.reason}")
    if s.get("verified") is not None:
        print("all steps together: " + ("every rewrite still equivalent" if s["verified"]
                                        else "SOME REWRITE DIFFERS with every step applied"))
    if plan.migration_path is not None:
        print(f"wrote {plan.migration_path}")
        if plan.backfill_path is not None:
            print(f"wrote {plan.backfill_path}: after the migration, send each of its statements "
                  "as its own request")
    elif not args.migrations:
        print("\n" + plan.migration_sql, end="")
        if plan.backfill_sql:
            count = sum(1 for line in plan.backfill_sql.splitlines()
                        if line.strip() and not line.startswith("--"))
            print(f"\n-- and {count} backfill statement(s) to send one request each after it: "
                  "pass --migrations DIR to write them")
    return 0
