"""``d1bench indexes``: put a database under an index set, or list its indexes."""

from __future__ import annotations

import argparse

from d1bench.cli._args import add_db

__all__ = ["register"]

DESCRIPTION = """\
Manage the secondary indexes of a SQLite database as named sets, so the same
corpus can be replayed under each in turn.

  apply   give the database exactly the indexes of a set: `none` (keys and
          UNIQUE constraints only), `seed` (seed 000's indexes) or a .sql file
          of CREATE/DROP INDEX statements; indexes of other sets are dropped,
          new ones analysed if the database has statistics, then
          PRAGMA optimize runs.  All in one transaction.
  list    the database's indexes: table, columns, partial, origin, size.
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("indexes", help="apply an index set to a database, or list its indexes",
                            description=DESCRIPTION,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="indexes_command", metavar="ACTION", required=True)
    apply = verbs.add_parser("apply", help="give a database exactly the indexes of a set",
                             description="Give the database exactly the secondary indexes of "
                             "SET (none, seed or a .sql file), then run PRAGMA optimize.")
    add_db(apply, "SQLite database to change")
    apply.add_argument("--set", required=True, metavar="SET", dest="index_set",
                       help="none, seed, or the path of a .sql file of CREATE/DROP INDEX statements")
    apply.set_defaults(func=_apply)
    listing = verbs.add_parser("list", help="list a database's indexes",
                               description="List the indexes of a SQLite database: table, "
                               "columns, partial, origin (c: CREATE INDEX, u: UNIQUE, pk: "
                               "PRIMARY KEY) and size in bytes.")
    add_db(listing, "SQLite database to read")
    listing.set_defaults(func=_list)


def _apply(args: argparse.Namespace) -> int:
    from d1bench.indexes import apply_index_set

    changes = apply_index_set(args.db, args.index_set)
    if changes.empty:
        print(f"{args.db}: no index changes for set {args.index_set}")
    for row in changes.itertuples(index=False):
        print(f"{row.action:8s} {row.index} on {row.table}")
    counts = changes["action"].value_counts()
    print(", ".join(f"{counts.get(a, 0)} {a}" for a in ("created", "rebuilt", "dropped", "kept"))
          + "; PRAGMA optimize done")
    return 0


def _list(args: argparse.Namespace) -> int:
    import pandas as pd

    from d1bench.indexes import current_indexes

    frame = current_indexes(args.db)
    for row in frame.itertuples(index=False):
        size = f"{'-':>12}" if row.bytes is None or row.bytes is pd.NA else f"{int(row.bytes):>12,}"
        flags = ",".join(f for f, on in (("unique", row.unique), ("partial", row.partial)) if on)
        print(f"{row.name:40s} {row.table:20s} {size}  {row.origin:2s} "
              f"({', '.join(row.columns)}) {flags}")
    print(f"{len(frame)} index(es)")
    return 0
