"""``d1bench generate``: build a synthetic corpus."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from d1bench.errors import UsageError

__all__ = ["register"]

DESCRIPTION = """\
Generate a deterministic synthetic corpus of medical papers into a SQLite file:
papers with a full-text index, citations, clinical trials, users, reading
history and reviews, in the schema D1 runs (index set `none`).  The same
--papers and --seed always give the same rows.  The file is written under a
temporary name and renamed when complete, so an interrupted run leaves nothing.
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "generate", help="generate a synthetic corpus of medical papers",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # Numbers are parsed here, not by argparse, so that bad values give our
    # one-line error (argparse would print its usage block too).
    parser.add_argument("--papers", required=True, metavar="N",
                        help="number of papers (e.g. 100000; other tables scale with it)")
    parser.add_argument("--seed", default="0", metavar="S",
                        help="random seed, a whole number >= 0 (default 0)")
    parser.add_argument("--out", metavar="PATH",
                        help="corpus file to write (default: corpus-<N>.sqlite in D1BENCH_DATA, "
                             "else ~/.local/share/d1bench)")
    parser.add_argument("--as-of", default="2026-11-01", metavar="YYYY-MM-DD",
                        help="the corpus's 'today': papers span the 20 years before it, "
                             "reading history the 90 days before it (default 2026-11-01)")
    parser.add_argument("--force", action="store_true", help="replace PATH if it exists")
    parser.add_argument("--quiet", "--no-progress", action="store_true", dest="quiet",
                        help="no progress bar (it is off anyway when stderr is not a terminal)")
    parser.add_argument("--dry-run", action="store_true",
                        help="only say how large the corpus would be and whether D1 could hold it")
    parser.set_defaults(func=run)


def _whole(option: str, value: str, minimum: int) -> int:
    try:
        number = int(value.replace("_", "").replace(",", ""))
    except ValueError:
        raise UsageError(f"{option} {value!r}: not a whole number") from None
    if number < minimum:
        raise UsageError(f"{option} {value}: must be at least {minimum}")
    return number


def _d1_fit_line(papers: int) -> str:
    """What D1 would make of a corpus of ``papers`` papers, in one line."""
    from d1bench.size import estimate_corpus_bytes, largest_corpus_for, plan_fit

    estimate = estimate_corpus_bytes(papers)
    fit = plan_fit(estimate).set_index("plan")
    size = f"about {estimate / 1e9:,.2f} GB" if estimate >= 1e9 else f"about {estimate / 1e6:,.0f} MB"
    if not fit.loc["paid", "fits"]:
        return (f"warning: {papers:,} papers make {size}, more than one D1 database holds "
                f"({fit.loc['paid', 'limit_bytes'] / 1e9:,.0f} GB on the paid plan); the largest "
                f"corpus D1 can take is about {largest_corpus_for('paid'):,} papers")
    if not fit.loc["free", "fits"]:
        return (f"note: {papers:,} papers make {size}, more than D1's free plan holds "
                f"({fit.loc['free', 'limit_bytes'] / 1e6:,.0f} MB, at most "
                f"{largest_corpus_for('free'):,} papers); the paid plan holds "
                f"{fit.loc['paid', 'limit_bytes'] / 1e9:,.0f} GB")
    return f"within D1's free plan: {papers:,} papers make {size}"


def run(args: argparse.Namespace) -> int:
    from d1bench._paths import data_dir
    from d1bench.corpus import generate_corpus
    from d1bench.corpus.build import check_destination

    papers = _whole("--papers", args.papers, 1)
    seed = _whole("--seed", args.seed, 0)
    if args.out:
        out = Path(args.out)
    else:
        data_dir().mkdir(parents=True, exist_ok=True)
        out = data_dir() / f"corpus-{papers}.sqlite"
    if args.dry_run:
        print(_d1_fit_line(papers))
        return 0
    # The destination is checked before anything is said, so that bad input
    # stays one line; a corpus within D1's free plan needs no word at all.
    check_destination(out, args.force)
    line = _d1_fit_line(papers)
    if not line.startswith("within"):
        print(line, file=sys.stderr)
    info = generate_corpus(out, papers, seed, force=args.force, progress=not args.quiet,
                           as_of=args.as_of)
    counts = ", ".join(f"{n:,} {table}" for table, n in info.row_counts.items())
    print(f"wrote {info.path} ({info.bytes / 1e6:,.1f} MB) in {info.seconds:.1f} s: {counts}; "
          f"digest {info.digest}")
    return 0
