"""The ``d1bench`` command: a thin layer over the library.

Each verb lives in a small module of this package that registers its parser and
calls one library function.  This module turns the library's
:class:`~d1bench.errors.UsageError` into a one-line message and exit status 2,
and Ctrl-C into status 130, so that no verb has to.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module

from d1bench import __version__
from d1bench.errors import UsageError

__all__ = ["build_parser", "main"]

#: Modules of this package that register verbs, in the order ``--help`` lists them.
COMMAND_MODULES = ("corpus", "dump", "workload", "replay", "analyze", "production", "indexes",
                   "size", "d1", "worker", "advice", "fix", "report", "migrate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="d1bench",
        description="Performance workbench for SQLite on Cloudflare D1: generate corpora, "
        "replay workloads, read plans and rows read, and prove index advice.",
    )
    parser.add_argument("--version", action="version", version=f"d1bench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    prog = "d1bench"
    try:
        # Inside the try: Ctrl-C while the verbs' modules are imported is still one line.
        args = build_parser().parse_args(argv)
        prog = f"d1bench {args.command}"
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
