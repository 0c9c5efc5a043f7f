"""What a workload would cost on Cloudflare D1, from D1's published prices.

D1 bills three things: rows read, rows written and storage.  The paid plan
includes a monthly allowance of each and charges for usage beyond it; the free
plan charges nothing but stops serving once a daily limit is spent.  The
functions here turn "rows per request" and "requests per second" (what a
replay measures) into that bill, one row per billed item, so a notebook can
put two index sets side by side and see what an index saves in dollars.

The prices are those Cloudflare published for D1 (checked November 2026); they
are module constants so that a change is one edit here.  The Workers Paid
subscription itself ($5 a month, shared by every Workers product) is not a D1
charge and is left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pandas as pd

__all__ = [
    "DAYS_PER_MONTH",
    "PLANS",
    "SECONDS_PER_DAY",
    "PricingPlan",
    "compare_costs",
    "cost_curve",
    "mix_usage",
    "monthly_cost",
    "per_request_usage",
]

SECONDS_PER_DAY = 86_400
#: Billing months are calendar months; 30 days is the round figure used in
#: Cloudflare's own worked examples, and close enough for an estimate.
DAYS_PER_MONTH = 30


@dataclass(frozen=True, slots=True)
class PricingPlan:
    """Prices and allowances of one D1 plan.

    Attributes:
        name: ``"paid"`` or ``"free"``.
        read_included_month: rows read included per month (paid plan).
        write_included_month: rows written included per month (paid plan).
        storage_included_gb: storage included (paid) or allowed (free), in GB.
        usd_per_million_read: price of a million rows read beyond the allowance.
        usd_per_million_written: price of a million rows written beyond the allowance.
        usd_per_gb_month: price of a GB-month of storage beyond the allowance.
        read_limit_day: rows read allowed per day (free plan), else ``None``.
        write_limit_day: rows written allowed per day (free plan), else ``None``.
    """

    name: str
    read_included_month: float
    write_included_month: float
    storage_included_gb: float
    usd_per_million_read: float
    usd_per_million_written: float
    usd_per_gb_month: float
    read_limit_day: float | None = None
    write_limit_day: float | None = None


PLANS: dict[str, PricingPlan] = {
    "paid": PricingPlan(
        name="paid",
        read_included_month=25e9,
        write_included_month=50e6,
        storage_included_gb=5.0,
        usd_per_million_read=0.001,
        usd_per_million_written=1.00,
        usd_per_gb_month=0.75,
    ),
    # The free plan never bills: past a daily limit, queries fail until 00:00 UTC.
    "free": PricingPlan(
        name="free",
        read_included_month=0.0,
        write_included_month=0.0,
        storage_included_gb=5.0,
        usd_per_million_read=0.0,
        usd_per_million_written=0.0,
        usd_per_gb_month=0.0,
        read_limit_day=5e6,
        write_limit_day=1e5,
    ),
}

_COLUMNS = [
    "usage_per_day",
    "usage_per_month",
    "included_per_month",
    "billable",
    "unit",
    "usd_per_unit",
    "cost_usd",
    "limit_per_day",
    "within_limit",
]


def _plan(plan: str | PricingPlan) -> PricingPlan:
    if isinstance(plan, PricingPlan):
        return plan
    try:
        return PLANS[plan]
    except KeyError:
        raise ValueError(f"unknown D1 plan {plan!r}; choose from {sorted(PLANS)}") from None


def _non_negative(name: str, value: float) -> float:
    value = float(value)
    if not value >= 0:  # also rejects NaN
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return value


def monthly_cost(
    rows_read_per_request: float,
    rows_written_per_request: float,
    requests_per_second: float,
    storage_gb: float = 0.0,
    plan: str | PricingPlan = "paid",
    *,
    days_per_month: float = DAYS_PER_MONTH,
) -> pd.DataFrame:
    """The monthly D1 bill of a steady workload, one row per billed item.

    Usage is ``per_request * requests_per_second`` sustained around the
    clock for ``days_per_month`` days.  The frame is indexed by item
    (``rows_read``, ``rows_written``, ``storage``, ``total``) with columns

    - ``usage_per_day`` / ``usage_per_month``: rows (or GB for storage);
    - ``included_per_month``: the paid plan's allowance;
    - ``billable``: usage beyond the allowance, in billing units (millions of
      rows, GB-months);
    - ``unit`` and ``usd_per_unit``: the billing unit and its price;
    - ``cost_usd``: what that item adds to the bill (``total`` sums them);
    - ``limit_per_day`` and ``within_limit``: the free plan's daily limits and
      whether the workload stays under them (always true on the paid plan,
      whose only storage limit is the 10 GB database size, not checked here).

    One request a second reading 10,000 rows a time is 25.92 billion rows a
    month: 0.92 billion beyond the allowance, about 92 cents.

    >>> bill = monthly_cost(10_000, 0, 1.0)
    >>> round(float(bill.loc["rows_read", "usage_per_month"]) / 1e9, 2)
    25.92
    >>> round(float(bill.loc["total", "cost_usd"]), 2)
    0.92

    Writes cost a thousand times as much: 100 requests a second, each
    writing 2 rows (one row and one index entry), is 518.4 million rows.

    >>> round(float(monthly_cost(1, 2, 100).loc["rows_written", "cost_usd"]), 2)
    468.4

    Storage beyond 5 GB is $0.75 per GB-month.

    >>> float(monthly_cost(0, 0, 0, storage_gb=7).loc["storage", "cost_usd"])
    1.5

    The free plan never bills, but a workload can outgrow its daily limits
    (5 million rows read, 100,000 written):

    >>> free = monthly_cost(100, 0, 1.0, plan="free")
    >>> float(free.loc["total", "cost_usd"]), bool(free.loc["rows_read", "within_limit"])
    (0.0, False)
    """
    p = _plan(plan)
    read = _non_negative("rows_read_per_request", rows_read_per_request)
    written = _non_negative("rows_written_per_request", rows_written_per_request)
    rate = _non_negative("requests_per_second", requests_per_second)
    storage = _non_negative("storage_gb", storage_gb)
    days = _non_negative("days_per_month", days_per_month)

    per_day = {"rows_read": read * rate * SECONDS_PER_DAY,
               "rows_written": written * rate * SECONDS_PER_DAY}
    rows = {}
    for item, included, price, limit in (
        ("rows_read", p.read_included_month, p.usd_per_million_read, p.read_limit_day),
        ("rows_written", p.write_included_month, p.usd_per_million_written, p.write_limit_day),
    ):
        month = per_day[item] * days
        billable = max(month - included, 0.0) / 1e6 if p.name != "free" else 0.0
        rows[item] = {
            "usage_per_day": per_day[item],
            "usage_per_month": month,
            "included_per_month": included,
            "billable": billable,
            "unit": "million rows",
            "usd_per_unit": price,
            "cost_usd": billable * price,
            "limit_per_day": float("nan") if limit is None else limit,
            "within_limit": True if limit is None else per_day[item] <= limit,
        }
    storage_billable = max(storage - p.storage_included_gb, 0.0) if p.name != "free" else 0.0
    rows["storage"] = {
        "usage_per_day": storage,
        "usage_per_month": storage,
        "included_per_month": p.storage_included_gb,
        "billable": storage_billable,
        "unit": "GB-month",
        "usd_per_unit": p.usd_per_gb_month,
        "cost_usd": storage_billable * p.usd_per_gb_month,
        "limit_per_day": p.storage_included_gb if p.name == "free" else float("nan"),
        "within_limit": storage <= p.storage_included_gb if p.name == "free" else True,
    }
    rows["total"] = {
        "usage_per_day": float("nan"),
        "usage_per_month": float("nan"),
        "included_per_month": float("nan"),
        "billable": float("nan"),
        "unit": "",
        "usd_per_unit": float("nan"),
        "cost_usd": sum(r["cost_usd"] for r in rows.values()),
        "limit_per_day": float("nan"),
        "within_limit": all(r["within_limit"] for r in rows.values()),
    }
    frame = pd.DataFrame.from_dict(rows, orient="index")[_COLUMNS]
    frame.index.name = "item"
    frame.attrs.update(plan=p.name, requests_per_second=rate, days_per_month=days)
    return frame


def cost_curve(
    rows_read_per_request: float,
    rows_written_per_request: float,
    rates: Iterable[float],
    storage_gb: float = 0.0,
    plan: str | PricingPlan = "paid",
) -> pd.DataFrame:
    """Monthly cost at each request rate in ``rates``: one row per rate.

    Columns: ``requests_per_second``, ``rows_read_usd``, ``rows_written_usd``,
    ``storage_usd``, ``total_usd``.  The allowances make the curve flat at
    zero, then linear: this is where a workload starts paying.

    >>> curve = cost_curve(10_000, 0, [0.5, 1, 2])
    >>> curve["total_usd"].round(2).tolist()
    [0.0, 0.92, 26.84]
    """
    out = []
    for rate in rates:
        bill = monthly_cost(rows_read_per_request, rows_written_per_request, rate,
                            storage_gb=storage_gb, plan=plan)["cost_usd"]
        out.append({
            "requests_per_second": float(rate),
            "rows_read_usd": bill["rows_read"],
            "rows_written_usd": bill["rows_written"],
            "storage_usd": bill["storage"],
            "total_usd": bill["total"],
        })
    return pd.DataFrame(out, columns=["requests_per_second", "rows_read_usd",
                                      "rows_written_usd", "storage_usd", "total_usd"])


def per_request_usage(requests: pd.DataFrame) -> dict[str, float]:
    """Mean rows read and written per request of a trace's requests frame.

    Warm-up requests and failed ones are left out (D1 bills what ran, and
    warm-up is not the steady state the bill is projected from).

    >>> frame = pd.DataFrame({"rows_read": [10, 30, 99], "rows_written": [0, 2, 0],
    ...                       "warmup": [False, False, True], "error_class": [None, None, None]})
    >>> per_request_usage(frame)
    {'rows_read_per_request': 20.0, 'rows_written_per_request': 1.0, 'requests': 2}
    """
    keep = requests
    if "warmup" in keep:
        keep = keep[~keep["warmup"].fillna(False).astype(bool)]
    if "error_class" in keep:
        keep = keep[keep["error_class"].isna() | (keep["error_class"] == "")]
    if keep.empty:
        raise ValueError("no successful, non-warm-up requests to estimate a bill from")
    return {
        "rows_read_per_request": float(keep["rows_read"].mean()),
        "rows_written_per_request": float(keep["rows_written"].mean()),
        "requests": len(keep),
    }


def mix_usage(requests: pd.DataFrame, frequencies: Mapping[str, float]) -> dict[str, float]:
    """Rows per request as the workload's mix implies, from a trace's per-template means.

    A short replay draws a few units, so a rare but heavy template (one in a
    hundred units, reading millions of rows) is in the sample or not by
    chance, and :func:`per_request_usage` swings with it.  Here each
    template's mean rows read and written come from the trace, and are
    weighted by ``frequencies`` (template -> executions per unit of
    workload, ``Workload.template_frequencies()``).  Templates the trace never
    ran are left out and the weights renormalised; ``coverage`` is the share
    of the workload's executions that were measured.

    >>> frame = pd.DataFrame({"template": ["a", "a", "b"], "rows_read": [10, 30, 5000],
    ...                       "rows_written": [0, 0, 1], "warmup": False, "error_class": None})
    >>> usage = mix_usage(frame, {"a": 0.9, "b": 0.1, "c": 0.0})
    >>> usage["rows_read_per_request"], usage["rows_written_per_request"], usage["coverage"]
    (518.0, 0.1, 1.0)
    """
    keep = requests
    if "warmup" in keep:
        keep = keep[~keep["warmup"].fillna(False).astype(bool)]
    if "error_class" in keep:
        keep = keep[keep["error_class"].isna() | (keep["error_class"] == "")]
    means = keep.groupby("template")[["rows_read", "rows_written"]].mean()
    weights = {t: float(f) for t, f in frequencies.items() if f > 0}
    seen = {t: f for t, f in weights.items() if t in means.index
            and not pd.isna(means.loc[t, "rows_read"])}
    if not seen:
        raise ValueError("the trace ran none of the workload's templates")
    total = sum(seen.values())
    read = sum(f * float(means.loc[t, "rows_read"]) for t, f in seen.items()) / total
    written = sum(f * float(0 if pd.isna(means.loc[t, "rows_written"]) else means.loc[t, "rows_written"])
                  for t, f in seen.items()) / total
    return {"rows_read_per_request": read, "rows_written_per_request": written,
            "requests": len(keep), "coverage": total / sum(weights.values())}


def compare_costs(
    scenarios: Mapping[str, pd.DataFrame | Mapping[str, float]],
    requests_per_second: float,
    storage_gb: float | Mapping[str, float] = 0.0,
    plan: str | PricingPlan = "paid",
) -> pd.DataFrame:
    """The monthly bill of several scenarios (index sets, targets) at one rate.

    Each scenario is either a trace's requests frame or a mapping with
    ``rows_read_per_request`` and ``rows_written_per_request``.  ``storage_gb``
    is one figure for all, or one per scenario (an index set makes the
    database larger).  One row per scenario, indexed by its name, with the
    per-request usage, each item's cost and ``total_usd``.

    >>> compare_costs({"none": {"rows_read_per_request": 20_000, "rows_written_per_request": 0},
    ...                "seed": {"rows_read_per_request": 50, "rows_written_per_request": 0}},
    ...               requests_per_second=10)["total_usd"].round(2).tolist()
    [493.4, 0.0]
    """
    out = {}
    for name, scenario in scenarios.items():
        usage = per_request_usage(scenario) if isinstance(scenario, pd.DataFrame) else scenario
        gb = storage_gb[name] if isinstance(storage_gb, Mapping) else storage_gb
        bill = monthly_cost(usage["rows_read_per_request"], usage["rows_written_per_request"],
                            requests_per_second, storage_gb=gb, plan=plan)
        out[name] = {
            "rows_read_per_request": float(usage["rows_read_per_request"]),
            "rows_written_per_request": float(usage["rows_written_per_request"]),
            "storage_gb": float(gb),
            "rows_read_per_month": bill.loc["rows_read", "usage_per_month"],
            "rows_written_per_month": bill.loc["rows_written", "usage_per_month"],
            "rows_read_usd": bill.loc["rows_read", "cost_usd"],
            "rows_written_usd": bill.loc["rows_written", "cost_usd"],
            "storage_usd": bill.loc["storage", "cost_usd"],
            "total_usd": bill.loc["total", "cost_usd"],
            "within_limit": bool(bill.loc["total", "within_limit"]),
        }
    frame = pd.DataFrame.from_dict(out, orient="index")
    frame.index.name = "scenario"
    frame.attrs.update(plan=_plan(plan).name, requests_per_second=float(requests_per_second))
    return frame
