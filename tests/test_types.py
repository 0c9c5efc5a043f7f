"""Types: mypy passes over d1bench/, and the public surface takes and returns no ``Any``.

mypy's settings are in pyproject.toml (``[tool.mypy]``); no module of the
package is loosened there.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest

import d1bench

ROOT = Path(__file__).resolve().parent.parent


def _mentions_any(hint: object) -> bool:
    """Whether a resolved annotation is ``Any`` or has ``Any`` anywhere inside it."""
    if hint is Any:
        return True
    return any(_mentions_any(arg) for arg in typing.get_args(hint))


def _any_in_signature(obj: Any) -> list[str]:
    """The parameters (and ``return``) of ``obj`` annotated with, or containing, ``Any``."""
    function = obj.__init__ if inspect.isclass(obj) else obj
    # Names the module imports only for type checkers are made visible to the resolver.
    module = sys.modules[function.__module__]
    names = dict(vars(module))
    for source in ("d1bench.workload.model", "d1bench.workload.loader", "d1bench.trace",
                   "d1bench.targets.base", "d1bench.advisor.advise"):
        names.update(vars(__import__(source, fromlist=["_"])))
    names.update(apsw=__import__("apsw"), pd=__import__("pandas"))
    hints = typing.get_type_hints(function, globalns=names)
    bad = [name for name, hint in hints.items() if _mentions_any(hint)]
    if dataclasses.is_dataclass(obj):
        fields = typing.get_type_hints(obj, globalns=names)
        bad += [f"field {name}" for name, hint in fields.items() if _mentions_any(hint)]
    # **options: object is fine; **options: Any (or a bare parameter) is not.
    bad += [name for name, p in inspect.signature(function).parameters.items()
            if name != "self" and p.annotation is inspect.Parameter.empty]
    return sorted(set(bad))


@pytest.mark.parametrize("name", [n for n in d1bench.__all__ if n != "__version__"])
def test_public_names_take_and_return_no_any(name: str) -> None:
    from importlib import import_module

    owner = import_module(d1bench._EXPORTS[name])
    assert _any_in_signature(getattr(owner, name)) == []


def test_no_submodule_shadows_an_export() -> None:
    """Importing ``d1bench.X.y`` sets ``d1bench.X`` to the package X; were X also an
    exported function (as ``upload``, ``lint`` and ``migrate`` once were), the import
    would replace the function for everyone."""
    import pkgutil
    from importlib import import_module

    for info in pkgutil.walk_packages(d1bench.__path__, "d1bench."):
        if not info.name.endswith("__main__"):  # importing it runs the CLI
            import_module(info.name)
    shadowed = [name for name in d1bench.__all__ if name != "__version__"
                and inspect.ismodule(getattr(d1bench, name))]
    assert shadowed == []


def test_the_any_check_can_fail() -> None:
    def loose(a: int, b: Any, c: list[dict[str, Any]]) -> Any:
        return a
    assert _any_in_signature(loose) == ["b", "c", "return"]


def test_type_checkers_see_every_export() -> None:
    """The ``TYPE_CHECKING`` block of d1bench/__init__.py names what ``__all__`` does."""
    import ast

    tree = ast.parse((ROOT / "d1bench" / "__init__.py").read_text(encoding="utf-8"))
    seen = {alias.asname or alias.name for node in ast.walk(tree)
            if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
            for stmt in node.body if isinstance(stmt, ast.ImportFrom) for alias in stmt.names}
    assert seen == set(d1bench.__all__) - {"__version__"}


def test_no_module_of_the_package_is_exempt_from_the_checker() -> None:
    """A ``[[tool.mypy.overrides]]`` entry may quieten third-party libraries only."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    loosened = [module for entry in config.get("overrides", [])
                for module in ([entry["module"]] if isinstance(entry["module"], str)
                               else entry["module"])
                if module.split(".")[0] == "d1bench"]
    assert loosened == [] and not config.get("ignore_errors")


@pytest.mark.slow
def test_mypy_passes_over_the_package() -> None:
    env = dict(os.environ, MYPY_CACHE_DIR=os.environ.get("MYPY_CACHE_DIR", str(
        Path.home() / ".cache" / "d1bench-mypy")))
    run = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, env=env, check=False,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
