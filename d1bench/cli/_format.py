"""Numbers as the CLI prints them: plain digits with thousands separators, never ``3.8e+04``."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

__all__ = ["number", "table", "usd", "write_csv"]


def number(value: Any) -> str:
    """A figure for a table: whole numbers and large ones without decimals, others 3 digits.

    >>> [number(v) for v in (38123.4, 2.0, 0.01234, 12.345, 0.0004, float("nan"), None, -150.0)]
    ['38,123', '2', '0.0123', '12.3', '0.0004', '-', '-', '-150']
    """
    if value is None or value is pd.NA:
        return "-"
    if isinstance(value, str):
        return value
    v = float(value)
    if math.isnan(v):
        return "-"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0 or abs(v) >= 100 or v.is_integer():
        return f"{v:,.0f}"
    # Three significant digits, as decimals (never an exponent), at most six places.
    places = min(6, max(0, 2 - math.floor(math.log10(abs(v)))))
    text = f"{v:,.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def usd(value: Any) -> str:
    """Dollars: ``$1,234.50``; ``-`` when unknown.

    >>> usd(1234.5), usd(0.004), usd(float("nan"))
    ('$1,234.50', '$0.00', '-')
    """
    if value is None or value is pd.NA or math.isnan(float(value)):
        return "-"
    return f"${float(value):,.2f}"


def table(frame: pd.DataFrame, columns: dict[str, str], dollars: tuple[str, ...] = ()) -> str:
    """``frame``'s ``columns`` (name -> heading) as text, every number through :func:`number`."""
    shown = pd.DataFrame({
        heading: frame[name].map(usd if name in dollars else
                                 (number if frame[name].dtype != object else
                                  (lambda v: "-" if v is None or v is pd.NA else
                                   (number(v) if isinstance(v, (int, float)) else str(v)))))
        for name, heading in columns.items()})
    return shown.to_string(index=False)


def write_csv(frame: pd.DataFrame, out: str, force: bool) -> None:
    """Write ``frame`` as CSV to ``out`` through a temporary file (refuses to overwrite)."""
    from d1bench._atomic import atomic_path
    from d1bench.trace import check_output_path

    path = check_output_path(out, force=force)
    with atomic_path(path, force=force) as tmp:
        frame.to_csv(tmp, index=False)
