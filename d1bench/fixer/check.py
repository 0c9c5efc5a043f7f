"""Equivalence and measurement: run a rewrite's trials on two scratch copies and compare.

The copy *before* is the corpus as the rewrites start from it (advised indexes
built); the copy *after* is that with the rewrite's DDL applied.  Each trial's
statements run on their copy through the SQLite target, whose rows read and
written are D1's counting rules (``d1bench.targets.rowcount``), so what is
compared is what D1 would bill.  Rows are compared exactly (floats to a
relative 1e-9: a rollup sums in another order than the query did).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from d1bench.fixer.model import Rewrite, Stmt, Trial

__all__ = ["Copies", "Measured", "Scratch", "check", "rows_equal"]

#: Floats agree when within this relative difference (sums in another order).
FLOAT_TOLERANCE = 1e-9


@dataclass(frozen=True, slots=True)
class Measured:
    """What the trials of one rewrite measured, per trial on average.

    Attributes:
        trials: trials run.
        equivalent: trials whose rows agreed.
        rows_read_before / rows_read_after: D1 rows read per trial.
        rows_written_before / rows_written_after: D1 rows written per trial.
        recall: mean share of the before rows the after rows found (1.0 when
            equal; the recall@k of an approximate rewrite).
        failures: the first few disagreements, as text.
        error: why the trials could not run (the rewrite is then not proposed).
    """

    trials: int
    equivalent: int
    rows_read_before: float
    rows_read_after: float
    rows_written_before: float
    rows_written_after: float
    recall: float
    failures: tuple[str, ...] = ()
    error: str | None = None

    @property
    def all_equivalent(self) -> bool:
        """Every trial gave the same rows (and at least one ran)."""
        return self.error is None and self.trials > 0 and self.equivalent == self.trials


class Copies:
    """The two scratch copies of a database every step of a plan runs on: *before* and *after*.

    Copied once per plan: each step then works inside a savepoint on each copy
    (:class:`Scratch`) and closing the step rolls both back, so the next step
    finds them as they were.  A pair of fresh copies per step cost minutes a
    step at a million papers (4.4 GB each); a rollback costs what the step
    changed.
    """

    def __init__(self, source: str | os.PathLike[str], directory: str | os.PathLike[str]) -> None:
        from d1bench.advisor.verify import copy_corpus

        directory = Path(directory)
        self.paths = (copy_corpus(source, directory / "before.sqlite"),
                      copy_corpus(source, directory / "after.sqlite"))
        self.before, self.after = (_connect(p) for p in self.paths)

    def commit(self, sql: str) -> None:
        """Apply ``sql`` to both copies for good: every later step starts from it."""
        for conn in (self.before, self.after):
            conn.run_script(sql)

    def step(self, ddl: str | None, fills: Sequence[Callable[[Any], None]] = ()) -> Scratch:
        """A step's view of the copies (see :class:`Scratch`)."""
        return Scratch(self, ddl, fills)

    def close(self) -> None:
        """Close both connections and delete both copies."""
        for conn in (self.before, self.after):
            conn.close()
        for path in self.paths:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Scratch:
    """One step on :class:`Copies`: *before* as it is, *after* with the step's DDL applied.

    ``ddl=None`` makes the before copy serve as both (measuring a template as
    it is costs half, and the row estimator's per-statement work is shared).
    Each of ``fills`` runs on the *after* copy once the DDL is in (a rewrite's
    backfill), then the objects the DDL made get their statistics (as the
    migration's ``PRAGMA optimize`` gives D1; the rest keep the copy's).
    Everything the step does, its trials' writes included, is rolled back by
    :meth:`close`.
    """

    def __init__(self, copies: Copies, ddl: str | None,
                 fills: Sequence[Callable[[Any], None]] = ()) -> None:
        self._scopes = ExitStack()
        self.before = copies.before
        self._scopes.enter_context(self.before.rolled_back())
        if ddl is None:
            self.after = self.before
            return
        self.after = copies.after
        try:
            self._scopes.enter_context(self.after.rolled_back())
            if ddl.strip() or fills:
                known = _objects(self.after)
                self.after.run_script(ddl, fills)
                made = sorted(_objects(self.after) - known)
                self.after.run_script("".join(f'ANALYZE "{n}";\n' for n in made))
        except BaseException:
            self._scopes.close()
            raise

    def before_only(self) -> Scratch:
        """This step with the before copy on both sides (a statement that runs the same on
        both, measured once); closing it closes nothing."""
        view = object.__new__(Scratch)
        view._scopes = ExitStack()
        view.before = view.after = self.before
        return view

    def added_bytes(self) -> float:
        """Bytes the after copy holds beyond the before copy (what the DDL adds)."""
        return float(max(_bytes(self.after) - _bytes(self.before), 0))

    def close(self) -> None:
        """Roll both copies back to where the step found them."""
        self._scopes.close()


def _objects(conn: Any) -> set[str]:
    """The tables and indexes ANALYZE can take, by name."""
    rows = conn.fetch("SELECT name FROM sqlite_schema WHERE (type = 'index' OR (type = 'table' "
                      "AND sql NOT LIKE 'CREATE VIRTUAL%')) AND name NOT LIKE 'sqlite%'")
    return {r[0] for r in rows}


def _bytes(conn: Any) -> int:
    ((pages,),), ((size,),) = conn.fetch("PRAGMA page_count"), conn.fetch("PRAGMA page_size")
    return int(pages) * int(size)


def _connect(path: Path) -> Any:
    from d1bench.targets import open_target

    return open_target(f"sqlite:{path}").connect()


def _run(conn: Any, stmts: Sequence[Stmt]) -> tuple[list[tuple], int, int]:
    rows: list[tuple] = []
    read = written = 0
    for sql, params in stmts:
        result = conn.execute(sql, params)
        rows.extend(tuple(r) for r in result.rows)
        read += result.meta.rows_read or 0
        written += result.meta.rows_written or 0
    return rows, read, written


def rows_equal(a: Sequence[tuple], b: Sequence[tuple], *, ordered: bool) -> bool:
    """Whether two results hold the same rows (in the same order when ``ordered``).

    >>> rows_equal([(1, 0.1 + 0.2)], [(1, 0.3)], ordered=True)
    True
    >>> rows_equal([(1,), (2,)], [(2,), (1,)], ordered=True), rows_equal([(1,), (2,)], [(2,), (1,)], ordered=False)
    (False, True)
    """
    if len(a) != len(b):
        return False
    if not ordered:
        a, b = sorted(a, key=_sort_key), sorted(b, key=_sort_key)
    return all(len(x) == len(y) and all(_same(u, v) for u, v in zip(x, y, strict=True))
               for x, y in zip(a, b, strict=True))


def _sort_key(row: tuple) -> tuple:
    return tuple((type(v).__name__ if not isinstance(v, (int, float)) else "num",
                  round(v, 9) if isinstance(v, float) else v) for v in row)


def _same(u: Any, v: Any) -> bool:
    if isinstance(u, float) or isinstance(v, float):
        if u is None or v is None:
            return u is v
        return math.isclose(float(u), float(v), rel_tol=FLOAT_TOLERANCE, abs_tol=1e-12)
    return u == v


def _recall(before: Sequence[tuple], after: Sequence[tuple]) -> float:
    if not before:
        return 1.0
    found = Counter(after)
    hits = 0
    for row in before:
        if found[row] > 0:
            found[row] -= 1
            hits += 1
    return hits / len(before)


def check(rewrite: Rewrite, scratch: Scratch, samples: Sequence[tuple[Any, ...]]) -> Measured:
    """Run one trial per sampled parameter tuple and compare rows, rows read and rows written."""
    from d1bench.errors import TargetError

    totals = [0, 0, 0, 0]
    equivalent = 0
    recalls: list[float] = []
    failures: list[str] = []
    n = 0
    try:
        for params in samples:
            trial: Trial = rewrite.trial(tuple(params), scratch.before)
            rows_b, rb, wb = _run(scratch.before, trial.before)
            if scratch.after is scratch.before and trial.after == trial.before:
                # One copy, the same statements: run once (a second run would measure the
                # same thing again, but a write would write twice).
                rows_a, ra, wa = rows_b, rb, wb
            else:
                rows_a, ra, wa = _run(scratch.after, trial.after)
            if trial.width is not None:
                rows_a = [r[:trial.width] for r in rows_a]
            same = rows_equal(rows_b, rows_a, ordered=trial.ordered)
            if (not same and rewrite.exact and trial.width is None
                    and len(trial.before) == 1 == len(trial.after)):
                same = _same_up_to_ties(scratch, trial, rows_b, rows_a)
            if same and trial.probe:
                same = rows_equal(_run(scratch.before, trial.probe)[0],
                                  _run(scratch.after, trial.probe)[0], ordered=False)
            n += 1
            equivalent += same
            recalls.append(1.0 if same else _recall(rows_b, rows_a))
            if not same and len(failures) < 3:
                failures.append(f"params {_short(params)}: {len(rows_b)} row(s) before, "
                                f"{len(rows_a)} after, not the same")
            for i, v in enumerate((rb, ra, wb, wa)):
                totals[i] += v
    except TargetError as exc:
        return Measured(n, equivalent, 0, 0, 0, 0, 0.0, tuple(failures),
                        error=f"{type(exc).__name__}: {exc}")
    d = max(n, 1)
    return Measured(n, equivalent, totals[0] / d, totals[1] / d, totals[2] / d, totals[3] / d,
                    sum(recalls) / len(recalls) if recalls else 0.0, tuple(failures))


def _same_up_to_ties(scratch: Scratch, trial: Trial, rows_b: list[tuple],
                     rows_a: list[tuple]) -> bool:
    """Whether two LIMITed results differ only by which tied rows made the cut.

    ORDER BY ... LIMIT over ties leaves SQLite free to return any of the tied
    rows, and another plan (a new index) may return others: not a difference.
    So: the same number of rows, every row of each side a row of the other
    side's query without its LIMIT, and those two full results the same.  The
    order within the LIMIT is not checked again here; only exact rewrites get
    this second look (each keeps the ORDER BY it was given), never an
    approximate one, whose rows are always a subset of the full result.
    """
    from d1bench.fixer.sqlshape import max_index, parse, to_sql

    if len(rows_b) != len(rows_a):
        return False
    full = []
    for conn, (sql, params) in ((scratch.before, trial.before[0]), (scratch.after, trial.after[0])):
        parsed = parse(sql)
        if parsed is None or parsed.tree.args.get("limit") is None:
            return False
        tree = parsed.tree.copy()
        tree.set("limit", None)
        tree.set("offset", None)
        text = to_sql(tree)
        full.append(_run(conn, [(text, tuple(params)[:max(max_index(text), 0)] if
                                 max_index(text) else ())])[0])
    seen_b, seen_a = Counter(full[0]), Counter(full[1])
    return (all(seen_b[r] > 0 for r in rows_a) and all(seen_a[r] > 0 for r in rows_b)
            and rows_equal(full[0], full[1], ordered=False))


def _short(params: Sequence[Any]) -> str:
    text = repr(tuple(params))
    return text if len(text) <= 80 else text[:77] + "..."
