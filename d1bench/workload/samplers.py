"""Parameter samplers: what a template's ``?`` placeholders are filled with.

A :class:`SamplerSpec` is what the workload file says (``{sampler = "id",
table = "papers"}``); it is checked when the file is loaded.  Binding a
workload to a corpus turns each spec into a :class:`Drawer` holding values
sampled from the corpus once (see :mod:`d1bench.workload.resolve`), so that
drawing parameters during a replay costs microseconds and runs no SQL.

Every sampler accepts two extra options: ``null_probability`` (draw SQL NULL
with this probability, since TOML has no null) and ``format`` (a Python format
string with one replacement field applied to the drawn value, e.g. ``"%{}%"``
for a LIKE pattern or ``"{:.3}"`` for a three-character prefix).
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import random
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from d1bench.workload.dates import ANCHOR_MAX, DATE_OUTPUTS, parse_moment

__all__ = [
    "SAMPLER_KINDS",
    "ConstDrawer",
    "DateDrawer",
    "Drawer",
    "FloatDrawer",
    "IntDrawer",
    "PoolDrawer",
    "PrefixDrawer",
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
    "prefix": (frozenset({"table", "column"}), {"length": 3, "where": None, "sample": 1000}),
    "choice": (frozenset({"values"}), {"weights": None}),
    "int": (frozenset({"min", "max"}), {}),
    "float": (frozenset({"min", "max"}), {"digits": None}),
    # either from_days/to_days (relative to an anchor) or from/to (absolute literals)
    "date": (frozenset(), {"from_days": None, "to_days": None, "from": None, "to": None,
                           "anchor": "as_of", "datetime": False, "output": "iso"}),
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
        if k == "prefix":
            return f"prefix({self.table}.{self.column}, {self.get('length')})"
        if k == "choice":
            return f"choice({len(self.get('values'))} values)"
        if k in ("int", "float"):
            return f"{k}({self.get('min')}..{self.get('max')})"
        if k == "date":
            unit = "datetime" if self.get("datetime") else "date"
            if self.get("from") is not None:
                return f"{unit}({self.get('from')}..{self.get('to')})"
            lo, hi, a = self.get("from_days"), self.get("to_days"), self.get("anchor")
            return (f"{unit}({a}{lo:+d}d)" if lo == hi
                    else f"{unit}({a}{lo:+d}d..{a}{hi:+d}d)")
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
    d1bench.workload.samplers.SamplerError: unknown sampler 'dice' (choose from choice, column, date, fixed, float, from_row, id, int, prefix, same, term, vector)
    """
    if not isinstance(raw, dict):
        raise SamplerError(f"a parameter must be a table like {{sampler = \"id\", table = \"papers\"}}, "
                           f"got {raw!r}")
    kind = raw.get("sampler")
    if kind not in SAMPLER_KINDS:
        if kind is None:
            raise SamplerError(f"parameter {raw!r} has no 'sampler' key")
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
    if kind == "choice" and isinstance(given.get("values"), dict):
        # values = {a = 3, b = 1}: a weighted choice written as one table
        if given.get("weights") is not None:
            raise SamplerError("sampler 'choice': give weights either in values = {value = weight} "
                               "or as weights = [...], not both")
        table = given["values"]
        given = {**given, "values": list(table), "weights": list(table.values())}
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
        _need(isinstance(fmt, str) and _one_field(fmt), kind,
              f"format must be a Python format string with one replacement field such as "
              f"\"%{{}}%\" or \"{{:.3}}\", got {fmt!r}")
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
    elif kind == "prefix":
        n = o["length"]
        ok = _is_int(n) and 1 <= n <= 50 or (
            isinstance(n, list | tuple) and len(n) == 2 and all(_is_int(x) for x in n)
            and 1 <= n[0] <= n[1] <= 50)
        _need(ok, kind, f"length must be an integer 1..50 or [min, max] within it, got {n!r}")
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
        _validate_date(o)
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


def _one_field(fmt: str) -> bool:
    """Whether ``fmt`` has exactly one automatic or ``{0}`` replacement field.

    >>> _one_field("{:.3}"), _one_field("%{}%"), _one_field("{} {}"), _one_field("{x}")
    (True, True, False, False)
    """
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(fmt) if f is not None]
    except ValueError:
        return False
    return len(fields) == 1 and fields[0] in ("", "0")


def _validate_date(o: dict[str, Any]) -> None:
    kind = "date"
    relative = o["from_days"] is not None or o["to_days"] is not None
    absolute = o["from"] is not None or o["to"] is not None
    _need(relative != absolute, kind,
          "give either from_days and to_days (relative to an anchor) or from and to "
          "(absolute dates like \"2024-01-01\"), not both")
    if relative:
        _need(_is_int(o["from_days"]) and _is_int(o["to_days"]), kind,
              "from_days and to_days must both be integers (days relative to the anchor)")
        _need(o["from_days"] <= o["to_days"], kind,
              f"from_days ({o['from_days']}) is after to_days ({o['to_days']})")
        a = o["anchor"]
        _need(isinstance(a, str) and (a in ("as_of", "now") or ANCHOR_MAX.match(a) is not None),
              kind, f"anchor must be \"as_of\", \"now\" or \"max(table.column)\", got {a!r}")
    else:
        _need(o["anchor"] == "as_of", kind, "anchor applies to from_days/to_days, not to from/to")
        _need(o["from"] is not None and o["to"] is not None, kind, "give both from and to")
        try:
            lo, hi = parse_moment(o["from"], "from"), parse_moment(o["to"], "to")
        except ValueError as exc:
            raise SamplerError(f"sampler 'date': {exc}") from None
        _need(lo <= hi, kind, f"from ({o['from']}) is after to ({o['to']})")
        # a TOML date is not hashable-stable across versions as text: keep ISO text
        for key in ("from", "to"):
            if isinstance(o[key], dt.date):
                o[key] = o[key].isoformat(sep=" ") if isinstance(o[key], dt.datetime) \
                    else o[key].isoformat()
    _need(isinstance(o["datetime"], bool), kind,
          "datetime must be true (a 'YYYY-MM-DD HH:MM:SS' timestamp) or false (a date)")
    _need(o["output"] in DATE_OUTPUTS, kind,
          f"output must be one of {', '.join(DATE_OUTPUTS)}, got {o['output']!r}")


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
    """A date (or timestamp) uniformly within a window.

    The window is ``[lo, hi]``: absolute literals, or whole days counted from
    an anchor's day (the corpus's as-of date, today, or ``max(table.column)``),
    so a fixed database gives the same windows forever unless the anchor is
    ``now``.
    """

    __slots__ = ("datetime", "hi", "lo", "output")

    def __init__(self, spec: SamplerSpec, anchor: dt.datetime | None, source: str) -> None:
        super().__init__(spec, source)
        self.datetime = bool(spec.get("datetime"))
        self.output = spec.get("output")
        if spec.get("from") is not None:
            lo, hi = parse_moment(spec.get("from"), "from"), parse_moment(spec.get("to"), "to")
            if not self.datetime or (hi.time() == dt.time() and len(str(spec.get("to"))) <= 10):
                # a date literal as the upper bound includes that whole day
                hi = hi + dt.timedelta(days=1) - dt.timedelta(seconds=1)
        else:
            assert anchor is not None
            day = dt.datetime.combine(anchor.date(), dt.time())
            lo = day + dt.timedelta(days=spec.get("from_days"))
            hi = day + dt.timedelta(days=spec.get("to_days"), seconds=86_399)
        self.lo, self.hi = lo, hi

    def _draw(self, rng: random.Random) -> Any:
        span = int((self.hi - self.lo).total_seconds())
        moment = self.lo + dt.timedelta(seconds=int(rng.random() * (span + 1)))
        if not self.datetime:
            moment = dt.datetime.combine(moment.date(), dt.time())
        if self.output == "unixepoch":
            return int((moment - dt.datetime(1970, 1, 1)).total_seconds())
        if self.output == "unixepoch_ms":
            return int((moment - dt.datetime(1970, 1, 1)).total_seconds()) * 1000
        return moment.strftime("%Y-%m-%d %H:%M:%S") if self.datetime else moment.date().isoformat()


class PrefixDrawer(PoolDrawer):
    """Draws a prefix of an existing value: ``length`` characters (or a length in
    ``[min, max]``), for ``LIKE 'pre%'`` searches that find something."""

    __slots__ = ("lengths",)

    def __init__(self, spec: SamplerSpec, source: str, values: Sequence[Any]) -> None:
        super().__init__(spec, source, [str(v) for v in values])
        n = spec.get("length")
        self.lengths = (n, n) if isinstance(n, int) else tuple(n)

    def _draw(self, rng: random.Random) -> Any:
        value = super()._draw(rng)
        lo, hi = self.lengths
        return value[:lo + int(rng.random() * (hi - lo + 1))]
