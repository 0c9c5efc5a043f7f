"""How much slower is generating a corpus than loading the same rows?

    python benchmarks/generate.py --papers 100000

Two measurements, each in a fresh child process (so that each has its own peak
memory), in this order:

* full:  ``d1bench.generate_corpus`` into a new file, wall time end to end;
* floor: the same rows, each block generated first (not timed) and then
  bulk-inserted (timed) into the same schema with the same PRAGMAs, followed
  by the same full-text index build, triggers, views and metadata (timed).

The floor is what a loader would cost if the rows were free.  Goals at a million
papers: ratio = seconds / floor_seconds <= 1.5, peak RSS <= 2 GB.  With ``--repeat``
each side runs several times, alternating; the median of each side counts (each
run is listed too, and the fastest, which other work on the machine can only
slow down).  ``--no-floor`` runs the full build alone: for the peak memory of a
corpus as large as D1 holds (``--papers 2500000 --no-floor``, about 11 GB on disk).
Prints one JSON line: papers, seconds, floor_seconds, ratio (medians), the runs,
peak_rss_mb (of the full builds, the largest).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _full(out: Path, papers: int, seed: int) -> dict:
    from d1bench.corpus import generate_corpus

    started = time.perf_counter()
    generate_corpus(out, papers, seed)
    return {"seconds": time.perf_counter() - started, "peak_rss_mb": _peak_rss_mb()}


def _floor(out: Path, papers: int, seed: int) -> dict:
    from d1bench.corpus.generator import CorpusGenerator
    from d1bench.corpus.plan import make_plan
    from d1bench.corpus.vocabulary import load_vocabulary
    from d1bench.corpus.writer import CorpusWriter

    generator = CorpusGenerator(make_plan(papers, seed, "2026-11-01"), load_vocabulary())
    timed = 0.0
    started = time.perf_counter()
    writer = CorpusWriter(out)
    timed += time.perf_counter() - started
    for batch in generator.batches():  # generating a block is not timed ...
        started = time.perf_counter()
        writer.insert(batch.table, batch.rows)  # ... inserting it is
        timed += time.perf_counter() - started
    meta = generator.meta()
    started = time.perf_counter()
    writer.build_fts()
    writer.finish(meta)
    timed += time.perf_counter() - started
    return {"seconds": timed, "peak_rss_mb": _peak_rss_mb()}


def _child(phase: str, folder: Path, papers: int, seed: int) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--papers", str(papers), "--seed", str(seed),
         "--phase", phase, "--dir", str(folder)],
        check=True, stdout=subprocess.PIPE, text=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--papers", type=int, default=100_000, help="corpus size (default 100000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure each side this many times, alternating; the medians count")
    parser.add_argument("--no-floor", action="store_true",
                        help="only the full build: its time and peak memory")
    parser.add_argument("--phase", choices=("full", "floor"), help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.phase:
        run = _full if args.phase == "full" else _floor
        print(json.dumps(run(args.dir / f"{args.phase}.sqlite", args.papers, args.seed)))
        return 0

    here = Path(__file__).resolve().parent / "out"
    here.mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="generate-", dir=here))
    fulls, floors = [], []
    try:
        for _ in range(max(1, args.repeat)):
            fulls.append(_child("full", folder, args.papers, args.seed))
            (folder / "full.sqlite").unlink()  # disk space: a million papers is ~4 GB
            if not args.no_floor:
                floors.append(_child("floor", folder, args.papers, args.seed))
                (folder / "floor.sqlite").unlink()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    seconds = statistics.median(r["seconds"] for r in fulls)
    figures = {"papers": args.papers, "repeat": len(fulls), "seconds": round(seconds, 2)}
    if floors:
        floor = statistics.median(r["seconds"] for r in floors)
        figures.update(floor_seconds=round(floor, 2), ratio=round(seconds / floor, 3),
                       ratio_fastest=round(min(r["seconds"] for r in fulls)
                                           / min(r["seconds"] for r in floors), 3),
                       floor_runs=[round(r["seconds"], 2) for r in floors])
    figures.update(runs=[round(r["seconds"], 2) for r in fulls],
                   peak_rss_mb=round(max(r["peak_rss_mb"] for r in fulls), 1),
                   peak_rss_runs_mb=[round(r["peak_rss_mb"], 1) for r in fulls])
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
