"""Every fix lint proposes is SQL that runs on the corpus, and lint agrees with advise.

Run on medical and on the saas fixture schema: each finding's ``fix_sql`` is
split into statements, the schema statements applied to a copy of the corpus,
and every query compiled against the result (EXPLAIN), then run with the
template's own sampled values where it binds the same ones.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import apsw
import pytest
from schemas import workload_path

from d1bench.advisor import advise
from d1bench.fixer.sqlshape import max_index
from d1bench.linter import lint
from d1bench.linter.context import build_context

pytestmark = pytest.mark.slow  # lint, advise and every fix on two corpora: a few seconds each

#: Rules whose fix binds values of another meaning than the template's (a MATCH
#: expression, a keyset cursor, an element instead of a pattern): compiled only.
REBOUND = {"like_leading_wildcard", "offset_pagination", "like_over_json"}


def _statements(script: str) -> list[str]:
    out, chunk = [], ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--") and not chunk.strip():
            continue
        chunk += line
        if apsw.complete(chunk):
            out.append(chunk.strip())
            chunk = ""
    if chunk.strip():
        out.append(chunk.strip() + ";")
    return out


def _run_every_fix(db: Path, workload, tmp_path: Path) -> int:
    advice = advise(db, workload)
    frame = lint(workload, db, advice=advice)
    params = build_context(workload, db).params
    copy = tmp_path / "fixed.sqlite"
    shutil.copyfile(db, copy)
    conn = apsw.Connection(str(copy))
    ran = 0
    for row in frame.itertuples(index=False):
        if not row.fix_sql:
            continue
        for stmt in _statements(row.fix_sql):
            assert "..." not in stmt, f"{row.template}/{row.rule}: not SQL: {stmt}"
            n = max_index(stmt)
            if stmt.split(None, 1)[0].upper() != "SELECT" and not stmt.upper().startswith("WITH"):
                conn.execute(stmt)  # schema parts run for real, on the copy
                ran += 1
                continue
            conn.execute("EXPLAIN " + stmt, [None] * n)
            sample = (params.get(row.template) or [()])[0]
            if row.rule not in REBOUND and len(sample) == n:
                list(conn.execute(stmt, sample))
            ran += 1
    conn.close()
    return ran


def test_every_fix_runs_on_medical(small_corpus: Path, tmp_path: Path) -> None:
    assert _run_every_fix(small_corpus, "medical", tmp_path) >= 10


def test_every_fix_runs_on_saas(saas_db: Path, tmp_path: Path) -> None:
    assert _run_every_fix(saas_db, workload_path("saas"), tmp_path) >= 10


def test_lint_and_advise_agree_on_indexes(saas_db: Path) -> None:
    """A finding's CREATE INDEX is exactly what advise proposes for that template, or nothing."""
    wl = workload_path("saas")
    advice = advise(saas_db, wl)
    frame = lint(wl, saas_db, advice=advice)
    proposed = {}
    for row in advice.indexes.itertuples(index=False):
        for t in row.templates:
            proposed.setdefault(t, set()).add(row.sql)
    indexing = frame[frame["fix_sql"].fillna("").str.upper().str.startswith("CREATE INDEX")]
    assert len(indexing) > 0
    for row in indexing.itertuples(index=False):
        assert set(row.fix_sql.splitlines()) <= proposed.get(row.template, set()), row
    # and advise sends nobody to lint
    assert not advice.templates["reason"].str.contains("d1bench lint").any()


def test_counts_only_for_unfiltered_or_unservable_filters(saas_db: Path) -> None:
    frame = lint(workload_path("saas"), saas_db)
    counts = frame[frame["rule"] == "count_star_large_table"]
    # count_all_tasks is unfiltered; tenant_seat_count's filter is indexable: no finding, no counter
    assert set(counts["template"]) == {"count_all_tasks"}
    assert "tasks_row_count" in counts["fix_sql"].iloc[0]
