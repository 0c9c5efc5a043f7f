"""Validating a workload against a database before any run.

A replay that fails on its 10,000th request because one template names a
column the database lacks wastes the run; so every template is prepared (not
run) on the database, its parameter count and read/write nature compared with
what SQLite says, every sampler is bound against the corpus and drawn from,
and every session's row-to-parameter links are checked against the columns the
previous step returns.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from d1bench.dbfile import check_database, open_readonly
from d1bench.errors import TargetError
from d1bench.sql.session import EXPLAIN, Connection, Meta, Params, PlanStep, Result, plan_steps
from d1bench.workload.loader import Problem, _parse_partial, read_workload_text
from d1bench.workload.model import Workload, _bind

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PROBLEM_COLUMNS", "check_workload"]

#: Columns of the frame :func:`check_workload` returns.
PROBLEM_COLUMNS = ["file", "line", "kind", "template", "problem", "severity"]

#: Draws per template, to exercise every sampler a little.
CHECK_DRAWS = 5


def check_workload(workload_or_path: Workload | str | Path, db_path: str | Path, *,
                   seed: int = 0) -> pd.DataFrame:
    """Every problem the workload has against the database at ``db_path``.

    Returns a DataFrame with columns ``file, line, kind, template, problem,
    severity`` (``kind`` says whether ``template`` names a template, a session
    or, empty, the workload), one row per problem, ordered by line; an empty
    frame means the workload is ready to replay.  ``error`` rows would make a run
    fail or mislead; ``warning`` rows (D1 would refuse it, sqlglot cannot parse
    it) do not stop a local run.  The database is opened read-only and no
    template is executed.
    """
    import pandas as pd

    from d1bench.schema import d1_problems

    if isinstance(workload_or_path, Workload):
        workload: Workload | None = workload_or_path
        problems: list[Problem] = []
    else:
        text, source = read_workload_text(workload_or_path)
        workload, problems = _parse_partial(text, source)
    db = check_database(db_path)

    if workload is not None:
        src = workload.source

        def add(kind: str, name: str, line: int, message: str, severity: str = "error") -> None:
            problems.append(Problem(src, line, kind, name, message, severity))

        raw = open_readonly(db)
        try:
            columns = _prepare_all(raw, workload, add, d1_problems)
            _check_sessions(workload, columns, add)
            bound = _bind(workload, _ApswConnection(raw), seed, None, add)
            rng = random.Random(seed)
            for name in workload.templates:
                if name not in bound._plans:
                    continue
                t = workload.templates[name]
                for _ in range(CHECK_DRAWS):
                    try:
                        bound.draw_params(name, rng)
                    except Exception as exc:  # noqa: BLE001 - any failure of a sampler is the finding
                        add("template", name, t.line, f"drawing parameters failed: {exc}")
                        break
        finally:
            raw.close()

    frame = pd.DataFrame(
        [{"file": p.file, "line": p.line, "kind": p.kind, "template": p.name,
          "problem": p.problem, "severity": p.severity} for p in problems],
        columns=PROBLEM_COLUMNS)
    return frame.sort_values(["line", "template"], kind="stable").reset_index(drop=True)


def _prepare_all(raw: Any, workload: Workload, add: Any, d1_problems: Any) -> dict[str, list[str]]:
    """Prepare every template; return each one's result column names."""
    import apsw
    import apsw.ext

    columns: dict[str, list[str]] = {}
    for t in workload.templates.values():
        try:
            info = apsw.ext.query_info(raw, t.sql)
        except apsw.Error as exc:
            add("template", t.name, t.line, f"does not prepare on this database: {exc}")
            continue
        columns[t.name] = [d[0] for d in (info.description or ())]
        if info.query_remaining and info.query_remaining.strip():
            add("template", t.name, t.line, "holds more than one statement")
        if info.bindings_count != len(t.params):
            add("template", t.name, t.line,
                f"SQLite counts {info.bindings_count} parameter(s) but {len(t.params)} "
                "sampler(s) are given")
        if info.is_readonly == t.is_write:
            add("template", t.name, t.line,
                f"sqlglot classifies it as a {'write' if t.is_write else 'read'} but SQLite says "
                f"it is {'read-only' if info.is_readonly else 'not read-only'}")
        for message in d1_problems(t.sql):
            add("template", t.name, t.line, f"D1 would refuse it: {message}", "warning")
    return columns


def _check_sessions(workload: Workload, columns: dict[str, list[str]], add: Any) -> None:
    for s in workload.sessions.values():
        for i, step in enumerate(s.steps):
            if i == 0 or step.params is None:
                continue
            before = s.steps[i - 1].template
            if before not in columns:
                continue  # its template did not prepare: reported already
            for n, spec in enumerate(step.params, 1):
                if spec.kind == "from_row" and spec.column not in columns[before]:
                    add("session", s.name, step.line or s.line,
                        f"step {i + 1}: param {n} takes column {spec.column!r} from step {i} "
                        f"({before}), which returns {', '.join(columns[before]) or 'no columns'}")


class _ApswConnection(Connection):
    """The least a Connection needs to be, over a read-only APSW connection (for binding)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Params = ()) -> Result:
        import apsw

        cursor = self._conn.cursor()
        try:
            cursor.execute(sql, tuple(params))
            try:  # only while the statement has rows left does APSW describe them
                cols = tuple(d[0] for d in cursor.getdescription())
            except apsw.ExecutionCompleteError:
                cols = ()
            rows = [tuple(r) for r in cursor]
        except apsw.SQLError as exc:
            raise TargetError(str(exc), error_class="syntax") from None
        except apsw.Error as exc:
            raise TargetError(str(exc)) from None
        return Result(cols, rows, Meta())

    def explain(self, sql: str, params: Params = ()) -> list[PlanStep]:
        return plan_steps(self.execute(EXPLAIN + sql, params).rows)
