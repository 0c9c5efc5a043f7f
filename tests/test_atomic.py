"""The one atomic write: whole or nothing, never replacing a file without force."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from d1bench._atomic import atomic_path, shared_mode, write_atomic
from d1bench.errors import UsageError


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_writes_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    assert write_atomic(target, "<p>done</p>") == target
    assert target.read_text() == "<p>done</p>"
    assert write_atomic(tmp_path / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    assert _leftovers(tmp_path) == []


def test_refuses_to_replace_without_force(tmp_path: Path) -> None:
    target = tmp_path / "trace.parquet"
    target.write_text("old")
    with pytest.raises(UsageError, match=r"trace.parquet: already exists \(use --force"):
        write_atomic(target, "new")
    assert target.read_text() == "old"
    write_atomic(target, "new", force=True)
    assert target.read_text() == "new"


def test_a_file_that_appears_meanwhile_is_not_replaced(tmp_path: Path) -> None:
    target = tmp_path / "0001_x.sql"
    with pytest.raises(UsageError, match="already exists"), atomic_path(target) as tmp:
        tmp.write_text("mine")
        target.write_text("theirs")  # another process got there first
    assert target.read_text() == "theirs"
    assert _leftovers(tmp_path) == []


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "cache.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target, force=True) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_mode_and_missing_folder(tmp_path: Path) -> None:
    private = write_atomic(tmp_path / "token", "s3cret", mode=0o600)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    shared = write_atomic(tmp_path / "index.html", "x", mode=shared_mode())
    assert stat.S_IMODE(shared.stat().st_mode) == shared_mode()
    with pytest.raises(UsageError, match="does not exist"):
        write_atomic(tmp_path / "no" / "such.txt", "x")
