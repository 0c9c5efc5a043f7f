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
- index sets written by notebooks (the advised set, ``.expert``'s):
  ``data/generated/index-sets/<name>-<digest of the SQL>.sql``;
- local D1 databases (Miniflare persist folders) holding a corpus under an
  index set: ``data/generated/d1-local/<corpus stem>+<index set>/``;
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
from d1bench._atomic import atomic_path, write_atomic
from d1bench._paths import data_dir

__all__ = [
    "advised_index_set",
    "cached_trace",
    "capacity",
    "corpus_path",
    "default_rate",
    "ensure_corpus",
    "generated_dir",
    "index_set_file",
    "indexed_copy",
    "local_d1_copy",
    "replay_local_d1",
    "replay_sqlite",
    "topup",
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
    # Locks live with the other generated files, which git ignores as a whole.
    digest = hashlib.sha256(str(target.resolve()).encode()).hexdigest()[:16]
    locks = generated_dir() / "locks"
    locks.mkdir(exist_ok=True)
    lock = locks / f"{target.name}-{digest}.lock"
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


def _derived(corpus: Path, index_set: str, folder: Path,
             suffix: str = "") -> tuple[Path, Path, dict[str, Any]]:
    """Where a file made from ``corpus`` under ``index_set`` is kept, its stamp file, and
    what the stamp must say for it to be current."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(index_set).stem)
    target = folder / f"{corpus.stem}+{safe}{suffix}"
    want = {"corpus": _stamp(corpus), "index_set": str(index_set), "d1bench": __version__}
    return target, target.with_name(target.name + ".json"), want


def _current(target: Path, stamp_file: Path, want: Mapping[str, Any]) -> bool:
    """Whether ``target`` is there and its stamp says it was made from ``want``."""
    if not target.exists() or not stamp_file.is_file():
        return False
    try:
        return bool(json.loads(stamp_file.read_text()) == want)
    except ValueError:
        return False


def indexed_copy(corpus: str | os.PathLike[str], index_set: str) -> Path:
    """A copy of ``corpus`` with ``index_set`` applied, kept beside the other generated files.

    ``none`` returns ``corpus`` itself (corpora are generated with keys and
    unique constraints only).  The copy is rebuilt when the corpus changes.
    """
    corpus = Path(corpus)
    if index_set == "none":
        return corpus
    from d1bench import apply_index_set

    target, stamp_file, want = _derived(corpus, index_set, generated_dir(), ".sqlite")
    with _locked(target):
        if _current(target, stamp_file, want):
            return target
        with atomic_path(target, force=True) as tmp:
            shutil.copyfile(corpus, tmp)
            apply_index_set(tmp, index_set)
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
                  concurrency: int | None = None, duration: float | None = 3.0,
                  warmup: float = 0.5, seed: int = 0, name: str = "sqlite", refresh: bool = False,
                  **options: Any) -> Any:
    """A replay of ``workload`` on a local SQLite copy of ``corpus`` under ``index_set``, cached.

    Notebooks asking for the same replay (same corpus, index set, workload,
    schedule and seed) share one trace: 02 records the open-loop run that
    03 and 05 read again.  The workload's writes land in a throw-away snapshot
    (replay's own), so every replay starts from the same data and the corpus
    never changes.
    ``options`` go to :func:`d1bench.replay` and into the cache key.
    """
    from d1bench import load_workload, replay

    corpus = Path(corpus)
    loaded = load_workload(workload) if isinstance(workload, (str, os.PathLike)) else workload
    params = {"target": "sqlite", "workload": getattr(loaded, "digest", str(workload)),
              "index_set": str(index_set), "rate": rate, "concurrency": concurrency,
              "duration": duration, "warmup": warmup, "seed": seed, **options}

    def run(path: Path) -> None:
        # replay() runs a writing workload on a snapshot of its own and leaves the file as it
        # was; the indexed copy's content digest is then computed once and found again.
        pristine = indexed_copy(corpus, index_set)
        replay(loaded, f"sqlite:{pristine}", rate=rate, concurrency=concurrency,
               duration=duration, warmup=warmup, seed=seed, trace_path=path,
               progress=False, corpus=pristine, force=True, **options)

    return cached_trace(name, params, run, corpus=corpus, refresh=refresh)


def local_d1_copy(corpus: str | os.PathLike[str], index_set: str = "none", *,
                  progress: bool = False) -> Path:
    """A local D1 persist folder holding ``corpus`` under ``index_set``, uploaded once.

    The upload goes through :func:`d1bench.upload` into a Miniflare started
    for it (D1's own limits and row counting apply), and is redone when the
    corpus changes.  Another index set starts from a copy of ``none``'s
    folder, which holds the same rows and FTS index: the upload resumes there
    and has only the set's indexes to create (through D1, like every other
    statement), instead of minutes of rows at a million papers.  Replays work
    on copies (:func:`replay_local_d1`), so this folder stays as uploaded.
    """
    from d1bench import LocalD1, upload

    corpus = Path(corpus)
    target, stamp_file, want = _derived(corpus, index_set, generated_dir() / "d1-local")
    with _locked(target):
        if _current(target, stamp_file, want):
            return target
        source = indexed_copy(corpus, index_set)
        plain = None if index_set == "none" else local_d1_copy(corpus, "none", progress=progress)
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            if plain is not None:
                shutil.copytree(plain, work, dirs_exist_ok=True)
            with LocalD1(work) as d1:
                upload(source, d1.target(), progress=progress)
            if target.exists():
                shutil.rmtree(target)
            os.replace(work, target)
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)
        stamp_file.write_text(json.dumps(want))
    return target


def replay_local_d1(corpus: str | os.PathLike[str], *, workload: Any = "medical",
                    index_set: str = "none", rate: float | None = None,
                    concurrency: int | None = None, duration: float = 3.0, warmup: float = 0.5,
                    seed: int = 0, name: str = "d1-local", refresh: bool = False,
                    worker: Any = None, session: str | None = None, keep_alive: bool = True,
                    **options: Any) -> Any:
    """The same replay as :func:`replay_sqlite`, against a local D1 (Miniflare), cached.

    ``worker`` (:class:`~d1bench.worker.WorkerOptions`: the bench Worker's cache),
    ``session`` and ``keep_alive`` are the local D1 target's options.

    Parameters are drawn from the SQLite corpus with the same seed as the
    SQLite replay, so both targets run the same requests in the same order.
    The local D1 runs on a throw-away copy of :func:`local_d1_copy`'s folder
    and is stopped afterwards.
    """
    from d1bench import LocalD1, load_workload, open_target, replay

    corpus = Path(corpus)
    loaded = load_workload(workload) if isinstance(workload, (str, os.PathLike)) else workload
    params = {"target": "d1-local", "workload": getattr(loaded, "digest", str(workload)),
              "index_set": str(index_set), "rate": rate, "concurrency": concurrency,
              "duration": duration, "warmup": warmup, "seed": seed, **options}
    if worker is not None or session is not None or not keep_alive:
        params.update(worker=worker.bindings() if worker is not None else None,
                      session=session, keep_alive=keep_alive)

    def run(path: Path) -> None:
        pristine = local_d1_copy(corpus, index_set)
        work = Path(tempfile.mkdtemp(prefix=".replay-d1-", dir=generated_dir()))
        try:
            shutil.copytree(pristine, work, dirs_exist_ok=True)
            with open_target(f"sqlite:{indexed_copy(corpus, index_set)}",
                             readonly=True) as binder, binder.connect() as bind_conn, \
                    LocalD1(work, worker=worker) as d1, \
                    d1.target(allow_writes=True, session=session, keep_alive=keep_alive) as target:
                # Writes are safe here: they land in the throw-away copy.
                replay(loaded, target, rate=rate, concurrency=concurrency,
                       duration=duration, warmup=warmup, seed=seed, trace_path=path,
                       progress=False, corpus=corpus, force=True, bind_conn=bind_conn,
                       allow_writes=True, **options)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    return cached_trace(name, params, run, corpus=corpus, refresh=refresh)


def topup(min_executions: int | None, caps: Mapping[str, int] | None = None) -> dict[str, Any]:
    """The replay options of a notebook's ``min_executions`` and ``topup_caps`` parameters.

    Nothing when ``min_executions`` is ``None`` (a run bound by time alone),
    so a trace cached without a top-up is found again.

    >>> topup(None), topup(20), topup(20, {"semantic_search": 3})
    ({}, {'min_executions': 20}, {'min_executions': 20, 'topup_caps': {'semantic_search': 3}})
    """
    if min_executions is None:
        return {}
    out: dict[str, Any] = {"min_executions": int(min_executions)}
    if caps:
        out["topup_caps"] = {str(k): int(v) for k, v in caps.items()}
    return out


def capacity(trace: Any) -> float:
    """Units (queries or sessions) a second a replay completed, warm-up and failures left out.

    For a closed-loop trace this is the machine's capacity for the workload.

    >>> import pandas as pd
    >>> from types import SimpleNamespace
    >>> req = pd.DataFrame({"unit_index": [0, 0, 1, 2], "intended_ns": [0, 0, 5e8, 1e9],
    ...                     "done_ns": [2e8, 4e8, 9e8, 2e9], "warmup": False, "error_class": None})
    >>> capacity(SimpleNamespace(requests=req))
    1.5
    """
    req = trace.requests
    req = req[~req["warmup"].astype(bool) & req["error_class"].isna()]
    if req.empty:
        return 0.0
    seconds = (float(req["done_ns"].max()) - float(req["intended_ns"].min())) / 1e9
    return float(req["unit_index"].nunique()) / seconds if seconds > 0 else 0.0


def default_rate(corpus: str | os.PathLike[str], *, workload: Any = "medical",
                 fraction: float = 0.3, workers: int = 2, duration: float = 4.0,
                 warmup: float = 1.0, seed: int = 0, probe_s: float = 3.0) -> float:
    """An open-loop rate this machine sustains for ``workload`` on ``corpus``.

    A fixed rate cannot fit every scale: what 5,000 papers sustain queues
    without end at 100,000.  So: start from ``fraction`` of the closed-loop
    capacity (``workers`` workers back to back, on the corpus without
    secondary indexes, the slowest index set, so one rate suits every set
    compared), then probe it with a short open-loop run and halve it until
    nothing is dropped and the median request waits under a millisecond for
    a worker.  The probe matters because the open loop does not reach what
    the closed loop does (more threads than cores, its own scheduling), and
    the machine may be busier than when capacity was measured.  Every run is
    cached, and the result keeps two significant digits, so notebooks asking
    the same question share traces.
    """
    closed = replay_sqlite(corpus, workload=workload, index_set="none", concurrency=workers,
                           duration=duration, warmup=warmup, seed=seed, name="closed")
    if capacity(closed) <= 0:
        # At a million papers without indexes one unit can outlast the whole run (a brute-force
        # search takes minutes), and units begun in warm-up do not count: measure a few units
        # to completion instead, however long they take.
        closed = replay_sqlite(corpus, workload=workload, index_set="none", concurrency=workers,
                               duration=None, warmup=0.0, seed=seed, name="closed-units",
                               requests=4 * workers)
    rate = float(f"{fraction * capacity(closed):.2g}")
    if rate <= 0:
        raise RuntimeError("the closed-loop replay completed nothing: cannot choose a rate")
    for _ in range(8):
        probe = replay_sqlite(corpus, workload=workload, index_set="none", rate=rate,
                              duration=probe_s, warmup=0.5, seed=seed, name="probe")
        if _sustained(probe.requests):
            break
        rate = float(f"{rate / 2:.2g}")
    return rate


def _sustained(requests: Any) -> bool:
    """No unit dropped, and the median statement did not wait for a worker."""
    measured = requests[~requests["warmup"].astype(bool)]
    if measured.empty:
        return True
    dropped = (measured["error_class"] == "dropped").any()
    return not dropped and float(measured["lag_ms"].median()) < 1.0

def index_set_file(name: str, sql: str) -> Path:
    """Write an index set's SQL under a name carrying its digest, and return the path.

    The same SQL always gets the same path, so copies and traces made under it
    are found again by every notebook that writes it.
    """
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    path = generated_dir() / "index-sets" / f"{safe}-{hashlib.sha256(sql.encode()).hexdigest()[:12]}.sql"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, sql, force=True)
    return path


def advised_index_set(corpus: str | os.PathLike[str], *, workload: Any = "medical",
                      seed: int = 0) -> Path:
    """The index set :func:`d1bench.advise` proposes for ``workload`` on ``corpus``, as a file.

    Advice is computed once per corpus, workload and seed (without the
    verifying replays; notebook 04 runs those) and kept as SQL, which is
    what :func:`indexed_copy` and the replays need.
    """
    from d1bench import advise, load_workload

    corpus = Path(corpus)
    loaded = load_workload(workload) if isinstance(workload, (str, os.PathLike)) else workload
    key = {"corpus": _stamp(corpus), "workload": getattr(loaded, "digest", str(workload)),
           "seed": seed, "d1bench": __version__}
    pointer = generated_dir() / "index-sets" / f"advised-for-{_digest(key)}.txt"
    with _locked(pointer):
        if pointer.is_file():
            found = pointer.parent / pointer.read_text().strip()
            if found.is_file():
                return found
        path = index_set_file("advised", advise(corpus, loaded, seed=seed).migration_sql)
        pointer.write_text(path.name)
    return path
