"""Prove the copy: counts, checksums, foreign-key orphans, sampled rows, check queries.

Every check is computed the same way on both sides: the source's rows pass
through the same type rules as the copy, and both sides' rows are hashed by
:func:`~d1bench.migrator.copy.row_digest`.  A table whose checksum differs is
named with the first key (in the source's key order) whose row differs or is
missing, so the user can look at that row on both sides.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pandas as pd

from d1bench.migrator.convert import TablePlan
from d1bench.migrator.copy import CopyResult, converter
from d1bench.migrator.digest import row_digest, table_digest
from d1bench.migrator.sinks import Sink
from d1bench.migrator.source import Source
from d1bench.migrator.sqlfix import transpile
from d1bench.migrator.types import timestamp_text
from d1bench.uploader.packing import quote

__all__ = ["CHECK_COLUMNS", "Finding", "check_queries", "validate_tables"]

CHECK_COLUMNS = ("table", "check", "ok", "source", "target", "detail")


@dataclass(frozen=True)
class Finding:
    """One validation check's outcome."""

    table: str
    check: str
    ok: bool
    source: Any
    target: Any
    detail: str = ""


def _source_rows(source: Source, plan: TablePlan,
                 batch_rows: int) -> Iterator[tuple[tuple[Any, ...], tuple[Any, ...]]]:
    convert = converter(plan)
    for batch in source.stream(plan.source, plan.key, None, batch_rows):
        yield from zip(batch, convert(batch) if convert else batch, strict=True)


def _first_difference(source: Source, sink: Sink, plan: TablePlan, batch_rows: int) -> str:
    """Where the two sides first part: a key whose row differs or is missing."""
    key_at = plan.key_index  # target columns are in the source's order
    if not key_at:
        return "no key to compare rows by"
    target: dict[tuple[Any, ...], int] = {}
    for row in sink.read(plan.name, plan.columns):
        target[tuple(row[i] for i in key_at)] = row_digest(row)
    for raw, row in _source_rows(source, plan, batch_rows):
        key = tuple(row[i] for i in key_at)
        have = target.pop(key, None)
        if have is None:
            return f"first differing key {_show(raw, plan)}: missing from the target"
        if have != row_digest(row):
            return f"first differing key {_show(raw, plan)}: {_diff_fields(sink, plan, row)}"
    if target:
        return f"key {next(iter(target))!r} is in the target but not in the source"
    return "rows match once compared one by one"


def _show(raw: Sequence[Any], plan: TablePlan) -> str:
    return ", ".join(f"{plan.key[j]}={raw[i]!r}" for j, i in enumerate(plan.key_index))


def _fetch(sink: Sink, plan: TablePlan, row: Sequence[Any]) -> tuple[Any, ...] | None:
    where = " AND ".join(f"{quote(plan.columns[i])} = ?" for i in plan.key_index)
    found = sink.query(f"SELECT {', '.join(quote(c) for c in plan.columns)} FROM "
                       f"{quote(plan.name)} WHERE {where}", [row[i] for i in plan.key_index])
    return tuple(found[0]) if found else None


def _diff_fields(sink: Sink, plan: TablePlan, row: Sequence[Any]) -> str:
    got = _fetch(sink, plan, row)
    if got is None:
        return "missing from the target"
    for name, want, have in zip(plan.columns, row, got, strict=True):
        if row_digest((want,)) != row_digest((have,)):
            return f"column {name}: source {_short(want)}, target {_short(have)}"
    return "rows differ"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate_tables(source: Source, sink: Sink, plans: Sequence[TablePlan],
                    copies: dict[str, CopyResult], *, batch_rows: int) -> list[Finding]:
    """Counts, checksums and sampled rows of every table, then the foreign-key orphans."""
    findings: list[Finding] = []
    for plan in plans:
        copy = copies.get(plan.name)
        t_count, t_sum = sink.digest(plan.name, plan.columns)
        if copy is not None and copy.checksum is not None:
            s_count, s_sum = copy.rows_total, copy.checksum
        else:  # resumed: the copy saw only part of the source
            s_count, s_sum = table_digest(row for _, row in _source_rows(source, plan, batch_rows))
        findings.append(Finding(plan.name, "rows", s_count == t_count, s_count, t_count))
        ok = s_sum == t_sum and s_count == t_count
        detail = "" if ok else _first_difference(source, sink, plan, batch_rows)
        findings.append(Finding(plan.name, "checksum", ok, f"{s_sum:016x}", f"{t_sum:016x}",
                                detail))
        if copy is not None and copy.samples and plan.key_index:
            bad = [_diff_fields(sink, plan, row) for row in copy.samples
                   if (got := _fetch(sink, plan, row)) is None or row_digest(got) != row_digest(row)]
            findings.append(Finding(plan.name, "sampled rows", not bad, len(copy.samples),
                                    len(copy.samples) - len(bad), bad[0] if bad else ""))
    orphans = sink.query("PRAGMA foreign_key_check")
    by_table: dict[str, int] = {}
    for row in orphans:
        by_table[row[0]] = by_table.get(row[0], 0) + 1
    for plan in plans:
        if plan.source.foreign_keys:
            n = by_table.get(plan.name, 0)
            findings.append(Finding(plan.name, "foreign-key orphans", n == 0, 0, n,
                                    f"{n} rows reference a missing parent" if n else ""))
    return findings


def _normal(value: Any) -> Any:
    """A check query's value as SQLite would hold it, so results compare across engines."""
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float):
        return int(value) if value.is_integer() else round(value, 9)
    if isinstance(value, bool):
        return int(value)
    if hasattr(value, "isoformat"):
        return timestamp_text(value) if hasattr(value, "hour") and hasattr(value, "day") \
            else value.isoformat()
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    return value


def _bag(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    return sorted((tuple(_normal(v) for v in row) for row in rows), key=repr)


def check_queries(source: Source, sink: Sink, queries: Sequence[str]) -> list[Finding]:
    """Run each query on the source and, transpiled by sqlglot, on the target; compare results."""
    findings = []
    for sql in queries:
        label = " ".join(sql.split())[:70]
        _, want = source.query(sql)
        try:
            converted = transpile(sql, source.dialect)
            have = sink.query(converted)
        except Exception as exc:  # noqa: BLE001 - any failure on the target is the finding
            findings.append(Finding("(query)", label, False, len(want), None,
                                    f"did not run on the target: {str(exc).splitlines()[0]}"))
            continue
        a, b = _bag(want), _bag(have)
        ok = len(a) == len(b) and all(
            len(x) == len(y) and all(_same(u, v) for u, v in zip(x, y, strict=True))
            for x, y in zip(a, b, strict=True))
        detail = "" if ok else f"first rows: source {_short(a[:1])}, target {_short(b[:1])}"
        findings.append(Finding("(query)", label, ok, len(a), len(b), detail))
    return findings


def _same(a: Any, b: Any) -> bool:
    # MySQL rounds a division (AVG included) to div_precision_increment = 4
    # decimals where SQLite keeps a double: numbers agree to that.
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-4)
    return a == b


def findings_frame(findings: Sequence[Finding]) -> pd.DataFrame:
    """The findings as a DataFrame with :data:`CHECK_COLUMNS`."""
    return pd.DataFrame([{"table": f.table, "check": f.check, "ok": f.ok, "source": f.source,
                          "target": f.target, "detail": f.detail} for f in findings],
                        columns=list(CHECK_COLUMNS))
