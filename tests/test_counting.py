"""Calibrating which statements collect SQLite's counters, before a replay's clock starts.

On ``medical`` (the small generated corpus) and the fixture schema ``saas``.
"""

from __future__ import annotations

import doctest
import hashlib
from pathlib import Path
from typing import Any

import apsw
import pytest

from d1bench.runner.prepare import calibration_draws
from d1bench.targets.rowcount import counting
from d1bench.targets.sqlite import SQLiteTarget


def test_doctests() -> None:
    result = doctest.testmod(counting)
    assert result.attempted and not result.failed


@pytest.fixture
def corpus(medical_or_saas: tuple[str, Path, Any]) -> tuple[Path, Any]:
    _name, copy, workload = medical_or_saas
    return copy, workload


def _rows_digest(path: Path) -> str:
    db = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        names = [r[0] for r in db.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND sql NOT LIKE 'CREATE VIRTUAL%'"
            " ORDER BY name")]
        return hashlib.sha256(repr([db.execute(f'SELECT * FROM "{n}"').fetchall()
                                    for n in names]).encode()).hexdigest()
    finally:
        db.close()


def test_calibrating_writes_leaves_the_rows_as_they_were_and_decides(corpus) -> None:
    db, workload = corpus
    before = _rows_digest(db)
    target = SQLiteTarget(db)
    conn = target.connect()
    try:
        conn.defer_estimates(estimate=False)
        bound = workload.bind(conn, seed=0)
        conn.defer_estimates()
        draws = calibration_draws(bound, 0)
        writes = [t for t in workload.templates.values() if t.is_write]
        assert writes
        for t in writes:
            assert conn.prepare(t.sql, draws[t.name][0], None, draws[t.name])
        decided = {t.name: target.verdicts.get(t.sql) for t in writes}
        # A write whose estimate is not a constant was run and judged (none left undecided).
        undecided = [t.name for t in writes if t.sql not in target.verdicts
                     and conn._statements[t.sql].constant is None]
        assert undecided == [], decided
    finally:
        conn.close()
    assert _rows_digest(db) == before


def test_the_verdict_is_taken_once_per_target_and_shared(corpus) -> None:
    db, workload = corpus
    target = SQLiteTarget(db, readonly=True)
    first, second = target.connect(), target.connect()
    try:
        bound = workload.bind(first, seed=0)
        draws = calibration_draws(bound, 1)
        reads = [t for t in workload.templates.values() if not t.is_write]
        for t in reads:
            first.prepare(t.sql, draws[t.name][0], None, draws[t.name])
        verdicts = dict(target.verdicts)
        assert any(verdicts.values()) and not all(verdicts.values()), verdicts
        for t in reads:
            second.prepare(t.sql, draws[t.name][0], None, draws[t.name])
        assert target.verdicts == verdicts
        for t in reads:
            mine, theirs = first._statements[t.sql], second._statements[t.sql]
            assert (mine.verdict, mine.traced) == (theirs.verdict, theirs.traced)
            if mine.verdict is not None:
                assert mine.traced == mine.verdict and not mine.calibrate
    finally:
        first.close()
        second.close()
