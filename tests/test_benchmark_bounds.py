"""The bounds ``benchmarks/advisor_vs_expert.py`` reports hold on a real local D1.

The benchmark says no index set can take ``semantic_search`` below its
``json_each`` floor.  D1's own counter (workerd's, through Miniflare) is the
judge: the floor must never exceed what D1 counts, and must be close to it,
or the caps it puts on the advisor's goals would mean nothing.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from d1bench.workload import load_workload

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "advisor_vs_expert.py"


def _benchmark():
    spec = importlib.util.spec_from_file_location("advisor_vs_expert", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_json_each_floor_is_under_d1s_own_count_and_close_to_it(local_d1_corpus,
                                                                     small_corpus: Path) -> None:
    from d1bench.advisor.preparation import bind_params

    workload = load_workload("medical")
    floor = _benchmark()._json_each_floor(small_corpus, workload, seed=0)["semantic_search"]
    params, _ = bind_params(workload, small_corpus, 3, 3)
    sql = workload.templates["semantic_search"].sql
    with local_d1_corpus.target() as target:
        assert target.exact_rows_read
        conn = target.connect()
        counted = [conn.execute(sql, list(p)).meta.rows_read for p in params["semantic_search"]]
        # The floor counts only the inner loop's steps; D1 also counts the outer
        # loop's and the papers table's, and the inner loop's end-of-data steps.
        papers = conn.execute("SELECT count(*) FROM papers").rows[0][0]
    assert len(counted) == 3
    for rows_read in counted:
        assert floor <= rows_read, (floor, rows_read)
        assert floor >= 0.8 * rows_read, (floor, rows_read)
        assert rows_read - floor >= papers  # each paper is read once besides its vector


def test_the_bytes_floor_on_shop_lies_above_the_goal_and_under_every_index_it_stands_for(
        tmp_path: Path) -> None:
    """The floor the benchmark puts under the bytes of any set reading no more than
    ``.expert``'s union: each advised key's single-key index is no larger than the advised
    indexes it leads, each key counted is needed (the advised set without the indexes it
    leads reads more than ``.expert``'s union) unless a substitute led by another key
    takes its place, and on ``shop`` the floor is over 0.6 of ``.expert``'s bytes: that
    goal is out of reach there."""
    from schemas import from_sql

    from d1bench.advisor import advise
    from d1bench.advisor.expert import expert_union, run_expert
    from d1bench.advisor.verify import index_bytes

    bench = _benchmark()
    shop = BENCHMARK.parents[1] / "tests" / "fixtures" / "advice" / "shop"
    db = from_sql(shop / "schema.sql", tmp_path / "shop.sqlite")
    workload = load_workload(shop / "workload.toml")
    union = expert_union(run_expert(db, {n: t.sql for n, t in workload.templates.items()}))
    expert_sql = bench._set_sql(union)
    expert = bench._build(db, tmp_path, "expert", expert_sql)
    expert_bytes = index_bytes(expert, bench._names(expert_sql))
    expert_reads = bench._measure(expert, workload, 200, 0)["rows_read_per_unit"]
    advice = advise(db, workload)
    advised = bench._build(db, tmp_path, "advised", advice.migration_sql)
    floor = bench.bytes_floor(db, tmp_path, workload, advice, expert_reads, expert_bytes, 200, 0)
    assert set(floor["indexes"]) and floor["bytes"] > 0
    for label, lead in floor["indexes"].items():
        table, key = label.split("(", 1)[0], label.split("(", 1)[1].split(")", 1)[0]
        led = [row.name for row in advice.indexes.itertuples()
               if row.table == table and row.columns[0] == key]
        assert led, label
        assert lead["bytes"] <= min(index_bytes(advised, [name]) for name in led), label
        assert lead["needed"] == (lead["advised_without_rows_read_per_unit"] > expert_reads)
    assert floor["bytes_advised_keys"] == sum(v["bytes"] for v in floor["indexes"].values()
                                              if v["needed"])
    # a substitute reads no more than .expert's union in a needed key's place, and the
    # floor fills every needed place for no more than the keys themselves would
    subs = [s for v in floor["indexes"].values() for s in v["substitutes"].values()]
    assert subs and all(s["rows_read_per_unit"] <= expert_reads for s in subs), floor
    assert 0 < floor["bytes"] <= floor["bytes_advised_keys"]
    assert floor["bytes"] >= min(v["bytes"] for v in floor["indexes"].values() if v["needed"])
    assert floor["bytes_ratio"] > 0.6, floor


def test_a_ratio_held_to_at_most_a_goal_is_rounded_up() -> None:
    """Medical's advised set once read 62,261.0 rows a unit on D1 against .expert's
    62,259.7, and rounding to four places called that 1.0: met."""
    up = _benchmark()._up
    assert up(62261.0 / 62259.7) == 1.0001
    assert up(1.0) == 1.0 and up(0.055 / 0.055) == 1.0
    assert up(0.62185) == 0.6219 and up(0.6) == 0.6
