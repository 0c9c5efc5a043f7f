"""Database sizes against D1's limits (d1bench.size, `d1bench size`, `generate --dry-run`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from d1bench.cli import main
from d1bench.indexes import apply_index_set
from d1bench.size import (
    BYTES_PER_PAPER,
    estimate_corpus_bytes,
    index_set_bytes,
    object_sizes,
    plan_fit,
    size_report,
)
from d1bench.sql.limits import MAX_DATABASE_BYTES


def test_objects_cover_every_table_and_stay_within_the_file(small_corpus: Path) -> None:
    objects = object_sizes(small_corpus)
    assert {"papers", "citations", "reading_history", "papers_fts_data"} <= set(objects["name"])
    assert objects.loc[objects["name"] == "papers_fts_data", "kind"].item() == "fts"
    assert objects.loc[objects["name"] == "papers_fts_data", "table"].item() == "papers_fts"
    # Every b-tree's pages are pages of the file, and together nearly all of them.
    assert objects["bytes"].sum() <= small_corpus.stat().st_size
    assert objects["bytes"].sum() >= 0.95 * small_corpus.stat().st_size
    assert objects["bytes"].is_monotonic_decreasing


def test_corpus_estimate_is_close_to_a_generated_corpus(small_corpus: Path) -> None:
    papers = 2_000  # conftest.SMALL_PAPERS
    actual = small_corpus.stat().st_size
    assert estimate_corpus_bytes(papers) == papers * BYTES_PER_PAPER
    # The constant is rounded up: never below, and within 10% above.
    assert actual <= estimate_corpus_bytes(papers) <= 1.10 * actual


def test_plan_fit_uses_d1s_limits() -> None:
    fit = plan_fit(MAX_DATABASE_BYTES["free"] + 1).set_index("plan")
    assert not fit.loc["free", "fits"] and fit.loc["paid", "fits"]
    assert fit.loc["paid", "share"] == pytest.approx((MAX_DATABASE_BYTES["free"] + 1) / 1e10)


@pytest.mark.parametrize("sample_rows", [300, 20_000])
def test_sampled_index_set_matches_the_built_one(small_corpus: Path, tmp_path: Path,
                                                 sample_rows: int) -> None:
    predicted = index_set_bytes(small_corpus, "seed", sample_rows=sample_rows)
    assert set(predicted["method"]) == {"sampled"}
    built = tmp_path / "seed.sqlite"
    shutil.copyfile(small_corpus, built)
    apply_index_set(built, "seed")
    measured = index_set_bytes(built, "seed").set_index("index")
    assert set(measured["method"]) == {"measured"}
    for row in predicted.itertuples(index=False):
        actual = measured.loc[row.index, "bytes"]
        # Within 10%, or two pages for an index of a few pages.
        assert abs(row.bytes - actual) <= max(0.10 * actual, 2 * 4096), (row.index, row.bytes, actual)


def test_size_report_counts_what_a_set_adds_and_drops(small_corpus: Path, tmp_path: Path) -> None:
    seeded = tmp_path / "seeded.sqlite"
    shutil.copyfile(small_corpus, seeded)
    apply_index_set(seeded, "seed")
    report = size_report(seeded, ["seed", "none"])
    rows = report.sets.set_index("set")
    assert rows.loc["seed", "added_bytes"] == 0 and rows.loc["seed", "dropped_bytes"] == 0
    seed_bytes = report.objects.loc[report.objects["name"].isin(
        report.set_indexes.loc[report.set_indexes["set"] == "seed", "index"]), "bytes"].sum()
    assert seed_bytes > 0
    assert rows.loc["none", "dropped_bytes"] == seed_bytes
    assert rows.loc["none", "total_bytes"] == report.total_bytes - seed_bytes


def test_size_verb(small_corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = small_corpus.stat().st_mtime_ns
    assert main(["size", "--db", str(small_corpus), "--set", "seed", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "papers_fts_data" in out and "of D1's paid plan limit" in out and "fits" in out
    assert "index set seed: 2 index(es)" in out
    assert small_corpus.stat().st_mtime_ns == before


def test_size_verb_on_a_file_that_is_not_a_database(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "notes.sqlite"
    bad.write_text("not a database\n")
    assert main(["size", "--db", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err


def test_generate_dry_run_warns_past_d1s_limit_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "huge.sqlite"
    assert main(["generate", "--papers", "3000000", "--out", str(out), "--dry-run"]) == 0
    said = capsys.readouterr().out
    assert said.startswith("warning") and "more than one D1 database holds" in said
    assert "2,272,727 papers" in said
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert main(["generate", "--papers", "1000000", "--out", str(out), "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("note: 1,000,000 papers make about 4.40 GB")
    assert main(["generate", "--papers", "10000", "--out", str(out), "--dry-run"]) == 0
    assert capsys.readouterr().out.startswith("within D1's free plan")


def test_generate_warns_on_stderr_before_building(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A real build past the free plan says so first; a bad destination is still one line."""
    existing = tmp_path / "taken.sqlite"
    existing.write_text("x")
    assert main(["generate", "--papers", "200000", "--out", str(existing)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists" in err
