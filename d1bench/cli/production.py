"""``d1bench compare-production``: a replay beside production's own figures."""

from __future__ import annotations

import argparse

from d1bench.production.insights import FORMATS

__all__ = ["register", "run_compare_production"]


def register(sub: argparse._SubParsersAction) -> None:
    cp = sub.add_parser(
        "compare-production",
        help="put a replay's rows read and latency beside production's, per query",
        description="Match each query shape of production's insights (wrangler d1 insights "
        "--json, GraphQL d1QueriesAdaptiveGroups, or a SQL log) to the replay's template of "
        "the same name (as `workload from-insights` names them), and print production's "
        "average rows read and duration beside the replay's, with where they part: data "
        "size, or a different plan.",
    )
    cp.add_argument("trace", metavar="TRACE", help="a trace written by `d1bench replay`")
    cp.add_argument("--insights", required=True, metavar="FILE",
                    help="the insights file the workload was made from")
    cp.add_argument("--format", choices=("auto", *FORMATS), default="auto",
                    dest="fmt", help="the insights file's format (default: by its content)")
    cp.set_defaults(func=run_compare_production)


def run_compare_production(args: argparse.Namespace) -> int:
    import pandas as pd

    from d1bench.production import compare_production

    frame = compare_production(args.trace, args.insights, fmt=args.fmt)

    def num(x: float | None, digits: int = 1) -> str:
        return "-" if x is None or pd.isna(x) else f"{float(x):,.{digits}f}"

    shown = pd.DataFrame({
        "template": frame["template"],
        "prod runs": frame["production_runs"].map(lambda x: f"{x:,}"),
        "replayed": frame["replay_count"],
        "prod rows read": frame["production_rows_read"].map(num),
        "replay rows read": frame["replay_rows_read"].map(num),
        "ratio": frame["rows_read_ratio"].map(lambda x: num(x, 2)),
        "prod ms": frame["production_ms"].map(lambda x: num(x, 2)),
        "replay p50 ms": frame["replay_p50_ms"].map(lambda x: num(x, 2)),
        "plan": frame["plan_class"].fillna("-"),
    })
    print(shown.to_string(index=False))
    print()
    for row in frame.itertuples(index=False):
        print(f"{row.template}: {row.verdict}")
    return 0
