"""The options several verbs share, declared once so they read and behave alike.

``--db`` is a SQLite database, ``--workload`` a shipped workload's name or a
workload file, ``--trace`` a Parquet trace, ``--no-progress`` turns off live
progress (which is also off by itself when stderr is not a terminal, see
:func:`d1bench.progress.progress_enabled`).
"""

from __future__ import annotations

import argparse

__all__ = ["add_db", "add_no_progress", "add_trace", "add_workload"]


def add_db(parser: argparse.ArgumentParser, help: str, *, required: bool = True) -> None:
    """``--db PATH``: a SQLite database, checked before use (:mod:`d1bench.dbfile`)."""
    parser.add_argument("--db", required=required, metavar="PATH", help=help)


def add_workload(parser: argparse.ArgumentParser, *, default: str | None = None,
                 help: str | None = None) -> None:
    """``--workload NAME|FILE``, required unless a ``default`` is given."""
    text = help or "a shipped workload's name (medical) or a workload file"
    if default is not None:
        text += f" (default: {default})"
    parser.add_argument("--workload", required=default is None, default=default,
                        metavar="NAME|FILE", help=text)


def add_trace(parser: argparse.ArgumentParser, help: str, *, required: bool = False) -> None:
    """``--trace PATH``: a trace to read (or, for ``replay``, to write)."""
    parser.add_argument("--trace", required=required, metavar="PATH", help=help)


def add_no_progress(parser: argparse.ArgumentParser) -> None:
    """``--no-progress``: no live progress on stderr."""
    parser.add_argument("--no-progress", action="store_true",
                        help="no live progress (it is off anyway when stderr is not a terminal)")
