"""``d1bench workload check|show``: validate a workload against a database, or list it."""

from __future__ import annotations

import argparse

from d1bench.cli._args import add_db
from d1bench.production.insights import FORMATS

__all__ = ["register", "run_check", "run_from_insights", "run_show"]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "workload",
        help="check a workload file against a database, or list its templates",
        description="Workloads are TOML files of query templates, weights, parameter "
        "samplers and sessions (see docs/workloads.md); `medical` is shipped. `check` finds "
        "every problem before a run; `show` lists what a workload sends and how often.",
    )
    action = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = action.add_parser(
        "check",
        help="validate a workload against a database (exit status 2 on any error)",
        description="Prepare every template on the database (without running it), compare its "
        "parameter count and read/write nature with SQLite's, bind every sampler to the "
        "corpus and draw from it, and check that sessions' row columns exist. Each problem "
        "is printed with its file, line and template. The database is opened read-only.",
    )
    check.add_argument("workload", metavar="FILE",
                       help="workload file, or the name of a shipped workload (medical)")
    add_db(check, "SQLite corpus to check against")
    check.add_argument("--seed", type=int, default=0, metavar="S",
                       help="seed for binding and drawing the samplers (default 0)")
    check.set_defaults(func=run_check)

    show = action.add_parser(
        "show",
        help="list a workload's templates and sessions with weights and samplers",
        description="Print one line per template and session: read/write, family, weight, "
        "the share of units drawn, expected executions per unit, samplers and line.",
    )
    show.add_argument("workload", metavar="NAME|FILE",
                      help="a shipped workload's name (medical) or a workload file")
    show.add_argument("--sql", action="store_true", help="print each template's SQL as well")
    show.set_defaults(func=run_show)

    fi = action.add_parser(
        "from-insights",
        help="write a workload file from production's query mix (wrangler d1 insights)",
        description="Turn what production ran into a workload file: `wrangler d1 insights "
        "--json` output, a GraphQL d1QueriesAdaptiveGroups answer, or a log of SQL statements "
        "with their values (literals become ? and statements of one shape are counted). Each "
        "shape becomes a template weighted by its runs (or rows read), with production's "
        "figures kept as its baseline, and samplers inferred from the database: `col = ?` draws "
        "existing values, ranges the column's distribution, `LIKE ?` prefixes, `LIMIT ?` a "
        "small integer. What cannot be inferred is marked FILL IN. The file is then checked "
        "against the database.",
    )
    fi.add_argument("insights", metavar="FILE", help="insights JSON, GraphQL JSON or a SQL log")
    add_db(fi, "SQLite database to infer samplers from (e.g. from `d1bench import`)")
    fi.add_argument("--out", required=True, metavar="PATH", help="workload file to write")
    fi.add_argument("--weight", choices=("runs", "reads"), default="runs",
                    help="weight templates by production's runs (default) or rows read")
    fi.add_argument("--format", choices=("auto", *FORMATS), default="auto",
                    dest="fmt", help="the input's format (default: by its content)")
    fi.add_argument("--force", action="store_true", help="replace PATH if it exists")
    fi.set_defaults(func=run_from_insights)


def run_check(args: argparse.Namespace) -> int:
    from d1bench.workload import check_workload

    problems = check_workload(args.workload, args.db, seed=args.seed)
    errors = int((problems["severity"] == "error").sum())
    warnings = len(problems) - errors
    for row in problems.itertuples(index=False):
        where = f"{row.kind} '{row.template}': " if row.template else ""
        print(f"{row.file}:{row.line}: {row.severity}: {where}{row.problem}")
    if errors or warnings:
        print(f"{errors} error(s), {warnings} warning(s)")
    else:
        print(f"{args.workload}: no problems against {args.db}")
    return 2 if errors else 0


def run_show(args: argparse.Namespace) -> int:
    import pandas as pd

    from d1bench.workload import describe_workload, load_workload

    frame = describe_workload(args.workload)
    shown = frame.drop(columns=["description"]).copy()
    shown["share"] = shown["share"].map(lambda x: f"{100 * x:.1f}%")
    shown["calls_per_unit"] = shown["calls_per_unit"].map(
        lambda x: "" if pd.isna(x) else f"{x:.3f}")
    print(shown.to_string(index=False, max_colwidth=70))
    if args.sql:
        workload = load_workload(args.workload)
        for t in workload.templates.values():
            print(f"\n-- {t.name} ({t.kind}, {t.family}, line {t.line})")
            print(t.sql)
    return 0


def run_from_insights(args: argparse.Namespace) -> int:
    from d1bench.dbfile import check_database
    from d1bench.production import from_insights
    from d1bench.workload import check_workload

    check_database(args.db)  # the database's fault is named before the insights are read
    made = from_insights(args.insights, args.db, args.out, weight=args.weight, fmt=args.fmt,
                         force=args.force)
    frame = made.templates
    print(f"wrote {made.path}: {len(frame)} template(s) from {int(frame['runs'].sum()):,} "
          "production runs")
    for t, i, why in made.unresolved:
        print(f"  {t} param {i}: {why}")
    problems = check_workload(made.path, args.db)
    errors = problems[problems["severity"] == "error"]
    for row in problems.itertuples(index=False):
        print(f"{row.file}:{row.line}: {row.severity}: {row.template}: {row.problem}")
    if len(errors):
        print(f"{len(errors)} error(s): edit {made.path} and run `d1bench workload check`")
        return 2
    print(f"`workload check` finds no errors against {args.db}")
    return 0
