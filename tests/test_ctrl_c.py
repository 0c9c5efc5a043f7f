"""Ctrl-C, for real: SIGINT to a running ``d1bench`` ends it with one line and exit status 130.

No traceback and no asyncio noise ("Task was destroyed", "Event loop is
closed") on ``replay`` against SQLite and against a local D1, and on
``upload`` to a local D1, which then resumes where it stopped.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from terminal import interrupt_on_terminal

pytestmark = pytest.mark.slow

NOISE = ("Traceback", "Task was destroyed", "Event loop is closed", "Exception ignored")


def _assert_clean(code: int, lines: list[str], marker: str, last: str) -> None:
    """Exit 130; besides progress lines, one line on stderr: ``last``; no noise anywhere."""
    assert code == 130, lines
    assert not any(word in line for line in lines for word in NOISE), lines
    others = [line for line in lines if marker not in line]
    assert others == [last], lines


def test_ctrl_c_on_a_sqlite_replay(saas_db: Path, tmp_path: Path) -> None:
    from schemas import workload_path

    db = tmp_path / "saas.sqlite"
    shutil.copyfile(saas_db, db)
    trace = tmp_path / "t.parquet"
    code, out, lines = interrupt_on_terminal(["replay", "--target", f"sqlite:{db}", "--workload",
                                   workload_path("saas"), "--trace", trace, "--reads-only",
                                   "--rate", "100", "--duration", "60"], "p99")
    # The run's own line: the trace keeps what completed.
    _assert_clean(code, lines, "p99",
                  "run interrupted: the trace holds the requests that completed")
    assert trace.is_file() and "statements in" in out


def test_ctrl_c_on_upload_then_replay_to_local_d1(small_corpus: Path, tmp_path: Path) -> None:
    from d1bench.targets.d1.local import miniflare_version

    if miniflare_version() is None:
        pytest.fail("Miniflare is not installed: run `make node_modules`")
    persist = tmp_path / "persist"
    # tqdm's bar shows "<done>/<total>" once rows are being sent.
    code, _, lines = interrupt_on_terminal(["upload", "--db", small_corpus, "--target",
                                 f"d1-local:{persist}", "--batch-rows", "2"], "%|")
    _assert_clean(code, lines, "%|", "d1bench upload: interrupted")

    # Run again: it resumes and finishes, every table's count matching.
    proc = subprocess.run([sys.executable, "-m", "d1bench", "upload", "--db", small_corpus,
                           "--target", f"d1-local:{persist}", "--no-progress"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "False" not in proc.stdout

    trace = tmp_path / "d1.parquet"
    code, out, lines = interrupt_on_terminal(["replay", "--target", f"d1-local:{persist}", "--trace", trace,
                                   "--reads-only", "--rate", "50", "--duration", "60"],
                                  "p99")
    _assert_clean(code, lines, "p99",
                  "run interrupted: the trace holds the requests that completed")
    assert "statements in" in out
