"""Parameter samplers: what a template's ``?`` placeholders are filled with.

A :class:`SamplerSpec` is what the workload file says (``{sampler = "id",
table = "papers"}``); it is checked when the file is loaded.  Binding a
workload to a corpus turns each spec into a :class:`Drawer` holding values
sampled from the corpus once (see :mod:`d1bench.workload.resolve`), so that
drawing parameters during a replay costs microseconds and runs no SQL.

Every sampler accepts two extra options: ``null_probability`` (draw SQL NULL
with this probability, since TOML has no null) and ``format`` (a Python format
string applied to the drawn value, e.g. ``"%{}%"`` for a LIKE pattern).
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SAMPLER_KINDS",
    "ConstDrawer",
    "DateDrawer",
    "Drawer",
    "FloatDrawer",
    "IntDrawer",
    "PoolDrawer",
    "SamplerError",
    "SamplerSpec",
    "spec_from_toml",
]


class SamplerError(ValueError):
    """A sampler spec that cannot be used; the loader adds file, line and template."""


_COMMON = {"null_probability", "format"}

#: Each sampler kind with its required and optional options (and their defaults).
SAMPLER_KINDS: Mapping[str, tuple[frozenset[str], Mapping[str, Any]]] = {
    "id": (frozenset({"table"}), {"column": "id", "where": None, "sample": 1000, "zipf": None}),
    "column": (frozenset({"table", "column"}),
               {"where": None, "sample": 1000, "json_array": False, "distinct": False}),
    "term": (frozenset(), {"band": "any", "table": "papers", "columns": ("title", "keywords"),
                           "sample": 500, "words": 1, "source": "auto"}),
    "choice": (frozenset({"values"}), {"weights": None}),
    "int": (frozenset({"min", "max"}), {}),
    "float": (frozenset({"min", "max"}), {"digits": None}),
    "date": (frozenset({"from_days", "to_days"}), {"datetime": False}),
    "fixed": (frozenset({"value"}), {}),
    "vector": (frozenset(), {"dim": None, "table": "papers", "column": "embedding_vector",
                             "sample": 64, "digits": 4}),
    "from_row": (frozenset({"column"}), {}),
    "same": (frozenset({"param"}), {}),
}

_TERM_BANDS = ("any", "common", "rare")
_TERM_SOURCES = ("auto", "fts5vocab", "corpus", "vocabulary")


def _freeze(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value


@dataclass(frozen=True, slots=True)
class SamplerSpec:
    """One parameter's sampler, as the workload file declares it (validated).

    Attributes:
        kind: one of :data:`SAMPLER_KINDS` (``id``, ``column``, ``term``, ...).
        options: the kind's options with defaults filled in, as sorted
            ``(name, value)`` pairs (lists become tuples so specs hash).
    """

    kind: str
    options: tuple[tuple[str, Any], ...] = ()

    def get(self, name: str, default: Any = None) -> Any:
        """The value of option ``name``."""
        for key, value in self.options:
            if key == name:
                return value
        return default

    @property
    def table(self) -> str | None:
        """The table the sampler reads from, if any (``id``, ``column``, ``term``, ``vector``)."""
        return self.get("table")

    @property
    def column(self) -> str | None:
        """The column the sampler reads from (or, for ``from_row``, the row's column)."""
        return self.get("column")

    def table_column(self) -> tuple[str, str]:
        """``(table, column)`` of a sampler that reads one (its options were checked for both)."""
        table, column = self.table, self.column
        if table is None or column is None:
            raise SamplerError(f"sampler {self.kind!r} needs a table and a column")
        return table, column

    @property
    def corpus_key(self) -> SamplerSpec:
        """The spec without its per-parameter options: specs that share it share a value pool."""
        return SamplerSpec(self.kind, tuple((k, v) for k, v in self.options if k not in _COMMON))

    def describe(self) -> str:
        """A short label, e.g. ``id(papers)`` or ``term(common)``.

        >>> spec_from_toml({"sampler": "column", "table": "papers", "column": "doi"}).describe()
        'column(papers.doi)'
        """
        k = self.kind
        if k == "id":
            return f"id({self.table})"
        if k == "column":
            return f"column({self.table}.{self.column}{'[*]' if self.get('json_array') else ''})"
        if k == "term":
            words = self.get("words")
            return f"term({self.get('band')}{f', {words} words' if words != 1 else ''})"
        if k == "choice":
            return f"choice({len(self.get('values'))} values)"
        if k in ("int", "float"):
            return f"{k}({self.get('min')}..{self.get('max')})"
        if k == "date":
            lo, hi = self.get("from_days"), self.get("to_days")
            unit = "datetime" if self.get("datetime") else "date"
            return (f"{unit}(as_of{lo:+d}d)" if lo == hi
                    else f"{unit}(as_of{lo:+d}d..as_of{hi:+d}d)")
        if k == "fixed":
            return f"fixed({self.get('value')!r})"
        if k == "vector":
            return f"vector({self.get('dim') or 'auto'})"
        if k == "from_row":
            return f"from_row({self.column})"
        return f"same(param {self.get('param')})"


def spec_from_toml(raw: Any) -> SamplerSpec:
    """Validate one entry of a ``params`` array and return its spec.

    >>> spec_from_toml({"sampler": "int", "min": 1, "max": 5}).get("max")
    5
    >>> spec_from_toml({"sampler": "dice"})
    Traceback (most recent call last):
    ...
    d1bench.workload.samplers.SamplerError: unknown sampler 'dice' (choose from choice, column, date, fixed, float, from_row, id, int, same, term, vector)
    """
    if not isinstance(raw, dict):
        raise SamplerError(f"a parameter must be a table like {{sampler = \"id\", table = \"papers\"}}, "
                           f"got {raw!r}")
    kind = raw.get("sampler")
    if kind is None:
        raise SamplerError(f"parameter {raw!r} has no 'sampler' key")
    if not isinstance(kind, str) or kind not in SAMPLER_KINDS:
        raise SamplerError(f"unknown sampler {kind!r} (choose from {', '.join(sorted(SAMPLER_KINDS))})")
    required, optional = SAMPLER_KINDS[kind]
    given = {k: v for k, v in raw.items() if k != "sampler"}
    allowed = required | set(optional) | _COMMON
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise SamplerError(f"sampler {kind!r} has no option {', '.join(map(repr, unknown))} "
                           f"(it takes {', '.join(sorted(allowed))})")
    missing = sorted(required - set(given))
    if missing:
        raise SamplerError(f"sampler {kind!r} needs {', '.join(map(repr, missing))}")
    options = {**{k: v for k, v in optional.items()}, **given}
    _validate(kind, options)
    return SamplerSpec(kind, tuple(sorted((k, _freeze(v)) for k, v in options.items())))


def _need(cond: bool, kind: str, message: str) -> None:
    if not cond:
        raise SamplerError(f"sampler {kind!r}: {message}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _validate(kind: str, o: dict[str, Any]) -> None:
    p = o.get("null_probability")
    if kind == "same":
        _need(p is None and o.get("format") is None, kind,
              "a copy of another parameter takes neither null_probability nor format")
    if kind == "from_row":
        _need(p is None, kind, "null_probability does not apply to a value taken from a row")
    if p is not None:
        _need(_is_num(p) and 0 <= p <= 1, kind, f"null_probability must be in [0, 1], got {p!r}")
    fmt = o.get("format")
    if fmt is not None:
        _need(isinstance(fmt, str) and "{}" in fmt, kind,
              f"format must be a string containing {{}}, got {fmt!r}")
    for name in ("table", "column", "where"):
        if o.get(name) is not None:
            _need(isinstance(o[name], str) and o[name].strip() != "", kind,
                  f"{name} must be a non-empty string")
    for name in ("table", "column"):
        if isinstance(o.get(name), str):
            _need(o[name].replace("_", "a").isalnum(), kind,
                  f"{name} {o[name]!r} is not a plain SQL identifier")
    if "sample" in o:
        _need(_is_int(o["sample"]) and 1 <= o["sample"] <= 100_000, kind,
              f"sample must be an integer from 1 to 100000, got {o['sample']!r}")
    if kind == "id":
        z = o["zipf"]
        _need(z is None or (_is_num(z) and 0 <= z <= 5), kind, f"zipf must be in [0, 5], got {z!r}")
    elif kind == "term":
        _need(o["band"] in _TERM_BANDS, kind, f"band must be one of {_TERM_BANDS}, got {o['band']!r}")
        _need(o["source"] in _TERM_SOURCES, kind,
              f"source must be one of {_TERM_SOURCES}, got {o['source']!r}")
        _need(_is_int(o["words"]) and 1 <= o["words"] <= 10, kind, "words must be an integer 1..10")
        cols = o["columns"]
        _need(isinstance(cols, list | tuple) and len(cols) > 0
              and all(isinstance(c, str) and c.replace("_", "a").isalnum() for c in cols), kind,
              "columns must be a non-empty list of column names")
    elif kind == "choice":
        values, weights = o["values"], o["weights"]
        _need(isinstance(values, list | tuple) and len(values) > 0, kind,
              "values must be a non-empty list")
        if weights is not None:
            _need(isinstance(weights, list | tuple) and len(weights) == len(values), kind,
                  f"weights must be a list as long as values ({len(values)})")
            _need(all(_is_num(w) and w >= 0 for w in weights) and sum(weights) > 0, kind,
                  "weights must be non-negative numbers, not all zero")
    elif kind in ("int", "float"):
        check = _is_int if kind == "int" else _is_num
        _need(check(o["min"]) and check(o["max"]), kind,
              f"min and max must be {'integers' if kind == 'int' else 'numbers'}")
        _need(o["min"] <= o["max"], kind, f"min ({o['min']}) is greater than max ({o['max']})")
        if kind == "float" and o["digits"] is not None:
            _need(_is_int(o["digits"]) and 0 <= o["digits"] <= 15, kind, "digits must be 0..15")
    elif kind == "date":
        _need(_is_int(o["from_days"]) and _is_int(o["to_days"]), kind,
              "from_days and to_days must be integers (days relative to the corpus's as-of date)")
        _need(o["from_days"] <= o["to_days"], kind,
              f"from_days ({o['from_days']}) is after to_days ({o['to_days']})")
        _need(isinstance(o["datetime"], bool), kind,
              "datetime must be true (a 'YYYY-MM-DD HH:MM:SS' timestamp) or false (a date)")
    elif kind == "fixed":
        _need(isinstance(o["value"], str | int | float | bool), kind,
              "value must be a string, number or boolean (use null_probability = 1 for NULL)")
    elif kind == "vector":
        d = o["dim"]
        _need(d is None or (_is_int(d) and 1 <= d <= 4096), kind, f"dim must be 1..4096, got {d!r}")
        _need(_is_int(o["digits"]) and 1 <= o["digits"] <= 10, kind, "digits must be 1..10")
    elif kind == "same":
        _need(_is_int(o["param"]) and o["param"] >= 1, kind,
              "param must be the 1-based number of an earlier parameter")


# --- drawers: what a bound sampler is -----------------------------------------


class Drawer:
    """A bound sampler: ``draw(rng)`` returns one value without touching the database.

    Attributes:
        spec: the spec it was bound from.
        source: where its values came from (``"corpus: 1000 sampled rows"``, ...).
    """

    __slots__ = ("_fmt", "_null_p", "source", "spec")

    def __init__(self, spec: SamplerSpec, source: str) -> None:
        self.spec = spec
        self.source = source
        self._null_p = spec.get("null_probability") or 0.0
        self._fmt = spec.get("format")

    def draw(self, rng: random.Random) -> Any:
        if self._null_p and rng.random() < self._null_p:
            return None
        value = self._draw(rng)
        return self._fmt.format(value) if self._fmt else value

    def _draw(self, rng: random.Random) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def examples(self, n: int = 3) -> list[Any]:
        """A few values, drawn with a fixed seed (for display)."""
        rng = random.Random(0)
        return [self.draw(rng) for _ in range(n)]

    def size(self) -> int | None:
        """How many distinct values it can draw, where that is a fixed pool."""
        return None


class PoolDrawer(Drawer):
    """Draws from a fixed pool of values, uniformly or by weight."""

    __slots__ = ("_cum", "_total", "values")

    def __init__(self, spec: SamplerSpec, source: str, values: Sequence[Any],
                 weights: Sequence[float] | None = None) -> None:
        super().__init__(spec, source)
        if not values:
            raise SamplerError("no values to draw from")
        self.values = tuple(values)
        self._cum = list(itertools.accumulate(weights)) if weights is not None else None
        self._total = self._cum[-1] if self._cum else 0.0

    def _draw(self, rng: random.Random) -> Any:
        if self._cum is None:
            return self.values[int(rng.random() * len(self.values))]
        i = bisect.bisect_right(self._cum, rng.random() * self._total)
        return self.values[min(i, len(self.values) - 1)]

    def size(self) -> int:
        return len(set(self.values))


class ConstDrawer(Drawer):
    __slots__ = ("value",)

    def __init__(self, spec: SamplerSpec, source: str, value: Any) -> None:
        super().__init__(spec, source)
        self.value = value

    def _draw(self, rng: random.Random) -> Any:
        return self.value

    def size(self) -> int:
        return 1


class IntDrawer(Drawer):
    __slots__ = ("hi", "lo")

    def __init__(self, spec: SamplerSpec) -> None:
        super().__init__(spec, "range")
        self.lo, self.hi = spec.get("min"), spec.get("max")

    def _draw(self, rng: random.Random) -> Any:
        return self.lo + int(rng.random() * (self.hi - self.lo + 1))


class FloatDrawer(Drawer):
    __slots__ = ("digits", "hi", "lo")

    def __init__(self, spec: SamplerSpec) -> None:
        super().__init__(spec, "range")
        self.lo, self.hi, self.digits = spec.get("min"), spec.get("max"), spec.get("digits")

    def _draw(self, rng: random.Random) -> Any:
        value = self.lo + rng.random() * (self.hi - self.lo)
        return round(value, self.digits) if self.digits is not None else value


class DateDrawer(Drawer):
    """A date (or timestamp) uniformly within a window relative to the corpus's as-of date."""

    __slots__ = ("as_of", "datetime", "hi", "lo")

    def __init__(self, spec: SamplerSpec, as_of: dt.date, source: str) -> None:
        super().__init__(spec, source)
        self.as_of = as_of
        self.datetime = bool(spec.get("datetime"))
        self.lo, self.hi = spec.get("from_days"), spec.get("to_days")
        if self.datetime:
            # seconds, so a timestamp can fall at any time of the last day of the window
            self.lo, self.hi = self.lo * 86_400, self.hi * 86_400 + 86_399

    def _draw(self, rng: random.Random) -> Any:
        offset = self.lo + int(rng.random() * (self.hi - self.lo + 1))
        if self.datetime:
            moment = dt.datetime.combine(self.as_of, dt.time()) + dt.timedelta(seconds=offset)
            return moment.strftime("%Y-%m-%d %H:%M:%S")
        return (self.as_of + dt.timedelta(days=offset)).isoformat()
