"""Seed 000's benchmark table, measured on SQLite and a real local D1 under several index sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from d1bench import apply_index_set, load_workload, replay
from d1bench.claims import runs_needed, seed_table
from d1bench.workload.model import SEED_BENCHMARK_MS


def test_seed_table_on_sqlite_and_local_d1(small_corpus: Path, local_d1_corpus, tmp_path: Path):
    import shutil

    from d1bench.targets import open_target

    wl = load_workload("medical").reads_only()
    seeded = tmp_path / "seed.sqlite"
    shutil.copyfile(small_corpus, seeded)
    apply_index_set(seeded, "seed")
    schedule = {"rate": 150, "requests": 30, "seed": 4, "progress": False, "min_executions": 12}
    traces = {("SQLite", "none"): replay(wl, f"sqlite:{small_corpus}", **schedule),
              ("SQLite", "seed"): replay(wl, f"sqlite:{seeded}", **schedule)}
    with open_target(f"sqlite:{small_corpus}") as local, local.connect() as bind_conn, \
            local_d1_corpus.target() as target:
        traces[("local D1", "none")] = replay(wl, target, bind_conn=bind_conn, **schedule)
    table = seed_table(traces, wl)
    assert len(table) == 3 * len(SEED_BENCHMARK_MS)
    assert set(table["target"]) == {"SQLite", "local D1"}
    assert set(table["family"]) == set(SEED_BENCHMARK_MS)
    # Topped up to 12 runs a template: every family has enough runs for a verdict.
    assert (table["n"] >= 12).all()
    assert set(table["verdict"]) <= {"faster than claimed", "slower than claimed",
                                    "consistent with claim"}
    assert (table["p50_ms"] <= table["p95_ms"]).all()
    assert (table["note"].str.contains("p95 from") == (table["n"] < runs_needed(0.95))).all()
    # The mapping of the seed's operations to templates is stated.
    search = table[table["family"] == "search"].iloc[0]
    assert "search_papers" in search["templates"].split(", ")
    # The mean is the mix-weighted mean of the templates' means, not the mean of the runs.
    req = traces[("local D1", "none")].measured
    freq = wl.template_frequencies()
    part = req[req["template"].isin(["paper_by_id", "paper_by_doi"])]
    means = part.groupby("template")["response_ms"].mean()
    expect = sum(freq[t] * means[t] for t in means.index) / sum(freq[t] for t in means.index)
    got = table.set_index(["target", "family"]).loc[("local D1", "retrieval"), "mean_ms"]
    assert np.isclose(got.iloc[0] if isinstance(got, pd.Series) else got, expect)
    # A D1 round trip costs more than an in-process call for the primary-key lookups.
    by = table.set_index(["target", "index_set", "family"])["mean_ms"]
    assert by[("local D1", "none", "retrieval")] > by[("SQLite", "none", "retrieval")]


def test_seed_table_on_saas(saas_db: Path):
    from schemas import workload_path

    wl = load_workload(workload_path("saas")).reads_only()
    trace = replay(wl, f"sqlite:{saas_db}", rate=200, requests=10, seed=1, progress=False)
    table = seed_table({("SQLite", "none"): trace}, wl, claims={"retrieval": 5.0, "tenant": 50.0,
                                                                "nothing": 1.0})
    rows = table.set_index("family")
    assert rows.loc["nothing", "verdict"] == "not measured" and rows.loc["nothing", "n"] == 0
    assert rows.loc["retrieval", "n"] == (trace.measured["template"].isin(
        rows.loc["retrieval", "templates"].split(", "))).sum()
    # Ten units drawn: a family with under ten runs is not given a verdict.
    thin = rows[(rows["n"] > 0) & (rows["n"] < runs_needed(0.5))]
    assert (thin["verdict"] == "too few runs").all()
