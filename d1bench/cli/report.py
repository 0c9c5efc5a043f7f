"""``d1bench report``: run the notebooks and write offline HTML reports."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

from d1bench.cli._args import add_no_progress
from d1bench.dbfile import check_database
from d1bench.errors import UsageError

__all__ = ["register", "run"]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "report",
        help="run the notebooks and render them as HTML reports (offline-readable)",
        description="Execute each numbered notebook with papermill, render it to "
        "OUT/NN_name.html without code cells, and write OUT/index.html with every "
        "notebook's headline figures. Parameters reach the notebooks that declare them.",
    )
    parser.add_argument("--corpus", metavar="PATH",
                        help="corpus to analyse (built at --scale when missing)")
    parser.add_argument("--scale", type=int, metavar="N",
                        help="papers in the corpus (default: the corpus's own count, "
                        "or each notebook's small default)")
    parser.add_argument("--seed", type=int, metavar="S", help="corpus seed (default 0)")
    parser.add_argument("--out", default="reports", metavar="DIR",
                        help="folder for the HTML pages (default: reports)")
    parser.add_argument("--notebooks", nargs="+", metavar="NAME",
                        help="only these notebooks: paths, names (02_latency) or numbers (02)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help="extra notebook parameter; VALUE is a Python literal or text "
                        "(repeatable), e.g. -p duration=5")
    parser.add_argument("--timeout", type=float, default=1800, metavar="SECONDS",
                        help="longest a single cell may run (default 1800)")
    parser.add_argument("--force", action="store_true",
                        help="replace files in DIR that d1bench did not write")
    add_no_progress(parser)
    parser.set_defaults(func=run)


def _literal(text: str) -> object:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _papers_in(corpus: Path) -> int | None:
    """Count the corpus's papers, so notebooks label charts with the real scale."""
    import apsw

    from d1bench.dbfile import open_readonly

    db = open_readonly(corpus)
    try:
        return int(db.execute("SELECT count(*) FROM papers").fetchall()[0][0])
    except apsw.Error:
        return None
    finally:
        db.close()


def parameters_from_args(args: argparse.Namespace) -> dict[str, object]:
    params: dict[str, object] = {}
    if args.scale is not None:
        if args.scale <= 0:
            raise UsageError(f"--scale: must be a positive number of papers, got {args.scale}")
        params["papers"] = args.scale
    if args.seed is not None:
        params["seed"] = args.seed
    if args.corpus:
        corpus = Path(args.corpus).resolve()
        if not corpus.exists() and args.scale is None:
            raise UsageError(f"--corpus {args.corpus}: no such file (give --scale to build it)")
        if corpus.exists():
            check_database(args.corpus)
        params["corpus_path"] = str(corpus)
        if args.scale is None:
            papers = _papers_in(corpus)
            if papers is None:
                raise UsageError(f"--corpus {args.corpus}: not a d1bench corpus (no papers table)")
            params["papers"] = papers
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise UsageError(f"--param {item!r}: expected NAME=VALUE")
        params[name] = _literal(value)
    return params


def run(args: argparse.Namespace) -> int:
    from d1bench.report import ReportError, build_report

    params = parameters_from_args(args)
    if "papers" in params and not (args.corpus and Path(args.corpus).is_file()):
        # Build the corpus here, with a progress bar, rather than silently inside a notebook.
        from d1bench import cache

        corpus = cache.ensure_corpus(int(params["papers"]), int(params.get("seed", 0)),
                                     args.corpus, progress=not args.no_progress)
        params["corpus_path"] = str(Path(corpus).resolve())
    try:
        pages = build_report(args.notebooks, args.out, params, force=args.force,
                             timeout=args.timeout, progress=not args.no_progress)
    except ReportError as exc:
        print(f"d1bench report: {exc}")
        print(f"pages written to {args.out}/ (failed notebooks show their error)")
        return 1
    for page in pages:
        print(page)
    return 0
