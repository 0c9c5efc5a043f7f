"""``d1bench lint`` and ``d1bench advise`` from the command line, on real databases."""

from __future__ import annotations

import shutil
from pathlib import Path

import apsw
import pytest

from d1bench.cli import main

ADVICE = Path(__file__).parent / "fixtures" / "advice"
LINT = Path(__file__).parent / "fixtures" / "lint"


def _db(folder: Path, schema: Path) -> Path:
    path = folder / "db.sqlite"
    conn = apsw.Connection(str(path))
    conn.execute(schema.read_text(encoding="utf-8"))
    conn.close()
    return path


def test_advise_prints_the_set_and_writes_the_migration(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    db = _db(tmp_path, ADVICE / "order_limit" / "schema.sql")
    before = db.read_bytes()
    status = main(["advise", "--db", str(db), "--workload", str(ADVICE / "order_limit" / "workload.toml"),
                   "--migrations", str(tmp_path / "migrations")])
    out = capsys.readouterr().out
    assert status == 0
    assert "1 index(es) to create" in out
    assert "CREATE INDEX IF NOT EXISTS idx_events_account_score ON events (account, score);" in out
    assert "by_id: 1 -> 1 rows read per execution; already uses the primary key" in out
    # Where the rows read that remain come from, largest share first, adding up to the whole.
    left = next(line for line in out.splitlines() if line.startswith("rows read left after"))
    shares = [(part.rsplit(" ", 1)[0], int(part.rsplit(" ", 1)[1].rstrip("%")))
              for part in left.split(": ", 1)[1].split(", ")]
    assert [pct for _, pct in shares] == sorted((pct for _, pct in shares), reverse=True)
    assert 98 <= sum(pct for _, pct in shares) <= 101
    written = tmp_path / "migrations" / "0001_d1bench_indexes.sql"
    assert f"wrote {written}" in out
    assert written.read_text().rstrip().endswith("PRAGMA optimize;")
    assert db.read_bytes() == before  # the corpus is only read


def test_advise_refuses_a_second_migration_without_force(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    db = _db(tmp_path, ADVICE / "order_limit" / "schema.sql")
    args = ["advise", "--db", str(db), "--workload", str(ADVICE / "order_limit" / "workload.toml"),
            "--migrations", str(tmp_path / "m")]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("d1bench advise: error: ") and "--force" in err
    assert main([*args, "--force"]) == 0


def test_advise_budget_and_write_weight_options(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    db = _db(tmp_path, ADVICE / "write_heavy" / "schema.sql")
    wl = str(ADVICE / "write_heavy" / "workload.toml")
    assert main(["advise", "--db", str(db), "--workload", wl]) == 0
    assert "0 index(es) to create" in capsys.readouterr().out
    assert main(["advise", "--db", str(db), "--workload", wl, "--write-weight", "0"]) == 0
    assert "idx_log_user_id" in capsys.readouterr().out
    assert main(["advise", "--db", str(db), "--workload", wl, "--write-weight", "0",
                 "--budget", "1k"]) == 0
    out = capsys.readouterr().out
    assert "0 index(es) to create" in out and "over the storage budget" in out


def test_advise_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["advise", "--db", str(tmp_path / "missing.sqlite"), "--workload", "medical"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no such database file" in err
    with pytest.raises(SystemExit):
        main(["advise", "--db", "x", "--workload", "medical", "--budget", "lots"])


def test_lint_prints_findings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _db(tmp_path, LINT / "schema.sql")
    wl = str(LINT / "order_by_limit_full_sort" / "workload.toml")
    assert main(["lint", "--db", str(db), "--workload", wl]) == 0
    out = capsys.readouterr().out
    assert "top_of_group: order_by_limit_full_sort" in out
    assert "sql: CREATE INDEX IF NOT EXISTS idx_items_grp_score ON items (grp, score);" in out
    assert "[low]" in out or "[medium]" in out
    assert main(["lint", "--db", str(db), "--workload", wl, "--severity", "high"]) == 0
    high = capsys.readouterr().out
    assert "[low]" not in high and "[medium]" not in high


def test_lint_on_a_copy_leaves_the_database_alone(tmp_path: Path) -> None:
    db = _db(tmp_path, LINT / "schema.sql")
    copy = tmp_path / "copy.sqlite"
    shutil.copyfile(db, copy)
    assert main(["lint", "--db", str(copy), "--workload", str(LINT / "select_star" / "workload.toml")]) == 0
    assert copy.read_bytes() == db.read_bytes()


def test_advise_verify_prints_measured_figures(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    db = _db(tmp_path, ADVICE / "order_limit" / "schema.sql")
    assert main(["advise", "--db", str(db), "--workload",
                 str(ADVICE / "order_limit" / "workload.toml"), "--verify", "--requests", "40"]) == 0
    out = capsys.readouterr().out
    assert "verified by replay (measured;" in out
    line = next(x for x in out.splitlines() if x.strip().startswith("top_scores ("))
    import re

    m = re.search(r"rows read ([\d,.]+) -> ([\d,.]+) \(predicted ([\d,.]+), measured "
                  r"[\d,.]+ on the same values\), rows written", line)
    assert m is not None, line
    before, after, predicted = (float(v.replace(",", "")) for v in m.groups())
    assert before >= 20_000 and after <= 12 and abs(predicted - after) <= 0.15 * after
    assert "predicted rows read within 15% of measured (same values) for 100% of" in out


def test_advise_check_on_d1_shows_each_prediction_beside_d1s_own_count(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--check-on-d1`` runs the prediction's values on a local D1 holding the advised set:
    predicted rows read, D1's count and the SQLite estimate, per template, and the shares
    within 15%; the corpus is left as it was."""
    skewed = Path(__file__).parent / "fixtures" / "skewed"
    db = _db(tmp_path, skewed / "schema.sql")
    before = db.read_bytes()
    status = main(["advise", "--db", str(db), "--workload", str(skewed / "workload.toml"),
                   "--check-on-d1", "--no-progress"])
    out = capsys.readouterr().out
    assert status == 0
    assert "checked on local D1" in out
    rows = {line.split(":")[0].strip(): [float(x.replace(",", "")) for x in
                                         line.split(":", 1)[1].split("OFF")[0].split(" / ")]
            for line in out.splitlines()
            if line.startswith("  ") and line.count(" / ") == 2}
    assert set(rows) == {"team_posts", "author_week", "title_search", "author_days"}, out
    for name, (predicted, counted, estimate) in rows.items():
        assert counted > 0 and estimate > 0, name
        assert abs(predicted - counted) <= 0.15 * counted, (name, predicted, counted)
    assert "predicted within 15% of D1's count for 100% of templates" in out
    assert db.read_bytes() == before
