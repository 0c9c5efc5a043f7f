"""The package's shape, read from its source with ``ast``: layers, circles, privacy, size.

Every ``import`` counts, including the ones deferred into a function body or
kept under ``TYPE_CHECKING``: a deferred import hides a circle from Python,
not from the reader.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "d1bench"

#: Each top-level package or module of d1bench and its layer: a module may import
#: only from its own package or from a strictly lower layer.
LAYERS: dict[str, int] = {
    "errors": 0, "_paths": 0, "progress": 0, "_atomic": 1, "dbfile": 1,
    "sql": 1,
    "schema": 2,
    "workload": 3, "corpus": 3, "indexes": 3, "size": 3,
    "targets": 4, "trace": 4, "claims": 4, "cost": 4,
    "uploader": 5, "plans": 5, "analysis": 5, "charts": 5, "dump": 5,
    "runner": 6, "production": 6, "migrator": 6, "worker": 6, "thresholds": 6,
    "advisor": 7,
    "fixer": 8,
    "linter": 9,
    "report": 10, "cache": 10,
    "cli": 11,
    "__main__": 12,
}

MAX_LINES = 500


@dataclass(frozen=True)
class Arrow:
    """One import: ``source`` imports ``names`` from ``target`` (at ``line``)."""

    source: str
    target: str
    names: tuple[str, ...]
    line: int


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _arrows(name: str, path: Path, known: set[str]) -> Iterator[Arrow]:
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "d1bench":
                    yield Arrow(name, alias.name, (), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            if target.split(".")[0] != "d1bench":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:  # `from package import module`
                    yield Arrow(name, sub, (), node.lineno)
                else:
                    yield Arrow(name, target, (alias.name,), node.lineno)


def _facade_exports() -> dict[str, str]:
    """``d1bench/__init__.py``'s lazy table: exported name -> the module that defines it."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "_EXPORTS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("d1bench/__init__.py has no _EXPORTS table")


@pytest.fixture(scope="module")
def graph() -> dict[str, list[Arrow]]:
    """Every module's imports; a name taken from the package's facade counts as an
    import of the module that defines it."""
    modules = _modules()
    exports = _facade_exports()
    out = {}
    for name, path in modules.items():
        arrows = []
        for a in _arrows(name, path, set(modules)):
            if a.target == "d1bench" and a.names and a.names[0] in exports:
                a = Arrow(a.source, exports[a.names[0]], a.names, a.line)
            if a.target != name:
                arrows.append(a)
        out[name] = arrows
    return out


def _top(module: str) -> str:
    """The top-level package or module under ``d1bench`` (``""`` for the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _circles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(frozenset(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_circles_finder_finds_a_circle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _circles(edges) == [frozenset({"a", "b", "c"})]


def test_no_import_circle(graph: dict[str, list[Arrow]]) -> None:
    modules = set(graph)
    edges = {m: {a.target for a in arrows if a.target in modules} for m, arrows in graph.items()}
    # the package's own __init__ exports lazily and is imported for __version__ only
    edges.pop("d1bench", None)
    circles = _circles(edges)
    assert circles == [], "import circles: " + "; ".join(" <-> ".join(sorted(c)) for c in circles)


def test_no_private_name_from_another_package(graph: dict[str, list[Arrow]]) -> None:
    bad = [f"{a.source}:{a.line} imports {n} from {a.target}"
           for arrows in graph.values() for a in arrows for n in a.names
           if n.startswith("_") and not n.startswith("__") and _top(a.source) != _top(a.target)]
    assert bad == []


def test_every_package_has_a_layer(graph: dict[str, list[Arrow]]) -> None:
    assert sorted({_top(m) for m in graph} - set(LAYERS) - {""}) == []


def test_no_arrow_runs_up(graph: dict[str, list[Arrow]]) -> None:
    bad = []
    for arrows in graph.values():
        for a in arrows:
            src, dst = _top(a.source), _top(a.target)
            if src == dst or "" in (src, dst):
                continue  # inside one package, or the top-level facade (__version__)
            if LAYERS.get(dst, 99) >= LAYERS.get(src, -1):
                bad.append(f"{a.source}:{a.line} ({src}, layer {LAYERS.get(src)}) imports "
                           f"{a.target} ({dst}, layer {LAYERS.get(dst)})")
    assert bad == []


def test_only_dunders_and_exports_come_from_the_facade(graph: dict[str, list[Arrow]]) -> None:
    bad = [f"{a.source}:{a.line} imports {a.names} from d1bench"
           for arrows in graph.values() for a in arrows
           if a.target == "d1bench" and not all(n.startswith("__") for n in a.names)]
    assert bad == []


def test_no_module_over_500_lines() -> None:
    long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_d1_limits_are_defined_once() -> None:
    """Each of D1's limits is assigned in d1bench/sql/limits.py and only imported elsewhere."""
    home = PACKAGE / "sql" / "limits.py"
    names = {n.id for node in ast.parse(home.read_text()).body if isinstance(node, ast.Assign)
             for n in node.targets if isinstance(n, ast.Name) and n.id.startswith("MAX_")}
    assert {"MAX_PARAMS", "MAX_SQL_BYTES", "MAX_VALUE_BYTES", "MAX_DATABASE_BYTES"} <= names
    again = [f"{p.relative_to(PACKAGE.parent)}:{node.lineno} {n.id}"
             for p in sorted(PACKAGE.rglob("*.py")) if p != home
             for node in ast.walk(ast.parse(p.read_text()))
             if isinstance(node, ast.Assign | ast.AnnAssign)
             for n in (node.targets if isinstance(node, ast.Assign) else [node.target])
             if isinstance(n, ast.Name) and n.id in names]
    assert again == []


# --- abilities are asked of the target protocol, not probed ------------------------------

#: Where targets are driven: replay and the command line.
DRIVERS = ("runner", "cli")
#: The kinds' names and spec prefixes: comparing with one tells targets apart by string.
KIND_NAMES = ("sqlite", "d1", "d1-local", "d1-worker")
#: Names a driver gives a target or a connection (besides the ones typed as such).
_TARGETISH = {"target", "targets", "run_target", "opened", "conn", "conns", "connection",
              "session"}


def _typed_as_target(function: ast.AST) -> set[str]:
    """Names a function types as a target or connection, or binds to one it opens."""
    names = set(_TARGETISH)
    for node in ast.walk(function):
        if isinstance(node, ast.arg) and node.annotation is not None:
            if any(w in ast.unparse(node.annotation) for w in ("Target", "Connection")):
                names.add(node.arg)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if any(w in ast.unparse(node.annotation) for w in ("Target", "Connection")):
                names.add(node.target.id)
        elif isinstance(node, ast.Assign | ast.withitem):
            value = node.value if isinstance(node, ast.Assign) else node.context_expr
            bound = node.targets if isinstance(node, ast.Assign) else [node.optional_vars]
            call = ast.unparse(value) if isinstance(value, ast.Call) else ""
            if any(f in call for f in ("open_target(", "target_class(", ".connect(", ".sibling(")):
                names |= {b.id for b in bound if isinstance(b, ast.Name)}
    return names


def _is_kind_string(node: ast.AST) -> bool:
    values = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
    return any(isinstance(v, ast.Constant) and isinstance(v.value, str)
               and (v.value in KIND_NAMES or v.value.startswith(("sqlite:", "d1:", "d1-")))
               for v in values)


def _is_probe(node: ast.AST, targetish: set[str]) -> bool:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        if node.func.id not in ("getattr", "hasattr") or not node.args:
            return False
        subject = node.args[0]
        name = subject.id if isinstance(subject, ast.Name) else \
            subject.attr if isinstance(subject, ast.Attribute) else ""
        return name in targetish
    if isinstance(node, ast.Compare):
        return "kind" in ast.unparse(node.left) and any(map(_is_kind_string, node.comparators))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr in ("startswith", "removeprefix", "partition") \
            and bool(node.args) and _is_kind_string(node.args[0])
    return False


def _probes(source: str, where: str) -> list[str]:
    """Every place ``source`` probes a target instead of asking its protocol:
    ``getattr``/``hasattr`` on a target or connection, a ``kind`` compared with a kind's
    name, a spec string told apart by its prefix."""
    tree = ast.parse(source)
    scopes = [tree, *(n for n in ast.walk(tree)
                      if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))]
    return sorted({f"{where}:{node.lineno} {ast.unparse(node)}" for scope in scopes
                   for targetish in [_typed_as_target(scope)] for node in ast.walk(scope)
                   if _is_probe(node, targetish)})


def test_the_probe_finder_finds_probes() -> None:
    source = '''
def run(target: Target, spec: str, other) -> None:
    if getattr(target, "supports_async", False): pass
    opened = open_target(spec)
    hasattr(opened, "sibling")
    getattr(self.conn, "defer_estimates")
    if target.kind == "sqlite" or other.kind in ("d1", "d1-local"): pass
    if spec.startswith("d1-worker"): pass
    getattr(args, "allow_writes")
    if unit.kind == "query": pass
    row.kind
'''
    lines = sorted({p.split(" ", 1)[0] for p in _probes(source, "x")})
    assert lines == ["x:3", "x:5", "x:6", "x:7", "x:8"]


def test_drivers_ask_the_target_protocol() -> None:
    """Replay and the CLI ask what a target declares (``supports_async``, ``local_file``,
    ``cli_options``...), never ``getattr``/``hasattr``, a kind's name or a spec's prefix."""
    probes = [probe for package in DRIVERS for p in sorted((PACKAGE / package).rglob("*.py"))
              for probe in _probes(p.read_text(), str(p.relative_to(PACKAGE.parent)))]
    assert probes == []
