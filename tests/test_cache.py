"""The notebooks' shared cache (d1bench.cache) and the seed's claims table (d1bench.claims)."""

from __future__ import annotations

import doctest
import math
import os
import shutil
from pathlib import Path

import apsw
import pandas as pd
import pytest

from d1bench import cache, claims


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private data folder, so nothing here touches the repository's cache."""
    folder = tmp_path / "data"
    folder.mkdir()
    monkeypatch.setenv("D1BENCH_DATA", str(folder))
    return folder


@pytest.fixture
def corpus(small_corpus: Path, data: Path) -> Path:
    """The suite's small corpus, copied to where the cache would have built it."""
    path = cache.corpus_path(2_000, seed=7)
    shutil.copyfile(small_corpus, path)
    return path


def _indexes(path: Path) -> set[str]:
    db = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return {r[0] for r in db.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL")}
    finally:
        db.close()


def test_doctests_pass():
    for module in (cache, claims):
        assert doctest.testmod(module).failed == 0, module.__name__


def test_corpus_names_match_the_makefile(data: Path):
    assert cache.corpus_path(100_000) == data / "corpus-100000.sqlite"
    assert cache.corpus_path(5_000, seed=3) == data / "corpus-5000-seed3.sqlite"


def test_existing_corpus_is_used_as_it_is(corpus: Path):
    before = corpus.stat().st_mtime_ns
    assert cache.ensure_corpus(2_000, 7) == corpus
    assert cache.ensure_corpus(999, 1, corpus) == corpus  # an explicit path wins
    assert corpus.stat().st_mtime_ns == before


def test_missing_corpus_is_generated_once(data: Path):
    path = cache.ensure_corpus(300, seed=1)
    assert path == data / "corpus-300-seed1.sqlite" and path.is_file()
    stamp = path.stat().st_mtime_ns
    assert cache.ensure_corpus(300, seed=1) == path
    assert path.stat().st_mtime_ns == stamp
    assert not list(data.glob(".*lock")), "lock files stay under generated/, which git ignores"


def test_indexed_copy_is_built_once_and_rebuilt_when_the_corpus_changes(corpus: Path):
    assert cache.indexed_copy(corpus, "none") == corpus
    copy = cache.indexed_copy(corpus, "seed")
    assert copy != corpus and copy.parent == cache.generated_dir()
    assert "idx_papers_search_sort" in _indexes(copy)
    assert "idx_papers_search_sort" not in _indexes(corpus)
    stamp = copy.stat().st_mtime_ns
    assert cache.indexed_copy(corpus, "seed").stat().st_mtime_ns == stamp
    os.utime(corpus, ns=(corpus.stat().st_atime_ns, corpus.stat().st_mtime_ns + 10**9))
    assert cache.indexed_copy(corpus, "seed").stat().st_mtime_ns != stamp


def test_index_set_file_is_named_by_its_content(data: Path):
    sql = "CREATE INDEX IF NOT EXISTS idx_users_name ON users (name);\n"
    a = cache.index_set_file("advised", sql)
    assert a.read_text() == sql and a == cache.index_set_file("advised", sql)
    assert cache.index_set_file("advised", sql + "-- other\n") != a


def test_replay_is_cached_and_leaves_the_corpus_alone(corpus: Path):
    stamp = corpus.stat().st_mtime_ns
    kwargs = {"rate": 30.0, "duration": 1.0, "warmup": 0.2, "seed": 3, "name": "t"}
    first = cache.replay_sqlite(corpus, **kwargs)
    assert len(first.requests) > 0
    again = cache.replay_sqlite(corpus, **kwargs)
    pd.testing.assert_frame_equal(first.requests, again.requests)
    other = cache.replay_sqlite(corpus, **{**kwargs, "seed": 4})
    assert not other.requests["intended_ns"].equals(first.requests["intended_ns"])
    assert corpus.stat().st_mtime_ns == stamp, "the workload's writes went to a throw-away copy"
    assert not list(cache.generated_dir().glob(".replay-*")), "working copies are removed"


def test_capacity_and_default_rate(corpus: Path):
    closed = cache.replay_sqlite(corpus, concurrency=2, duration=1.0, warmup=0.2, seed=0,
                                 name="closed")
    units_per_s = cache.capacity(closed)
    assert units_per_s > 0
    rate = cache.default_rate(corpus, workers=2, duration=1.0, warmup=0.2, seed=0, probe_s=1.0)
    start = float(f"{0.3 * units_per_s:.2g}")
    # The start, or halved until the probe kept up: each step a power of two below.
    assert 0 < rate <= start
    halvings = round(math.log2(start / rate))
    assert rate == pytest.approx(start / 2**halvings, rel=0.1)
    probe = cache.replay_sqlite(corpus, rate=rate, duration=1.0, warmup=0.5, seed=0, name="probe")
    assert cache._sustained(probe.requests)


def test_sustained_means_nothing_dropped_and_no_waiting():
    ok = pd.DataFrame({"warmup": [False] * 3, "error_class": [None] * 3, "lag_ms": [0.1, 0.2, 9.0]})
    assert cache._sustained(ok)
    assert not cache._sustained(ok.assign(lag_ms=[5.0, 6.0, 0.1]))
    assert not cache._sustained(ok.assign(error_class=[None, "dropped", None]))


def test_seed_claims_verdicts():
    requests = pd.DataFrame({
        "template": ["fast"] * 50 + ["slow"] * 50 + ["near"] * 4 + ["warm"],
        "response_ms": [1.0, 2.0] * 25 + [90.0, 110.0] * 25 + [20.0, 70.0, 30.0, 60.0] + [999.0],
        "warmup": [False] * 104 + [True],
        "error_class": [None] * 105,
    })
    families = {"fast": "retrieval", "slow": "analytics", "near": "search", "warm": "citations"}
    table = claims.seed_claims(requests, families).set_index("family")
    assert table.loc["retrieval", "verdict"] == "faster than claimed"
    assert table.loc["analytics", "verdict"] == "slower than claimed"
    assert table.loc["search", "verdict"] == "consistent with claim"  # mean 45, wide interval
    assert table.loc["citations", "verdict"] == "not measured"  # its only request was warm-up
    assert table.loc["analytics", "ratio"] == pytest.approx(100 / 55)
    assert list(table.index) == ["search", "retrieval", "citations", "analytics"]
    extra = claims.seed_claims(requests.assign(template="odd"), {"odd": "trials"},
                               include_unclaimed=True)
    assert extra.iloc[-1]["family"] == "trials" and extra.iloc[-1]["verdict"] == "no claim"


def _d1_state(folder: Path) -> tuple[set[str], dict[str, int]]:
    """The secondary indexes and row counts of the local D1 persisted in ``folder``, asked of D1."""
    from d1bench import LocalD1

    with LocalD1(folder) as d1, d1.target() as target, target.connect() as conn:
        indexes = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL").rows}
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' "
            "AND name NOT LIKE 'sqlite%' AND sql NOT LIKE 'CREATE VIRTUAL%' "
            "AND name NOT LIKE '%fts%'").rows]
        counts = {t: conn.execute(f'SELECT count(*) FROM "{t}"').rows[0][0] for t in tables}
    return indexes, counts


@pytest.mark.parametrize("schema", ["medical", "saas"])
def test_local_d1_copy_of_an_index_set_starts_from_the_plain_upload(
        schema: str, data: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """An index set's local D1 is the plain upload's folder with the set's indexes made by D1:
    the same rows and FTS index, no second upload of them."""
    if schema == "medical":
        corpus, index_set = request.getfixturevalue("corpus"), "seed"
        wanted = "idx_papers_search_sort"
    else:
        corpus = data / "saas.sqlite"
        shutil.copyfile(request.getfixturevalue("saas_db"), corpus)
        index_set = str(cache.index_set_file(
            "saas", "CREATE INDEX IF NOT EXISTS idx_tasks_project_status ON tasks (project_id, status);\n"))
        wanted = "idx_tasks_project_status"
    import d1bench

    uploads = []
    real = d1bench.upload

    def upload(*args, **kwargs):
        uploads.append(real(*args, **kwargs))
        return uploads[-1]

    monkeypatch.setattr(d1bench, "upload", upload)
    plain = cache.local_d1_copy(corpus, "none")
    seeded = cache.local_d1_copy(corpus, index_set)
    assert seeded != plain
    assert len(uploads) == 2 and uploads[0]["rows_uploaded"].sum() > 0
    assert uploads[1]["rows_uploaded"].sum() == 0, "the second set's rows came with the folder"
    plain_indexes, plain_counts = _d1_state(plain)
    seeded_indexes, seeded_counts = _d1_state(seeded)
    assert wanted in seeded_indexes and wanted not in plain_indexes
    assert seeded_indexes - plain_indexes == _indexes(cache.indexed_copy(corpus, index_set)) - _indexes(corpus)
    db = apsw.Connection(str(corpus), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        want = {t: next(iter(db.execute(f'SELECT count(*) FROM "{t}"')))[0] for t in plain_counts}
    finally:
        db.close()
    assert seeded_counts == plain_counts == want and sum(want.values()) > 0
    stamp = (seeded.parent / (seeded.name + ".json")).stat().st_mtime_ns
    assert cache.local_d1_copy(corpus, index_set) == seeded, "made once"
    assert (seeded.parent / (seeded.name + ".json")).stat().st_mtime_ns == stamp
