"""Ctrl-C, for real: SIGINT to a running ``d1bench`` ends it with one line and exit status 130.

No traceback and no asyncio noise ("Task was destroyed", "Event loop is
closed") on ``replay`` against SQLite and against a local D1, and on
``upload`` to a local D1, which then resumes where it stopped.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

NOISE = ("Traceback", "Task was destroyed", "Event loop is closed", "Exception ignored")


def _interrupt(argv: list[object], ready: Callable[[], bool], *, settle: float = 0.5,
               timeout: float = 90) -> tuple[int, str, str]:
    """Start ``d1bench ARGV``, wait for ``ready()``, press Ctrl-C; return (status, out, err)."""
    proc = subprocess.Popen([sys.executable, "-m", "d1bench", *map(str, argv)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the command never got going"
            time.sleep(0.05)
        time.sleep(settle)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


def _assert_clean(code: int, err: str, verb: str) -> None:
    assert code == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "interrupted" in lines[0] and verb in lines[0]
    assert not any(word in err for word in NOISE), err


def _after(seconds: float) -> Callable[[], bool]:
    start = time.monotonic()
    return lambda: time.monotonic() - start >= seconds


def test_ctrl_c_on_a_sqlite_replay(saas_db: Path, tmp_path: Path) -> None:
    from schemas import workload_path

    db = tmp_path / "saas.sqlite"
    shutil.copyfile(saas_db, db)
    trace = tmp_path / "t.parquet"
    code, out, err = _interrupt(["replay", "--target", f"sqlite:{db}", "--workload",
                                 workload_path("saas"), "--trace", trace, "--reads-only",
                                 "--rate", "100", "--duration", "60"], _after(4.0))
    assert code == 130, err
    # The run's own line: the trace keeps what completed.
    assert err.strip() == "run interrupted: the trace holds the requests that completed", err
    assert not any(word in err for word in NOISE)
    assert trace.is_file() and "statements in" in out


def test_ctrl_c_on_upload_then_replay_to_local_d1(small_corpus: Path, tmp_path: Path) -> None:
    from d1bench.targets.d1_local import miniflare_version

    if miniflare_version() is None:
        pytest.fail("Miniflare is not installed: run `make node_modules`")
    persist = tmp_path / "persist"

    def uploading() -> bool:  # Miniflare is up and the database file has rows in it
        return any(p.stat().st_size > 64 * 1024 for p in persist.rglob("*.sqlite"))

    code, _, err = _interrupt(["upload", "--db", small_corpus, "--target", f"d1-local:{persist}",
                               "--batch-rows", "2"], uploading)
    _assert_clean(code, err, "upload")

    # Run again: it resumes and finishes, every table's count matching.
    proc = subprocess.run([sys.executable, "-m", "d1bench", "upload", "--db", small_corpus,
                           "--target", f"d1-local:{persist}", "--no-progress"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "False" not in proc.stdout

    trace = tmp_path / "d1.parquet"
    code, _, err = _interrupt(["replay", "--target", f"d1-local:{persist}", "--trace", trace,
                                 "--reads-only", "--rate", "50", "--duration", "60"],
                                _after(6.0))
    assert code == 130, err
    assert not any(word in err for word in NOISE), err
    assert len(err.strip().splitlines()) == 1, err

