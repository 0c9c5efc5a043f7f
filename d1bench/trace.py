"""Traces: one row per executed statement, with the run's metadata and histograms.

A trace is a Parquet file.  Its rows are the requests of a replay (see
:data:`COLUMNS`); its key-value metadata holds two JSON documents:

``d1bench.meta``
    the run: format version, target, corpus, workload name and digest, seed,
    schedule, SQLite/d1bench/Python versions, machine, start time, whether it
    was interrupted, and each template's query plan.
``d1bench.histograms``
    one HdrHistogram per template (microseconds of response time, warm-up and
    failed requests excluded), base64 as ``HdrHistogram.encode()`` writes it.
    Histograms merge exactly, so traces of several runs or shards can be added
    without keeping every raw time.

Notebooks and the CLI read traces only through :func:`load_trace`, so the file
layout can change behind ``format_version``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hdrh.histogram import HdrHistogram

from d1bench._atomic import atomic_path
from d1bench.errors import UsageError

__all__ = [
    "COLUMNS",
    "FORMAT_VERSION",
    "Trace",
    "TraceSource",
    "build_histograms",
    "check_output_path",
    "load_trace",
    "metadata_differences",
    "new_histogram",
    "write_trace",
]

#: Bumped when the meaning of a column or metadata key changes; readers refuse newer files.
FORMAT_VERSION = 1

_META_KEY = b"d1bench.meta"
_HIST_KEY = b"d1bench.histograms"

#: Histogram range: 1 microsecond to 60 s (D1's own limit is 30 s per query), 3 significant digits.
HIST_LOWEST_US = 1
HIST_HIGHEST_US = 60_000_000
HIST_DIGITS = 3

#: The request columns, in order, with their Arrow types.  Times ending ``_ns`` are
#: ``time.perf_counter_ns()`` relative to the run's start; ``_ms`` are milliseconds.
COLUMNS: dict[str, pa.DataType] = {
    "run": pa.int32(),            # which run of a merged trace (0 for a single run)
    "unit_index": pa.int64(),     # the arrival's number in the schedule
    "unit": pa.string(),          # the unit's name: a template, or a session
    "kind": pa.string(),          # "query" (one statement) or "session" (several)
    "session_id": pa.int64(),     # the unit index for session steps, null for queries
    "step": pa.int32(),           # the statement's position within its unit
    "worker": pa.int32(),         # thread that ran it (-1 on the asyncio path)
    "template": pa.string(),
    "intended_ns": pa.int64(),    # when it should have been sent
    "sent_ns": pa.int64(),
    "done_ns": pa.int64(),
    "response_ms": pa.float64(),  # intended -> done: the headline, free of coordinated omission
    "service_ms": pa.float64(),   # sent -> done (SQLite: the statement's own call)
    "lag_ms": pa.float64(),       # intended -> sent: how late the client was
    "rows_returned": pa.int64(),
    "rows_read": pa.int64(),      # as D1 bills them; estimated on SQLite; null if unknown
    "rows_written": pa.int64(),
    "db_duration_ms": pa.float64(),  # time inside the database, as the target reports it
    "attempts": pa.int32(),
    "plan_class": pa.string(),
    "all_indexed": pa.bool_(),    # every table access of the plan goes through an index or key
    "error_class": pa.string(),   # null when the statement succeeded
    "error": pa.string(),
    "warmup": pa.bool_(),
    "extra": pa.string(),         # the target's other metadata (D1 region, timings) as JSON
}

_SCHEMA = pa.schema([pa.field(name, typ) for name, typ in COLUMNS.items()])
#: Columns that may hold nulls, as pandas nullable dtypes: their type never depends on the data.
_NULLABLE = {"session_id": "Int64", "rows_read": "Int64", "rows_written": "Int64",
             "all_indexed": "boolean"}


def new_histogram() -> HdrHistogram:
    """An empty response-time histogram in microseconds, as every trace uses."""
    return HdrHistogram(HIST_LOWEST_US, HIST_HIGHEST_US, HIST_DIGITS)


def build_histograms(requests: pd.DataFrame) -> dict[str, HdrHistogram]:
    """Per-template histograms of response time (µs) over measured, successful requests.

    Times are rounded to whole microseconds and clamped into the histogram's
    range; recording each distinct value once with its count keeps this fast.
    """
    ok = requests[~requests["warmup"].astype(bool) & requests["error_class"].isna()]
    out: dict[str, HdrHistogram] = {}
    for template, group in ok.groupby("template", sort=True):
        us = np.clip(np.rint(group["response_ms"].to_numpy(float) * 1000.0),
                     HIST_LOWEST_US, HIST_HIGHEST_US).astype(np.int64)
        hist = new_histogram()
        values, counts = np.unique(us, return_counts=True)
        for value, count in zip(values.tolist(), counts.tolist()):
            hist.record_value(value, count)
        out[str(template)] = hist
    return out


def _frame(table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas()
    for name, dtype in _NULLABLE.items():
        frame[name] = frame[name].astype(dtype)
    return frame


def _copy_histogram(hist: HdrHistogram) -> HdrHistogram:
    copy = new_histogram()
    copy.add(hist)
    return copy


@dataclass(frozen=True, slots=True, eq=False)
class Trace:
    """A recorded replay.

    Attributes:
        requests: one row per executed statement; columns as in :data:`COLUMNS`.
        meta: the run's metadata (see the module docstring).  A merged trace
            keeps each run's own metadata in ``meta["runs"]``.
        histograms: template -> HdrHistogram of response time in microseconds
            (measured, successful requests only).
        path: the file it was read from or written to, if any.
    """

    requests: pd.DataFrame
    meta: Mapping[str, Any]
    histograms: Mapping[str, HdrHistogram] = field(default_factory=dict)
    path: Path | None = None

    @classmethod
    def from_rows(cls, table: pa.Table, meta: Mapping[str, Any]) -> Trace:
        """Build a trace from a table of :data:`COLUMNS` (the recorder's output)."""
        requests = _frame(table.cast(_SCHEMA))
        return cls(requests, dict(meta), build_histograms(requests))

    @property
    def runs(self) -> list[Mapping[str, Any]]:
        """Metadata of each run this trace holds (one unless merged)."""
        return list(self.meta.get("runs") or [self.meta])

    @property
    def measured(self) -> pd.DataFrame:
        """The requests outside warm-up."""
        return self.requests[~self.requests["warmup"].astype(bool)]

    def histogram(self, template: str | None = None) -> HdrHistogram:
        """One template's histogram, or all templates added together (``None``)."""
        if template is not None:
            return _copy_histogram(self.histograms[template])
        total = new_histogram()
        for hist in self.histograms.values():
            total.add(hist)
        return total

    def merge(self, other: Trace, *, force: bool = False) -> Trace:
        """Both traces' requests and histograms, as one trace of several runs.

        Refuses (:class:`UsageError`) traces taken on different machines, corpora
        or workloads, naming what differs, unless ``force=True``.
        """
        diffs = metadata_differences(self.meta, other.meta, ("machine", "corpus", "workload"))
        if diffs and not force:
            raise UsageError("cannot merge traces that differ in " + "; ".join(diffs)
                             + " (pass force=True to merge anyway)")
        offset = int(self.requests["run"].max()) + 1 if len(self.requests) else len(self.runs)
        shifted = other.requests.copy()
        shifted["run"] = (shifted["run"] + offset).astype("int32")
        requests = pd.concat([self.requests, shifted], ignore_index=True)
        histograms = {name: _copy_histogram(h) for name, h in self.histograms.items()}
        for name, hist in other.histograms.items():
            if name in histograms:
                histograms[name].add(hist)
            else:
                histograms[name] = _copy_histogram(hist)
        meta = {k: v for k, v in self.meta.items() if k != "runs"}
        meta.update(merged=True, runs=[*self.runs, *other.runs],
                    interrupted=any(r.get("interrupted", False) for r in [*self.runs, *other.runs]))
        return Trace(requests, meta, histograms)

    def save(self, path: str | os.PathLike[str], *, force: bool = False) -> Path:
        """Write this trace to ``path`` (see :func:`write_trace`)."""
        return write_trace(self, path, force=force)


def _identity(meta: Mapping[str, Any], key: str) -> Any:
    """The part of ``meta[key]`` that decides whether two runs are comparable."""
    value = meta.get(key)
    if key == "machine":
        return value
    if key == "corpus":
        if not value:
            return None
        # A content digest covers the tables' rows, not the indexes: the same data under any
        # index set (replays with writes run on a snapshot, so they leave it as it was).
        # Older traces: a generated corpus's recipe digest; any other database's covered its
        # schema and row counts, which index sets and writes change: its tables' names then.
        if value.get("digest_of") == "content" or value.get("generator") == "d1bench" \
                or "row_counts" not in value:
            return value.get("digest")
        return {"tables": sorted(value["row_counts"])}
    if key == "workload":
        return None if not value else value.get("digest")
    return value


def metadata_differences(a: Mapping[str, Any], b: Mapping[str, Any],
                         keys: tuple[str, ...]) -> list[str]:
    """Human-readable differences between two runs' metadata under ``keys``.

    A value missing on either side (a D1 run without a corpus description) is
    unknown, not different.

    >>> metadata_differences({"machine": {"cpu_count": 2}}, {"machine": {"cpu_count": 8}},
    ...                      ("machine",))
    ['machine (cpu_count: 2 vs 8)']
    """
    out = []
    for key in keys:
        left, right = _identity(a, key), _identity(b, key)
        if left is None or right is None or left == right:
            continue
        if isinstance(left, Mapping) and isinstance(right, Mapping):
            parts = [f"{k}: {left.get(k)} vs {right.get(k)}"
                     for k in sorted(set(left) | set(right)) if left.get(k) != right.get(k)]
            out.append(f"{key} ({', '.join(parts)})")
        else:
            out.append(f"{key} ({left} vs {right})")
    return out


def check_output_path(path: str | os.PathLike[str], *, force: bool) -> Path:
    """Refuse to overwrite an existing file without ``force``; check the folder exists."""
    path = Path(path)
    if path.exists() and not force:
        raise UsageError(f"{path}: already exists (pass --force / force=True to overwrite)")
    if path.is_dir():
        raise UsageError(f"{path}: is a directory, not a trace file")
    if not path.parent.is_dir():
        raise UsageError(f"{path}: folder {path.parent} does not exist")
    return path


def write_trace(trace: Trace, path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write ``trace`` as Parquet, atomically: a reader never sees half a file."""
    path = check_output_path(path, force=force)
    table = pa.Table.from_pandas(trace.requests[list(COLUMNS)], schema=_SCHEMA,
                                 preserve_index=False)
    hists = {name: h.encode().decode("ascii") for name, h in trace.histograms.items()}
    table = table.replace_schema_metadata({
        _META_KEY: json.dumps(trace.meta, default=str).encode(),
        _HIST_KEY: json.dumps(hists).encode(),
    })
    with atomic_path(path, force=force) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return path


#: What names a trace: its file, the trace itself, or its requests as a frame.
TraceSource: TypeAlias = str | os.PathLike[str] | Trace | pd.DataFrame


def load_trace(path: str | os.PathLike[str]) -> Trace:
    """Read a trace written by :func:`d1bench.replay` or :meth:`Trace.save`.

    Raises :class:`UsageError` naming the file when it is missing, is not
    Parquet, has no d1bench metadata, or was written by a newer format.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such trace file")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise UsageError(f"{path}: not a Parquet trace file ({exc})") from None
    kv = table.schema.metadata or {}
    if _META_KEY not in kv:
        raise UsageError(f"{path}: Parquet file without d1bench trace metadata")
    try:
        meta = json.loads(kv[_META_KEY])
        hists = json.loads(kv.get(_HIST_KEY, b"{}"))
    except ValueError as exc:
        raise UsageError(f"{path}: corrupt trace metadata ({exc})") from None
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise UsageError(f"{path}: trace format_version {version!r} is newer than this "
                         f"d1bench reads ({FORMAT_VERSION}); upgrade d1bench")
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise UsageError(f"{path}: trace lacks columns {', '.join(missing)}")
    histograms = {name: HdrHistogram.decode(b64.encode("ascii")) for name, b64 in hists.items()}
    table = table.select(list(COLUMNS)).cast(_SCHEMA).replace_schema_metadata(None)
    return Trace(_frame(table), meta, histograms, path)
