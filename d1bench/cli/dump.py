"""``d1bench import`` and ``d1bench export``: SQL dumps in and out of D1."""

from __future__ import annotations

import argparse

__all__ = ["register", "run_export", "run_import"]

IMPORT_DESCRIPTION = """\
Load a SQL dump into a new SQLite database: a `wrangler d1 export` dump (or
`d1bench export`), or `sqlite3 .dump` output.  Rows are read in bulk in one
transaction; the file is written under a temporary name and renamed when every
statement succeeded, so a failing dump leaves nothing.  A statement that fails
is named by its line in the dump.  FTS5 tables over external content are
rebuilt after their content is loaded.  Any verb's --db then takes the result.
"""

EXPORT_DESCRIPTION = """\
Download a D1 database's SQL dump through Cloudflare's REST export endpoint
(start the export, poll until it is ready, download the signed URL), in the
format `wrangler d1 export` writes.  The token comes from CLOUDFLARE_API_TOKEN
and is sent only to the API, never to the download URL, and never printed.
`--target d1-local` exports the local D1 the same way, with Miniflare's copy of
D1's dump code.  Note that D1 cannot export a database holding a virtual table
(FTS5).
"""


def register(sub: argparse._SubParsersAction) -> None:
    imp = sub.add_parser("import", help="load a D1 export / sqlite3 .dump into a SQLite file",
                         description=IMPORT_DESCRIPTION,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    imp.add_argument("dump", metavar="DUMP.sql", help="the SQL dump to read")
    imp.add_argument("--out", required=True, metavar="PATH", help="SQLite file to write")
    imp.add_argument("--force", action="store_true", help="replace PATH if it exists")
    imp.add_argument("--quiet", action="store_true", help="no progress bar")
    imp.set_defaults(func=run_import)

    exp = sub.add_parser("export", help="download a D1 database's SQL dump (REST export)",
                         description=EXPORT_DESCRIPTION,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    exp.add_argument("--target", required=True, metavar="SPEC",
                     help="d1://ACCOUNT_ID/DATABASE_ID, d1://DATABASE_NAME, or d1-local[:DIR]")
    exp.add_argument("--out", required=True, metavar="PATH", help="dump file to write")
    exp.add_argument("--force", action="store_true", help="replace PATH if it exists")
    exp.add_argument("--no-data", action="store_true", help="the schema only")
    exp.add_argument("--no-schema", action="store_true", help="the rows only")
    exp.add_argument("--table", action="append", default=[], metavar="NAME",
                     help="export only this table (repeatable)")
    exp.add_argument("--base-url", metavar="URL", help="D1 REST API root (default Cloudflare's)")
    exp.add_argument("--wrangler-config", metavar="PATH",
                     help="read the database from this wrangler.toml / wrangler.jsonc")
    exp.add_argument("--binding", metavar="NAME", help="the d1_databases binding to use")
    exp.add_argument("--quiet", action="store_true", help="no progress messages")
    exp.set_defaults(func=run_export)


def run_import(args: argparse.Namespace) -> int:
    from d1bench.dump import import_dump

    info = import_dump(args.dump, args.out, force=args.force, progress=not args.quiet)
    print(f"wrote {info.path}: {info.rows:,} rows from {info.statements:,} statements "
          f"in {info.seconds:.1f} s")
    width = max((len(t) for t in info.row_counts), default=0)
    for table, n in info.row_counts.items():
        print(f"  {table:<{width}}  {n:>12,}")
    if info.rebuilt:
        print(f"  rebuilt FTS5 index(es): {', '.join(info.rebuilt)}")
    if info.foreign_key_violations:
        print(f"  warning: {info.foreign_key_violations:,} row(s) break a foreign key "
              "(PRAGMA foreign_key_check); D1 enforces foreign keys and would refuse them")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from d1bench.dump import export_dump

    options = {k: v for k, v in (("base_url", args.base_url),
                                 ("wrangler_config", args.wrangler_config),
                                 ("binding", args.binding)) if v}
    info = export_dump(args.target, args.out, force=args.force, no_data=args.no_data,
                       no_schema=args.no_schema, tables=tuple(args.table),
                       progress=not args.quiet, **options)
    print(f"wrote {info.path} ({info.bytes:,} bytes) after {info.polls} export call(s) "
          f"in {info.seconds:.1f} s")
    return 0
