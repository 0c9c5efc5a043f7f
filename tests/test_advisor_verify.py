"""--verify: the advice is built on a copy and the workload replayed before and after,
through the SQLite target; the measured rows read must show the saving."""

from __future__ import annotations

from pathlib import Path

import apsw

from d1bench.advisor import advise
from d1bench.advisor.verify import VERIFY_COLUMNS

FIXTURES = Path(__file__).parent / "fixtures" / "advice"


def test_verify_measures_the_saving(tmp_path: Path) -> None:
    db = tmp_path / "events.sqlite"
    conn = apsw.Connection(str(db))
    conn.execute((FIXTURES / "order_limit" / "schema.sql").read_text(encoding="utf-8"))
    conn.close()
    before = db.read_bytes()
    advice = advise(db, FIXTURES / "order_limit" / "workload.toml", verify=True, verify_requests=60)
    v = advice.verification
    assert v is not None and list(v.columns) == VERIFY_COLUMNS
    rows = v.set_index("template")
    # a full scan of 20,000 rows and a sort, then an index walk that stops at LIMIT 10
    assert rows.loc["top_scores", "rows_read_before"] >= 20_000
    assert rows.loc["top_scores", "rows_read_after"] <= 12
    assert rows.loc["by_id", "rows_read_after"] == rows.loc["by_id", "rows_read_before"] == 1
    assert rows["executions_before"].sum() == rows["executions_after"].sum() > 0
    # latency on a shared machine is noisy; rows read are not
    assert not any("reads" in why for why in rows["why"]), rows[rows["worse"]]
    assert v.attrs["rows_read_per_unit_after"] < 0.01 * v.attrs["rows_read_per_unit_before"]
    assert db.read_bytes() == before  # built and replayed on copies only


def test_verify_medical_on_small_corpus(small_corpus: Path) -> None:
    """FTS5 templates, sessions and writes replay on both copies; nothing indexable gets worse."""
    advice = advise(small_corpus, "medical", verify=True, verify_requests=150)
    v = advice.verification.set_index("template")
    for name in ("top_cited_in_specialty", "list_specialty_papers", "paper_reviews"):
        assert v.loc[name, "rows_read_after"] < 0.2 * v.loc[name, "rows_read_before"], name
    assert not any("reads" in why for why in v["why"]), v[v["worse"]]
    assert v.attrs["rows_read_per_unit_after"] < v.attrs["rows_read_per_unit_before"]
