"""Which rows of a table a template's predicates keep, counted from every row's values.

:class:`~d1bench.advisor.stats.Stats` holds each key's value for every row of its
table (read once, in rowid order).  A predicate the data can answer row by row
becomes a boolean array over those rows: equality with a bound or literal value,
IN a list of bound values, IS NULL, and a range (``<``, ``<=``, ``>``, ``>=``,
BETWEEN) on a column whose bound holds no column (``ts >= date(?)``: SQLite
works the bound out, numpy compares).  The arrays of several predicates are
AND-ed, so correlated predicates are counted together, not multiplied as if
independent; what no array can answer (LIKE, functions of columns, subqueries)
is left for the sample.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import apsw
import numpy as np

from d1bench.advisor.query import Pred, Ref
from d1bench.advisor.stats import Stats

__all__ = ["Masks", "as_number", "exactable"]

_COMPARE = re.compile(
    r'(?is)^\s*(?:"?\w+"?\.)?"?(?P<key>\w+)"?\s*(?P<op>>=|<=|>|<)\s*(?P<rhs>.+?)\s*$')
_BETWEEN = re.compile(
    r'(?is)^\s*(?:"?\w+"?\.)?"?(?P<key>\w+)"?\s+BETWEEN\s+(?P<lo>.+?)\s+AND\s+(?P<hi>.+?)\s*$')
#: Longest text value compared row by row (longer columns are left to the sample).
_MAX_TEXT = 64
_UNKNOWN = object()
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def exactable(p: Pred) -> bool:
    """An equality with a bound or literal value, IN a list of bound values, or IS NULL:
    answered from the values of ``p.key`` whatever its type."""
    return p.key is not None and (
        (p.op == "eq" and p.value in ("param", "literal"))
        or (p.op == "in" and p.value == "param")
        or p.op == "isnull")


class Masks:
    """Row masks of one corpus's tables, from its :class:`~d1bench.advisor.stats.Stats`."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self._bounds: dict[tuple, Any] = {}
        self._columns: dict[tuple[str, str], tuple[str, np.ndarray, np.ndarray] | None] = {}

    def counted(self, ref: Ref, preds: Sequence[Pred], params: Mapping[str, Any]
                ) -> tuple[np.ndarray | None, list[Pred], list[Pred]]:
        """(the rows of ``ref``'s table meeting every predicate that can be counted, those
        predicates, the rest).  The mask is ``None`` when none could be counted, and all
        false when a bound value is NULL (nothing compares equal to NULL)."""
        n = self.stats.row_count(ref.name)
        mask: np.ndarray | None = None
        done: list[Pred] = []
        rest: list[Pred] = []
        for p in preds:
            got = self._equality(ref, p, params, n) if exactable(p) else self._range(ref, p, params, n)
            if got is None:
                rest.append(p)
                continue
            done.append(p)
            mask = got if mask is None else mask & got
        return mask, done, rest

    # --- one predicate --------------------------------------------------------------------
    def _equality(self, ref: Ref, p: Pred, params: Mapping[str, Any], n: int) -> np.ndarray:
        assert p.key is not None  # exactable() said so
        series = self.stats.values(ref.name, p.key)
        if p.op == "isnull":
            return series.isna().to_numpy()
        values = [p.literal] if p.op == "eq" and p.value == "literal" else \
            [params.get(name) for name in p.params]
        values = [v for v in values if v is not None]
        if not values:
            return np.zeros(n, dtype=bool)
        first = series.dropna().iloc[0] if series.notna().any() else None
        if isinstance(values[0], str) and first is not None and not isinstance(first, str):
            values = values + [as_number(v) for v in values]
        elif isinstance(first, str):
            # a TEXT column compares a bound number as its text (`code = 5` meets '5')
            values = values + [str(v) for v in values
                               if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if isinstance(first, str) and self._nocase(ref, p.key):
            # COLLATE NOCASE folds ASCII letters only, as here
            fold = str.maketrans(_UPPER, _UPPER.lower())
            wanted = {v.translate(fold) for v in values if isinstance(v, str)}
            texts = series.where(series.map(lambda v: isinstance(v, str)), None)
            return texts.map(lambda v: v is not None and v.translate(fold) in wanted).to_numpy(
                dtype=bool)
        return series.isin(values).to_numpy()

    def _nocase(self, ref: Ref, key: str) -> bool:
        td = self.stats.catalog.table(ref.name)
        return td is not None and key.lower() in {c.lower() for c in td.nocase}

    def _range(self, ref: Ref, p: Pred, params: Mapping[str, Any], n: int) -> np.ndarray | None:
        """A range on a plain column against bounds that hold no column, else ``None``."""
        if p.op != "range" or p.key is None or p.expression or \
                p.value not in ("param", "literal", "expr"):
            return None
        m = (_BETWEEN if p.bounds == 2 else _COMPARE).match(p.sql)
        if m is None or m.group("key").lower() != p.key.lower():
            return None
        parts = [(">=", m.group("lo")), ("<=", m.group("hi"))] if p.bounds == 2 else \
            [(m.group("op"), m.group("rhs"))]
        if self._nocase(ref, p.key):
            return None  # compared without case: not numpy's order
        column = self._column(ref.name, p.key)
        if column is None:
            return None
        kind, values, present = column
        mask = present.copy()
        for op, rhs in parts:
            bound = self._bound(rhs, params)
            if bound is _UNKNOWN:
                return None
            if bound is None:
                return np.zeros(n, dtype=bool)
            if kind == "number":
                bound = as_number(bound)
                if isinstance(bound, (str, bytes)):
                    return None  # a text bound against numbers: SQLite's cross-type order
            elif not isinstance(bound, str):
                return None
            mask &= {">": values > bound, ">=": values >= bound,
                     "<": values < bound, "<=": values <= bound}[op]
        return mask

    # --- what the comparisons need ---------------------------------------------------------
    def _column(self, table: str, key: str) -> tuple[str, np.ndarray, np.ndarray] | None:
        """("number" | "text", the values as a numpy array, which rows are not NULL), or
        ``None`` for values of mixed types, blobs or long text."""
        cache = (table.lower(), key)
        if cache not in self._columns:
            series = self.stats.values(table, key)
            present = series.notna().to_numpy()
            kinds = {type(v) for v in series[present]}
            result: tuple[str, np.ndarray, np.ndarray] | None = None
            if kinds <= {int, float}:
                result = ("number", series.fillna(0).to_numpy(dtype=np.float64), present)
            elif kinds == {str}:
                texts = series.fillna("")
                if int(texts.str.len().max() or 0) <= _MAX_TEXT:
                    result = ("text", texts.to_numpy(dtype=str), present)
            self._columns[cache] = result
        return self._columns[cache]

    def _bound(self, rhs: str, params: Mapping[str, Any]) -> Any:
        """The value SQLite gives ``rhs`` (a bound holding no column) with ``params``."""
        names = re.findall(r":(\w+)", rhs)
        cache = (rhs, tuple((k, repr(params.get(k))) for k in names))
        if cache not in self._bounds:
            try:
                (value,) = next(iter(self.stats.conn.execute(
                    f"SELECT {rhs}", {k: params.get(k) for k in names})))
            except (apsw.Error, StopIteration, ValueError):
                value = _UNKNOWN  # it names a column after all, or SQLite refused it
            self._bounds[cache] = value
        return self._bounds[cache]


def as_number(v: Any) -> Any:
    """``v`` as an int or float when it reads as one (SQLite's numeric affinity), else ``v``."""
    if isinstance(v, (int, float)):
        return v
    try:
        return int(v)
    except (TypeError, ValueError):
        try:
            return float(v)
        except (TypeError, ValueError):
            return v
