"""Reading workload files: TOML in, a checked :class:`~d1bench.workload.model.Workload` out.

TOML because it is in the standard library (``tomllib``), allows comments, and
holds multi-line SQL in ``'''...'''`` strings without escaping.  ``tomllib``
gives no line numbers for the values it returns, so the lines that errors name
are found by scanning the text for each ``[templates.NAME]`` header (and, within
it, the ``params`` entries and session steps).

Every problem found is collected, not only the first: :func:`load_workload`
raises the first as a :class:`~d1bench.errors.UsageError`, while
:func:`~d1bench.workload.check.check_workload` reports them all.
"""

from __future__ import annotations

import hashlib
import json
import re
import textwrap
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from d1bench.errors import UsageError
from d1bench.sql.limits import MAX_PARAMS, MAX_SQL_BYTES
from d1bench.sql.text import classify_write, scan_placeholders
from d1bench.workload.model import Session, Step, Template, Workload, _unit_table
from d1bench.workload.samplers import SamplerError, SamplerSpec, spec_from_toml

__all__ = ["FORMAT_VERSION", "Problem", "available_workloads", "load_workload", "parse_workload"]

#: The workload file format this code reads (``format = 1`` in ``[workload]``).
FORMAT_VERSION = 1

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TEMPLATE_KEYS = {"sql", "weight", "family", "description", "params", "production"}
#: Keys of a template's ``production`` table (production's figures per run, from insights).
PRODUCTION_KEYS = ("runs", "avg_rows_read", "avg_rows_written", "avg_duration_ms", "efficiency")
_SESSION_KEYS = {"weight", "description", "steps"}
_STEP_KEYS = {"template", "params", "for_each_row", "max_rows"}
_WORKLOAD_KEYS = {"name", "description", "format", "write_weight"}


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a workload.

    Attributes:
        file: the workload file.
        line: the line at fault (1-based).
        kind: ``template``, ``session`` or ``workload``.
        name: the template's or session's name (empty for the workload).
        problem: what is wrong, in words.
        severity: ``error`` (a run would fail or mislead) or ``warning``.
    """

    file: str
    line: int
    kind: str
    name: str
    problem: str
    severity: str = "error"

    def message(self) -> str:
        """``file:line: template 'name': problem``, the form UsageError carries."""
        where = f"{self.kind} '{self.name}': " if self.name else ""
        return f"{self.file}:{self.line}: {where}{self.problem}"


def available_workloads() -> list[str]:
    """Names of the workloads shipped in the package (``medical``)."""
    folder = resources.files(__package__)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def _builtin_path(name: str) -> Path:
    return Path(str(resources.files(__package__).joinpath(f"{name}.toml")))


def load_workload(name_or_path: str | Path | Workload) -> Workload:
    """Load a shipped workload by name (``"medical"``) or a workload file by path.

    Raises :class:`~d1bench.errors.UsageError` ``"<file>:<line>: template
    '<name>': ..."`` for the first problem in the file.

    >>> w = load_workload("medical")
    >>> w.name, "paper_by_id" in w.templates
    ('medical', True)
    """
    if isinstance(name_or_path, Workload):
        return name_or_path
    text, source = read_workload_text(name_or_path)
    workload, problems = parse_workload(text, source)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        more = f" (and {len(errors) - 1} more problem(s); `d1bench workload check` lists them)"
        raise UsageError(errors[0].message() + (more if len(errors) > 1 else ""))
    assert workload is not None
    return workload


def read_workload_text(name_or_path: str | Path) -> tuple[str, str]:
    """The text of a shipped workload or a file, and the name to cite it by."""
    name = str(name_or_path)
    if isinstance(name_or_path, str) and name in available_workloads():
        path = _builtin_path(name)
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise UsageError(f"workload {name!r}: not one of the shipped workloads "
                             f"({', '.join(available_workloads())}) and no such file")
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


# --- lines ---------------------------------------------------------------------


class _Lines:
    """Where things are in the text, since tomllib does not say."""

    _HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.headers: list[tuple[int, tuple[str, ...]]] = []
        for n, line in enumerate(self.lines, 1):
            m = self._HEADER.match(line)
            if m:
                self.headers.append((n, _split_dotted(m.group(1))))

    def section(self, *key: str) -> tuple[int, int]:
        """First and last line of table ``[key]``, or of the first table inside it."""
        for i, (n, k) in enumerate(self.headers):
            if k == key:
                end = self.headers[i + 1][0] - 1 if i + 1 < len(self.headers) else len(self.lines)
                return n, end
        # defined some other way (inline, dotted keys): cite the first mention of its name
        pattern = re.compile(rf"(^|[^A-Za-z0-9_]){re.escape(key[-1])}([^A-Za-z0-9_]|$)")
        for n, line in enumerate(self.lines, 1):
            if pattern.search(line):
                return n, n
        return 1, len(self.lines)

    def key(self, span: tuple[int, int], key: str) -> int:
        """Line of ``key = ...`` within a section (its header line if not found)."""
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for n in range(span[0], span[1] + 1):
            if pattern.match(self.lines[n - 1]):
                return n
        return span[0]

    def nth(self, span: tuple[int, int], after: int, key: str, index: int) -> int:
        """Line of the ``index``-th (0-based) ``key =`` after line ``after`` in a section."""
        pattern = re.compile(rf"(^|[{{,\s]){re.escape(key)}\s*=")
        seen = 0
        for n in range(after, span[1] + 1):
            line = self.lines[n - 1]
            hits = len(pattern.findall(line))
            if seen + hits > index:
                return n
            seen += hits
        return after


def _split_dotted(key: str) -> tuple[str, ...]:
    parts = re.findall(r'\s*("(?:[^"\\]|\\.)*"|\'[^\']*\'|[A-Za-z0-9_-]+)\s*(?:\.|$)', key)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


# --- parsing ---------------------------------------------------------------------


def parse_workload(text: str, source: str = "<string>") -> tuple[Workload | None, list[Problem]]:
    """Parse workload text; return the workload (``None`` if there is any error) and every
    problem found, errors and warnings, each with its line.

    >>> w, problems = parse_workload('[templates.one]\\nsql = "SELECT 1"\\n', "x.toml")
    >>> list(w.templates), problems
    (['one'], [])
    """
    workload, problems = _parse_partial(text, source)
    if any(p.severity == "error" for p in problems):
        return None, problems
    return workload, problems


def _parse_partial(text: str, source: str) -> tuple[Workload | None, list[Problem]]:
    problems: list[Problem] = []
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        line = int(m.group(1)) if m else 1
        return None, [Problem(source, line, "workload", "", f"not valid TOML: {exc}")]
    lines = _Lines(text)

    def problem(kind: str, name: str, line: int, message: str, severity: str = "error") -> None:
        problems.append(Problem(source, line, kind, name, message, severity))

    for key in sorted(set(data) - {"workload", "templates", "sessions"}):
        problem("workload", "", lines.section(key)[0],
                f"unknown top-level key {key!r} (expected [workload], [templates.NAME], "
                "[sessions.NAME])")
    head = data.get("workload", {})
    head_span = lines.section("workload")
    if not isinstance(head, dict):
        problem("workload", "", head_span[0], "[workload] must be a table")
        head = {}
    for key in sorted(set(head) - _WORKLOAD_KEYS):
        problem("workload", "", lines.key(head_span, key),
                f"unknown key {key!r} in [workload] (expected {', '.join(sorted(_WORKLOAD_KEYS))})")
    fmt = head.get("format", FORMAT_VERSION)
    if fmt != FORMAT_VERSION:
        problem("workload", "", lines.key(head_span, "format"),
                f"format {fmt!r} is not one this version reads ({FORMAT_VERSION})")
    name = head.get("name", Path(source).stem)
    if not isinstance(name, str) or not name.strip():
        problem("workload", "", lines.key(head_span, "name"), "name must be a non-empty string")
        name = Path(source).stem
    description = head.get("description", "")
    if not isinstance(description, str):
        problem("workload", "", lines.key(head_span, "description"), "description must be a string")
        description = ""
    declared_ww = head.get("write_weight")
    if declared_ww is not None and not (_is_num(declared_ww) and 0 <= declared_ww <= 1):
        problem("workload", "", lines.key(head_span, "write_weight"),
                f"write_weight must be a number in [0, 1], got {declared_ww!r}")
        declared_ww = None

    raw_templates = data.get("templates", {})
    if not isinstance(raw_templates, dict):
        problem("workload", "", lines.section("templates")[0],
                "templates must be tables: [templates.NAME] with sql = '''...'''")
        raw_templates = {}
    raw_sessions = data.get("sessions", {})
    if not isinstance(raw_sessions, dict):
        problem("workload", "", lines.section("sessions")[0],
                "sessions must be tables: [sessions.NAME] with steps = [...]")
        raw_sessions = {}

    templates: dict[str, Template] = {}
    placeholder_counts: dict[str, int] = {}
    for tname, raw in raw_templates.items():
        t = _template(tname, raw, lines, source, problem, placeholder_counts)
        if t is not None:
            templates[tname] = t
    sessions: dict[str, Session] = {}
    for sname, raw in raw_sessions.items():
        span = lines.section("sessions", sname)
        if sname in raw_templates:
            problem("session", sname, span[0], "has the same name as a template")
            continue
        s = _session(sname, raw, span, lines, source, problem, raw_templates, placeholder_counts)
        # a session over a template with errors is left out of the partial workload
        # (the template's own problem is reported already)
        if s is not None and all(step.template in templates for step in s.steps):
            sessions[sname] = s
    if not raw_templates and not problems:
        problem("workload", "", 1, "no templates: add a [templates.NAME] table")

    normal = {
        "workload": {"name": name, "description": description, "write_weight": declared_ww},
        "templates": {n: {**raw, "sql": " ".join(str(raw.get("sql", "")).split())}
                      for n, raw in raw_templates.items() if isinstance(raw, dict)},
        "sessions": raw_sessions,
    }
    digest = hashlib.sha256(json.dumps(normal, sort_keys=True, separators=(",", ":"),
                                       default=str).encode()).hexdigest()
    workload = Workload(name=name, source=source, digest=digest,
                        templates=MappingProxyType(templates),
                        sessions=MappingProxyType(sessions), write_weight=0.0,
                        description=description)
    if not templates:
        return None, problems
    try:
        workload = _with_share(workload, declared_ww)
    except UsageError as exc:
        problem("workload", "", lines.key(head_span, "write_weight"),
                str(exc).split(": ", 1)[-1])
        return None, problems
    return workload, problems


def _with_share(w: Workload, declared: float | None) -> Workload:
    from dataclasses import replace

    if declared is None:
        reads = sum(t.weight for t in w.templates.values() if not t.is_write)
        reads += sum(s.weight for s in w.sessions.values())
        writes = sum(t.weight for t in w.templates.values() if t.is_write)
        declared = writes / (reads + writes) if reads + writes > 0 else 0.0
    w = replace(w, write_weight=float(declared))
    _unit_table(w)  # raises UsageError when the weights leave nothing to draw
    return w


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _template(name: str, raw: Any, lines: _Lines, source: str, problem: Any,
              counts: dict[str, int]) -> Template | None:
    span = lines.section("templates", name)
    line = span[0]
    bad = 0

    def err(message: str, at: int = line) -> None:
        nonlocal bad
        bad += 1
        problem("template", name, at, message)

    if not _NAME.match(name):
        err("a template name must be letters, digits and underscores, not starting with a digit")
    if not isinstance(raw, dict):
        err("must be a table with sql = '''...'''")
        return None
    for key in sorted(set(raw) - _TEMPLATE_KEYS):
        err(f"unknown key {key!r} (expected {', '.join(sorted(_TEMPLATE_KEYS))})",
            lines.key(span, key))
    sql = raw.get("sql")
    if not isinstance(sql, str) or not sql.strip():
        err("needs sql = '''...''' holding one statement", lines.key(span, "sql"))
        return None
    sql = textwrap.dedent(sql).strip()
    sql_line = lines.key(span, "sql")
    ph = scan_placeholders(sql)
    if ph.trailing:
        err(f"holds more than one statement (found {ph.trailing[:40]!r} after ';')", sql_line)
    if ph.named:
        err(f"uses named placeholder(s) {', '.join(ph.named)}: D1 allows only ? and ?NNN", sql_line)
    if ph.count > MAX_PARAMS:
        err(f"has {ph.count} parameters; D1 allows at most {MAX_PARAMS}", sql_line)
    if len(sql.encode()) > MAX_SQL_BYTES:
        err(f"SQL is {len(sql.encode())} bytes; D1 allows at most {MAX_SQL_BYTES}", sql_line)
    counts[name] = ph.count
    weight = raw.get("weight", 1.0)
    if not _is_num(weight) or weight < 0:
        err(f"weight must be a number >= 0, got {weight!r}", lines.key(span, "weight"))
        weight = 0.0
    description = raw.get("description", "")
    if not isinstance(description, str):
        err("description must be a string", lines.key(span, "description"))
        description = ""
    production = raw.get("production")
    if production is not None:
        bad_keys = sorted(set(production) - set(PRODUCTION_KEYS)) if isinstance(production, dict) \
            else None
        if bad_keys is None or bad_keys or not all(
                _is_num(v) and v >= 0 for v in production.values()):
            err("production must be a table of numbers >= 0 with keys among "
                f"{', '.join(PRODUCTION_KEYS)}"
                + (f" (unknown: {', '.join(bad_keys)})" if bad_keys else ""),
                lines.key(span, "production"))
            production = None
    param_lines: list[int] = []
    specs = _specs(raw.get("params", []), span, lines, lambda m, at: err(m, at), first_step=None,
                   lines_out=param_lines)
    if specs is not None:
        if any(s.kind == "from_row" for s in specs):
            err("from_row takes a value from a previous step's row: use it in a session step's "
                "params, not in a template", lines.key(span, "params"))
        if len(specs) != ph.count:
            err(f"has {ph.count} placeholder(s) but {len(specs)} param(s)",
                lines.key(span, "params") if "params" in raw else sql_line)
    is_write, parse_error = classify_write(sql)
    family = raw.get("family", "write" if is_write else "other")
    if not isinstance(family, str) or not _NAME.match(family):
        err(f"family must be a word like 'search', got {family!r}", lines.key(span, "family"))
    if parse_error:
        problem("template", name, sql_line,
                f"sqlglot cannot parse it ({parse_error}); lint and advice will skip it",
                "warning")
    if bad or specs is None:
        return None
    return Template(name=name, sql=sql, weight=float(weight), params=specs, family=family,
                    description=description.strip(), line=line, is_write=is_write,
                    source=source, parse_error=parse_error, param_lines=tuple(param_lines),
                    production=MappingProxyType(dict(production)) if production else None)


def _specs(raw: Any, span: tuple[int, int], lines: _Lines, err: Any,
           first_step: bool | None, after: int | None = None,
           lines_out: list[int] | None = None) -> tuple[SamplerSpec, ...] | None:
    params_line = after if after is not None else lines.key(span, "params")
    if not isinstance(raw, list):
        err("params must be a list like [{sampler = \"id\", table = \"papers\"}]", params_line)
        return None
    specs: list[SamplerSpec] = []
    ok = True
    for i, entry in enumerate(raw, 1):
        at = lines.nth(span, params_line, "sampler", i - 1)
        if lines_out is not None:
            lines_out.append(at)
        try:
            spec = spec_from_toml(entry)
        except SamplerError as exc:
            err(f"param {i}: {exc}", at)
            ok = False
            continue
        if spec.kind == "same" and spec.get("param") >= i:
            err(f"param {i}: same must copy an earlier parameter (1..{i - 1}), "
                f"not {spec.get('param')}", at)
            ok = False
        if spec.kind == "from_row" and first_step:
            err(f"param {i}: the first step of a session has no previous row to take from", at)
            ok = False
        specs.append(spec)
    return tuple(specs) if ok else None


def _session(name: str, raw: Any, span: tuple[int, int], lines: _Lines, source: str,
             problem: Any, templates: dict[str, Any], counts: dict[str, int]) -> Session | None:
    bad = 0

    def err(message: str, at: int = span[0]) -> None:
        nonlocal bad
        bad += 1
        problem("session", name, at, message)

    if not _NAME.match(name):
        err("a session name must be letters, digits and underscores, not starting with a digit")
    if not isinstance(raw, dict):
        err("must be a table with steps = [...]")
        return None
    for key in sorted(set(raw) - _SESSION_KEYS):
        err(f"unknown key {key!r} (expected {', '.join(sorted(_SESSION_KEYS))})",
            lines.key(span, key))
    weight = raw.get("weight", 1.0)
    if not _is_num(weight) or weight < 0:
        err(f"weight must be a number >= 0, got {weight!r}", lines.key(span, "weight"))
    description = raw.get("description", "")
    if not isinstance(description, str):
        err("description must be a string", lines.key(span, "description"))
        description = ""
    raw_steps = raw.get("steps")
    steps_line = lines.key(span, "steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        err("needs steps = [{template = \"...\"}, ...] with at least one step", steps_line)
        return None
    steps: list[Step] = []
    for i, entry in enumerate(raw_steps, 1):
        at = lines.nth(span, steps_line, "template", i - 1)
        if not isinstance(entry, dict):
            err(f"step {i}: must be a table like {{template = \"...\"}}", at)
            continue
        for key in sorted(set(entry) - _STEP_KEYS):
            err(f"step {i}: unknown key {key!r} (expected {', '.join(sorted(_STEP_KEYS))})", at)
        tname = entry.get("template")
        if not isinstance(tname, str) or tname not in templates:
            known = ", ".join(templates) or "none"
            err(f"step {i}: unknown template {tname!r} (templates: {known})", at)
            continue
        for_each = entry.get("for_each_row", False)
        if not isinstance(for_each, bool):
            err(f"step {i}: for_each_row must be true or false", at)
            for_each = False
        if for_each and i == 1:
            err(f"step {i}: for_each_row needs a previous step", at)
        max_rows = entry.get("max_rows")
        if max_rows is not None and not (isinstance(max_rows, int) and not isinstance(max_rows, bool)
                                         and max_rows >= 1 and for_each):
            err(f"step {i}: max_rows must be an integer >= 1, with for_each_row = true", at)
        specs = None
        step_lines: list[int] = []
        if "params" in entry:
            specs = _specs(entry["params"], span, lines,
                           lambda m, a, i=i: err(f"step {i}: {m}", a),
                           first_step=(i == 1), after=at, lines_out=step_lines)
            if specs is not None and tname in counts and len(specs) != counts[tname]:
                err(f"step {i}: template {tname!r} has {counts[tname]} placeholder(s) but the "
                    f"step gives {len(specs)} param(s)", at)
        steps.append(Step(tname, specs, for_each, max_rows, at, tuple(step_lines)))
    if bad:
        return None
    return Session(name=name, weight=float(weight), steps=tuple(steps),
                   description=description.strip(), line=span[0], source=source)
