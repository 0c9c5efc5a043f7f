"""Charts: each returns a titled Figure with labelled axes, log scales where data is heavy-tailed.

The chart functions take DataFrames; most tests here build small frames of
the documented shapes, and the corpus charts also run on a real corpus.
"""

from __future__ import annotations

import doctest
import io

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from d1bench import charts
from d1bench.charts import _style
from d1bench.cost import compare_costs, cost_curve


def _title(ax) -> str:
    return ax.get_title() or ax.get_title(loc="left")


def _check(fig: Figure, *, xlog: bool | None = None, ylog: bool | None = None) -> list:
    """Shared promises: a Figure, titled, labelled axes, and it renders to a non-trivial PNG."""
    assert isinstance(fig, Figure)
    axes = [ax for ax in fig.axes if ax.has_data() or _title(ax)]
    assert axes, "no drawn axes"
    assert _title(axes[0]), "first axes has no title"
    for ax in axes:
        if ax.has_data():
            assert ax.get_xlabel() or ax.get_ylabel() or ax.get_yticklabels(), "unlabelled axes"
    if xlog is not None:
        assert (axes[0].get_xscale() == "log") == xlog
    if ylog is not None:
        assert (axes[0].get_yscale() == "log") == ylog
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert len(buf.getvalue()) > 5_000
    return axes


def _requests(seed: int = 0, n: int = 600) -> pd.DataFrame:
    """A requests frame of the trace's documented columns: three templates, lognormal times."""
    rng = np.random.default_rng(seed)
    templates = rng.choice(["search_fts", "paper_by_doi", "citations_of"], size=n, p=[.5, .3, .2])
    scale = pd.Series(templates).map({"search_fts": 8.0, "paper_by_doi": 0.4,
                                      "citations_of": 2.0}).to_numpy()
    service = rng.lognormal(0, 0.6, n) * scale
    lag = rng.exponential(0.2, n)
    intended = np.sort(rng.uniform(0, 5e9, n)).astype(np.int64)
    done = intended + ((lag + service) * 1e6).astype(np.int64)
    errors = np.where(rng.random(n) < 0.01, "timeout", None)
    return pd.DataFrame({
        "run": 0, "unit_index": np.arange(n), "unit": templates, "kind": "query",
        "session_id": pd.array([None] * n, dtype="Int64"), "step": 0, "worker": 0,
        "template": templates, "intended_ns": intended,
        "sent_ns": intended + (lag * 1e6).astype(np.int64), "done_ns": done,
        "response_ms": lag + service, "service_ms": service, "lag_ms": lag,
        "db_duration_ms": service * 0.3, "rows_read": (scale * 100).astype(int),
        "rows_written": 0, "rows_returned": 10, "attempts": 1,
        "plan_class": pd.Series(templates).map({"search_fts": "fts", "paper_by_doi": "key_lookup",
                                                "citations_of": "full_scan"}).to_numpy(),
        "all_indexed": templates != "citations_of", "warmup": intended < 0.5e9,
        "error_class": errors, "error": None, "extra": None,
    })


def test_style_is_scoped_to_charts():
    before = matplotlib.rcParams["axes.titleweight"]
    with _style.style():
        assert matplotlib.rcParams["axes.titleweight"] == "bold"
    assert matplotlib.rcParams["axes.titleweight"] == before


def test_style_doctests():
    assert doctest.testmod(_style).failed == 0


def test_latency_cdf_and_histogram():
    req = _requests()
    fig = charts.latency.latency_cdf(req)
    axes = _check(fig, xlog=True)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[0].startswith("search_fts")  # slowest first
    assert "ms" in axes[0].get_xlabel()
    _check(charts.latency.latency_histogram(req), xlog=True, ylog=False)


def test_measured_leaves_out_warmup_and_errors():
    req = _requests()
    kept = charts.latency.measured(req)
    assert not kept["warmup"].any() and kept["error_class"].isna().all()
    assert 0 < len(kept) < len(req)


def test_percentile_chart_from_summary_frame():
    from d1bench.analysis import summarize

    summary = summarize(_requests())
    axes = _check(charts.latency.percentile_chart(summary, threshold_ms=60), xlog=True)
    ticks = [t.get_text() for t in axes[0].get_yticklabels()]
    assert set(ticks) >= {"search_fts", "paper_by_doi", "citations_of"}


def test_rate_and_p99_over_time_from_intervals():
    from d1bench.analysis import intervals

    frame = intervals(_requests(), seconds=1.0)
    fig = charts.latency.rate_and_p99_over_time(frame, target_rate=120)
    axes = _check(fig)
    assert axes[1].get_yscale() == "log"
    assert "per second" in axes[0].get_ylabel()


def test_open_vs_closed_and_claims():
    fig = charts.latency.open_vs_closed({"open loop": _requests(1), "closed loop": _requests(2)})
    axes = _check(fig, xlog=True)
    assert axes[1].get_yscale() == "log"
    table = pd.DataFrame({"family": ["search", "retrieval"], "claimed_ms": [45.0, 25.0],
                          "mean_ms": [3.1, 0.4], "p99_ms": [20.0, 1.2]})
    _check(charts.latency.claims_chart(table), xlog=True)


def test_empty_frames_draw_a_note_not_a_crash():
    empty = _requests().iloc[:0]
    fig = charts.latency.latency_cdf(empty)
    assert any("no successful" in t.get_text() for t in fig.axes[0].texts)


def test_time_split_and_parity():
    local, d1 = _requests(3), _requests(4)
    d1 = d1.assign(response_ms=d1["response_ms"] + 3.0, service_ms=d1["service_ms"] + 3.0)
    split = charts.d1.time_split({"SQLite": local, "local D1": d1})
    row = split.set_index(["target", "template"]).loc[("local D1", "paper_by_doi")]
    assert row["other_ms"] > row["database_ms"]
    _check(charts.d1.time_split_chart(split))
    parity = charts.d1.rows_read_parity({"SQLite": local, "local D1": d1})
    assert parity["ratio_local D1"].round(6).eq(1).all()
    _check(charts.d1.rows_read_parity_chart(parity, "SQLite", "local D1"), xlog=True, ylog=True)
    assert doctest.testmod(charts.d1).failed == 0


def test_cost_charts():
    costs = compare_costs({"none": {"rows_read_per_request": 50_000, "rows_written_per_request": 1},
                           "seed": {"rows_read_per_request": 400, "rows_written_per_request": 2}},
                          requests_per_second=100)
    axes = _check(charts.cost.bill_chart(costs))
    assert "USD" in axes[0].get_xlabel() and "100 requests/s" in _title(axes[0])
    curves = {name: cost_curve(row.rows_read_per_request, row.rows_written_per_request,
                               [1, 10, 100, 1000]) for name, row in costs.iterrows()}
    _check(charts.cost.cost_curve_chart(curves, mark_rate=100), xlog=True, ylog=True)


# --------------------------------------------------------------------- the corpus, for real


def test_corpus_charts_on_a_real_corpus(small_corpus):
    from d1bench.corpus import stats

    axes = _check(charts.corpus.table_sizes_chart(stats.table_sizes(small_corpus)))
    assert axes[0].get_xscale() == "log" and "rows" in axes[0].get_xlabel()
    degree = stats.citation_in_degree(small_corpus)
    axes = _check(charts.corpus.in_degree_chart(degree), xlog=True, ylog=True)
    assert any("top 1%" in t.get_text() for t in axes[0].texts)
    _check(charts.corpus.papers_per_year_chart(stats.papers_per_year(small_corpus)))
    _check(charts.corpus.papers_per_specialty_chart(stats.papers_per_specialty(small_corpus)))
    terms = stats.term_frequencies(small_corpus)
    axes = _check(charts.corpus.term_rank_chart(terms), xlog=True, ylog=True)
    assert "Zipf fit" in " ".join(t.get_text() for t in axes[0].get_legend().get_texts())


def test_top_share_and_zipf_exponent():
    assert doctest.testmod(charts.corpus).failed == 0
    even = pd.DataFrame({"in_degree": [3], "papers": [100]})
    assert charts.corpus.top_share(even, 0.01) == pytest.approx(0.01)
    skewed = pd.DataFrame({"in_degree": [0, 1, 100], "papers": [98, 1, 1]})
    assert charts.corpus.top_share(skewed, 0.01) == pytest.approx(100 / 101)
    ranks = np.arange(1, 3000)
    steep = pd.DataFrame({"term": ranks.astype(str), "occurrences": (1e8 / ranks ** 2).astype(int)})
    assert charts.corpus.zipf_exponent(steep) == pytest.approx(2.0, abs=0.05)
