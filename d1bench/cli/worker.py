"""``d1bench worker init|deploy``, and the bench Worker's replay options (``--session``, ``--cache``)."""

from __future__ import annotations

import argparse
from typing import Any

from d1bench.errors import UsageError
from d1bench.targets.d1.worker_options import SESSION_MODES, WorkerOptions

__all__ = ["add_worker_arguments", "register", "run_worker", "worker_target_options"]


def _add_cache_arguments(parser: Any) -> None:
    parser.add_argument("--cache", metavar="SPEC", default=None,
                        help="the Worker's cache: off, memory:TTL[,SIZE] (a Map per isolate, "
                             "SIZE entries, default 10000) or kv:TTL (Workers KV); TTL in seconds")
    parser.add_argument("--cache-invalidate", action="store_true",
                        help="a write empties the cache (default: entries live out their TTL)")
    parser.add_argument("--cache-check", action="store_true",
                        help="also run every cache hit against the database to count stale "
                             "answers exactly (one extra read per hit: measure latency without)")


def register(sub: argparse._SubParsersAction) -> None:
    worker = sub.add_parser(
        "worker",
        help="write and deploy the bench Worker (replays at a Worker's rates, sessions, cache)",
        description="The bench Worker is the module the local D1 serves, made deployable: "
        "it answers D1's REST API over the D1 binding, so `--target d1-worker:https://HOST` "
        "replays from inside Cloudflare, past the REST API's rate limit, with read replication "
        "(--session) and the cache options measured. `init` writes a wrangler project; "
        "`deploy` runs the wrangler pinned in package-lock.json.",
    )
    action = worker.add_subparsers(dest="action", metavar="ACTION", required=True)
    init = action.add_parser("init", help="write the Worker's wrangler project",
                             description="Write wrangler.jsonc (the D1 binding DB, a KV "
                             "namespace CACHE_KV, the cache options), worker.mjs and a README "
                             "saying how to set the shared secret with `wrangler secret put "
                             "TOKEN`. Refuses to overwrite without --force.")
    init.add_argument("--database", required=True, metavar="NAME|ID",
                      help="the D1 database: its name or its id (a UUID)")
    init.add_argument("--dir", default="d1bench-worker", metavar="DIR",
                      help="project folder (default ./d1bench-worker)")
    init.add_argument("--name", default="d1bench-worker", metavar="NAME",
                      help="the Worker's name (default d1bench-worker)")
    _add_cache_arguments(init)
    init.add_argument("--force", action="store_true", help="overwrite the project's files")
    deploy = action.add_parser("deploy", help="deploy it with the pinned wrangler",
                               description="Run `wrangler deploy` (from node_modules, never a "
                               "global install) in the project folder. --dry-run bundles and "
                               "checks it without logging in or deploying.")
    deploy.add_argument("--dir", default="d1bench-worker", metavar="DIR",
                        help="project folder (default ./d1bench-worker)")
    deploy.add_argument("--dry-run", action="store_true", help="check and bundle only")
    deploy.add_argument("--outdir", metavar="DIR", help="where wrangler writes the bundle")
    worker.set_defaults(func=run_worker)


def run_worker(args: argparse.Namespace) -> int:
    from d1bench.worker.project import deploy_worker, init_worker

    if args.action == "init":
        options = WorkerOptions.from_strings(args.cache, invalidate=args.cache_invalidate,
                                             check=args.cache_check)
        project = init_worker(args.database, args.dir, options=options, name=args.name,
                              force=args.force)
        print(f"wrote {', '.join(project.files)} in {project.directory}; next: set the secret "
              "(`wrangler secret put TOKEN`, see README.md), then `d1bench worker deploy "
              f"--dir {project.directory}`")
        return 0
    result = deploy_worker(args.dir, dry_run=args.dry_run, outdir=args.outdir)
    print(result.output.rstrip())
    return 0


def add_worker_arguments(parser: Any) -> None:
    """``--session`` and the cache options, for verbs that replay (d1-local and d1-worker)."""
    group = parser.add_argument_group("the bench Worker (d1-local, d1-worker:URL)")
    group.add_argument("--session", choices=SESSION_MODES, default="none",
                       help="D1 Sessions API: each simulated user's first query goes to "
                            "first-primary or first-unconstrained, later ones carry its bookmark "
                            "(default none: every query to the primary)")
    group.add_argument("--no-keep-alive", action="store_true",
                       help="open a new HTTP connection per request (to measure keep-alive)")
    _add_cache_arguments(group)


def worker_target_options(args: argparse.Namespace) -> dict[str, Any]:
    """Target keywords from :func:`add_worker_arguments`' options, checked against the
    keywords the target's kind declares it takes (its ``cli_options``)."""
    from d1bench.targets import target_class

    spec = args.target
    takes = target_class(spec).cli_options
    options: dict[str, Any] = {}
    cache = args.cache or args.cache_invalidate or args.cache_check
    if (args.session != "none" or cache) and "session" not in takes:
        raise UsageError(f"--session and --cache are options of the bench Worker (d1-local, "
                         f"d1-worker:URL), not of {spec}")
    if cache and "worker" not in takes:
        raise UsageError("a deployed Worker's cache is set in its wrangler.jsonc: "
                         "`d1bench worker init --cache ...`, then deploy again")
    if "session" in takes:
        options["session"] = args.session
    if cache:
        options["worker"] = WorkerOptions.from_strings(args.cache, invalidate=args.cache_invalidate,
                                                       check=args.cache_check)
    if args.no_keep_alive:
        if "keep_alive" not in takes:
            raise UsageError(f"--no-keep-alive is for HTTP targets, not {spec}")
        options["keep_alive"] = False
    return options
