"""Does the SQLite target's rows-read estimate match what D1 bills?

Goal (issue 5): for every template of the ``medical`` workload, the SQLite
target's estimate of D1's rows read (``Meta.rows_read``, computed from the
statement's bytecode and SQLite's counters, see ``d1bench.targets.rowcount``;
calibrated on draws of its own, then deferred until after the executions, as a
replay computes it)
is within 10% of a real local D1's exact ``meta.rows_read`` (workerd's own
counters), summed over the same draws.

How: one corpus (generated, or ``--db``) is uploaded into a fresh local D1
(Miniflare on 127.0.0.1).  The workload is bound once, against the SQLite
file, and each template's parameters are drawn once from one seeded
generator: both targets receive exactly the same statements with exactly the
same values.  Read templates run first, on the corpus itself (opened
read-only) and on local D1.  Write templates (insert, update) then run on a
copy of the corpus and on local D1 through a connection that allows writes,
and are compared on rows written as well as rows read.  The error of a
template is ``|estimate - D1| / D1`` over its summed draws; the worst single
draw is reported beside it.  Whether SQLite and D1 chose the same query
plan (``EXPLAIN QUERY PLAN``) is reported too: a different plan is the first
suspect for a large error, since the estimate follows the local plan.

A template whose first execution takes longer than ``--slow-s`` seconds on
both targets is skipped, and listed under ``skipped`` in the JSON (and then
``ok`` is false: a skipped template is not shown to be within the goal).

The same comparison runs on the fixture schemas nobody tuned for
(``--schema shop``, ``saas`` or ``events``, the last two generated at
``--scale``), and with the advisor's index set built on the corpus first
(``--advised``: the set ``d1bench advise`` proposes for the workload, so that
the estimate is checked on the partial indexes, composites and write costs the
advisor's predictions are held against).

Run: ``python benchmarks/rows_read_fidelity.py [--db CORPUS] [--papers 10000]
[--draws 20] [--seed 0] [--schema medical|shop|saas|events] [--scale 1] [--advised]``.  Without ``--db`` the corpus is generated in a
temporary folder; with ``--db`` an existing corpus is reused (and a missing one
generated there).  A readable table goes to stderr; stdout gets ONE JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GOAL_PCT = 10.0


@dataclass(slots=True)
class Comparison:
    """One template's draws on both targets, summed."""

    name: str
    kind: str  #: "read" or "write"
    draws: int = 0
    est_read: int = 0
    d1_read: int = 0
    est_written: int = 0
    d1_written: int = 0
    worst_draw_pct: float = 0.0
    same_plan: bool | None = None
    seconds_sqlite: float = 0.0
    seconds_d1: float = 0.0
    missing_estimates: int = 0  #: draws the SQLite target gave no estimate for
    notes: list[str] = field(default_factory=list)

    @property
    def read_pct(self) -> float:
        return error_pct(self.est_read, self.d1_read)

    @property
    def written_pct(self) -> float:
        return error_pct(self.est_written, self.d1_written)

    @property
    def worst_pct(self) -> tuple[float, str]:
        if self.kind == "write" and self.written_pct > self.read_pct:
            return self.written_pct, "rows_written"
        return self.read_pct, "rows_read"


def error_pct(estimate: int, exact: int) -> float:
    """Relative error of ``estimate`` against ``exact``, in percent.

    >>> error_pct(105, 100), error_pct(0, 0), error_pct(3, 0)
    (5.0, 0.0, 100.0)
    """
    if exact == 0:
        return 0.0 if estimate == 0 else 100.0
    return abs(estimate - exact) * 100.0 / exact


def _plan(conn: Any, sql: str, params: tuple[Any, ...]) -> list[str] | None:
    try:
        return [step.detail for step in conn.explain(sql, params)]
    except Exception:  # noqa: BLE001 - the plan is a diagnostic, not the measure
        return None


def _timed(conn: Any, sql: str, params: tuple[Any, ...]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = conn.execute(sql, params)
    return result, time.perf_counter() - started


def compare(template: Any, draws: list[tuple[Any, ...]], local: Any, d1: Any,
            slow_s: float, calibration: list[tuple[Any, ...]] | None = None
            ) -> tuple[Comparison | None, str | None]:
    """Run ``draws`` of ``template`` on both connections; (comparison, reason skipped)."""
    c = Comparison(template.name, template.kind)
    local_plan = _plan(local, template.sql, draws[0])
    d1_plan = _plan(d1, template.sql, draws[0])
    if local_plan is not None and d1_plan is not None:
        c.same_plan = local_plan == d1_plan
    # The SQLite side estimates as a replay does: analysed and calibrated on draws of
    # its own before the executions (which then count only what the estimate uses),
    # deferred, and worked out after them (``finish_estimates``).
    local.defer_estimates()
    local.prepare(template.sql, draws[0], None, calibration or ())
    pairs = []
    for i, params in enumerate(draws):
        mine, t_local = _timed(local, template.sql, params)
        theirs, t_d1 = _timed(d1, template.sql, params)
        if i == 0 and t_local > slow_s and t_d1 > slow_s:
            local.defer_estimates(False)
            return None, (f"one execution took {t_local:.1f} s on SQLite and {t_d1:.1f} s on "
                          f"local D1 (over --slow-s {slow_s:g})")
        c.seconds_sqlite += t_local
        c.seconds_d1 += t_d1
        pairs.append((mine, theirs))
    local.defer_estimates(False)  # finishes the pending estimates first
    for mine, theirs in pairs:
        if mine.meta.rows_read is None or (c.kind == "write" and mine.meta.rows_written is None):
            c.missing_estimates += 1
        est_r, est_w = mine.meta.rows_read or 0, mine.meta.rows_written or 0
        d1_r, d1_w = theirs.meta.rows_read, theirs.meta.rows_written
        if d1_r is None or d1_w is None:
            raise RuntimeError(f"{template.name}: local D1 sent no rows_read/rows_written in meta")
        c.draws += 1
        c.est_read += est_r
        c.d1_read += d1_r
        c.est_written += est_w
        c.d1_written += d1_w
        worst = error_pct(est_r, d1_r)
        if c.kind == "write":
            worst = max(worst, error_pct(est_w, d1_w))
        c.worst_draw_pct = max(c.worst_draw_pct, worst)
        if len(mine.rows) != len(theirs.rows) and "rows returned differ" not in c.notes:
            c.notes.append("rows returned differ")
    return c, None


def _corpus(args: argparse.Namespace, scratch: Path) -> Path:
    from d1bench import generate_corpus

    if args.schema != "medical":
        from advisor_vs_expert import _schema_db

        db, _workload = _schema_db(args.schema, scratch, args.scale, args.seed)
        return db
    if args.db is not None and args.db.exists():
        return args.db
    path = args.db if args.db is not None else scratch / f"corpus-{args.papers}.sqlite"
    print(f"generating a {args.papers:,}-paper corpus (seed {args.seed}) at {path}",
          file=sys.stderr)
    generate_corpus(path, papers=args.papers, seed=args.seed, progress=True)
    return path


def _paper_count(path: Path) -> int | None:
    import apsw

    db = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return int(db.execute("SELECT count(*) FROM papers").fetchall()[0][0])
    except apsw.SQLError:
        return None  # not the medical schema
    finally:
        db.close()


def _workload(args: argparse.Namespace) -> Any:
    from d1bench import load_workload

    if args.schema == "medical":
        return load_workload("medical")
    from advisor_vs_expert import ROOT

    base = ROOT / "tests" / "fixtures"
    path = base / "advice" / "shop" if args.schema == "shop" else base / "schemas" / args.schema
    return load_workload(path / "workload.toml")


def _with_advice(db: Path, workload: Any, scratch: Path, seed: int) -> tuple[Path, list[str]]:
    """A copy of ``db`` with the advisor's index set built, and the indexes' descriptions."""
    from d1bench.advisor import advise
    from d1bench.advisor.verify import apply_sql, copy_corpus

    advice = advise(db, workload, seed=seed)
    built = copy_corpus(db, scratch / "advised.sqlite")
    apply_sql(built, advice.migration_sql)
    return built, [f"{t}({', '.join(c)})" + (f" WHERE {w}" if w else "") for t, c, w in
                   zip(advice.indexes["table"], advice.indexes["columns"], advice.indexes["where"])]


def _print_table(rows: list[Comparison], skipped: dict[str, str],
                 errors: dict[str, str]) -> None:
    out = sys.stderr
    head = (f"{'template':28} {'kind':5} {'draws':>5} {'sqlite est.':>12} {'D1 rows_read':>12} "
            f"{'error %':>8} {'worst draw %':>12} {'plan':>6} {'s sqlite':>8} {'s D1':>7}")
    print("\nrows read: SQLite target's estimate vs local D1's meta.rows_read", file=out)
    print(head, file=out)
    print("-" * len(head), file=out)
    for c in rows:
        plan = {True: "same", False: "DIFF", None: "?"}[c.same_plan]
        flag = "  <-- over goal" if c.worst_pct[0] > GOAL_PCT else ""
        print(f"{c.name:28} {c.kind:5} {c.draws:5d} {c.est_read:12,d} {c.d1_read:12,d} "
              f"{c.read_pct:8.2f} {c.worst_draw_pct:12.2f} {plan:>6} {c.seconds_sqlite:8.2f} "
              f"{c.seconds_d1:7.2f}{flag}", file=out)
    writes = [c for c in rows if c.kind == "write"]
    if writes:
        print("\nrows written (writes, on a copy of the corpus and on local D1)", file=out)
        print(f"{'template':28} {'sqlite est.':>12} {'D1 rows_written':>15} {'error %':>8}",
              file=out)
        for c in writes:
            print(f"{c.name:28} {c.est_written:12,d} {c.d1_written:15,d} {c.written_pct:8.2f}",
                  file=out)
    for name, why in skipped.items():
        print(f"SKIPPED {name}: {why}", file=out)
    for name, why in errors.items():
        print(f"FAILED {name}: {why}", file=out)
    for c in rows:
        for note in c.notes:
            print(f"note {c.name}: {note}", file=out)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build or reuse the corpus, upload it to a fresh local D1, compare every template."""
    from tqdm import tqdm

    from d1bench.runner.prepare import calibration_draws
    from d1bench.targets import open_target
    from d1bench.targets.d1.local import LocalD1
    from d1bench.uploader import upload

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="d1bench-fidelity-") as tmp:
        scratch = Path(tmp)
        db = _corpus(args, scratch)
        papers = _paper_count(db)
        workload = _workload(args)
        advised: list[str] | None = None
        if args.advised:
            db, advised = _with_advice(db, workload, scratch, args.seed)
        rows: list[Comparison] = []
        skipped: dict[str, str] = {}
        errors: dict[str, str] = {}
        with LocalD1(scratch / "d1") as local, local.target() as d1_target:
            t0 = time.perf_counter()
            upload(db, d1_target, progress=True)
            upload_s = time.perf_counter() - t0
            with open_target(f"sqlite:{db}", readonly=True) as reader, \
                    reader.connect() as local_conn, d1_target.connect() as d1_conn:
                # Bound once; one generator draws every template's values in file order,
                # so the same values go to both targets (and to the write copy below).
                bound = workload.bind(local_conn, args.seed)
                rng = random.Random(args.seed)
                draws = {name: [bound.draw_params(name, rng) for _ in range(args.draws)]
                         for name in workload.templates}
                calibration = calibration_draws(bound, args.seed)
                reads = [t for t in workload.templates.values() if not t.is_write]
                for template in tqdm(reads, desc="read templates", file=sys.stderr):
                    _one(template, draws[template.name], local_conn, d1_conn, args.slow_s,
                         rows, skipped, errors, calibration[template.name])
            # Writes last: they change D1's data, which the reads above must not see.
            writes = [t for t in workload.templates.values() if t.is_write]
            copy = scratch / "writable.sqlite"
            shutil.copyfile(db, copy)
            with open_target(f"sqlite:{copy}") as writer, writer.connect() as local_conn, \
                    d1_target.connect(allow_writes=True) as d1_conn:
                for template in tqdm(writes, desc="write templates", file=sys.stderr):
                    _one(template, draws[template.name], local_conn, d1_conn, args.slow_s,
                         rows, skipped, errors, calibration[template.name])
    _print_table(rows, skipped, errors)
    worst = max(rows, key=lambda c: c.worst_pct[0], default=None)
    worst_pct, worst_measure = worst.worst_pct if worst else (0.0, "rows_read")
    templates: dict[str, dict[str, Any]] = {}
    for c in rows:
        entry: dict[str, Any] = {
            "kind": c.kind, "draws": c.draws, "sqlite_estimate": c.est_read,
            "d1_rows_read": c.d1_read, "error_pct": round(c.read_pct, 3),
            "worst_draw_error_pct": round(c.worst_draw_pct, 3), "same_plan": c.same_plan,
        }
        if c.kind == "write":
            entry.update(sqlite_estimate_written=c.est_written, d1_rows_written=c.d1_written,
                         written_error_pct=round(c.written_pct, 3))
        if c.missing_estimates:
            entry["missing_estimates"] = c.missing_estimates
        if c.notes:
            entry["notes"] = c.notes
        templates[c.name] = entry
    missing = sum(c.missing_estimates for c in rows)
    return {
        "benchmark": "rows_read_fidelity",
        "schema": args.schema,
        "scale": args.scale if args.schema in ("saas", "events") else None,
        "papers": papers,
        "advised_indexes": advised,
        "draws_per_template": args.draws,
        "seed": args.seed,
        "templates": templates,
        "worst_template": worst.name if worst else None,
        "worst_measure": worst_measure,
        "worst_error_pct": round(worst_pct, 3),
        "goal_pct": GOAL_PCT,
        "skipped": skipped,
        "errors": errors,
        "upload_s": round(upload_s, 2),
        "seconds": round(time.perf_counter() - started, 2),
        "ok": bool(rows) and worst_pct <= GOAL_PCT and not skipped and not errors
              and not missing,
    }


def _one(template: Any, draws: list[tuple[Any, ...]], local: Any, d1: Any, slow_s: float,
         rows: list[Comparison], skipped: dict[str, str], errors: dict[str, str],
         calibration: list[tuple[Any, ...]]) -> None:
    from d1bench.errors import TargetError

    try:
        comparison, why = compare(template, draws, local, d1, slow_s, calibration)
    except TargetError as exc:
        errors[template.name] = f"{exc.error_class}: {exc}"
        return
    if why is not None:
        skipped[template.name] = why
    else:
        assert comparison is not None
        rows.append(comparison)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=None,
                        help="corpus to reuse (generated here with --papers if missing); "
                             "default: a temporary one")
    parser.add_argument("--papers", type=int, default=10_000,
                        help="papers in a generated corpus (default 10,000)")
    parser.add_argument("--draws", type=int, default=20,
                        help="executions per template, same values on both targets (default 20)")
    parser.add_argument("--seed", type=int, default=0,
                        help="corpus seed, binding seed and parameter draws (default 0)")
    parser.add_argument("--schema", choices=("medical", "shop", "saas", "events"),
                        default="medical", help="the schema and its workload (default medical)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="scale of a generated fixture schema (saas, events; default 1)")
    parser.add_argument("--advised", action="store_true",
                        help="build the advisor's index set on the corpus first")
    parser.add_argument("--slow-s", type=float, default=15.0,
                        help="skip (and report) a template whose first execution takes longer "
                             "than this on both targets (default 15 s)")
    args = parser.parse_args(argv)
    if args.draws < 1 or args.papers < 1:
        parser.error("--draws and --papers must be at least 1")
    result = run(args)
    print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
