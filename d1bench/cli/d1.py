"""``d1bench d1-local start|status|stop`` and ``d1bench upload``: the local D1 and loading it."""

from __future__ import annotations

import argparse
import json

from d1bench.cli._args import add_db, add_no_progress
from d1bench.dbfile import check_database
from d1bench.errors import UsageError

__all__ = ["register", "run_local", "run_upload"]


def register(sub: argparse._SubParsersAction) -> None:
    local = sub.add_parser(
        "d1-local",
        help="start, inspect or stop a local D1 (Miniflare) on 127.0.0.1",
        description="Run a local D1: Miniflare on 127.0.0.1 behind a Worker that speaks "
        "Cloudflare's D1 REST API, with its database kept as a SQLite file in a persist "
        "directory. `start` leaves it running in the background and records its pid, port "
        "and a token file (mode 0600) in d1-local/ of the state directory (D1BENCH_STATE_DIR, "
        "else ~/.local/state/d1bench); the target spec `d1-local` then "
        "uses it. Needs `make node_modules` once.",
    )
    action = local.add_subparsers(dest="action", metavar="ACTION", required=True)
    start = action.add_parser("start", help="start a local D1 in the background",
                              description="Start a local D1 in the background and print "
                              "where it listens (never its token).")
    start.add_argument("--persist", metavar="DIR",
                       help="database directory (default: d1-local/persist in the state directory)")
    start.add_argument("--port", type=int, metavar="P", help="TCP port (default: a free one)")
    start.add_argument("--database-id", metavar="ID", help="database id of the REST path")
    start.add_argument("--json", action="store_true", help="print the state as JSON")
    status = action.add_parser("status", help="say whether a local D1 runs, and where")
    status.add_argument("--json", action="store_true", help="print the state as JSON")
    action.add_parser("stop", help="stop the local D1 started with `d1-local start`")
    local.set_defaults(func=run_local)

    up = sub.add_parser(
        "upload",
        help="load any SQLite database (schema, rows, FTS5 indexes) into a D1 target",
        description="Copy a SQLite database (a d1bench corpus, an imported dump, your own) "
        "into a D1 database: its tables parents first, the rows in batches within D1's "
        "limits (100 parameters and 100 KB per statement), then its indexes, triggers and "
        "views, and each FTS5 table over external content rebuilt; then compare row counts "
        "table by table. What D1 refuses (other virtual tables, over 100 columns) is named "
        "with its fix before anything is sent. Writes are implied. An interrupted upload "
        "resumes where it stopped when run again. Into a local D1 this command runs itself "
        "(not one `d1-local start` left running), 100,000 rows or more go straight into its "
        "database file while the server is paused, with every CREATE, index and ANALYZE "
        "still run by D1: the same database, minutes instead of tens of minutes at a million "
        "papers.",
    )
    add_db(up, "corpus SQLite file to upload")
    up.add_argument("--target", required=True, metavar="SPEC",
                    help="d1-local, d1-local:PERSIST_DIR, or d1://ACCOUNT_ID/DATABASE")
    up.add_argument("--batch-rows", type=int, metavar="N",
                    help="at most N rows per request (default: by request size)")
    up.add_argument("--no-resume", action="store_true",
                    help="refuse to add to tables that already hold rows")
    how = up.add_mutually_exclusive_group()
    how.add_argument("--offline", action="store_const", const=True, dest="offline",
                     help="write the rows and FTS index straight into the database file of a "
                     "local D1 this command runs, the server paused meanwhile (default: when "
                     "there are 100,000 rows or more); never for remote D1")
    how.add_argument("--statements", action="store_const", const=False, dest="offline",
                     help="send every row as SQL statements, as to remote D1")
    add_no_progress(up)
    up.add_argument("--base-url", metavar="URL",
                    help="d1:// targets: D1 REST API root (default Cloudflare's)")
    up.add_argument("--wrangler-config", metavar="PATH",
                    help="d1:// targets: read the database from this wrangler.toml / .jsonc")
    up.add_argument("--binding", metavar="NAME", help="the d1_databases binding to use")
    up.set_defaults(func=run_upload)


def run_local(args: argparse.Namespace) -> int:
    from d1bench.targets.d1 import detached
    from d1bench.targets.d1.local import LocalD1Error

    if args.action == "start":
        kwargs = {"database_id": args.database_id} if args.database_id else {}
        try:
            state = detached.start_detached(args.persist, port=args.port, **kwargs)
        except LocalD1Error as exc:
            raise UsageError(str(exc)) from None
        if args.json:
            print(json.dumps(state, indent=2))
        else:
            print(f"local D1 running: pid {state['pid']}, {state['base_url']} "
                  f"(ready in {state['ready_seconds']:.2f} s)")
            print(f"  database {state['database_id']} in {state['persist_dir']}")
            print(f"  token in {state['token_file']}; target spec: d1-local")
        return 0
    if args.action == "status":
        status = detached.local_status()
        if args.json:
            print(json.dumps(status, indent=2))
        elif not status["running"]:
            print("local D1: not running")
        else:
            health = "healthy" if status["healthy"] else f"UNHEALTHY ({status['problem']})"
            print(f"local D1: {health}, pid {status['pid']}, {status['base_url']}")
            print(f"  database {status['database_id']}: {status['sqlite_path']}")
        return 0 if status["running"] and status.get("healthy") else 1
    stopped = detached.stop_detached()
    print("local D1 stopped" if stopped else "local D1: not running")
    return 0


def run_upload(args: argparse.Namespace) -> int:
    from d1bench.targets import open_target, target_options
    from d1bench.uploader import UploadError, upload

    check_database(args.db)  # before a local D1 is started for nothing
    # The target's kind says which of these it takes; one given to another kind is refused.
    given = {"base_url": args.base_url, "wrangler_config": args.wrangler_config,
             "binding": args.binding}
    remote = {name: value for name, value in target_options(args.target, given).items() if value}
    try:
        with open_target(args.target, **remote) as target:
            frame = upload(args.db, target, batch_rows=args.batch_rows,
                           progress=not args.no_progress, resume=not args.no_resume,
                           offline=args.offline)
    except UploadError as exc:
        print(exc.frame.to_string())
        raise UsageError(str(exc)) from None
    print(frame.to_string())
    print(f"rows written by {frame.attrs['path']}")
    for name, way in frame.attrs["fts"].items():  # copied from the source, or filled and why
        print(f"FTS index {name}: {way}")
    return 0
