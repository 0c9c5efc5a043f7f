"""Generated inputs the notebooks share, built once and kept under ``data/``.

Every notebook builds what it needs when it is missing: a corpus of a given
scale and seed, a copy of it under an index set, a replay's trace.  Building
those takes seconds to minutes, and five notebooks under nbval (then again
under ``make report``) would build the same things five times.  This module
keys each artefact by what determines it, so the second request finds the
first one's result:

- corpora: ``data/corpus-N.sqlite`` (seed 0, the name ``make report`` builds)
  or ``data/corpus-N-seedS.sqlite``;
- index-set copies: ``data/generated/<corpus stem>+<index set>.sqlite``;
- traces: ``data/generated/traces/<name>-<digest>.parquet``, the digest
  covering the replay's parameters and the corpus file's size and mtime, so
  regenerating a corpus invalidates its traces.

All of it is ignored by git.  Builds take a file lock, so two processes asking
for the same artefact build it once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from d1bench import __version__
from d1bench._paths import data_dir

__all__ = [
    "cached_trace",
    "corpus_path",
    "ensure_corpus",
    "generated_dir",
    "indexed_copy",
    "replay_sqlite",
    "trace_path",
]


def generated_dir() -> Path:
    """``data/generated/``: derived files, safe to delete at any time."""
    path = data_dir() / "generated"
    path.mkdir(parents=True, exist_ok=True)
    return path


def corpus_path(papers: int, seed: int = 0) -> Path:
    """Where the corpus of ``papers`` papers and ``seed`` lives in the cache.

    >>> corpus_path(100_000).name, corpus_path(5_000, seed=3).name
    ('corpus-100000.sqlite', 'corpus-5000-seed3.sqlite')
    """
    suffix = "" if seed == 0 else f"-seed{seed}"
    return data_dir() / f"corpus-{int(papers)}{suffix}.sqlite"


@contextmanager
def _locked(target: Path) -> Iterator[None]:
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = target.with_name(f".{target.name}.lock")
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_corpus(papers: int = 5_000, seed: int = 0, path: str | os.PathLike[str] | None = None,
                  *, progress: bool = False) -> Path:
    """The corpus at ``path`` (default :func:`corpus_path`), generated first if missing.

    An existing file is used as it is, whatever its scale: pass a path only
    to a corpus you mean to analyse.
    """
    from d1bench import generate_corpus

    target = Path(path) if path else corpus_path(papers, seed)
    if target.is_file():
        return target
    with _locked(target):
        if not target.is_file():  # another process may have built it meanwhile
            generate_corpus(target, papers=int(papers), seed=int(seed), progress=progress)
    return target


def _stamp(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"name": path.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def indexed_copy(corpus: str | os.PathLike[str], index_set: str) -> Path:
    """A copy of ``corpus`` with ``index_set`` applied, kept beside the other generated files.

    ``none`` returns ``corpus`` itself (corpora are generated with keys and
    unique constraints only).  The copy is rebuilt when the corpus changes.
    """
    from d1bench import apply_index_set

    corpus = Path(corpus)
    if index_set == "none":
        return corpus
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(index_set).stem)
    target = generated_dir() / f"{corpus.stem}+{safe}.sqlite"
    stamp_file = target.with_name(target.name + ".json")
    want = {"corpus": _stamp(corpus), "index_set": str(index_set), "d1bench": __version__}
    with _locked(target):
        if target.is_file() and stamp_file.is_file():
            try:
                if json.loads(stamp_file.read_text()) == want:
                    return target
            except ValueError:
                pass
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        try:
            shutil.copyfile(corpus, tmp)
            apply_index_set(tmp, index_set)
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
        stamp_file.write_text(json.dumps(want))
    return target


def _digest(params: Mapping[str, Any]) -> str:
    text = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def trace_path(name: str, params: Mapping[str, Any], corpus: str | os.PathLike[str] | None = None) -> Path:
    """The cache file of a replay called ``name`` with ``params`` over ``corpus``."""
    key = dict(params, d1bench=__version__)
    if corpus is not None:
        key["corpus"] = _stamp(Path(corpus))
    return generated_dir() / "traces" / f"{name}-{_digest(key)}.parquet"


def cached_trace(name: str, params: Mapping[str, Any], run: Callable[[Path], Any],
                 corpus: str | os.PathLike[str] | None = None, *, refresh: bool = False) -> Any:
    """Load the trace of this replay from the cache, or call ``run(path)`` to record it there.

    ``run`` receives the path to write (``replay(..., trace_path=path)``) and
    may return the trace; it is loaded back from the file either way, so a
    cached and a fresh trace are the same object type with the same data.
    ``params`` must hold everything that changes the result (workload, target
    kind, index set, rate, duration, seed...).
    """
    from d1bench import load_trace

    path = trace_path(name, params, corpus)
    with _locked(path):
        if refresh:
            path.unlink(missing_ok=True)
        if not path.is_file():
            run(path)
            if not path.is_file():
                raise RuntimeError(f"cached_trace({name!r}): run() wrote no trace to {path}")
    return load_trace(path)


def replay_sqlite(corpus: str | os.PathLike[str], *, workload: Any = "medical",
                  index_set: str = "none", rate: float | None = None,
                  concurrency: int | None = None, duration: float = 3.0, warmup: float = 0.5,
                  seed: int = 0, name: str = "sqlite", refresh: bool = False,
                  **options: Any) -> Any:
    """A replay of ``workload`` on a local SQLite copy of ``corpus`` under ``index_set``, cached.

    Notebooks asking for the same replay (same corpus, index set, workload,
    schedule and seed) share one trace: 02 records the open-loop run that
    03 and 05 read again.  The workload's writes land in a throw-away copy,
    so every replay starts from the same data and the corpus never changes.
    ``options`` go to :func:`d1bench.replay` and into the cache key.
    """
    from d1bench import load_workload, replay

    corpus = Path(corpus)
    loaded = load_workload(workload) if isinstance(workload, (str, os.PathLike)) else workload
    params = {"target": "sqlite", "workload": getattr(loaded, "digest", str(workload)),
              "index_set": str(index_set), "rate": rate, "concurrency": concurrency,
              "duration": duration, "warmup": warmup, "seed": seed, **options}

    def run(path: Path) -> None:
        pristine = indexed_copy(corpus, index_set)
        fd, work = tempfile.mkstemp(prefix=".replay-", suffix=".sqlite", dir=generated_dir())
        os.close(fd)
        try:
            shutil.copyfile(pristine, work)
            replay(loaded, f"sqlite:{work}", rate=rate, concurrency=concurrency,
                   duration=duration, warmup=warmup, seed=seed, trace_path=path,
                   progress=False, corpus=work, force=True, **options)
        finally:
            for leftover in Path(work).parent.glob(Path(work).name + "*"):
                leftover.unlink(missing_ok=True)

    return cached_trace(name, params, run, corpus=corpus, refresh=refresh)
