"""The preparation every analysis of a workload on a corpus starts from.

Lint, the advisor and the benchmarks all need the same things before they can
look at a template: the corpus opened read-only, the workload loaded, the
corpus's shape and statistics, every template read, parameter values drawn
from the data, and (when one is given) the trace.  :func:`prepare` does that
once, the same way for all of them, and returns a :class:`Prepared`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from d1bench.advisor.query import QueryInfo, analyze
from d1bench.advisor.stats import Stats
from d1bench.errors import TargetError, UsageError
from d1bench.sql.catalog import Catalog, read_catalog
from d1bench.workload.samplers import SamplerError

__all__ = ["DEFAULT_SAMPLES", "Prepared", "as_workload", "bind_params", "load_trace_frame",
           "open_corpus", "prepare", "template_weights"]

#: Parameter tuples drawn per template: the first plans it, all of them price it.
DEFAULT_SAMPLES = 3


@dataclass(frozen=True, slots=True)
class Prepared:
    """A workload made ready for analysis on one corpus.

    Attributes:
        path: the corpus file.
        conn: a read-only APSW connection to it (closed by :meth:`close`).
        workload: the loaded workload.
        catalog: the corpus's tables, keys and indexes.
        stats: its data statistics, computed on demand from ``conn``.
        infos: each template as :func:`~d1bench.advisor.query.analyze` reads it.
        params: parameter tuples drawn per template (empty for a template whose
            samplers could not draw: it is planned with NULLs).
        notes: what went wrong while drawing, said once for the user.
        trace: the trace's measured requests, if a trace was given.
    """

    path: Path
    conn: Any
    workload: Any
    catalog: Catalog
    stats: Stats
    infos: Mapping[str, QueryInfo]
    params: Mapping[str, list[tuple]]
    notes: tuple[str, ...] = ()
    trace: Any = None

    def weights(self) -> dict[str, float]:
        """Executions of each template per unit of workload (see :func:`template_weights`)."""
        return template_weights(self.workload, self.trace)

    def close(self) -> None:
        """Close the corpus connection."""
        self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def prepare(db_path: str | os.PathLike[str], workload: Any, trace: Any = None, *,
            seed: int = 0, samples: int = DEFAULT_SAMPLES,
            params: Mapping[str, list[tuple]] | None = None) -> Prepared:
    """Open the corpus read-only, load the workload and trace, read and bind every template.

    Args:
        db_path: the corpus (never changed).
        workload: ``"medical"``, a workload file, or a ``Workload``.
        trace: a trace or its path; its measured requests are kept.
        seed: seeds parameter sampling and the statistics' data sample.
        samples: parameter tuples drawn per template.
        params: parameter tuples per template, instead of drawing them.
    """
    path = Path(db_path)
    conn = open_corpus(path)
    try:
        wl = as_workload(workload)
        frame = load_trace_frame(trace)
        notes: list[str] = []
        if params is None:
            params, note = bind_params(wl, path, seed, samples)
            if note:
                notes.append(note)
        catalog = read_catalog(conn)
        stats = Stats(conn, catalog, seed=seed)
        infos = {name: analyze(t.sql, catalog) for name, t in wl.templates.items()}
    except BaseException:
        conn.close()
        raise
    return Prepared(path=path, conn=conn, workload=wl, catalog=catalog, stats=stats, infos=infos,
                    params=params, notes=tuple(notes), trace=frame)


def open_corpus(db_path: str | os.PathLike[str]) -> Any:
    """A read-only APSW connection to ``db_path``, checked (see :mod:`d1bench.dbfile`)."""
    from d1bench.dbfile import open_readonly

    return open_readonly(db_path)


def as_workload(workload: Any) -> Any:
    """A ``Workload`` from a name, a path, a ``Workload`` or anything holding one."""
    if isinstance(workload, (str, os.PathLike)):
        from d1bench.workload import load_workload

        return load_workload(workload)
    return getattr(workload, "workload", workload)


def load_trace_frame(trace: Any) -> Any:
    """The measured requests of a trace given as a path, a ``Trace`` or a frame."""
    if trace is None:
        return None
    if isinstance(trace, (str, os.PathLike)):
        from d1bench.trace import load_trace

        trace = load_trace(trace)
    return trace.measured if hasattr(trace, "measured") else trace


def template_weights(workload: Any, trace: Any = None) -> dict[str, float]:
    """Executions of each template per unit of workload: the trace's counts if given,
    else what the workload's weights and sessions imply."""
    names = list(workload.templates)
    frame = load_trace_frame(trace)
    if frame is not None:
        counts = frame.groupby("template").size()
        total_units = max(frame["unit_index"].nunique(), 1) if "unit_index" in frame else 1
        return {n: float(counts.get(n, 0)) / total_units for n in names}
    return {n: float(v) for n, v in workload.template_frequencies().items()}


def bind_params(workload: Any, db_path: str | os.PathLike[str], seed: int,
                samples: int) -> tuple[dict[str, list[tuple]], str | None]:
    """Draw ``samples`` parameter tuples per template from the corpus.

    Returns the tuples and, when the samplers could not be bound at all, a note
    saying so (every template is then planned with NULLs).
    """
    try:
        conn = _connect(Path(db_path))
        try:
            bound = workload.bind(conn, seed)
        finally:
            conn.close()
    except UsageError as exc:
        return {}, f"parameters could not be drawn ({exc}); templates are planned with NULLs"
    rng = random.Random(seed)
    out = {}
    for name in workload.templates:
        try:
            out[name] = [tuple(bound.draw_params(name, rng)) for _ in range(samples)]
        except (UsageError, TargetError, SamplerError):
            out[name] = []  # planned with NULLs; the template is still advised
    return out, None


def _connect(db_path: Path) -> Any:
    """A read-only connection of the SQLite target, for binding the workload's samplers."""
    from d1bench.targets import open_target

    return open_target(f"sqlite:{db_path}", readonly=True, estimate_rows=False).connect()
