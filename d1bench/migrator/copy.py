"""Copy rows: source cursor -> type rules -> sink, in key order, resumable, with a checksum.

Each table streams through the source's server-side cursor ordered by its
key; every batch is converted by the table's type rules and written with the
last key it holds (see :mod:`d1bench.migrator.sinks`), so a rerun continues
after that key.  A table without a key cannot say where it stopped: it is
emptied and copied again.

While rows pass, the copy computes the source side of the validation
checksum (see :func:`row_digest`) and keeps a few rows as samples, so
validation need not read the source a second time.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from d1bench.migrator.convert import TablePlan
from d1bench.migrator.digest import MASK as _MASK
from d1bench.migrator.digest import batch_digest, row_digest, table_digest
from d1bench.migrator.sinks import Sink
from d1bench.migrator.source import Source
from d1bench.uploader.packing import quote

__all__ = ["CopyResult", "batch_digest", "converter", "copy_table", "row_digest", "table_digest"]

SAMPLES = 5

BatchHook = Callable[[str, int], None]


def converter(plan: TablePlan) -> Callable[[Sequence[tuple[Any, ...]]], list[tuple[Any, ...]]] | None:
    """The function that turns a batch of source rows into stored rows (None: rows go as they are).

    It works column by column (transpose, ``map`` each rule over its column,
    transpose back), which keeps the per-value work inside C loops.
    """
    fns = [(i, rule.strict if rule.strict is not None and not column.nullable else rule.convert)
           for i, (rule, column) in enumerate(zip(plan.rules, plan.source.columns, strict=True))
           if rule.convert is not None]
    if not fns:
        return None

    def convert(rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        if not rows:
            return []
        cols = list(zip(*rows, strict=True))
        for i, f in fns:
            cols[i] = tuple(map(f, cols[i]))  # rules pass None through; strict ones see none
        return list(zip(*cols, strict=True))

    return convert


class _Keys:
    """The source key of each row of a batch, computed only when a sink asks for it."""

    __slots__ = ("_at", "_batch")

    def __init__(self, batch: Sequence[tuple[Any, ...]], at: tuple[int, ...]) -> None:
        self._batch, self._at = batch, at

    def __len__(self) -> int:
        return len(self._batch)

    def __getitem__(self, i: int) -> tuple[Any, ...] | None:
        if not self._at:
            return None
        row = self._batch[i]
        return tuple(row[j] for j in self._at)


@dataclass(frozen=True)
class CopyResult:
    """What copying one table did.

    ``checksum`` covers every source row when the table was copied in this run
    from its start; None after a resume (validation then reads the source again).
    """

    table: str
    rows_copied: int
    rows_total: int
    seconds: float
    checksum: int | None
    resumed: bool
    samples: tuple[tuple[Any, ...], ...]


def copy_table(source: Source, sink: Sink, plan: TablePlan, *, batch_rows: int,
               progress: bool = True, total_hint: int | None = None,
               on_batch: BatchHook | None = None) -> CopyResult:
    """Copy one table (or what is left of it after an interruption)."""
    from tqdm.auto import tqdm

    started = time.perf_counter()
    last, done_rows, finished = sink.state().get(plan.name, (None, 0, False))
    if finished:
        return CopyResult(plan.name, 0, done_rows, 0.0, None, True, ())
    resumed = last is not None
    if not plan.key and done_rows:
        sink.run([f"DELETE FROM {quote(plan.name)}"])  # no key to resume after: start again
        done_rows, resumed = 0, False
    convert = converter(plan)
    key_index = plan.key_index
    rng = random.Random(plan.name)
    samples: list[tuple[Any, ...]] = []
    checksum = 0
    bar = tqdm(total=total_hint, initial=done_rows, desc=plan.name, unit=" rows",
               disable=not progress or not sys.stderr.isatty(), leave=False)
    n_batches = 0
    copied = 0
    try:
        for batch in source.stream(plan.source, plan.key, last, batch_rows):
            rows = convert(batch) if convert else [tuple(r) for r in batch]
            done_rows += len(rows)
            sink.write(plan.name, plan.columns, rows, _Keys(batch, key_index), done_rows)
            checksum = (checksum + batch_digest(rows)) & _MASK
            # Samples: one random row of each batch, kept by reservoir over the batches.
            n_batches += 1
            pick = rows[rng.randrange(len(rows))]
            if len(samples) < SAMPLES:
                samples.append(pick)
            elif (j := rng.randrange(n_batches)) < SAMPLES:
                samples[j] = pick
            copied += len(rows)
            bar.update(len(rows))
            if on_batch is not None:
                on_batch(plan.name, n_batches)
    finally:
        bar.close()
    if plan.sequence is not None:
        sink.run_params([("DELETE FROM sqlite_sequence WHERE name = ?", [plan.name]),
                         ("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)",
                          [plan.name, plan.sequence])])
    sink.mark(plan.name, None, done_rows, True)
    return CopyResult(plan.name, copied, done_rows, time.perf_counter() - started,
                      None if resumed else checksum, resumed, tuple(samples))
