"""A workload: named query templates and sessions, with weights and samplers.

A :class:`Workload` is what a workload file says, checked and immutable.  It
knows nothing of any database until :meth:`Workload.bind` samples parameter
values from a corpus through a target's connection, giving a
:class:`BoundWorkload` whose :meth:`~BoundWorkload.draw` picks the next unit of
work (one query, or one session of several) in microseconds.

A unit is run by driving its :meth:`Unit.steps` generator::

    steps = unit.steps()
    call = next(steps)
    while True:
        result = conn.execute(call.template.sql, call.params)
        try:
            call = steps.send(result)
        except StopIteration:
            break

Sending ``None`` instead of a result says the call failed; a session then stops.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import random
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from d1bench.errors import UsageError
from d1bench.sql.text import parse_sql
from d1bench.workload.samplers import SamplerError, SamplerSpec

if TYPE_CHECKING:
    import pandas as pd

    from d1bench.sql.session import Connection, Result

__all__ = [
    "FAMILIES",
    "SEED_BENCHMARK_MS",
    "BoundWorkload",
    "Call",
    "Session",
    "Step",
    "Template",
    "Unit",
    "Workload",
]

#: Seed 000's benchmark table (average ms on "1M+ papers"), by template family.
SEED_BENCHMARK_MS: Mapping[str, float] = MappingProxyType(
    {"search": 45.0, "retrieval": 25.0, "citations": 35.0, "analytics": 55.0})

#: Families the shipped workload uses; a user's file may name others.
FAMILIES = ("search", "retrieval", "citations", "analytics", "trials", "reviews", "semantic",
            "write", "other")


@dataclass(frozen=True, slots=True)
class Template:
    """One named statement of a workload.

    Attributes:
        name: identifier, unique among templates and sessions.
        sql: one statement with ``?`` / ``?NNN`` placeholders only (D1's rule).
        weight: relative frequency among units of its kind (reads or writes);
            0 means "only run inside sessions".
        params: one sampler spec per bound parameter, in placeholder order.
        family: the kind of request (``search``, ``retrieval``, ``citations``,
            ``analytics``, ``trials``, ``reviews``, ``semantic``, ``write``...),
            which maps onto seed 000's benchmark table (:data:`SEED_BENCHMARK_MS`).
        description: what the request is and, for the shipped workload, the
            flaw it carries on purpose.
        line: line of the template's table header in its file.
        is_write: whether it changes the database (decided with sqlglot).
        source: the file it came from.
        parse_error: sqlglot's message when it could not parse the SQL (the
            write flag then came from the first keyword).
        param_lines: the line of each parameter's sampler in its file, so that
            binding errors point at the parameter rather than the header.
        production: production's figures for this query (``runs``,
            ``avg_rows_read``, ``avg_rows_written``, ``avg_duration_ms``,
            ``efficiency``), when the template came from insights.
    """

    name: str
    sql: str
    weight: float
    params: tuple[SamplerSpec, ...]
    family: str
    description: str
    line: int
    is_write: bool
    source: str = ""
    parse_error: str | None = None
    param_lines: tuple[int, ...] = ()
    production: Mapping[str, float] | None = None

    @property
    def kind(self) -> str:
        """``"write"`` or ``"read"``."""
        return "write" if self.is_write else "read"

    @property
    def seed_target_ms(self) -> float | None:
        """Seed 000's claimed average for this template's family, if it gives one."""
        return SEED_BENCHMARK_MS.get(self.family)

    def expression(self) -> Any:
        """The statement parsed by sqlglot (dialect ``sqlite``), cached; raises if it cannot."""
        return parse_sql(self.sql)


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a session.

    Attributes:
        template: name of the template it runs.
        params: samplers overriding the template's own (``None``: use the
            template's); only here may ``from_row`` appear.
        for_each_row: run once per row the previous step returned (N+1).
        max_rows: with ``for_each_row``, use at most this many rows.
        line: line of the step in its file.
        param_lines: the line of each of its own parameters.
    """

    template: str
    params: tuple[SamplerSpec, ...] | None = None
    for_each_row: bool = False
    max_rows: int | None = None
    line: int = 0
    param_lines: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Session:
    """A sequence of requests one simulated user sends, one after another."""

    name: str
    weight: float
    steps: tuple[Step, ...]
    description: str = ""
    line: int = 0
    source: str = ""


@dataclass(frozen=True, slots=True)
class Call:
    """One request a unit asks to run: the template and its bound values.

    ``step`` is the step's index within a session (0 for a single query) and
    ``row`` the row of the previous step it was made for (``None`` if none).
    """

    template: Template
    params: tuple[Any, ...]
    step: int = 0
    row: int | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Workload:
    """A checked workload (see ``docs/workloads.md`` for the file format).

    Attributes:
        name: the workload's name.
        source: the file it was read from.
        digest: sha256 of the normalised content (comments and layout do not
            count), recorded in traces so runs of different workloads are not merged.
        templates: templates by name, in file order.
        sessions: sessions by name, in file order.
        write_weight: share of drawn units that are write templates.
        description: free text from the file.
    """

    name: str
    source: str
    digest: str
    templates: Mapping[str, Template]
    sessions: Mapping[str, Session] = field(default_factory=lambda: MappingProxyType({}))
    write_weight: float = 0.0
    description: str = ""

    def shares(self) -> dict[str, float]:
        """Probability that a drawn unit is each template or session (weight 0 ones omitted)."""
        return dict(_unit_table(self))

    def with_write_weight(self, write_weight: float) -> Workload:
        """The same workload with writes making up ``write_weight`` of the units drawn
        (a write-heavy variant for the advisor, say)."""
        if not 0 <= write_weight <= 1:
            raise UsageError(f"write weight must be in [0, 1], got {write_weight}")
        variant = replace(self, write_weight=float(write_weight), digest=hashlib.sha256(
            f"{self.digest}|write_weight={float(write_weight)!r}".encode()).hexdigest())
        _unit_table(variant)  # raises if there is nothing to give that share to
        return variant

    def reads_only(self) -> Workload:
        """The workload without its write templates, nor the sessions that step into one.

        Unlike ``with_write_weight(0)``, which keeps the write templates (so the
        D1 read-only guard, judging every template a workload holds, still
        refuses it), this variant cannot write at all: what a replay against a
        production database wants.
        """
        templates = {n: t for n, t in self.templates.items() if not t.is_write}
        sessions = {n: s for n, s in self.sessions.items()
                    if all(step.template in templates for step in s.steps)}
        if not templates:
            raise UsageError(f"workload {self.name!r}: every template writes")
        variant = replace(self, templates=MappingProxyType(templates),
                          sessions=MappingProxyType(sessions), write_weight=0.0,
                          digest=hashlib.sha256(f"{self.digest}|reads-only".encode()).hexdigest())
        _unit_table(variant)
        return variant

    def without(self, *names: str) -> Workload:
        """The workload without the templates ``names``, nor the sessions that step into one
        (to leave out a query known to take seconds, say)."""
        unknown = sorted(set(names) - set(self.templates))
        if unknown:
            raise UsageError(f"workload {self.name!r} has no template {unknown[0]!r}")
        templates = {n: t for n, t in self.templates.items() if n not in names}
        sessions = {n: s for n, s in self.sessions.items()
                    if all(step.template in templates for step in s.steps)}
        variant = replace(self, templates=MappingProxyType(templates),
                          sessions=MappingProxyType(sessions),
                          digest=hashlib.sha256(f"{self.digest}|without={sorted(names)}".encode())
                          .hexdigest())
        _unit_table(variant)
        return variant

    def template_frequencies(self, rows_per_loop: float = 20.0) -> dict[str, float]:
        """Expected executions of each template per drawn unit.

        A ``for_each_row`` step is assumed to see ``rows_per_loop`` rows per
        call of the step before it (capped by its ``max_rows``); a trace gives
        the real counts.
        """
        freq = {name: 0.0 for name in self.templates}
        for name, p in _unit_table(self):
            if name in self.templates:
                freq[name] += p
                continue
            calls = 1.0
            for step in self.sessions[name].steps:
                if step.for_each_row:
                    calls = calls * rows_per_loop
                    if step.max_rows is not None:
                        calls = min(calls, float(step.max_rows))
                else:
                    calls = 1.0
                freq[step.template] += p * calls
        return freq

    def bind(self, conn: Connection, seed: int = 0, *,
             vocabulary_dir: Path | None = None) -> BoundWorkload:
        """Sample every parameter's values from the corpus behind ``conn``.

        Only plain SELECTs are sent (a few per distinct sampler); see
        :mod:`d1bench.workload.resolve`.  The same seed against the same corpus
        gives the same pools.  A sampler that cannot be resolved raises
        :class:`~d1bench.errors.UsageError` naming its file, line and template.
        """
        def fail(kind: str, name: str, line: int, message: str) -> None:
            raise UsageError(f"{self.source}:{line}: {kind} '{name}': {message}")

        return _bind(self, conn, seed, vocabulary_dir, fail)


def _unit_table(w: Workload) -> list[tuple[str, float]]:
    """(unit name, probability) for every unit with a positive weight, in file order."""
    reads = [(t.name, t.weight) for t in w.templates.values() if not t.is_write and t.weight > 0]
    reads += [(s.name, s.weight) for s in w.sessions.values() if s.weight > 0]
    writes = [(t.name, t.weight) for t in w.templates.values() if t.is_write and t.weight > 0]
    r_total = sum(x for _, x in reads)
    w_total = sum(x for _, x in writes)
    share = w.write_weight
    if share > 0 and w_total == 0:
        raise UsageError(f"{w.source}: write_weight is {share} but no write template has a weight")
    if share < 1 and r_total == 0 and w_total == 0:
        raise UsageError(f"{w.source}: no template or session has a positive weight")
    if share < 1 and r_total == 0:
        raise UsageError(f"{w.source}: write_weight is {share} but no read template or session "
                         "has a weight")
    out = [(n, (1 - share) * x / r_total) for n, x in reads] if r_total else []
    out += [(n, share * x / w_total) for n, x in writes] if w_total else []
    order = {name: i for i, name in enumerate([*w.templates, *w.sessions])}
    return sorted(out, key=lambda nx: order[nx[0]])


# --- binding ------------------------------------------------------------------

# How to fill one parameter: a drawer, a column of the previous row, or a copy of
# an earlier parameter.
_Op = tuple[str, Any, SamplerSpec]


def _bind(w: Workload, conn: Any, seed: int, vocabulary_dir: Path | None,
          fail: Callable[[str, str, int, str], None]) -> BoundWorkload:
    from d1bench._paths import vocabulary_dir as default_vocabulary
    from d1bench.workload.resolve import Resolver

    resolver = Resolver(conn, seed, vocabulary_dir or default_vocabulary())

    def ops_for(specs: tuple[SamplerSpec, ...], kind: str, name: str, line: int,
                prefix: str = "", lines: tuple[int, ...] = ()) -> tuple[_Op, ...] | None:
        ops: list[_Op] = []
        for i, spec in enumerate(specs, 1):
            if spec.kind == "from_row":
                ops.append(("row", spec.column, spec))
            elif spec.kind == "same":
                ops.append(("same", spec.get("param") - 1, spec))
            else:
                try:
                    ops.append(("draw", resolver.resolve(spec), spec))
                except SamplerError as exc:
                    at = lines[i - 1] if len(lines) >= i else line
                    fail(kind, name, at, f"{prefix}param {i} ({spec.describe()}): {exc}")
                    return None
        return tuple(ops)

    plans: dict[str, tuple[_Op, ...]] = {}
    for t in w.templates.values():
        ops = ops_for(t.params, "template", t.name, t.line, lines=t.param_lines)
        if ops is not None:
            plans[t.name] = ops
    step_plans: dict[tuple[str, int], tuple[_Op, ...]] = {}
    for s in w.sessions.values():
        for i, step in enumerate(s.steps):
            if step.params is not None:
                ops = ops_for(step.params, "session", s.name, step.line or s.line,
                              f"step {i + 1}: ", step.param_lines)
                if ops is not None:
                    step_plans[(s.name, i)] = ops
            elif step.template in plans:
                step_plans[(s.name, i)] = plans[step.template]
    as_of = resolver._as_of[0] if resolver._as_of else None
    return BoundWorkload(w, seed, plans, step_plans, as_of, resolver.statements)


def _fill(ops: tuple[_Op, ...], rng: random.Random, row: tuple[Any, ...] | None = None,
          columns: tuple[str, ...] = ()) -> tuple[Any, ...]:
    out: list[Any] = []
    for how, what, spec in ops:
        if how == "draw":
            out.append(what.draw(rng))
        elif how == "same":
            out.append(out[what])
        else:
            if row is None or what not in columns:
                raise UsageError(f"{spec.describe()}: the previous step returned "
                                 f"{'no rows' if row is None else 'no column ' + repr(what)}"
                                 f" (columns: {', '.join(columns)})")
            value = row[columns.index(what)]
            fmt = spec.get("format")
            out.append(fmt.format(value) if fmt and value is not None else value)
    return tuple(out)


class BoundWorkload:
    """A workload whose samplers hold values from one corpus; draws units cheaply.

    Attributes:
        workload: the workload it was bound from.
        seed: the bind seed.
        as_of: the corpus's as-of date, if a date sampler needed it.
        bind_statements: how many SELECTs binding sent.
    """

    def __init__(self, workload: Workload, seed: int, plans: dict[str, tuple[_Op, ...]],
                 step_plans: dict[tuple[str, int], tuple[_Op, ...]], as_of: dt.date | None,
                 bind_statements: int = 0) -> None:
        self.workload = workload
        self.seed = seed
        self.as_of = as_of
        self.bind_statements = bind_statements
        self._plans = plans
        self._step_plans = step_plans
        table = _unit_table(workload)
        self._names = [name for name, _ in table]
        cum, total = [], 0.0
        for _, p in table:
            total += p
            cum.append(total)
        self._cum = cum

    @property
    def units(self) -> dict[str, float]:
        """Unit name -> probability of being drawn."""
        return self.workload.shares()

    def draw(self, rng: random.Random) -> Unit:
        """Pick a template or session by weight and draw its parameters (no SQL runs)."""
        i = bisect.bisect_right(self._cum, rng.random() * self._cum[-1])
        return self.draw_unit(self._names[min(i, len(self._names) - 1)], rng)

    def draw_unit(self, name: str, rng: random.Random) -> Unit:
        """A unit of the template or session ``name``, its parameters drawn as :meth:`draw` does.

        Used to top up a rare unit after a replay's mix (``ReplayOptions.min_executions``).
        """
        template = self.workload.templates.get(name)
        if template is not None:
            return Unit(name, "query", template, None, self.draw_params(name, rng), 0, self)
        if name not in self.workload.sessions:
            raise KeyError(name)
        return Unit(name, "session", None, self.workload.sessions[name], (),
                    rng.getrandbits(64), self)

    @property
    def drawn_names(self) -> list[str]:
        """The units :meth:`draw` can pick (positive weight), in file order."""
        return list(self._names)

    def draw_params(self, template: str, rng: random.Random) -> tuple[Any, ...]:
        """Values for one execution of ``template`` (its own samplers)."""
        return _fill(self._plans[template], rng)

    def samplers(self) -> pd.DataFrame:
        """One row per template parameter: its sampler, where its values came from, a few examples."""
        import pandas as pd

        rows = []
        for name, ops in self._plans.items():
            for i, (how, what, spec) in enumerate(ops, 1):
                rows.append({
                    "template": name, "param": i, "sampler": spec.describe(),
                    "source": what.source if how == "draw" else how,
                    "pool_size": what.size() if how == "draw" else None,
                    "examples": [_short(v) for v in what.examples()] if how == "draw" else [],
                })
        return pd.DataFrame(rows, columns=["template", "param", "sampler", "source", "pool_size",
                                           "examples"])


def _short(value: Any) -> Any:
    return value[:40] + "..." if isinstance(value, str) and len(value) > 43 else value


@dataclass(frozen=True, slots=True)
class Unit:
    """One unit of work drawn from a workload: a single query or a whole session.

    Attributes:
        name: the template's or session's name.
        kind: ``"query"`` or ``"session"``.
        template: the template (queries only).
        session: the session (sessions only).
        params: the drawn values (queries only; a session draws as it goes).
        seed: seeds the session's own draws, so a unit replays identically.
    """

    name: str
    kind: str
    template: Template | None
    session: Session | None
    params: tuple[Any, ...]
    seed: int
    bound: BoundWorkload = field(repr=False, compare=False)

    def steps(self) -> Generator[Call, Result | None, None]:
        """Yield each call to run; receive each call's :class:`Result` through ``send``."""
        if self.template is not None:
            yield Call(self.template, self.params)
            return
        assert self.session is not None
        rng = random.Random(self.seed)
        templates = self.bound.workload.templates
        previous: list[Result] = []
        for index, step in enumerate(self.session.steps):
            template = templates[step.template]
            ops = self.bound._step_plans[(self.session.name, index)]
            needs_row = any(how == "row" for how, _, _ in ops)
            columns = tuple(previous[0].columns) if previous else ()
            rows = [r for res in previous for r in res.rows]
            current: list[Result] = []
            if step.for_each_row:
                for n, row in enumerate(rows[:step.max_rows] if step.max_rows else rows):
                    result = yield Call(template, _fill(ops, rng, tuple(row), columns), index, n)
                    if result is None:
                        return
                    current.append(result)
            elif not needs_row or rows:
                first = tuple(rows[0]) if needs_row else None
                result = yield Call(template, _fill(ops, rng, first, columns), index,
                                    0 if first else None)
                if result is None:
                    return
                current.append(result)
            previous = current
