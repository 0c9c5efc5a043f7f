"""Every verb that takes a database, against every kind of bad file: one line, exit 2, nothing written.

The bad files are made from a real corpus (the truncated and corrupt ones are
a real SQLite file cut short or overwritten in the middle), plus a text file,
an empty file, a directory, a missing path and a file the user cannot read.
As root (CI) file modes do not stop reads, so the unreadable case runs the
CLI as an unprivileged uid with ``setpriv``.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from d1bench.cli import main
from d1bench.dbfile import check_database
from d1bench.errors import UsageError

KINDS = ("text", "empty", "truncated", "corrupt", "directory", "missing")


def _make_bad(kind: str, good: Path, folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / f"{kind}.sqlite"
    data = good.read_bytes()
    if kind == "text":
        path.write_text("id,title\n1,not a database\n" * 50)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(data[: len(data) // 3])
    elif kind == "corrupt":
        # The header and page 1 (the schema) survive; pages behind them are garbage.
        page = int.from_bytes(data[16:18], "big")
        junk = bytes((i * 37 + 11) % 251 for i in range(6 * page))
        path.write_bytes(data[:page] + junk + data[7 * page:])
    elif kind == "directory":
        path.mkdir()
    # "missing": nothing at path
    return path


#: Each verb's arguments, given the bad database, a good corpus and a scratch folder.
VERBS: dict[str, Callable[[Path, Path, Path], list[str]]] = {
    "indexes list": lambda db, good, tmp: ["indexes", "list", "--db", db],
    "indexes apply": lambda db, good, tmp: ["indexes", "apply", "--db", db, "--set", "seed"],
    "size": lambda db, good, tmp: ["size", "--db", db, "--set", "seed"],
    "workload from-insights": lambda db, good, tmp: [
        "workload", "from-insights", tmp / "insights.json", "--db", db, "--out", tmp / "w.toml"],
    "workload check": lambda db, good, tmp: ["workload", "check", "medical", "--db", db],
    "lint": lambda db, good, tmp: ["lint", "--db", db, "--workload", "medical"],
    "advise": lambda db, good, tmp: ["advise", "--db", db, "--workload", "medical",
                                     "--no-progress", "--migrations", tmp / "migrations"],
    "replay sqlite:": lambda db, good, tmp: [
        "replay", "--target", f"sqlite:{db}", "--trace", tmp / "t.parquet", "--requests", "5",
        "--no-progress"],
    "replay --corpus": lambda db, good, tmp: [
        "replay", "--target", f"sqlite:{good}", "--corpus", db, "--trace", tmp / "t.parquet",
        "--requests", "5", "--no-progress"],
    "upload": lambda db, good, tmp: ["upload", "--db", db, "--target",
                                     f"d1-local:{tmp / 'persist'}", "--no-progress"],
    "report": lambda db, good, tmp: ["report", "--corpus", db, "--out", tmp / "reports",
                                     "--notebooks", "02", "--no-progress"],
}


def _saas() -> Path:
    from schemas import workload_path

    return workload_path("saas")


#: The verbs that read a workload, with the saas fixture schema's workload instead of medical's.
SAAS_VERBS: dict[str, Callable[[Path, Path, Path], list[str]]] = {
    "workload check (saas)": lambda db, good, tmp: ["workload", "check", _saas(), "--db", db],
    "lint (saas)": lambda db, good, tmp: ["lint", "--db", db, "--workload", _saas()],
    "advise (saas)": lambda db, good, tmp: ["advise", "--db", db, "--workload", _saas(),
                                            "--no-progress"],
    "replay (saas)": lambda db, good, tmp: [
        "replay", "--target", f"sqlite:{db}", "--workload", _saas(), "--trace",
        tmp / "t.parquet", "--requests", "5", "--no-progress"],
}


def _state(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``folder`` with its size and mtime: what "nothing written" compares."""
    out = {}
    for p in sorted(folder.rglob("*")):
        st = p.stat() if os.access(p, os.R_OK) or p.is_dir() else p.lstat()
        out[str(p.relative_to(folder))] = (st.st_size if p.is_file() else 0, st.st_mtime_ns)
    return out


#: (schema the bad file is made from, kind): only a truncated or corrupt file carries its schema.
CASES = [("medical", kind) for kind in KINDS] + [("saas", "truncated"), ("saas", "corrupt")]


def _good(request: pytest.FixtureRequest, schema: str) -> Path:
    return request.getfixturevalue("small_corpus" if schema == "medical" else f"{schema}_db")


@pytest.fixture
def good_db(small_corpus: Path) -> Path:
    return small_corpus


def _assert_one_line(code: int, err: str, db: Path) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(db) in lines[0], err


@pytest.mark.parametrize(("schema", "kind"), CASES)
@pytest.mark.parametrize("verb", [*VERBS, *SAAS_VERBS])
def test_every_verb_refuses_a_bad_file(verb: str, schema: str, kind: str, tmp_path: Path,
                                       request: pytest.FixtureRequest,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    good_db = _good(request, schema)
    db = _make_bad(kind, good_db, tmp_path)
    before = _state(tmp_path)
    good_before = (good_db.stat().st_size, good_db.stat().st_mtime_ns)
    argv = {**VERBS, **SAAS_VERBS}[verb](db, good_db, tmp_path)
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    _, err = capsys.readouterr()
    _assert_one_line(code, err, db)
    assert _state(tmp_path) == before, "a bad database made the verb write something"
    assert (good_db.stat().st_size, good_db.stat().st_mtime_ns) == good_before


@pytest.mark.parametrize("schema", ["medical", "saas", "events"])
def test_what_is_wrong_is_named(schema: str, request: pytest.FixtureRequest,
                                tmp_path: Path) -> None:
    good_db = _good(request, schema)
    expected = {"text": "not a SQLite database", "empty": "is empty", "truncated": "truncated",
                "corrupt": "corrupt", "directory": "is a directory",
                "missing": "no such database file"}
    for kind, words in expected.items():
        with pytest.raises(UsageError, match=words):
            check_database(_make_bad(kind, good_db, tmp_path))
    assert check_database(good_db) == good_db
    # Without quick_check (a file too large to read whole), a damaged table root still shows.
    with pytest.raises(UsageError, match="corrupt"):
        check_database(_make_bad("corrupt", good_db, tmp_path / "big"), quick_check=False)


def _unreadable_runner() -> list[str]:
    """How to run the CLI so that a mode-000 file really cannot be read."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("running as root without setpriv (util-linux): cannot test unreadable files")
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.mark.slow
@pytest.mark.parametrize("verb", list(VERBS))
def test_every_verb_refuses_an_unreadable_file(verb: str, good_db: Path) -> None:
    prefix = _unreadable_runner()
    # Not under tmp_path: pytest makes that mode 0700, closed to the unprivileged uid.
    folder = Path(tempfile.mkdtemp(prefix="d1bench-unreadable-"))
    try:
        folder.chmod(0o755)
        db = folder / "locked.sqlite"
        shutil.copyfile(good_db, db)
        db.chmod(0)
        good = folder / "good.sqlite"  # readable by the unprivileged uid
        shutil.copyfile(good_db, good)
        before = _state(folder)
        argv = [str(a) for a in VERBS[verb](db, good, folder)]
        env = {**os.environ, "HOME": str(folder), "PYTHONDONTWRITEBYTECODE": "1"}
        proc = subprocess.run([*prefix, sys.executable, "-m", "d1bench", *argv], env=env, check=False,
                              capture_output=True, text=True, timeout=120, cwd=folder)
        _assert_one_line(proc.returncode, proc.stderr, db)
        assert "permission denied" in proc.stderr
        assert _state(folder) == before
        assert stat.S_IMODE(db.stat().st_mode) == 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)
