"""Results, meta and plans from D1's answers, and the holder that hides the token.

Kept apart from :mod:`~d1bench.targets.d1.target` so that the request path
reads in one screen; these are pure functions of what D1 sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from d1bench.errors import TargetError
from d1bench.targets.base import Meta, Params, PlanStep, Result
from d1bench.targets.d1.classify import error_from_response

__all__ = ["Secret", "Statement", "decode", "merge", "plan_of", "statements_of"]

#: One statement of a batch: SQL text, or SQL text with its parameters.
Statement = str | tuple[str, Params]

_META_FIELDS = {"rows_read", "rows_written", "duration", "changes", "last_row_id"}


class Secret:
    """Holds a secret (the token, the header carrying it); repr, str and pickle never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        self._value = value

    def reveal(self) -> Any:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "'***'" if self._value else "None"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("the API token is not picklable")


_DECODER = json.JSONDecoder()


def _int(value: Any) -> int | None:
    if type(value) is int:  # the usual case, first: this runs five times per request
        return value
    return int(value) if isinstance(value, float) else None


def _meta(raw: Mapping[str, Any], attempts: int, errors: list[str],
          delays: list[float]) -> Meta:
    extra = {k: v for k, v in raw.items() if k not in _META_FIELDS}
    if errors:
        extra["attempt_errors"] = list(errors)
        extra["backoff_s"] = [round(d, 6) for d in delays]
    duration = raw.get("duration")
    return Meta(
        rows_read=_int(raw.get("rows_read")),
        rows_written=_int(raw.get("rows_written")),
        duration_ms=float(duration) if isinstance(duration, int | float) else None,
        changes=_int(raw.get("changes")),
        last_row_id=_int(raw.get("last_row_id")),
        attempts=attempts,
        extra=extra,
    )


def statements_of(items: Iterable[Statement]) -> list[tuple[str, Params]]:
    out: list[tuple[str, Params]] = []
    for item in items:
        if isinstance(item, str):
            out.append((item, ()))
        else:
            sql, params = item
            out.append((sql, params or ()))
    return out


def merge(results: list[Result]) -> Result:
    """One result for a text that held several statements: the last one's rows, summed costs."""
    if len(results) == 1:
        return results[0]
    last = results[-1]

    def total(name: str) -> Any:
        values = [getattr(r.meta, name) for r in results]
        return None if all(v is None for v in values) else sum(v or 0 for v in values)

    extra = dict(last.meta.extra)
    extra["statements"] = len(results)
    meta = Meta(rows_read=total("rows_read"), rows_written=total("rows_written"),
                duration_ms=total("duration_ms"), changes=total("changes"),
                last_row_id=last.meta.last_row_id, attempts=last.meta.attempts, extra=extra)
    return Result(last.columns, last.rows, meta)


def plan_of(result: Result) -> list[PlanStep]:
    col = {name: i for i, name in enumerate(result.columns)}
    try:
        i, p, d = col["id"], col["parent"], col["detail"]
    except KeyError:
        raise TargetError(f"EXPLAIN QUERY PLAN answered columns {result.columns}",
                          error_class="other") from None
    return [PlanStep(int(row[i]), int(row[p]), str(row[d])) for row in result.rows]


def decode(body: bytes, attempts: int, errors: list[str], delays: list[float]) -> list[Result]:
    """The Results of a 200 answer; a failure inside it raises a classified TargetError."""
    try:
        doc = _DECODER.decode(body.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError included
        raise error_from_response(200, body, attempts=attempts) from None
    if not isinstance(doc, dict) or not doc.get("success", False):
        raise error_from_response(200, body, attempts=attempts)
    out = []
    for item in doc.get("result") or []:
        if item.get("success") is False:
            raise error_from_response(200, body, attempts=attempts)
        results = item.get("results")
        if type(results) is dict:  # /raw
            columns = tuple(results.get("columns") or ())
            rows = [tuple(r) for r in results.get("rows") or ()]
        else:  # /query: objects keep the columns' order
            results = results or []
            columns = tuple(results[0]) if results else ()
            rows = [tuple(r.values()) for r in results]
        out.append(Result(columns, rows, _meta(item.get("meta") or {}, attempts, errors, delays)))
    if not out:
        raise TargetError("D1 answered success without a result", error_class="other",
                          attempts=attempts)
    return out
