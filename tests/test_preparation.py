"""``prepare()``: the one set-up lint, the advisor and the benchmarks share, on a real
SQLite database of the lint fixtures' schema (items, notes, labels: not ``medical``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import apsw
import pandas as pd
import pytest

from d1bench import Prepared, prepare
from d1bench.errors import UsageError
from d1bench.linter.context import build_context

FIXTURES = Path(__file__).parent / "fixtures" / "lint"
WORKLOAD = FIXTURES / "n_plus_one" / "workload.toml"


@pytest.fixture
def items_db(lint_db: Path) -> Path:
    return lint_db


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_prepare_reads_binds_and_leaves_the_database_alone(items_db: Path) -> None:
    before = _digest(items_db)
    with prepare(items_db, WORKLOAD, seed=3, samples=4) as prep:
        assert isinstance(prep, Prepared)
        assert prep.workload.name == "lint_n_plus_one"
        assert prep.catalog.table("items") is not None
        assert set(prep.infos) == {"items_of_group", "notes_of_item"}
        assert prep.infos["notes_of_item"].n_params == 1
        assert [len(prep.params[n]) for n in ("items_of_group", "notes_of_item")] == [4, 4]
        groups = [p[0] for p in prep.params["items_of_group"]]
        assert all(0 <= g <= 39 for g in groups)
        ids = {r[0] for r in prep.conn.execute("SELECT id FROM items")}
        assert {p[0] for p in prep.params["notes_of_item"]} <= ids
        assert prep.notes == ()
        with pytest.raises(apsw.ReadOnlyError):
            prep.conn.execute("DELETE FROM kinds")
    assert _digest(items_db) == before


def test_prepare_is_deterministic_and_takes_given_params(items_db: Path) -> None:
    with prepare(items_db, WORKLOAD, seed=5) as a, prepare(items_db, WORKLOAD, seed=5) as b:
        assert a.params == b.params
    given = {"items_of_group": [(7,)], "notes_of_item": [(1,)]}
    with prepare(items_db, WORKLOAD, params=given) as c:
        assert c.params == given


def test_weights_come_from_the_trace_when_there_is_one(items_db: Path) -> None:
    frame = pd.DataFrame({"template": ["items_of_group", "notes_of_item", "notes_of_item",
                                       "notes_of_item", "notes_of_item"],
                          "unit_index": [0, 0, 0, 1, 1]})
    with prepare(items_db, WORKLOAD, frame) as prep:
        assert prep.weights() == {"items_of_group": 0.5, "notes_of_item": 2.0}
        assert prep.trace is frame
    with prepare(items_db, WORKLOAD) as prep:
        assert prep.weights() == pytest.approx(prep.workload.template_frequencies())


def test_lint_context_is_built_from_the_same_preparation(items_db: Path) -> None:
    ctx = build_context(WORKLOAD, items_db, seed=2, samples=2)
    with prepare(items_db, WORKLOAD, seed=2, samples=2) as prep:
        assert ctx.params == prep.params
        assert ctx.infos.keys() == prep.infos.keys()


def test_a_missing_corpus_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.sqlite"
    with pytest.raises(UsageError, match="nope.sqlite: no such database file"):
        prepare(missing, WORKLOAD)
    assert not missing.exists()
