"""``generate_corpus``: a whole corpus into a file, atomically."""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from d1bench._atomic import atomic_path, shared_mode
from d1bench.corpus.generator import FTS_UNITS_PER_PAPER, CorpusGenerator
from d1bench.corpus.plan import make_plan
from d1bench.corpus.vocabulary import load_vocabulary
from d1bench.corpus.writer import PROGRESS_STEPS, CorpusWriter
from d1bench.errors import UsageError

__all__ = ["CorpusInfo", "Progress", "check_destination", "generate_corpus", "prefetch"]

T = TypeVar("T")

#: ``progress(phase, done, total)``; done and total are in the generator's units.
Progress = Callable[[str, int, int], None]

#: VM steps per paper while the FTS index is rebuilt, as measured (only moves the bar).
_FTS_STEPS_PER_PAPER = 60


@dataclass(frozen=True, slots=True)
class CorpusInfo:
    """What :func:`generate_corpus` made.

    path: the corpus file.  papers, seed, as_of: what it was made from.
    row_counts: rows per table.  digest: fingerprint of the content (same
    inputs, same digest).  seconds: wall time of the build.  bytes: file size.
    """

    path: Path
    papers: int
    seed: int
    as_of: str
    row_counts: dict[str, int]
    digest: str
    seconds: float
    bytes: int


def check_destination(out: str | os.PathLike[str], force: bool) -> Path:
    """Refuse a destination we must not or cannot write; returns it as a Path."""
    path = Path(out)
    if path.is_dir():
        raise UsageError(f"{path}: is a directory; give a file name such as "
                         f"{path / 'corpus.sqlite'}")
    if path.exists() and not force:
        raise UsageError(f"{path}: already exists (use --force to replace it)")
    folder = path.parent
    if not folder.exists():
        raise UsageError(f"{folder}: no such directory")
    if not folder.is_dir():
        raise UsageError(f"{folder}: not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{folder}: directory is not writable")
    return path


def generate_corpus(out: str | os.PathLike[str], papers: int, seed: int = 0, *,
                    force: bool = False, progress: bool | Progress = False,
                    as_of: str = "2026-11-01") -> CorpusInfo:
    """Generate a synthetic medical-literature corpus of ``papers`` papers into ``out``.

    The same ``papers``, ``seed`` and ``as_of`` give the same rows.  The file gets
    the whole schema of :mod:`d1bench.schema` with index set ``none`` (keys and
    UNIQUE constraints only), a filled ``papers_fts`` index, its triggers and views,
    and ``corpus_meta`` rows describing the corpus.

    The corpus is written to a temporary file beside ``out`` and renamed into place
    only when complete: an interruption leaves nothing at ``out``.  An existing
    ``out`` is replaced only with ``force``.  ``progress`` is ``True`` for a bar on
    stderr, or a callable ``progress(phase, done, total)``; an exception raised by
    the callable aborts the build like Ctrl-C.

    Rows are made a block at a time (memory stays flat) in a background thread that
    works one block ahead of SQLite.  Papers' dates span the 20 years before
    ``as_of``; see :mod:`d1bench.corpus.plan` for the rows per paper of each table.
    """
    started = time.perf_counter()
    plan = make_plan(papers, seed, as_of)
    path = check_destination(out, force)
    vocab = load_vocabulary()
    generator = CorpusGenerator(plan, vocab)
    report, close_bar = lambda *_: None, lambda: None
    writer = None
    try:
        with atomic_path(path, force=force, mode=shared_mode()) as tmp:
            try:
                report, close_bar = _reporter(progress, generator.total_units)
                writer = CorpusWriter(tmp)
                done = 0
                with contextlib.closing(prefetch(generator.batches())) as batches:
                    for batch in batches:
                        writer.insert(batch.table, batch.rows)
                        done += batch.units
                        report(batch.phase, done, generator.total_units)
                fts_total = FTS_UNITS_PER_PAPER * plan.papers
                fts_done = [0]

                def tick() -> None:
                    fts_done[0] = min(fts_total - 1, fts_done[0] + _fts_units())
                    report("full-text index", done + fts_done[0], generator.total_units)

                writer.build_fts(tick)
                writer.finish(generator.meta())
                writer = None
                report("done", generator.total_units, generator.total_units)
            except BaseException:
                if writer is not None:
                    writer.close()  # before the unfinished file is removed
                raise
    finally:
        close_bar()
    return CorpusInfo(
        path=path, papers=plan.papers, seed=plan.seed, as_of=plan.as_of.isoformat(),
        row_counts=dict(generator.row_counts), digest=generator.digest,
        seconds=time.perf_counter() - started, bytes=path.stat().st_size,
    )


def prefetch(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Iterate ``items`` in a background thread, up to ``depth`` items ahead.

    Generating the next block (numpy, mostly) overlaps with SQLite inserting the
    current one (APSW releases the GIL while SQLite works).  An exception in the
    producer is re-raised here; leaving the loop early stops the producer.
    """
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        ready.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put((end, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            ready.put((end, exc))

    worker = threading.Thread(target=produce, name="corpus-generator", daemon=True)
    worker.start()
    try:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is end:
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                ready.get(timeout=0.1)
            except queue.Empty:
                pass
        worker.join()


def _fts_units() -> int:
    """Progress units one progress-handler call stands for while the index builds."""
    return max(1, round(FTS_UNITS_PER_PAPER * PROGRESS_STEPS / _FTS_STEPS_PER_PAPER))


def _reporter(progress: bool | Progress, total: int) -> tuple[Progress, Callable[[], None]]:
    if callable(progress):
        return progress, lambda: None
    if not progress:
        return (lambda phase, done, total: None), lambda: None
    from tqdm import tqdm

    from d1bench.progress import tqdm_disable

    bar = tqdm(total=total, file=sys.stderr, unit="", unit_scale=True, desc="corpus",
               disable=tqdm_disable(True),
               bar_format="{desc:>16}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")

    def report(phase: str, done: int, total: int) -> None:
        bar.set_description_str(phase, refresh=False)
        bar.update(done - bar.n)

    return report, bar.close
