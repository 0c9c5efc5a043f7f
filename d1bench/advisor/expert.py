"""SQLite's own advisor, ``.expert``, run template by template for comparison.

The ``sqlite3`` shell's ``.expert`` decides one statement at a time: it
proposes the indexes that statement would like, with no view of the rest of
the workload, of writes or of storage.  The usual way to use it on a workload
is to take the union of its answers, which :func:`expert_union` does.

``.expert`` (3.40, as Debian ships it) refuses a database with an FTS5 table,
so it runs on a copy without the FTS table and its triggers; templates that
need the FTS table are skipped and reported as such.  ``--sample 100`` lets it
compute statistics for its candidates from all the data, its most favourable
setting.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from d1bench.dbfile import check_database
from d1bench.errors import UsageError
from d1bench.sql.catalog import IndexDef
from d1bench.sql.parsing import ParseFailure, parse_statement

__all__ = [
    "EXPERT_COLUMNS",
    "ExpertAnswer",
    "answers_frame",
    "expert_union",
    "index_def",
    "parse_expert_output",
    "run_expert",
    "sqlite3_shell",
]

EXPERT_COLUMNS = ["template", "status", "indexes", "plan", "message"]


@dataclass(frozen=True, slots=True)
class ExpertAnswer:
    """``.expert``'s answer for one template.

    Attributes:
        template: the template's name.
        status: ``ok``, ``skipped`` (needs FTS5) or ``error``.
        indexes: the CREATE INDEX statements it proposed (its own names).
        plan: the plan it predicts with them.
        message: why it was skipped or failed.
    """

    template: str
    status: str
    indexes: tuple[str, ...] = ()
    plan: tuple[str, ...] = ()
    message: str = ""


def sqlite3_shell() -> str:
    """Path of the ``sqlite3`` shell; a UsageError says how to install it."""
    path = shutil.which("sqlite3")
    if path is None:
        raise UsageError("the sqlite3 shell is not installed (apt-get install sqlite3); "
                         ".expert comes with it")
    return path


def parse_expert_output(text: str) -> tuple[list[str], list[str]]:
    """The CREATE INDEX statements and plan lines of one ``.expert`` answer.

    >>> parse_expert_output("CREATE INDEX t_idx_1 ON t(a, b DESC);\\n\\nSEARCH t USING INDEX t_idx_1 (a=?)\\n")
    (['CREATE INDEX t_idx_1 ON t(a, b DESC);'], ['SEARCH t USING INDEX t_idx_1 (a=?)'])
    >>> parse_expert_output("(no new indexes)\\n\\nSCAN t\\n")
    ([], ['SCAN t'])
    """
    creates, plan = [], []
    for line in text.splitlines():
        line = line.strip()
        if not line or line == "(no new indexes)" or line == "(null)":
            continue
        if line.upper().startswith("CREATE INDEX"):
            creates.append(line)
        else:
            plan.append(line)
    return creates, plan


def _expert_copy(db_path: Path, folder: Path) -> tuple[Path, set[str]]:
    """A copy of the corpus without FTS5 tables (and the triggers that feed them)."""
    import apsw

    copy = folder / "expert.sqlite"
    src = apsw.Connection(str(db_path), flags=apsw.SQLITE_OPEN_READONLY)
    dst = apsw.Connection(str(copy))
    with dst.backup("main", src, "main") as backup:
        backup.step()
    src.close()
    fts = {name for name, sql in dst.execute(
        "SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL%'")
        if re.search(r"(?i)USING\s+fts5", sql or "")}
    for (trigger,) in list(dst.execute("SELECT name FROM sqlite_schema WHERE type = 'trigger'")):
        dst.execute(f'DROP TRIGGER "{trigger}"')
    for name in fts:
        dst.execute(f'DROP TABLE "{name}"')
    dst.close()
    return copy, {n.lower() for n in fts}


def run_expert(db_path: str | os.PathLike[str], templates: Mapping[str, str], *,
               sample: int = 100, timeout: float = 300.0) -> list[ExpertAnswer]:
    """Ask ``.expert`` about each template (name -> SQL) on a copy of ``db_path``."""
    shell = sqlite3_shell()
    path = check_database(db_path)
    answers = []
    with tempfile.TemporaryDirectory(prefix="d1bench-expert-") as tmp:
        copy, fts = _expert_copy(path, Path(tmp))
        for name, sql in templates.items():
            if fts and re.search(r"(?i)\b(" + "|".join(map(re.escape, sorted(fts))) + r")\b", sql):
                answers.append(ExpertAnswer(name, "skipped", message=".expert (SQLite 3.40) fails "
                                            "on FTS5 tables; the template needs one"))
                continue
            script = f".expert --sample {int(sample)}\n{sql.strip().rstrip(';')};\n"
            try:
                done = subprocess.run([shell, "-batch", str(copy)], input=script, check=False,
                                      capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                answers.append(ExpertAnswer(name, "error", message=f"timed out after {timeout}s"))
                continue
            if done.returncode != 0 or done.stderr.strip():
                answers.append(ExpertAnswer(name, "error", message=done.stderr.strip()[:300]))
                continue
            creates, plan = parse_expert_output(done.stdout)
            answers.append(ExpertAnswer(name, "ok", tuple(creates), tuple(plan)))
    return answers


def answers_frame(answers: Iterable[ExpertAnswer]) -> pd.DataFrame:
    """The answers as a frame (one row per template)."""
    return pd.DataFrame([{"template": a.template, "status": a.status, "indexes": list(a.indexes),
                          "plan": " | ".join(a.plan), "message": a.message} for a in answers],
                        columns=EXPERT_COLUMNS)


def _index_def(sql: str) -> IndexDef | None:
    """An IndexDef from a CREATE INDEX statement (``.expert``'s, or a migration's)."""
    from sqlglot import exp

    from d1bench.sql.catalog import parse_create_index

    try:
        tree = parse_statement(sql.strip().rstrip(";"))
    except ParseFailure:
        return None
    index = tree.this
    if not isinstance(tree, exp.Create) or not isinstance(index, exp.Index):
        return None
    table = index.args.get("table")
    parsed = parse_create_index(sql.strip().rstrip(";"))
    if table is None or parsed is None:
        return None
    keys, where = parsed
    return IndexDef(table.name.lower(), tuple(keys), where, name=index.name,
                    unique=bool(tree.args.get("unique")), origin="c")


index_def = _index_def


def expert_union(answers: Iterable[ExpertAnswer]) -> list[IndexDef]:
    """The union of ``.expert``'s proposals, one index per distinct (table, keys).

    ``.expert`` names an index after a hash of its definition, so the same
    index proposed for two templates has the same name; it is kept once.
    """
    out: dict[tuple, IndexDef] = {}
    for a in answers:
        for sql in a.indexes:
            idx = _index_def(sql)
            if idx is not None and idx.shape not in out:
                out[idx.shape] = idx
    return list(out.values())
