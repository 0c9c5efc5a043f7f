"""``fix()``: indexes first, then every rewrite stage, each step checked and measured, one plan.

The advisor's indexes (:func:`d1bench.advisor.advise`) are built on two scratch
copies first (:class:`~d1bench.fixer.check.Copies`): the rewrites start from
there, so a step's saving is what it adds beyond good indexes.  Each proposed
rewrite runs on them without and with its DDL (rolled back afterwards), is
checked equivalent on the sampled parameters, and is measured in D1's rows
read and written; a rewrite whose DDL adds triggers has
every write template of the workload measured too, so their write cost is in
the step.  The plan orders the steps by dollars a month saved at the given
request rate (prices from :mod:`d1bench.cost`); the user's database is only read.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from d1bench.errors import UsageError
from d1bench.fixer.check import Copies, Measured, Scratch, check
from d1bench.fixer.model import Context, Rewrite, Skip
from d1bench.workload.loader import WorkloadSource

__all__ = ["BACKFILL_SUFFIX", "DEFAULT_RATE", "DEFAULT_SAMPLES", "MIGRATION_SUFFIX", "PLAN_COLUMNS",
           "FixPlan", "fix"]

#: Requests per second the dollars are priced at, unless told (the issue's yardstick).
DEFAULT_RATE = 100.0
#: Parameter tuples sampled per template for each equivalence check.
DEFAULT_SAMPLES = 5
#: The migration's file name after its number (wrangler's ``NNNN_name.sql``).
MIGRATION_SUFFIX = "d1bench_fix.sql"

PLAN_COLUMNS = ["step", "kind", "target", "exact", "equivalent", "trials", "recall",
                "rows_read_before", "rows_read_after", "rows_written_before",
                "rows_written_after", "weight", "rows_read_saved", "rows_written_added",
                "usd_month_saved", "bytes", "sql", "ddl", "backfill", "note"]
#: The backfill's file name after the migration's number: not ``.sql``, so wrangler does not
#: take it for a migration (its statements are sent one request each, after the migration).
BACKFILL_SUFFIX = "d1bench_fix.backfill"


@dataclass(frozen=True, slots=True)
class FixPlan:
    """What :func:`fix` proposes, ordered by dollars a month saved.

    Attributes:
        steps: one row per step (the advised indexes are one step, ``kind``
            ``indexes``): ``kind``, ``target`` (template, session or trigger),
            ``exact`` (claimed), ``equivalent`` (trials that gave the same rows)
            of ``trials``, ``recall`` (an approximate step's recall@k),
            ``rows_read_before`` / ``_after`` and ``rows_written_before`` /
            ``_after`` per execution, ``weight`` (executions per unit of
            workload), ``rows_read_saved`` / ``rows_written_added`` per unit,
            ``usd_month_saved``, ``bytes`` the DDL adds, ``sql`` (what the
            application sends instead), ``ddl``, ``backfill`` (statements filling
            what the DDL built for the rows already stored), ``note``.
        rejected: proposals not in the plan, with ``kind``, ``target``, ``reason``.
        migration_sql: the plan's schema parts as one wrangler migration.
        summary: totals (weighted rows read and written per unit before and
            after, the monthly bill before and after at ``rate``), run facts.
        migration_path: where the migration was written, if it was.
        backfill_sql: the steps' backfills, one statement a line, to send one
            request each after the migration ("" if no step needs one).
        backfill_path: where the backfill was written, if it was.
    """

    steps: pd.DataFrame
    rejected: pd.DataFrame
    migration_sql: str
    summary: Mapping[str, Any] = field(default_factory=dict)
    migration_path: Path | None = None
    backfill_sql: str = ""
    backfill_path: Path | None = None

    def __repr__(self) -> str:
        s = self.summary
        return (f"<FixPlan: {len(self.steps)} step(s); weighted rows read "
                f"{s.get('rows_read_none', 0):,.0f} -> {s.get('rows_read_after', 0):,.0f}; "
                f"${s.get('usd_month_before', 0):,.2f} -> ${s.get('usd_month_after', 0):,.2f} a month>")


def _usd(rows_read: float, rows_written: float, rate: float) -> float:
    """Dollars a month for this many rows per unit at ``rate`` units a second, beyond allowances."""
    from d1bench.cost import monthly_cost

    bill = monthly_cost(max(rows_read, 0.0), max(rows_written, 0.0), rate)
    return float(bill.loc["total", "cost_usd"])


def _price(rows_read: float, rows_written: float, rate: float) -> float:
    """Marginal dollars a month of rows per unit (no allowance: a step's own worth)."""
    from d1bench.cost import DAYS_PER_MONTH, PLANS, SECONDS_PER_DAY

    p = PLANS["paid"]
    units = rate * SECONDS_PER_DAY * DAYS_PER_MONTH / 1e6
    return units * (rows_read * p.usd_per_million_read + rows_written * p.usd_per_million_written)


def fix(db_path: str | os.PathLike[str], workload: WorkloadSource, *, verify: bool = False,
        migrations_dir: str | os.PathLike[str] | None = None, force: bool = False,
        seed: int = 0, samples: int = DEFAULT_SAMPLES, rate: float = DEFAULT_RATE,
        indexes: bool | str = True, progress: bool = False) -> FixPlan:
    """One plan to cut ``workload``'s D1 bill on the corpus at ``db_path``.

    Args:
        db_path: the corpus (read only; every change is made on scratch copies).
        workload: ``"medical"``, a workload file, or a ``Workload``.
        verify: apply every step together on one more copy and check each
            rewrite again there (steps that interfere are caught).
        migrations_dir: write the schema parts there as ``NNNN_d1bench_fix.sql``, and
            the backfill (if a step needs one) beside it as ``NNNN_d1bench_fix.backfill``.
        force: replace an existing fix migration that is still the newest.
        seed: seeds parameter sampling.
        samples: parameter tuples per template for each equivalence check.
        rate: units of workload a second, to price the plan in dollars a month.
        indexes: start from the advisor's indexes (``False``: from the schema as it is;
            a string: from this index migration, say ``advise(...).migration_sql`` made
            already, which saves advising twice).
        progress: show progress on stderr.
    """
    from d1bench.advisor.preparation import as_workload as _load
    from d1bench.advisor.preparation import open_corpus, template_weights
    from d1bench.fixer.measure import measure_templates, sample_params
    from d1bench.sql.catalog import read_catalog

    started = time.perf_counter()
    if not rate >= 0:
        raise UsageError(f"rate must be a number of requests a second >= 0, got {rate!r}")
    if samples < 1:
        raise UsageError(f"samples must be at least 1, got {samples!r}")
    if migrations_dir is not None:
        _migration_path(migrations_dir, force=force)  # refuse now, not after the work
    path = Path(db_path)
    open_corpus(path).close()
    wl = _load(workload)
    weights = template_weights(wl)
    shares = wl.shares()
    params = sample_params(wl, path, seed, samples)
    index_sql = indexes if isinstance(indexes, str) else ""
    if indexes is True:
        from d1bench.advisor import advise

        index_sql = advise(path, wl, seed=seed, progress=progress).migration_sql
    with tempfile.TemporaryDirectory(prefix="d1bench-fix-") as tmp, Copies(path, tmp) as copies:
        pair = copies.step(index_sql or None)
        try:
            measured = measure_templates(pair, wl, params, list(wl.templates))
            index_bytes = pair.added_bytes()
        finally:
            pair.close()
        copies.commit(index_sql + "\nANALYZE;")
        conn = open_corpus(copies.paths[0])
        try:
            ctx = Context(read_catalog(conn), conn, wl, weights, params,
                          {s: shares.get(s, 0.0) for s in wl.sessions})
            proposals, skips = _propose(ctx)
        finally:
            conn.close()  # the proposals are made: the steps use the copies' own connections
        rows, rejected = [], [{"kind": s.kind, "target": s.target, "reason": s.reason}
                              for s in skips]
        if index_sql:
            rows.append(_index_row(measured, weights, index_sql, index_bytes, rate))
        writes = [n for n, t in wl.templates.items() if t.is_write]
        accepted: list[tuple[Rewrite, Measured]] = []
        for rw in _best_per_template(proposals):
            row, reason, m = _step(rw, copies, ctx, writes, rate)
            if reason:
                rejected.append({"kind": rw.kind, "target": rw.target, "reason": reason})
            else:
                rows.append(row)
                accepted.append((rw, m))
        verification = _verify(copies, accepted, ctx) if verify else None
    steps = pd.DataFrame(rows, columns=PLAN_COLUMNS)
    steps = steps.sort_values("usd_month_saved", ascending=False, kind="stable")
    steps["step"] = range(1, len(steps) + 1)
    steps = steps.reset_index(drop=True)
    migration = _migration_text(steps, wl.name)
    backfill = _backfill_text(steps, wl.name)
    read_none = sum(weights.get(n, 0.0) * m.rows_read_before for n, m in measured.items())
    written_none = sum(weights.get(n, 0.0) * m.rows_written_before for n, m in measured.items())
    read_after = read_none - float(steps["rows_read_saved"].sum())
    written_after = written_none + float(steps["rows_written_added"].sum())
    summary = {
        "workload": wl.name, "corpus": str(path), "rate": rate, "samples": samples,
        "rows_read_none": read_none, "rows_read_after": read_after,
        "rows_read_cut": 1 - read_after / read_none if read_none > 0 else 0.0,
        "rows_written_none": written_none, "rows_written_after": written_after,
        "usd_month_before": _usd(read_none, written_none, rate),
        "usd_month_after": _usd(read_after, written_after, rate),
        "exact_steps_equivalent": bool(all(steps.loc[steps["exact"], "equivalent"]
                                           == steps.loc[steps["exact"], "trials"])),
        "verified": None if verification is None else verification,
        "seconds": time.perf_counter() - started,
    }
    written = filled = None
    if migrations_dir:
        written, filled = _write_migration(migrations_dir, migration, force, backfill)
    return FixPlan(steps, pd.DataFrame(rejected, columns=["kind", "target", "reason"]),
                   migration, summary, written, backfill, filled)


def _propose(ctx: Context) -> tuple[list[Rewrite], list[Skip]]:
    from d1bench.fixer.kinds import SCHEMA_STAGES, SESSION_STAGES, TEMPLATE_STAGES

    found: list[Rewrite] = []
    skips: list[Skip] = []
    jobs = [(stage, name) for name in ctx.workload.templates for stage in TEMPLATE_STAGES]
    jobs += [(stage, name) for name in ctx.workload.sessions for stage in SESSION_STAGES]
    jobs += [(stage, name) for name in ctx.catalog.triggers for stage in SCHEMA_STAGES]
    for stage, name in jobs:
        out = stage.propose(name, ctx)
        if isinstance(out, Rewrite):
            found.append(out)
        elif isinstance(out, Skip):
            skips.append(out)
    return found, skips


def _best_per_template(proposals: list[Rewrite]) -> list[Rewrite]:
    """One proposal per target: the first stage that applied (stages are ordered by preference)."""
    seen: set[str] = set()
    out = []
    for rw in proposals:
        if rw.target not in seen:
            seen.add(rw.target)
            out.append(rw)
    return out


def _samples_for(rw: Rewrite, ctx: Context) -> list[tuple]:
    name = next(iter(rw.templates), rw.target)
    if name in ctx.workload.sessions:  # a session's trials start from its first step's values
        name = ctx.workload.sessions[name].steps[0].template
    return list(ctx.params.get(name) or [()] if name in ctx.workload.templates else [()])


def _step(rw: Rewrite, copies: Copies, ctx: Context, writes: list[str],
          rate: float) -> tuple[dict, str | None, Measured]:
    from d1bench.errors import TargetError
    from d1bench.fixer.kinds.vector import RECALL_TARGET as recall_target
    from d1bench.fixer.measure import measure_templates

    try:
        pair = _scratch(copies, [rw])
    except Exception as exc:  # noqa: BLE001 - a DDL SQLite refuses is a reason, not a crash
        return {}, f"its DDL does not run: {exc}", Measured(0, 0, 0, 0, 0, 0, 0.0)
    try:
        m = check(rw, pair, _samples_for(rw, ctx))
        write_cost = {}
        if rw.writes:
            try:
                write_cost = measure_templates(pair, ctx.workload, ctx.params, writes)
            except TargetError as exc:
                return {}, f"a write template fails after its DDL: {exc}", m
        nbytes = pair.added_bytes()
    finally:
        pair.close()
    if m.error:
        return {}, f"its trials did not run: {m.error}", m
    if m.trials == 0:
        return {}, "no sampled parameters to check it with", m
    if rw.exact and not m.all_equivalent:
        return {}, (f"not equivalent: {m.trials - m.equivalent} of {m.trials} trials gave other "
                    f"rows ({'; '.join(m.failures)})"), m
    if not rw.exact and m.recall < recall_target:
        return {}, (f"approximate, and its measured recall {m.recall:.2f} is below "
                    f"{recall_target:.2f}"), m
    weight = sum(ctx.weights.get(t, 0.0) * f if t in ctx.workload.templates
                 else ctx.session_weights.get(t, 0.0) * f for t, f in rw.templates.items())
    read_saved = weight * (m.rows_read_before - m.rows_read_after)
    written_added = weight * (m.rows_written_after - m.rows_written_before)
    written_added += sum(ctx.weights.get(n, 0.0) * max(
        x.rows_written_after - x.rows_written_before, rw.trigger_writes.get(n, 0.0))
        for n, x in write_cost.items())
    read_saved -= sum(ctx.weights.get(n, 0.0) * (x.rows_read_after - x.rows_read_before)
                      for n, x in write_cost.items())
    usd = _price(read_saved, -written_added, rate)
    if usd <= 0 and read_saved <= 0:
        return {}, (f"saves nothing measurable in this workload ({m.rows_read_before:,.0f} -> "
                    f"{m.rows_read_after:,.0f} rows read, {m.rows_written_before:,.1f} -> "
                    f"{m.rows_written_after:,.1f} written per trial)"), m
    row = {"step": 0, "kind": rw.kind, "target": rw.target, "exact": rw.exact,
           "equivalent": m.equivalent, "trials": m.trials,
           "recall": m.recall if not rw.exact else 1.0,
           "rows_read_before": m.rows_read_before, "rows_read_after": m.rows_read_after,
           "rows_written_before": m.rows_written_before, "rows_written_after": m.rows_written_after,
           "weight": weight, "rows_read_saved": read_saved, "rows_written_added": written_added,
           "usd_month_saved": usd, "bytes": nbytes, "sql": rw.sql, "ddl": rw.ddl,
           "backfill": rw.backfill_sql, "note": rw.note}
    return row, None, m


def _index_row(measured: Mapping[str, Measured], weights: Mapping[str, float], sql: str,
               nbytes: float, rate: float) -> dict:
    before = sum(weights.get(n, 0.0) * m.rows_read_before for n, m in measured.items())
    after = sum(weights.get(n, 0.0) * m.rows_read_after for n, m in measured.items())
    wb = sum(weights.get(n, 0.0) * m.rows_written_before for n, m in measured.items())
    wa = sum(weights.get(n, 0.0) * m.rows_written_after for n, m in measured.items())
    trials = sum(m.trials for m in measured.values())
    return {"step": 0, "kind": "indexes", "target": "(workload)", "exact": True,
            "equivalent": sum(m.equivalent for m in measured.values()), "trials": trials,
            "recall": 1.0, "rows_read_before": before, "rows_read_after": after,
            "rows_written_before": wb, "rows_written_after": wa, "weight": 1.0,
            "rows_read_saved": before - after, "rows_written_added": wa - wb,
            "usd_month_saved": _price(before - after, wb - wa, rate), "bytes": nbytes,
            "sql": "", "ddl": sql.strip(), "backfill": "",
            "note": "the advisor's index set (d1bench advise)"}


def _scratch(copies: Copies, rewrites: list[Rewrite]) -> Scratch:
    """The copies without and with the rewrites' DDL, backfilled by their fast fill where they
    have one, else by running their backfill statements."""
    ddl = [rw.ddl for rw in rewrites if rw.ddl.strip()]
    ddl += [rw.backfill_sql for rw in rewrites if rw.backfill is None and rw.backfill_sql.strip()]
    return copies.step("\n".join(ddl), fills=[rw.backfill for rw in rewrites if rw.backfill is not None])


def _verify(copies: Copies, accepted: list[tuple[Rewrite, Measured]], ctx: Context) -> bool:
    """Every accepted rewrite checked again with all the steps' DDL applied together."""
    pair = _scratch(copies, [rw for rw, _ in accepted])
    try:
        return all(check(rw, pair, _samples_for(rw, ctx)).all_equivalent or not rw.exact
                   for rw, _ in accepted)
    finally:
        pair.close()


def _migration_text(steps: pd.DataFrame, workload: str) -> str:
    lines = [f"-- Generated by d1bench fix for workload {workload}: the plan's schema parts,",
             "-- in plan order.  Change the application's SQL as the plan says after applying it."]
    for _, s in steps.iterrows():
        if s["ddl"]:
            lines.append(f"\n-- step {s['step']}: {s['kind']} for {s['target']}")
            lines.append(s["ddl"].strip())
    lines.append("\nPRAGMA optimize;")
    return "\n".join(lines) + "\n"


def _backfill_text(steps: pd.DataFrame, workload: str) -> str:
    parts = [(s["step"], s["kind"], s["target"], s["backfill"].strip())
             for _, s in steps.iterrows() if s["backfill"].strip()]
    if not parts:
        return ""
    lines = [f"-- Generated by d1bench fix for workload {workload}: after applying the migration,",
             "-- send each statement below as its own request (one a line), e.g.",
             "--   wrangler d1 execute DB --remote --command \"<the line>\"",
             "-- A migration is one request, held to D1's 30 s; each of these stays inside it.",
             "-- The migration's triggers keep new rows current meanwhile; every statement can be",
             "-- run again safely, so an interrupted backfill is resumed by running it all again."]
    for step, kind, target, sql in parts:
        lines.append(f"-- step {step}: {kind} for {target}")
        lines.append(sql)
    return "\n".join(lines) + "\n"


def _migration_path(directory: str | os.PathLike[str], *, force: bool) -> Path:
    folder = Path(directory)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder}: not a folder (give the migrations folder)")
    existing = sorted((p for p in folder.glob("*_*.sql") if p.name.split("_", 1)[0].isdigit()),
                      key=lambda p: int(p.name.split("_", 1)[0])) if folder.is_dir() else []
    if existing and existing[-1].name.endswith(MIGRATION_SUFFIX):
        if not force:
            raise UsageError(f"{existing[-1]}: the newest migration is already a d1bench fix "
                             "plan; apply it first, or pass --force (force=True) to replace it")
        return existing[-1]
    top = max((int(p.name.split("_", 1)[0]) for p in existing), default=0)
    return folder / f"{top + 1:04d}_{MIGRATION_SUFFIX}"


def _write_migration(directory: str | os.PathLike[str], sql: str, force: bool,
                     backfill: str = "") -> tuple[Path, Path | None]:
    from d1bench._atomic import write_atomic

    path = _migration_path(directory, force=force)
    path.parent.mkdir(parents=True, exist_ok=True)
    stale = path.with_name(path.name[: -len(MIGRATION_SUFFIX)] + BACKFILL_SUFFIX)
    filled = write_atomic(stale, backfill, force=force) if backfill else None
    if not backfill and force:
        stale.unlink(missing_ok=True)  # the replaced plan's backfill is not this one's
    return write_atomic(path, sql, force=force), filled
