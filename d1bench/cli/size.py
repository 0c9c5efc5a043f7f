"""``d1bench size``: a database's bytes per table and index, against D1's limits."""

from __future__ import annotations

import argparse

from d1bench.cli._args import add_db

__all__ = ["register"]

DESCRIPTION = """\
Show how much of D1's database limit (10 GB on the paid plan, 500 MB on the
free plan) a SQLite database uses: the bytes of each table, index and
full-text index (SQLite's dbstat), and, for each --set, what that index set
would add.  Sets are estimated by building each index on a sample of its
table in memory; the database is only read.
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("size", help="bytes per table and index, against D1's limits",
                            description=DESCRIPTION,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_db(parser, "SQLite database to read")
    parser.add_argument("--set", action="append", default=[], metavar="SET", dest="index_sets",
                        help="an index set to size (none, seed or a .sql file); repeatable")
    parser.add_argument("--top", type=int, default=20, metavar="N",
                        help="list the N largest objects (default 20; 0 for all)")
    parser.add_argument("--sample-rows", type=int, default=None, metavar="N",
                        help="rows per table an index set's indexes are built on (default 20,000)")
    parser.set_defaults(func=run)


def _bytes(n: float) -> str:
    return f"{n / 1e9:,.2f} GB" if n >= 1e9 else f"{n / 1e6:,.1f} MB"


def run(args: argparse.Namespace) -> int:
    from d1bench.size import SAMPLE_ROWS, size_report

    report = size_report(args.db, args.index_sets, sample_rows=args.sample_rows or SAMPLE_ROWS)
    objects = report.objects if args.top <= 0 else report.objects.head(args.top)
    print(f"{'object':40s} {'kind':8s} {'table':24s} {'bytes':>14s} {'share':>7s}")
    for row in objects.itertuples(index=False):
        print(f"{row.name:40s} {row.kind:8s} {row.table:24s} {row.bytes:>14,} {row.share:>7.1%}")
    if len(objects) < len(report.objects):
        print(f"... and {len(report.objects) - len(objects)} smaller")
    for row in report.fit.itertuples(index=False):
        verdict = "fits" if row.fits else "DOES NOT FIT"
        print(f"{report.path}: {_bytes(report.total_bytes)}, {row.share:.1%} of D1's {row.plan} "
              f"plan limit ({_bytes(row.limit_bytes)}): {verdict}")
    for row in report.sets.itertuples(index=False):
        print(f"index set {row.set}: {row.indexes} index(es), +{_bytes(row.added_bytes)} new, "
              f"-{_bytes(row.dropped_bytes)} dropped; database {_bytes(row.total_bytes)} "
              f"({row.paid_share:.1%} of paid, {row.free_share:.1%} of free)")
    return 0
