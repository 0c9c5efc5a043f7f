"""Reading what production ran: ``wrangler d1 insights --json``, the GraphQL
``d1QueriesAdaptiveGroups`` answer, or a plain log of SQL statements.

Each becomes a list of :class:`Shape`: one query shape (its SQL with ``?``
where values were) and production's figures for it.  Insights and GraphQL
strip bound values already; a log's literals are lifted into ``?`` here (with
sqlglot), and statements of the same shape are grouped and counted.

A file of the wrong shape is refused with one line naming the file, the line
and the JSON path at fault.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from d1bench.errors import UsageError

__all__ = ["FORMATS", "Shape", "read_insights", "shape_of"]

#: The formats :func:`read_insights` reads.
FORMATS = ("insights", "graphql", "log")

#: ``wrangler d1 insights --json`` keys, and the Shape field each fills.
_INSIGHTS_KEYS = {
    "numberOfTimesRun": "runs", "avgRowsRead": "avg_rows_read",
    "avgRowsWritten": "avg_rows_written", "avgDurationMs": "avg_duration_ms",
    "totalRowsRead": "total_rows_read", "totalRowsWritten": "total_rows_written",
    "totalDurationMs": "total_duration_ms", "queryEfficiency": "efficiency",
}


@dataclass(frozen=True, slots=True)
class Shape:
    """One query shape production ran, and its figures (``None``: not given).

    Attributes:
        sql: the statement with ``?`` for each value.
        runs: how many times it ran (``numberOfTimesRun``, GraphQL ``count``,
            statements in a log).
        avg_rows_read, avg_rows_written, avg_duration_ms: per run.
        total_rows_read, total_rows_written, total_duration_ms: over all runs.
        efficiency: rows returned / rows read (``queryEfficiency``).
        line: where the shape is in its file (first statement for a log).
        examples: for a log, the literal values of the first statement of the
            shape, in placeholder order (a hint for the user; not used to sample).
    """

    sql: str
    runs: int
    avg_rows_read: float | None = None
    avg_rows_written: float | None = None
    avg_duration_ms: float | None = None
    total_rows_read: float | None = None
    total_rows_written: float | None = None
    total_duration_ms: float | None = None
    efficiency: float | None = None
    line: int = 1
    examples: tuple[Any, ...] = ()


def read_insights(path: str | os.PathLike[str], fmt: str = "auto") -> list[Shape]:
    """The query shapes in ``path``; ``fmt`` is ``auto`` (by content) or one of :data:`FORMATS`."""
    src = Path(path)
    if not src.is_file():
        raise UsageError(f"{src}: no such file")
    try:
        text = src.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{src}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if fmt == "auto":
        fmt = "log" if text.lstrip()[:1] not in ("[", "{") else "json"
    if fmt == "log":
        shapes = _from_log(text, str(src))
    else:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{src}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})") from None
        if fmt == "json":
            fmt = "graphql" if isinstance(doc, dict) else "insights"
        shapes = (_from_graphql if fmt == "graphql" else _from_insights)(doc, text, str(src))
    if not shapes:
        raise UsageError(f"{src}: no queries in it")
    return shapes


# --- where a JSON value is in its text ---------------------------------------------


def _element_offsets(text: str, start: int) -> list[int]:
    """Offsets of the elements of the JSON array whose ``[`` is at ``start``."""
    decoder = json.JSONDecoder()
    out: list[int] = []
    i = start + 1
    ws = re.compile(r"[\s,]*")
    while True:
        gap = ws.match(text, i)
        assert gap is not None  # the pattern matches the empty string
        i = gap.end()
        if i >= len(text) or text[i] == "]":
            return out
        out.append(i)
        _, i = decoder.raw_decode(text, i)


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _number(item: dict[str, Any], key: str, where: str) -> float | None:
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"{where}: {key} is {value!r}, not a number")
    return float(value)


def _from_insights(doc: Any, text: str, src: str) -> list[Shape]:
    if isinstance(doc, dict) and isinstance(doc.get("result"), list):
        doc = doc["result"]  # the same array inside an API envelope
    if not isinstance(doc, list):
        raise UsageError(f"{src}:1: expected the JSON array `wrangler d1 insights --json` prints "
                         f"(objects with query, numberOfTimesRun, avgRowsRead, ...), got "
                         f"{type(doc).__name__}")
    offsets = _element_offsets(text, text.index("["))
    shapes = []
    for i, item in enumerate(doc):
        line = _line(text, offsets[i]) if i < len(offsets) else 1
        where = f"{src}:{line}: [{i}]"
        if not isinstance(item, dict):
            raise UsageError(f"{where}: expected an object with query and numberOfTimesRun, "
                             f"got {type(item).__name__}")
        query = item.get("query")
        if not isinstance(query, str) or not query.strip():
            got = f"got {query!r}" if "query" in item else f"keys: {', '.join(item) or 'none'}"
            raise UsageError(f"{where}: \"query\" must be a non-empty string ({got})")
        figures = {field: _number(item, key, where) for key, field in _INSIGHTS_KEYS.items()}
        runs = figures.pop("runs")
        if runs is None:
            raise UsageError(f"{where}: no numberOfTimesRun")
        shapes.append(Shape(
            query.strip(), int(runs), figures["avg_rows_read"], figures["avg_rows_written"],
            figures["avg_duration_ms"], figures["total_rows_read"], figures["total_rows_written"],
            figures["total_duration_ms"], figures["efficiency"], line))
    return shapes


def _from_graphql(doc: Any, text: str, src: str) -> list[Shape]:
    """``{"data": {"viewer": {"accounts": [{"d1QueriesAdaptiveGroups": [...]}]}}}``."""
    try:
        accounts = doc["data"]["viewer"]["accounts"]
        groups = [g for a in accounts for g in a["d1QueriesAdaptiveGroups"]]
    except (KeyError, TypeError, IndexError):
        errors = doc.get("errors") if isinstance(doc, dict) else None
        if errors:
            raise UsageError(f"{src}:1: the GraphQL answer holds errors: "
                             f"{'; '.join(str(e.get('message', e)) for e in errors)}") from None
        raise UsageError(f"{src}:1: expected a JSON array (wrangler d1 insights --json) or "
                         "GraphQL's {\"data\": {\"viewer\": {\"accounts\": [{"
                         "\"d1QueriesAdaptiveGroups\": [...]}]}}}") from None
    offsets: list[int] = []
    for m in re.finditer(r'"d1QueriesAdaptiveGroups"\s*:\s*\[', text):
        offsets += _element_offsets(text, m.end() - 1)
    shapes = []
    for i, group in enumerate(groups):
        line = _line(text, offsets[i]) if i < len(offsets) else 1
        where = f"{src}:{line}: d1QueriesAdaptiveGroups[{i}]"
        if not isinstance(group, dict):
            raise UsageError(f"{where}: expected an object, got {type(group).__name__}")
        query = (group.get("dimensions") or {}).get("query")
        if not isinstance(query, str) or not query.strip():
            raise UsageError(f"{where}: no dimensions.query string")
        count = _number(group, "count", where)
        if count is None:
            raise UsageError(f"{where}: no count")
        total, avg = group.get("sum") or {}, group.get("avg") or {}
        if not isinstance(total, dict) or not isinstance(avg, dict):
            raise UsageError(f"{where}: sum and avg must be objects")

        def pick(key: str, part: dict[str, Any], where: str = where) -> float | None:
            return _number(part, key, where)

        read, written, ms = pick("rowsRead", total), pick("rowsWritten", total), \
            pick("queryDurationMs", total)
        returned = pick("rowsReturned", total)
        def per(t: float | None, a: float | None, count: float = count) -> float | None:
            return a if a is not None else (t / count if t is not None and count else None)

        avg_read = per(read, pick("rowsRead", avg))
        shapes.append(Shape(
            query.strip(), int(count), avg_read, per(written, pick("rowsWritten", avg)),
            per(ms, pick("queryDurationMs", avg)), read, written, ms,
            (returned / read) if returned is not None and read else None, line))
    return shapes


# --- a log of statements with their values -----------------------------------------


def shape_of(sql: str) -> tuple[str, tuple[Any, ...]] | None:
    """``sql`` with its literal values lifted into ``?``, and the values; ``None`` if
    sqlglot cannot parse it.  Numbers in ``LIMIT``/``OFFSET`` are lifted too.

    >>> shape_of("SELECT * FROM users WHERE email = 'a@b.c' AND age > 30 LIMIT 10")
    ('SELECT * FROM users WHERE email = ? AND age > ? LIMIT ?', ('a@b.c', 30, 10))
    """
    import sqlglot
    from sqlglot import exp

    from d1bench.sql.text import quiet_sqlglot

    try:
        with quiet_sqlglot():
            tree = sqlglot.parse_one(sql, read="sqlite")
    except sqlglot.errors.ParseError:
        return None
    found: list[Any] = []

    def lift(node: exp.Expression) -> exp.Expression:
        if not isinstance(node, exp.Literal):
            return node
        parent = node.parent
        # a date modifier, a JSON path or a function's option is part of the shape
        if isinstance(parent, exp.JSONPath | exp.JSONExtract | exp.JSONExtractScalar) or (
                isinstance(parent, exp.Func) and node.arg_key != "this"
                and not isinstance(parent, exp.In | exp.Limit | exp.Offset)):
            return node
        if node.is_string:
            found.append(node.this)
        else:
            found.append(float(node.this) if any(c in node.this for c in ".eE")
                         else int(node.this))
        # a marker, so the values can be put in the order the placeholders print
        return exp.column(f"d1bench_lit_{len(found) - 1}")

    with quiet_sqlglot():
        rendered = tree.transform(lift).sql(dialect="sqlite")
    values: list[Any] = []

    def mark(m: re.Match[str]) -> str:
        values.append(found[int(m.group(1))])
        return "?"

    return re.sub(r"\bd1bench_lit_(\d+)\b", mark, rendered), tuple(values)


_STARTS = re.compile(r"(?i)^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|REPLACE|VALUES)\b")


def _from_log(text: str, src: str) -> list[Shape]:
    """Statements ending with ``;``, or one a line without it (a line that starts
    with SELECT, INSERT, ... begins the next); lines starting ``--`` or ``#``
    are comments."""
    import sqlite3

    groups: dict[str, list[Any]] = {}
    pending: list[str] = []
    start = 0

    def flush() -> None:
        nonlocal pending
        joined = "\n".join(pending).strip().rstrip(";")
        pending = []
        found = shape_of(joined)
        if found is None:
            raise UsageError(f"{src}:{start}: sqlglot cannot parse this statement: "
                             f"{' '.join(joined.split())[:80]}")
        sql, values = found
        if sql not in groups:
            groups[sql] = [0, start, values]
        groups[sql][0] += 1

    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith(("--", "#"))):
            continue
        if pending and _STARTS.match(raw) and _balanced("\n".join(pending)):
            flush()
        if not pending:
            start = n
        pending.append(raw)
        if line.endswith(";") and sqlite3.complete_statement("\n".join(pending)):
            flush()
    if pending:
        flush()
    return [Shape(sql, count, line=line, examples=values)
            for sql, (count, line, values) in groups.items()]


def _balanced(text: str) -> bool:
    """No open quote or parenthesis, so a new line may start a new statement."""
    return text.count("'") % 2 == 0 and text.count("(") == text.count(")")
