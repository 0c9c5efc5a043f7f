"""``d1bench migrate``: PostgreSQL or MySQL into SQLite or D1, validated before it is swapped in."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from d1bench._atomic import write_atomic
from d1bench.cli._args import add_no_progress

__all__ = ["register", "run_migrate"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "migrate",
        help="move a PostgreSQL or MySQL database to SQLite or D1, and prove the copy",
        description="Read the source's catalog, convert its schema (sqlglot plus explicit "
        "type rules) and print every decision; then copy the rows in foreign-key order "
        "through a server-side cursor, in batches within D1's limits, into a database built "
        "aside; validate (row counts, checksums, sampled rows, foreign-key orphans, check "
        "queries); and only then put it in the target's place. A failed validation leaves "
        "the target as it was; an interrupted run resumes when run again. The password may "
        "be in the URL or in PGPASSWORD / MYSQL_PWD; it is never printed.",
    )
    p.add_argument("--from", dest="source", required=True, metavar="URL",
                   help="postgresql://USER@HOST:PORT/DB or mysql://USER@HOST:PORT/DB")
    p.add_argument("--to", required=True, metavar="TARGET",
                   help="sqlite:PATH, d1-local, or d1://ACCOUNT/DB (a fresh database)")
    p.add_argument("--tables", metavar="T1,T2", help="only these tables (default: all)")
    p.add_argument("--map", action="append", default=[], metavar="OLD=NEW",
                   help="rename a table (users=people) or column (papers.authors=authors_json)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the conversion report and the DDL, write nothing")
    p.add_argument("--batch-rows", type=int, metavar="N",
                   help="rows per write (default 5,000 for SQLite; D1: as its limits allow)")
    p.add_argument("--check-query", action="append", default=[], metavar="SQL",
                   help="a source query to run on both sides and compare (repeatable)")
    p.add_argument("--check-file", metavar="PATH",
                   help="a .sql file of the source's queries (its own dialect, one per "
                        "statement) to run on both sides and compare")
    p.add_argument("--no-validate", action="store_true", help="skip the validation")
    p.add_argument("--force", action="store_true",
                   help="replace an existing SQLite target (after validation passes)")
    p.add_argument("--report", metavar="PATH",
                   help="also write the conversion report and validation as Markdown")
    add_no_progress(p)
    p.set_defaults(func=run_migrate)


def run_migrate(args: argparse.Namespace) -> int:
    from d1bench.migrator import ValidationFailed, migrate

    tables = [t.strip() for t in args.tables.split(",") if t.strip()] if args.tables else None
    try:
        result = migrate(args.source, args.to, tables=tables, maps=args.map,
                         dry_run=args.dry_run, batch_rows=args.batch_rows,
                         validate=not args.no_validate, queries=args.check_query,
                         query_file=args.check_file,
                         force=args.force, progress=not args.no_progress)
        failed = None
    except ValidationFailed as exc:
        result, failed = exc.migration, exc
    print("# Conversion report\n")
    print(result.conversion.text())
    for problem in result.conversion.problems:
        print(f"needs attention: {problem}")
    if result.dry_run:
        print("\n# DDL\n")
        print(result.conversion.ddl)
        print("dry run: nothing was written")
        return 0
    print("\n# Copy\n")
    print(result.copies.to_string(index=False))
    if not result.checks.empty:
        print("\n# Validation\n")
        print(result.checks.to_string(index=False))
    if args.report:
        from d1bench.migrator.convert import frame_markdown

        text = ("# Conversion report\n\n" + result.conversion.markdown() + "\n# Copy\n\n"
                + frame_markdown(result.copies) + "\n# Validation\n\n"
                + frame_markdown(result.checks))
        write_atomic(Path(args.report), text, force=args.force)
    if failed is not None:
        print(f"d1bench migrate: {failed}", file=sys.stderr)
        return 1
    print(f"\nmigrated into {args.to}: {int(result.copies['rows'].sum()):,} rows, validated")
    return 0
