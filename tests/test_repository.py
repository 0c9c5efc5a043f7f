"""The repository keeps its promises: the README's commands are the ones CI runs,
the conda environment matches pyproject.toml, and every CLI verb is documented."""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path

import pytest

from d1bench.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent


def _readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z][\w.-]*):", text, flags=re.MULTILINE))


def test_readme_ci_and_makefile_agree() -> None:
    readme = _readme()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in readme and "make report" in readme
    commands = [line.strip() for line in ci.splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    assert "make test" in commands, ".ci/run must run the README's test command"
    assert {"venv", "test", "report", "bench"} <= _make_targets()


def test_environment_yml_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    env = (ROOT / "environment.yml").read_text(encoding="utf-8")
    pip_section = env.split("- pip:", 1)[1]
    listed = {m.group(1).strip() for m in re.finditer(r"^\s+- ([^#\n]+?)\s*(?:#.*)?$", pip_section, re.MULTILINE)}
    pip_deps = {d for d in listed if not d.startswith("-e")}
    assert pip_deps == wanted, (
        f"environment.yml is out of step with pyproject.toml: "
        f"missing {sorted(wanted - pip_deps)}, extra {sorted(pip_deps - wanted)}"
    )
    assert re.search(r"python>=3\.11", env)


def _verbs() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_verb_has_help_and_is_in_the_readme() -> None:
    readme = _readme()
    verbs = _verbs()
    assert len(verbs) >= 8, sorted(verbs)
    for name, parser in verbs.items():
        assert parser.description or parser.format_help().count("\n") > 3, f"{name} has no help"
        assert re.search(rf"d1bench {re.escape(name)}\b", readme), f"README does not show `d1bench {name}`"


@pytest.mark.parametrize("verb", sorted(_verbs()))
def test_verb_help_exits_zero(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([verb, "--help"])
    assert exc.value.code == 0
    assert verb in capsys.readouterr().out


def test_python_dash_m_and_console_script_agree() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "d1bench", "--version"],
                         capture_output=True, text=True, check=True).stdout
    from d1bench import __version__

    assert out.strip() == f"d1bench {__version__}"


def test_every_doctest_in_the_package_passes() -> None:
    """Examples in docstrings are documentation readers copy: every one must still hold."""
    import doctest
    import importlib

    ran = 0
    for path in sorted((ROOT / "d1bench").rglob("*.py")):
        if ">>>" not in path.read_text(encoding="utf-8"):
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        result = doctest.testmod(importlib.import_module(name), report=False)
        assert result.failed == 0, f"{name}: {result.failed} doctest(s) failed"
        ran += result.attempted
    assert ran >= 100
