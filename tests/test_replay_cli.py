"""``d1bench replay|analyze|compare``: the happy path, every bad input's exit 2, and Ctrl-C."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from replay_support import ITEMS, TOY_WORKLOAD, make_items_db, synthetic_trace

from d1bench import load_trace
from d1bench.analysis import ALL
from d1bench.cli import main


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("cli")
    db = make_items_db(tmp / "items.sqlite")
    workload = tmp / "toy.toml"
    workload.write_text(TOY_WORKLOAD % {"items": ITEMS, "scan_weight": 0.3,
                                        "session_weight": 0.2})
    return {"tmp": tmp, "db": db, "workload": workload}


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _replay_args(setup: dict[str, Path], trace: Path, *extra: str) -> list[str]:
    return ["replay", "--target", f"sqlite:{setup['db']}", "--workload", setup["workload"],
            "--trace", trace, "--no-progress", *extra]


def test_replay_then_analyze_then_compare(setup, tmp_path, capsys) -> None:
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    code, out, err = run(_replay_args(setup, a, "--rate", "400", "--requests", "120"), capsys)
    assert code == 0, err
    assert "trace written to" in out and a.is_file()
    code, out, err = run(_replay_args(setup, b, "--concurrency", "2", "--requests", "120",
                                      "--seed", "4"), capsys)
    assert code == 0, err
    assert load_trace(b).meta["schedule"]["mode"] == "closed"

    csv = tmp_path / "summary.csv"
    code, out, err = run(["analyze", a, "--csv", csv], capsys)
    assert code == 0, err
    assert "item_by_id" in out and ALL in out and "p99" in out and "open loop" in out
    summary = pd.read_csv(csv)
    assert list(summary["template"])[-1] == ALL
    assert summary.loc[summary["template"] == ALL, "count"].item() == len(load_trace(a).measured)

    code, out, err = run(["compare", a, b], capsys)
    assert code == 0, err
    assert "item_by_id" in out and any(w in out for w in ("faster", "slower", "not significant"))


def test_default_schedule_is_open_loop_at_100_per_second(setup, tmp_path, capsys) -> None:
    path = tmp_path / "d.parquet"
    code, _, err = run(_replay_args(setup, path, "--duration", "0.3"), capsys)
    assert code == 0, err
    meta = load_trace(path).meta
    assert meta["schedule"]["mode"] == "open" and meta["schedule"]["rate"] == 100
    assert meta["schedule"]["arrival"] == "poisson"


@pytest.mark.parametrize("extra, message", [
    (["--rate", "0"], "rate must be a number > 0"),
    (["--rate", "-5"], "rate must be a number > 0"),
    (["--concurrency", "0"], "concurrency must be a whole number > 0"),
    (["--requests", "-1"], "requests must be a whole number > 0"),
    (["--duration", "0"], "duration must be a number > 0"),
    (["--warmup", "-2"], "warmup must be a number >= 0"),
    (["--rate", "10", "--concurrency", "2"], "not allowed with argument"),
    (["--duration", "abc"], "'abc' is not a number"),
    (["--requests", "1.5"], "'1.5' is not a whole number"),
])
def test_bad_replay_numbers_exit_2(setup, tmp_path, capsys, extra, message) -> None:
    code, _, err = run(_replay_args(setup, tmp_path / "t.parquet", *extra), capsys)
    assert code == 2
    assert message in err
    assert not (tmp_path / "t.parquet").exists()


def test_unknown_workload_and_existing_trace_exit_2(setup, tmp_path, capsys) -> None:
    args = _replay_args(setup, tmp_path / "t.parquet", "--requests", "5")
    args[args.index("--workload") + 1] = "no_such_workload"
    code, _, err = run(args, capsys)
    assert code == 2 and "no_such_workload" in err and "d1bench replay: error:" in err
    existing = tmp_path / "exists.parquet"
    existing.write_text("keep me")
    code, _, err = run(_replay_args(setup, existing, "--requests", "5"), capsys)
    assert code == 2 and "already exists" in err and "--force" in err
    assert existing.read_text() == "keep me"


def test_bad_analyze_and_compare_inputs_exit_2(tmp_path, capsys) -> None:
    code, _, err = run(["analyze", tmp_path / "missing.parquet"], capsys)
    assert code == 2 and "no such trace file" in err
    junk = tmp_path / "junk.parquet"
    junk.write_text("definitely not parquet")
    code, _, err = run(["analyze", junk], capsys)
    assert code == 2 and "not a Parquet trace file" in err

    a = synthetic_trace({"q": np.ones(10)}).save(tmp_path / "a.parquet")
    other = synthetic_trace({"q": np.ones(10)}, meta={
        "machine": {"system": "Linux", "cpu_count": 64, "host": "h9"}}).save(tmp_path / "b.parquet")
    code, _, err = run(["compare", a, other], capsys)
    assert code == 2 and "cpu_count: 2 vs 64" in err and "--force" in err
    code, out, _ = run(["compare", a, other, "--force"], capsys)
    assert code == 0 and "not significant" in out
    code, _, err = run(["compare", a, a, "--alpha", "2"], capsys)
    assert code == 2 and "alpha must be between 0 and 1" in err
    code, _, err = run(["analyze", a, "--csv", a], capsys)
    assert code == 2 and "already exists" in err


@pytest.mark.slow
def test_ctrl_c_on_the_command_line_writes_what_completed(setup, tmp_path) -> None:
    from terminal import interrupt_on_terminal

    trace = tmp_path / "sigint.parquet"
    # On a terminal the live progress line ("... requests ... p99 ...") says the clock is running.
    code, _, lines = interrupt_on_terminal(
        ["replay", "--target", f"sqlite:{setup['db']}", "--workload", setup["workload"],
         "--trace", trace, "--rate", "200", "--duration", "60"], "p99")
    assert code == 130, lines
    assert lines[-1] == "run interrupted: the trace holds the requests that completed", lines
    loaded = load_trace(trace)
    assert loaded.meta["interrupted"] is True
    assert 0 < len(loaded.requests) < 200 * 60
