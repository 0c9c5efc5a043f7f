"""D1's bill from rows read, rows written and storage (d1bench.cost)."""

from __future__ import annotations

import doctest
import itertools
import math

import pandas as pd
import pytest

import d1bench
from d1bench import cost
from d1bench.cost import PLANS, compare_costs, cost_curve, monthly_cost, per_request_usage

MONTH_S = 30 * 86_400


def test_doctests_pass():
    result = doctest.testmod(cost)
    assert result.attempted >= 8
    assert result.failed == 0


def test_public_name_is_exported():
    assert d1bench.monthly_cost is monthly_cost


def test_frame_shape_and_items():
    bill = monthly_cost(10, 1, 5.0, storage_gb=1.0)
    assert list(bill.index) == ["rows_read", "rows_written", "storage", "total"]
    for column in ("usage_per_month", "included_per_month", "billable", "usd_per_unit",
                   "cost_usd", "within_limit"):
        assert column in bill.columns
    assert bill.attrs["plan"] == "paid"


def test_nothing_billed_within_the_allowances():
    # Exactly the included 25 billion reads and 50 million writes a month.
    rate = 1.0
    reads = 25e9 / (rate * MONTH_S)
    writes = 50e6 / (rate * MONTH_S)
    bill = monthly_cost(reads, writes, rate, storage_gb=5.0)
    assert bill.loc["rows_read", "usage_per_month"] == pytest.approx(25e9)
    assert bill.loc["total", "cost_usd"] == pytest.approx(0.0, abs=1e-9)


def test_each_item_priced_beyond_its_allowance():
    rate = 10.0
    # 1 billion reads beyond 25 billion: $1; 2 million writes beyond 50 million: $2; 2 GB: $1.50.
    reads = (25e9 + 1e9) / (rate * MONTH_S)
    writes = (50e6 + 2e6) / (rate * MONTH_S)
    bill = monthly_cost(reads, writes, rate, storage_gb=7.0)
    assert bill.loc["rows_read", "cost_usd"] == pytest.approx(1.0)
    assert bill.loc["rows_written", "cost_usd"] == pytest.approx(2.0)
    assert bill.loc["storage", "cost_usd"] == pytest.approx(1.5)
    assert bill.loc["total", "cost_usd"] == pytest.approx(4.5)
    assert bill.loc["rows_read", "billable"] == pytest.approx(1000.0)  # million rows


def test_a_written_row_costs_a_thousand_read_rows():
    paid = PLANS["paid"]
    assert paid.usd_per_million_written / paid.usd_per_million_read == pytest.approx(1000)


def test_cost_grows_linearly_once_past_the_allowance():
    a = monthly_cost(100_000, 0, 20.0).loc["rows_read", "cost_usd"]
    b = monthly_cost(100_000, 0, 40.0).loc["rows_read", "cost_usd"]
    included_cost = 25e9 / 1e6 * 0.001
    assert b + included_cost == pytest.approx(2 * (a + included_cost))


def test_free_plan_never_bills_but_checks_daily_limits():
    under = monthly_cost(50, 1, 1.0, plan="free")  # 4.32 M reads and 86,400 writes a day
    assert under.loc["total", "cost_usd"] == 0
    assert bool(under.loc["total", "within_limit"])
    over = monthly_cost(50, 2, 1.0, plan="free")  # 172,800 writes a day > 100,000
    assert over.loc["total", "cost_usd"] == 0
    assert bool(over.loc["rows_read", "within_limit"])
    assert not bool(over.loc["rows_written", "within_limit"])
    assert not bool(over.loc["total", "within_limit"])
    assert over.loc["rows_written", "limit_per_day"] == 100_000
    assert not bool(monthly_cost(0, 0, 0, storage_gb=6, plan="free").loc["storage", "within_limit"])


@pytest.mark.parametrize("kwargs", [
    {"rows_read_per_request": -1},
    {"rows_written_per_request": float("nan")},
    {"requests_per_second": -0.5},
    {"storage_gb": -2},
])
def test_bad_numbers_are_refused(kwargs):
    args = {"rows_read_per_request": 1, "rows_written_per_request": 0,
            "requests_per_second": 1} | kwargs
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        monthly_cost(**args)


def test_unknown_plan_is_refused():
    with pytest.raises(ValueError, match="enterprise"):
        monthly_cost(1, 1, 1, plan="enterprise")


def test_cost_curve_is_zero_then_rising():
    curve = cost_curve(5_000, 0.5, [0.1, 1, 10, 100])
    totals = curve["total_usd"].tolist()
    assert totals[0] == 0
    assert all(b >= a for a, b in itertools.pairwise(totals))
    assert totals[-1] > totals[-2] > 0
    assert curve["requests_per_second"].tolist() == [0.1, 1, 10, 100]


def test_per_request_usage_leaves_out_warmup_and_failures():
    requests = pd.DataFrame({
        "rows_read": [100, 300, 10_000, 7],
        "rows_written": [0, 4, 0, 0],
        "warmup": [False, False, True, False],
        "error_class": [None, None, None, "timeout"],
    })
    usage = per_request_usage(requests)
    assert usage == {"rows_read_per_request": 200.0, "rows_written_per_request": 2.0,
                     "requests": 2}
    with pytest.raises(ValueError, match="no successful"):
        per_request_usage(requests.iloc[[2, 3]])


def test_compare_costs_orders_scenarios_and_uses_per_scenario_storage():
    frames = {
        "none": pd.DataFrame({"rows_read": [40_000, 60_000], "rows_written": [1, 1],
                              "warmup": [False, False], "error_class": [None, None]}),
        "advised": {"rows_read_per_request": 120.0, "rows_written_per_request": 3.0},
    }
    table = compare_costs(frames, requests_per_second=50, storage_gb={"none": 4.0, "advised": 6.0})
    assert list(table.index) == ["none", "advised"]
    assert table.loc["none", "rows_read_per_request"] == 50_000
    # Reads: 50,000 x 50/s x 30 days = 6.48e12, minus 25e9 included, at $0.001 per million.
    assert table.loc["none", "rows_read_usd"] == pytest.approx((6.48e12 - 25e9) / 1e6 * 0.001)
    assert table.loc["advised", "storage_usd"] == pytest.approx(0.75)
    assert table.loc["none", "storage_usd"] == 0
    assert table.loc["advised", "total_usd"] < table.loc["none", "total_usd"]
    assert math.isclose(table.attrs["requests_per_second"], 50)


def test_mix_usage_weights_templates_by_the_workload_not_the_sample():
    from d1bench.cost import mix_usage

    # The sample drew the heavy template as often as the light one; the workload runs it 1 in 100.
    requests = pd.DataFrame({"template": ["light", "heavy"] * 5, "rows_read": [10, 1_000_000] * 5,
                             "rows_written": [1, 0] * 5, "warmup": False, "error_class": None})
    naive = per_request_usage(requests)["rows_read_per_request"]
    mixed = mix_usage(requests, {"light": 0.99, "heavy": 0.01, "never": 0.0})
    assert naive == pytest.approx(500_005)
    assert mixed["rows_read_per_request"] == pytest.approx(0.99 * 10 + 0.01 * 1_000_000)
    assert mixed["rows_written_per_request"] == pytest.approx(0.99)
    assert mixed["coverage"] == 1.0
    partial = mix_usage(requests[requests["template"] == "light"], {"light": 0.75, "heavy": 0.25})
    assert partial["coverage"] == 0.75 and partial["rows_read_per_request"] == 10
    with pytest.raises(ValueError, match="none of the workload"):
        mix_usage(requests, {"other": 1.0})
