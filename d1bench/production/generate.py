"""``d1bench workload from-insights``: production's query mix as a workload file.

Each query shape becomes a template weighted by how often production ran it
(or by the rows it read), with production's figures kept beside it as
``production = {...}``, the baseline ``compare-production`` holds a replay
against.  Parameters get the samplers :mod:`d1bench.production.infer` finds;
those it cannot are written as a stand-in with a ``FILL IN`` comment.  The
file is plain TOML in the format of ``docs/workloads.md``: commented and meant
to be edited.
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from d1bench.errors import UsageError
from d1bench.production.infer import Guess, Schema, infer_params
from d1bench.production.insights import Shape, read_insights
from d1bench.workload.loader import PRODUCTION_KEYS

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["WEIGHTS", "FromInsights", "from_insights", "name_shapes", "production_figures"]

#: What a template's weight can follow: production's run count, or the rows it read.
WEIGHTS = ("runs", "reads")



@dataclass(frozen=True, slots=True)
class FromInsights:
    """What :func:`from_insights` wrote.

    Attributes:
        path: the workload file.
        templates: one row per template: ``template, runs, weight,
            avg_rows_read, avg_duration_ms, params, unresolved, sql``.
        unresolved: ``(template, param number, reason)`` for each
            placeholder left for the user to fill in.
    """

    path: Path
    templates: pd.DataFrame
    unresolved: tuple[tuple[str, int, str], ...]


def name_shapes(shapes: list[Shape]) -> list[str]:
    """A template name for each shape: verb, main table, first filtered column.

    >>> name_shapes([Shape("SELECT * FROM users WHERE email = ?", 1),
    ...              Shape("SELECT id FROM users WHERE email = ? LIMIT ?", 1), Shape("SELECT 1", 1)])
    ['select_users_by_email', 'select_users_by_email_2', 'select']
    """
    names: list[str] = []
    seen: dict[str, int] = {}
    for shape in shapes:
        base = _base_name(shape.sql)
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}_{seen[base]}")
    return names


def _base_name(sql: str) -> str:
    words = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", sql)
    verb = words[0].lower() if words else "query"
    m = re.search(r"(?i)\b(?:FROM|INTO|UPDATE)\s+[\"`\[]?([A-Za-z_][A-Za-z0-9_]*)", sql)
    where = re.search(r"(?i)\bWHERE\s+(?:[A-Za-z_]\w*\.)?[\"`\[]?([A-Za-z_][A-Za-z0-9_]*)", sql)
    name = verb + (f"_{m.group(1)}" if m else "") + (f"_by_{where.group(1)}" if where else "")
    name = re.sub(r"[^a-z0-9_]", "_", name.lower())[:60].strip("_") or "query"
    return name if name[0].isalpha() else f"q_{name}"


def production_figures(shape: Shape) -> dict[str, float | int]:
    """The ``production = {...}`` table of a shape's template (figures it has only)."""
    out: dict[str, float | int] = {}
    for key in PRODUCTION_KEYS:  # each key is also the Shape attribute holding it
        value = getattr(shape, key)
        if value is not None:
            out[key] = int(value) if key == "runs" else round(float(value), 6)
    return out


def from_insights(insights: str | os.PathLike[str], db: str | os.PathLike[str],
                  out: str | os.PathLike[str], *, weight: str = "runs", fmt: str = "auto",
                  force: bool = False, name: str | None = None) -> FromInsights:
    """Write a workload file at ``out`` from production's insights and the database ``db``.

    ``insights`` is ``wrangler d1 insights --json`` output, a GraphQL
    ``d1QueriesAdaptiveGroups`` answer or a log of SQL statements (see
    :func:`~d1bench.production.insights.read_insights`).  ``weight`` is
    ``runs`` (numberOfTimesRun) or ``reads`` (total rows read).  Written
    atomically; an existing ``out`` is replaced only with ``force``.
    """
    import pandas as pd

    from d1bench._atomic import publish
    from d1bench.corpus.build import check_destination

    if weight not in WEIGHTS:
        raise UsageError(f"--weight {weight!r}: expected one of {', '.join(WEIGHTS)}")
    shapes = read_insights(insights, fmt)
    dbp = Path(db)
    if not dbp.is_file():
        raise UsageError(f"{dbp}: no such database file")
    path = check_destination(out, force)
    conn = sqlite3.connect(f"file:{dbp}?mode=ro", uri=True)
    try:
        schema = Schema.read(conn)
        for shape in shapes:
            _prepares(conn, shape, str(insights), dbp)
    except sqlite3.DatabaseError as exc:
        raise UsageError(f"{dbp}: not a SQLite database ({exc})") from None
    finally:
        conn.close()
    names = name_shapes(shapes)
    rows, unresolved, blocks = [], [], []
    for tname, shape in zip(names, shapes, strict=True):
        try:
            guesses = infer_params(shape.sql, schema)
        except Exception as exc:  # noqa: BLE001 - sqlglot's errors have many classes
            raise UsageError(f"{insights}:{shape.line}: sqlglot cannot parse this query "
                             f"({type(exc).__name__}): {' '.join(shape.sql.split())[:80]}") from None
        w = _weight(shape, weight)
        for i, g in enumerate(guesses, 1):
            if not g.resolved:
                unresolved.append((tname, i, g.why))
        blocks.append(_template_toml(tname, shape, guesses, w))
        rows.append({"template": tname, "runs": shape.runs, "weight": w,
                     "avg_rows_read": shape.avg_rows_read, "avg_duration_ms": shape.avg_duration_ms,
                     "params": len(guesses), "unresolved": sum(not g.resolved for g in guesses),
                     "sql": shape.sql})
    text = _header(name or path.stem, Path(insights), dbp, weight, len(shapes), unresolved)
    text += "\n".join(blocks)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        publish(tmp, path, force=force)
    finally:
        tmp.unlink(missing_ok=True)
    return FromInsights(path, pd.DataFrame(rows), tuple(unresolved))


def _prepares(conn: sqlite3.Connection, shape: Shape, source: str, db: Path) -> None:
    """Refuse a query the database cannot run (a table or column it lacks), by its line."""
    from d1bench.sql.text import scan_placeholders

    count = scan_placeholders(shape.sql).count
    try:
        # EXPLAIN prepares without running; a read-only connection could not write anyway
        conn.execute(f"EXPLAIN {shape.sql}", (None,) * count).fetchall()
    except sqlite3.OperationalError as exc:
        raise UsageError(f"{source}:{shape.line}: the query does not run on {db}: {exc} "
                         f"(in {' '.join(shape.sql.split())[:60]})") from None
    except sqlite3.DatabaseError:
        pass  # a constraint or value error with NULLs bound says nothing about the shape


def _weight(shape: Shape, weight: str) -> float:
    if weight == "runs":
        return float(shape.runs)
    if shape.total_rows_read is not None:
        return float(shape.total_rows_read)
    if shape.avg_rows_read is not None:
        return float(shape.avg_rows_read) * shape.runs
    raise UsageError(f"--weight reads: the query at line {shape.line} has no rows-read figures "
                     "(a plain log has none; use --weight runs)")


def _toml(value: Any) -> str:
    """A TOML value: strings as basic strings (JSON's escapes are TOML's), lists, numbers."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "0.0"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value), ensure_ascii=False)


def _inline(table: dict[str, Any]) -> str:
    return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in table.items()) + " }"


def _header(name: str, insights: Path, db: Path, weight: str, n: int,
            unresolved: list[tuple[str, int, str]]) -> str:
    lines = [
        f"# Production's query mix, from {insights.name} ({n} query shapes), with samplers",
        f"# inferred from {db.name}. Generated by `d1bench workload from-insights`; edit freely.",
        "#",
        f"# weight: {'how many times production ran the query' if weight == 'runs' else 'rows read in production'};",
        "# production = {...}: production's own figures per run, the baseline",
        "# `d1bench compare-production TRACE --insights FILE` compares a replay with.",
        "# Samplers draw from the database: `column` existing values, `prefix` the start",
        "# of existing values (for LIKE), `int` a small number (LIMIT). See docs/workloads.md.",
    ]
    if unresolved:
        lines += ["#", f"# {len(unresolved)} parameter(s) could not be inferred; each is marked FILL IN:"]
        lines += [f"#   {t} param {i}: {why.removeprefix('FILL IN: ')}" for t, i, why in unresolved]
    lines += ["", "[workload]", f"name = {_toml(name)}", "format = 1",
              f"description = {_toml(f'Production query mix from {insights.name}')}", ""]
    return "\n".join(lines) + "\n"


def _template_toml(name: str, shape: Shape, guesses: list[Guess], weight: float) -> str:
    sql = shape.sql
    sql_text = f"'''\n{sql}\n'''" if "'''" not in sql and not sql.endswith("'") else _toml(sql)
    lines = [f"[templates.{name}]", f"# line {shape.line} of the insights file; ran {shape.runs:,} times"]
    if shape.examples:
        lines.append(f"# values in the first logged statement: {_toml(list(shape.examples))}")
    lines += ["family = \"production\"", f"weight = {_toml(round(weight, 6))}",
              f"production = {_inline(production_figures(shape))}", f"sql = {sql_text}"]
    if guesses:
        lines.append("params = [")
        for i, g in enumerate(guesses, 1):
            lines.append(f"    # {i}: {g.why}")
            lines.append(f"    {_inline(g.spec)},")
        lines.append("]")
    else:
        lines.append("params = []")
    return "\n".join(lines) + "\n"
