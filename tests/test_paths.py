"""Generated data and state go to per-user directories, never into the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest

from d1bench import _paths
from d1bench.targets.d1 import local as d1_local


def test_defaults_follow_xdg_not_the_checkout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("D1BENCH_DATA", "D1BENCH_STATE_DIR", "XDG_DATA_HOME", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _paths.data_dir() == tmp_path / ".local/share/d1bench"
    assert _paths.state_dir() == tmp_path / ".local/state/d1bench"
    assert d1_local.state_dir() == tmp_path / ".local/state/d1bench/d1-local"
    assert d1_local.default_persist_dir().is_relative_to(tmp_path)
    for path in (_paths.data_dir(), _paths.state_dir()):
        assert not path.is_relative_to(_paths.REPO_ROOT)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")  # the spec: ignore relative paths
    assert _paths.state_dir() == tmp_path / "state/d1bench"
    assert _paths.data_dir() == tmp_path / ".local/share/d1bench"
    monkeypatch.setenv("D1BENCH_STATE_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("D1BENCH_DATA", str(tmp_path / "data"))
    assert d1_local.state_dir() == tmp_path / "mine/d1-local"
    assert _paths.data_dir() == tmp_path / "data"


def test_every_environment_variable_is_in_the_readme() -> None:
    import re

    used = set()
    for path in (_paths.REPO_ROOT / "d1bench").rglob("*.py"):
        used |= set(re.findall(r"(?:environ(?:\.get)?|env\.get)\(?\[?\"((?:D1BENCH|CLOUDFLARE|XDG)_[A-Z_]+)\"",
                               path.read_text(encoding="utf-8")))
    assert {"D1BENCH_DATA", "D1BENCH_STATE_DIR", "CLOUDFLARE_API_TOKEN"} <= used
    readme = (_paths.REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert not {v for v in used if f"`{v}`" not in readme}
