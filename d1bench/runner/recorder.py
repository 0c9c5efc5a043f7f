"""After the run: the workers' row tuples become trace columns; during it, the progress line."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import pyarrow as pa

from d1bench.progress import is_terminal
from d1bench.runner.engine import Row, WorkerRows
from d1bench.runner.schedule import Schedule
from d1bench.trace import COLUMNS, new_histogram

__all__ = ["Progress", "full_rows", "rows_to_table"]

#: Seconds between progress lines when stderr is not a terminal (a CI log).
PLAIN_EVERY_S = 10.0


def _expand(short: Sequence[Row], worker: int, plan: Schedule, t0: int | None) -> list[Row]:
    """Full rows from a worker's short ones (single queries, step 0)."""
    calls, intended = plan.calls, plan.intended
    out = []
    for i, sent, done, nrows, meta in short:
        due = sent if t0 is None else t0 + intended[i]
        call = calls[i]
        assert call is not None  # a short row is a single query's, never a session's
        if nrows < 0:
            out.append((i, 0, worker, call[0], due, sent, done, 0, None, meta))
        else:
            out.append((i, 0, worker, call[0], due, sent, done, nrows, meta, None))
    return out


def full_rows(recorded: Sequence[WorkerRows], plan: Schedule, t0: int, open_loop: bool
              ) -> list[Row]:
    """Every statement the workers recorded, as full rows (see :mod:`d1bench.runner.engine`)."""
    rows: list[Row] = []
    for w in recorded:
        rows.extend(_expand(list(w.short), w.worker, plan, t0 if open_loop else None))
        rows.extend(list(w.full))
    return rows


def rows_to_table(rows: Sequence[Row], plan: Schedule, t0: int, warmup_ns: int, warmup_units: int,
                  plans: Mapping[str, Mapping[str, Any]], *, statement_timing: bool = False
                  ) -> pa.Table:
    """Columns of :data:`d1bench.trace.COLUMNS` from the engine's rows, ordered by send time.

    ``plans`` maps a template to its explained plan (``plan_class``,
    ``all_indexed``).  A unit is warm-up when its first statement was intended
    before ``warmup_ns`` (so a session is never split between the two), or when
    it is one of the first ``warmup_units``.  With ``statement_timing`` (a target
    that times its own statements, :attr:`~d1bench.targets.base.Target.times_statements`)
    a statement that succeeded is done its own duration after it was sent, and a
    session's next step is intended at that end.
    """
    rows = sorted(rows, key=lambda r: (r[5], r[0], r[1]))
    n = len(rows)
    if n:
        (unit_index, step, worker, template, intended, sent, done, nret, metas,
         errors) = (list(col) for col in zip(*rows))
    else:
        unit_index, step, worker, template, intended, sent, done, nret, metas, errors = (
            [] for _ in range(10))
    if statement_timing:
        done = [s + round(m.duration_ms * 1e6) if m is not None and m.duration_ms is not None
                else d for s, d, m in zip(sent, done, metas)]
        # A session's next step is intended when the last one ended: at its new end.
        ends = {(u, k): d for u, k, d in zip(unit_index, step, done)}
        intended = [ends.get((u, k - 1), t) if k else t
                    for u, k, t in zip(unit_index, step, intended)]
    intended = [t - t0 for t in intended]
    sent = [t - t0 for t in sent]
    done = [t - t0 for t in done]
    starts: dict[int, int] = {}
    for i, s, t in zip(unit_index, step, intended):
        if s == 0:
            starts[i] = t
    kinds = [plan.kinds[i] for i in unit_index]
    plan_of = [plans.get(t, {}) for t in template]
    extra = []
    for m in metas:
        extra.append(json.dumps(dict(m.extra), default=str, sort_keys=True)
                     if m is not None and m.extra else None)
    columns = {
        "run": [0] * n,
        "unit_index": unit_index,
        "unit": [plan.names[i] for i in unit_index],
        "kind": kinds,
        "session_id": [i if k == "session" else None for i, k in zip(unit_index, kinds)],
        "step": step,
        "worker": worker,
        "template": template,
        "intended_ns": intended,
        "sent_ns": sent,
        "done_ns": done,
        "response_ms": [(d - t) / 1e6 for d, t in zip(done, intended)],
        "service_ms": [(d - s) / 1e6 for d, s in zip(done, sent)],
        "lag_ms": [(s - t) / 1e6 for s, t in zip(sent, intended)],
        "rows_returned": nret,
        "rows_read": [m.rows_read if m is not None else None for m in metas],
        "rows_written": [m.rows_written if m is not None else None for m in metas],
        "db_duration_ms": [m.duration_ms if m is not None else None for m in metas],
        "attempts": [m.attempts if m is not None else (e[2] if e else 1)
                     for m, e in zip(metas, errors)],
        "plan_class": [p.get("plan_class") for p in plan_of],
        "all_indexed": [p.get("all_indexed") for p in plan_of],
        "error_class": [e[0] if e else None for e in errors],
        "error": [e[1] if e else None for e in errors],
        "warmup": [i < warmup_units or starts.get(i, t) < warmup_ns
                   for i, t in zip(unit_index, intended)],
        "extra": extra,
    }
    return pa.table({name: pa.array(columns[name], type=typ) for name, typ in COLUMNS.items()})


class Progress:
    """A live line on stderr, about twice a second: elapsed, achieved rate, errors, p99 so far.

    The main thread calls :meth:`tick` between waits, reading only the rows
    appended since the last tick, so workers never lock anything for it.  To
    bound its cost at high rates it records at most ``sample`` new rows per tick
    (evenly spaced) into its HdrHistogram: the p99 shown is an estimate, the
    trace's histograms are exact.
    """

    def __init__(self, recorded: Sequence[WorkerRows], plan: Schedule, t0: int, open_loop: bool, *,
                 label: str, stream: TextIO | None = None, sample: int = 2_000) -> None:
        self.lists = [(w.short, True) for w in recorded] + [(w.full, False) for w in recorded]
        self.intended = plan.intended if open_loop else None
        self.t0 = t0
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.sample = sample
        self.seen = [0] * len(self.lists)
        self.count = 0
        self.errors = 0
        self.hist = new_histogram()
        self.width = 0
        # Off a terminal, a plain line every PLAIN_EVERY_S instead of a redrawn one.
        self.terminal = is_terminal(self.stream)
        self.last_plain = 0.0

    def _record(self, new: Sequence[Row], short: bool) -> None:
        stride = max(1, len(new) // self.sample)
        if short:
            self.errors += sum(1 for r in new if r[3] < 0)
            intended, t0 = self.intended, self.t0
            for r in new[::stride]:
                if r[3] >= 0:
                    start = r[1] if intended is None else t0 + intended[r[0]]
                    self.hist.record_value(max(1, min((r[2] - start) // 1000, 60_000_000)))
        else:
            self.errors += sum(1 for r in new if r[9] is not None)
            for r in new[::stride]:
                if r[9] is None:
                    self.hist.record_value(max(1, min((r[6] - r[4]) // 1000, 60_000_000)))

    def tick(self, final: bool = False) -> None:
        for k, (rows, short) in enumerate(self.lists):
            end = len(rows)
            new = rows[self.seen[k]:end]
            self.seen[k] = end
            self.count += len(new)
            self._record(new, short)
        elapsed = (time.perf_counter_ns() - self.t0) / 1e9
        rate = self.count / elapsed if elapsed > 0 else 0.0
        p99 = self.hist.get_value_at_percentile(99) / 1000 if self.hist.get_total_count() else 0
        line = (f"{self.label}  {elapsed:6.1f} s  {self.count:,} requests  {rate:,.1f}/s  "
                f"errors {self.errors:,}  p99 {p99:,.2f} ms")
        if not self.terminal:
            # The verb prints its own summary at the end, so no final line here.
            if not final and elapsed - self.last_plain >= PLAIN_EVERY_S:
                self.last_plain = elapsed
                self.stream.write(line + "\n")
                self.stream.flush()
            return
        self.width = max(self.width, len(line))
        self.stream.write("\r" + line.ljust(self.width))
        self.stream.flush()

    def close(self) -> None:
        self.tick(final=True)
        if self.terminal:
            self.stream.write("\n")
            self.stream.flush()
