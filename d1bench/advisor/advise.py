"""``advise()``: the advisor's stages run in order, and the :class:`Advice` they produce."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from d1bench.advisor.preparation import bind_params, prepare
from d1bench.errors import UsageError
from d1bench.trace import TraceSource
from d1bench.workload.loader import WorkloadSource

__all__ = ["ADVICE_SAMPLES", "PRICING_SAMPLES", "Advice", "advise"]

#: Parameter tuples drawn per template for the search (three, the preparation's default,
#: were too few for skewed samplers: the heavy values, which dominate the mean, were
#: often missed, and an index that serves them looked not worth its writes).
ADVICE_SAMPLES = 8
#: Parameter tuples the reported predictions average over (the first ``samples`` included).
PRICING_SAMPLES = 12


@dataclass(frozen=True, slots=True)
class Advice:
    """What :func:`advise` proposes, and why.

    Attributes:
        indexes: one row per proposed index: ``name``, ``table``, ``columns``,
            ``where`` (partial indexes), ``sql``, ``templates`` (those whose
            plan uses it), ``rows_read_before`` / ``rows_read_after`` (weighted
            rows read of those templates per unit of workload, predicted),
            ``bytes`` (estimated size), ``rows_written_per_insert`` (rows each
            insert into the table now also writes), ``reason``.
        templates: one row per template: ``template``, ``weight``, predicted
            ``rows_read_before`` / ``rows_read_after`` and
            ``rows_written_before`` / ``rows_written_after`` per execution,
            ``plan_before`` / ``plan_after``, ``indexes`` (proposed ones it
            uses) and ``reason`` (why it got nothing, when it got nothing).
        drops: existing indexes proposed for dropping: ``name``, ``table``,
            ``columns``, ``sql``, ``reason``, ``rows_written_per_insert``.
        migration_sql: the wrangler migration (drops, creates, ``PRAGMA optimize;``).
        verification: the measured before/after per template (``verify=True``), else ``None``.
        summary: totals and run facts (predicted weighted rows read and written
            before and after, what-if calls, seconds, stop reason ...).
        migration_path: where the migration was written, if it was.
        priced: the parameter values each template's predicted figures average
            over (what :func:`d1bench.advisor.verify.fidelity` runs again).
    """

    indexes: pd.DataFrame
    templates: pd.DataFrame
    drops: pd.DataFrame
    migration_sql: str
    verification: pd.DataFrame | None = None
    summary: Mapping[str, Any] = field(default_factory=dict)
    migration_path: Path | None = None
    priced: Mapping[str, list[tuple]] = field(default_factory=dict)

    def remaining(self) -> pd.DataFrame:
        """Where the rows read left after the advice come from, largest first.

        One row per template that still reads: ``template``, ``rows_read_after``
        (per execution), ``weighted`` (per unit of workload), ``share`` of the
        workload's total, ``indexes`` (proposed ones it uses) and ``reason``
        (why it got nothing, when it got nothing).  Predicted, like ``templates``.
        """
        t = self.templates
        weighted = (t["weight"] * t["rows_read_after"]).fillna(0.0)
        total = float(weighted.sum())
        out = t.assign(weighted=weighted, share=weighted / total if total > 0 else 0.0)
        out = out[out["weighted"] > 0].sort_values("weighted", ascending=False, kind="stable")
        return out[["template", "rows_read_after", "weighted", "share", "indexes",
                    "reason"]].reset_index(drop=True)

    def __repr__(self) -> str:
        s = self.summary
        return (f"<Advice: {len(self.indexes)} index(es) to create, {len(self.drops)} to drop; "
                f"predicted weighted rows read {s.get('rows_read_before', 0):,.0f} -> "
                f"{s.get('rows_read_after', 0):,.0f}>")


def advise(db_path: str | os.PathLike[str], workload: WorkloadSource, *,
           trace: TraceSource | None = None,
           budget_bytes: float | None = None, write_weight: float = 1000.0,
           verify: bool = False, migrations_dir: str | os.PathLike[str] | None = None,
           force: bool = False, seed: int = 0, samples: int = ADVICE_SAMPLES,
           min_gain: float | None = None, verify_requests: int = 300,
           progress: bool = False, params: Mapping[str, list[tuple]] | None = None,
           verify_max_requests: int | None = None, min_effect: float | None = None,
           verify_max_seconds: float | None = None) -> Advice:
    """Advise indexes for ``workload`` on the corpus at ``db_path``.

    Args:
        db_path: the corpus (read only; it is never analysed or changed).
        workload: ``"medical"``, a workload file, or a ``Workload``.
        trace: a trace (or its path) of the workload; its counts replace the
            workload's weights.
        budget_bytes: most bytes the new indexes may take (``None``: no limit).
        write_weight: the price of a row written in rows read (D1: 1,000).
        verify: build the set on a copy, replay before and after, and report
            the measured difference (:mod:`d1bench.advisor.verify`).
        migrations_dir: write the migration there (wrangler's layout).
        force: replace a d1bench migration that is still the newest there.
        seed: seeds parameter sampling, the data sample and the replays.
        samples: parameter tuples drawn per template.
        min_gain: Extend's stopping threshold (default 0.3% of the cost).
        verify_requests: units of the whole workload each copy replays first.
        verify_max_requests: most units ``verify`` replays on each copy while
            it makes each template's mean rows read known within 5%.
        verify_max_seconds: ``verify`` replays no longer than this after its first
            round (cheapest templates first; ``None``: only ``verify_max_requests``).
        min_effect: ``verify`` calls a template slower only when its median
            grew by more than this fraction (default 0.25) and significantly.
        progress: show progress on stderr.
        params: parameter tuples per template, instead of drawing them.

    Templates that do not parse, or that SQLite cannot plan, are reported
    with their error in ``Advice.templates`` and the rest are advised.
    """
    from d1bench.advisor.candidates import generate
    from d1bench.advisor.costmodel import CostModel
    from d1bench.advisor.evaluate import Case, Evaluator
    from d1bench.advisor.migration import migration_sql, next_migration_path, write_migration
    from d1bench.advisor.report import build_frames
    from d1bench.advisor.select import MIN_GAIN, extend
    from d1bench.advisor.whatif import WhatIf
    from d1bench.sql.naming import Namer

    started = time.perf_counter()
    if not write_weight >= 0:
        raise UsageError(f"write weight must be >= 0, got {write_weight!r}")
    if budget_bytes is not None and not budget_bytes >= 0:
        raise UsageError(f"budget must be a number of bytes >= 0, got {budget_bytes!r}")
    min_gain = MIN_GAIN if min_gain is None else float(min_gain)
    if migrations_dir is not None:
        next_migration_path(migrations_dir, force=force)  # refuse now, not after the work
    drawn = params is None
    prepared = prepare(db_path, workload, trace, seed=seed, samples=samples, params=params)
    path, conn, wl, catalog, stats, infos, params = (
        prepared.path, prepared.conn, prepared.workload, prepared.catalog, prepared.stats,
        prepared.infos, prepared.params)
    weights = prepared.weights()
    notes = list(prepared.notes)
    cases = [Case(name, infos[name], weights.get(name, 0.0), list(params.get(name) or []))
             for name in wl.templates]
    namer = Namer(catalog.indexes)
    named = {c.name: c.named[0] for c in cases}
    candidates = generate(infos, catalog, stats, namer, named)
    _prefetch(stats, catalog, candidates, infos)
    whatif = WhatIf(catalog, stats)
    model = CostModel(catalog, stats)
    ev = Evaluator(cases, whatif, model, catalog, write_weight)
    base = [i for i in catalog.indexes if i.origin == "c"]
    selection = extend(ev, candidates, base, stats.index_bytes, budget=budget_bytes,
                       min_gain=min_gain, progress=progress)
    pricing = ev
    if drawn and PRICING_SAMPLES > samples:
        # The search compares configurations on a few values per template; the
        # figures it reports (and --verify holds against the measured ones) are
        # means over more, the first ones unchanged so the plans stay the same.
        more, _ = bind_params(wl, path, seed + 1, PRICING_SAMPLES - samples)
        priced = [Case(c.name, c.info, c.weight, [*c.params, *(more.get(c.name) or [])])
                  if params.get(c.name) else c for c in cases]
        pricing = Evaluator(priced, whatif, model, catalog, write_weight, memo=ev.memo)
    frames = build_frames(pricing, selection, candidates, base, stats, budget_bytes, min_gain)
    header = [(f"workload {wl.name}: {len(selection.added)} index(es) to create, "
               f"{len(selection.dropped)} to drop"),
              (f"predicted weighted rows read {frames.summary['rows_read_before']:,.0f} -> "
               f"{frames.summary['rows_read_after']:,.0f} per unit of workload")]
    sql = migration_sql(frames.added, selection.dropped, header=header)
    written = write_migration(migrations_dir, sql, force=force) if migrations_dir else None
    summary = dict(frames.summary)
    summary.update(
        workload=wl.name, corpus=str(path), write_weight=write_weight, budget_bytes=budget_bytes,
        min_gain=min_gain, candidates=len(candidates), steps=len(selection.steps),
        stopped=selection.stopped, whatif_calls=whatif.calls, whatif_plans=whatif.misses,
        seconds=time.perf_counter() - started, notes=notes,
        weights="trace" if trace is not None else "workload")
    priced_params = {c.name: list(c.params) for c in pricing.cases.values()
                     if params.get(c.name)}
    verification = None
    if verify:
        from d1bench.advisor.verify import MIN_EFFECT
        from d1bench.advisor.verify import verify as run_verify

        verification = run_verify(path, wl, sql, requests=verify_requests, seed=seed,
                                  progress=progress, predicted=frames.templates,
                                  priced=priced_params,
                                  max_requests=verify_max_requests,
                                  max_seconds=verify_max_seconds,
                                  min_effect=MIN_EFFECT if min_effect is None else min_effect)
        summary["verify_seconds"] = verification.attrs.get("seconds")
        summary["fidelity"] = verification.attrs.get("fidelity")
    conn.close()
    return Advice(indexes=frames.indexes, templates=frames.templates, drops=frames.drops,
                  migration_sql=sql, verification=verification, summary=summary,
                  migration_path=written, priced=priced_params)


def _prefetch(stats: Any, catalog: Any, candidates: Mapping, infos: Mapping) -> None:
    """Read every key the later stages will ask about in one scan per table."""
    from d1bench.advisor.query import ROWID

    wanted: dict[str, set[str]] = {}
    for cand in candidates.values():
        idx = cand.index
        wanted.setdefault(idx.table, set()).update(k.expr for k in idx.keys)
        if idx.where:
            wanted[idx.table].add(f"({idx.where})")
    for idx in catalog.indexes:
        wanted.setdefault(idx.table, set()).update(k.expr for k in idx.keys)
        if idx.where:
            wanted[idx.table].add(f"({idx.where})")
    for info in infos.values():
        for p in info.preds:
            if p.key is not None and 0 <= p.ref < len(info.refs) and info.refs[p.ref].kind == "table":
                wanted.setdefault(info.refs[p.ref].name, set()).add(p.key)
    for table, keys in wanted.items():
        td = catalog.table(table)
        if td is not None and td.kind == "table":
            stats.prefetch(table, keys | {ROWID})
