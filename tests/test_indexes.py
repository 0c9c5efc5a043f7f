"""Index sets: none, seed and files, moving between them, statistics, bad input, the CLI."""

from __future__ import annotations

from pathlib import Path

import apsw
import pytest

from d1bench.cli import main
from d1bench.errors import UsageError
from d1bench.indexes import APPLY_COLUMNS, INDEX_COLUMNS, apply_index_set, current_indexes

SEED = {"idx_papers_recent_cardiology", "idx_papers_search_sort"}


def secondary(db: Path) -> set[str]:
    frame = current_indexes(db)
    return set(frame.loc[frame["origin"] == "c", "name"])


def keys(db: Path) -> set[str]:
    frame = current_indexes(db)
    return set(frame.loc[frame["origin"] != "c", "name"])


@pytest.fixture
def advised(tmp_path: Path) -> Path:
    path = tmp_path / "advised.sql"
    path.write_text(
        "-- an advised set\n"
        "CREATE INDEX idx_reading_history_user ON reading_history (user_id);\n"
        "\n"
        "CREATE INDEX IF NOT EXISTS idx_paper_reviews_paper\n"
        "    ON paper_reviews (paper_id, created_at DESC);\n",
        encoding="utf-8")
    return path


def test_seed_creates_its_indexes_and_none_returns_to_keys_only(corpus_copy: Path) -> None:
    before_keys = keys(corpus_copy)
    assert secondary(corpus_copy) == set()
    applied = apply_index_set(corpus_copy, "seed")
    assert list(applied.columns) == APPLY_COLUMNS
    assert set(applied.loc[applied["action"] == "created", "index"]) == SEED
    assert secondary(corpus_copy) == SEED
    dropped = apply_index_set(corpus_copy, "none")
    assert set(dropped.loc[dropped["action"] == "dropped", "index"]) == SEED
    assert secondary(corpus_copy) == set() and keys(corpus_copy) == before_keys


def test_applying_a_set_twice_changes_nothing(corpus_copy: Path) -> None:
    apply_index_set(corpus_copy, "seed")
    again = apply_index_set(corpus_copy, "seed")
    assert set(again["action"]) == {"kept"} and set(again["index"]) == SEED


def test_moving_between_sets_drops_the_other_sets_indexes(corpus_copy: Path, advised: Path) -> None:
    apply_index_set(corpus_copy, "seed")
    moved = apply_index_set(corpus_copy, advised)
    assert set(moved.loc[moved["action"] == "dropped", "index"]) == SEED
    created = moved.loc[moved["action"] == "created"]
    assert set(created["index"]) == {"idx_reading_history_user", "idx_paper_reviews_paper"}
    assert list(created["line"]) == [2, 4]  # where each statement starts in the file
    assert secondary(corpus_copy) == {"idx_reading_history_user", "idx_paper_reviews_paper"}
    apply_index_set(corpus_copy, "seed")
    assert secondary(corpus_copy) == SEED


def test_a_changed_definition_is_rebuilt(corpus_copy: Path, tmp_path: Path) -> None:
    first = tmp_path / "one.sql"
    first.write_text("CREATE INDEX idx_x ON papers (journal);\n", encoding="utf-8")
    second = tmp_path / "two.sql"
    second.write_text("CREATE INDEX idx_x ON papers (journal, publication_date);\n",
                      encoding="utf-8")
    apply_index_set(corpus_copy, first)
    rebuilt = apply_index_set(corpus_copy, second)
    assert list(rebuilt["action"]) == ["rebuilt"]
    frame = current_indexes(corpus_copy).set_index("name")
    assert frame.loc["idx_x", "columns"] == ["journal", "publication_date"]


def test_drop_statements_in_a_file_take_effect(corpus_copy: Path, tmp_path: Path) -> None:
    apply_index_set(corpus_copy, "seed")
    drops = tmp_path / "drop.sql"
    drops.write_text("CREATE INDEX idx_y ON users (institution);\n"
                     "DROP INDEX IF EXISTS idx_y;\n", encoding="utf-8")
    apply_index_set(corpus_copy, drops)
    assert secondary(corpus_copy) == set()


def test_new_indexes_get_statistics_when_the_database_has_them(corpus_copy: Path) -> None:
    db = apsw.Connection(str(corpus_copy))
    db.execute("ANALYZE")
    db.close()
    apply_index_set(corpus_copy, "seed")
    db = apsw.Connection(str(corpus_copy))
    stats = {r[0] for r in db.execute("SELECT idx FROM sqlite_stat1")}
    db.close()
    assert "idx_papers_search_sort" in stats


def test_current_indexes_lists_keys_with_sizes(corpus_copy: Path) -> None:
    apply_index_set(corpus_copy, "seed")
    frame = current_indexes(corpus_copy)
    assert list(frame.columns) == INDEX_COLUMNS
    row = frame.set_index("name").loc["idx_papers_recent_cardiology"]
    assert row["partial"] and row["table"] == "papers" and row["origin"] == "c"
    assert row["columns"] == ["medical_specialty", "publication_date"]
    assert row["bytes"] > 0
    doi = frame.set_index("name").loc["sqlite_autoindex_papers_1"]
    assert doi["unique"] and doi["origin"] == "u" and doi["columns"] == ["doi"]


def test_bad_set_names_and_files_say_what_is_wrong(corpus_copy: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="'nosuchset': not one of"):
        apply_index_set(corpus_copy, "nosuchset")
    not_index = tmp_path / "not_index.sql"
    not_index.write_text("CREATE INDEX ok ON papers (journal);\n\nDELETE FROM papers;\n",
                         encoding="utf-8")
    with pytest.raises(UsageError, match=r"not_index\.sql:3: an index set may only"):
        apply_index_set(corpus_copy, not_index)
    bad_table = tmp_path / "bad_table.sql"
    bad_table.write_text("CREATE INDEX i1 ON papers (journal);\nCREATE INDEX i2 ON nope (x);\n",
                         encoding="utf-8")
    with pytest.raises(UsageError, match=r"bad_table\.sql:2: no such table"):
        apply_index_set(corpus_copy, bad_table)
    # All or nothing: the first statement's index was rolled back with the second's failure.
    assert secondary(corpus_copy) == set()
    with pytest.raises(UsageError, match="no such database file"):
        apply_index_set(tmp_path / "missing.sqlite", "seed")


def test_cli_apply_and_list(corpus_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["indexes", "apply", "--db", str(corpus_copy), "--set", "seed"]) == 0
    out = capsys.readouterr().out
    assert "created  idx_papers_search_sort on papers" in out and "2 created" in out
    assert main(["indexes", "list", "--db", str(corpus_copy)]) == 0
    out = capsys.readouterr().out
    assert "idx_papers_recent_cardiology" in out and "partial" in out


def test_cli_bad_set_exits_2_with_one_line(corpus_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["indexes", "apply", "--db", str(corpus_copy), "--set", "bogus"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("d1bench indexes: error: index set 'bogus'") and "\n" not in err
