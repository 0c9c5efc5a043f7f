"""Dates and timestamps as the ``date`` sampler reads them, in whatever form a
user's database or workload file holds them."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

__all__ = ["ANCHOR_MAX", "DATE_OUTPUTS", "parse_moment"]

#: ``anchor = "max(table.column)"``
ANCHOR_MAX = re.compile(r"^\s*max\(\s*([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$")
#: What a drawn date becomes: ISO text, or Unix epoch seconds or milliseconds.
DATE_OUTPUTS = ("iso", "unixepoch", "unixepoch_ms")


def parse_moment(value: Any, where: str) -> dt.datetime:
    """A date or timestamp as a naive UTC datetime: ISO text (date or datetime,
    ``T`` or space, an optional ``Z``/offset), a TOML date or datetime, or Unix
    epoch seconds (milliseconds above 10^11).

    >>> parse_moment("2024-03-01", "x"), parse_moment(1700000000, "x")
    (datetime.datetime(2024, 3, 1, 0, 0), datetime.datetime(2023, 11, 14, 22, 13, 20))
    >>> parse_moment("2024-03-01T10:00:00Z", "x")
    datetime.datetime(2024, 3, 1, 10, 0)
    """
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if abs(value) > 1e11 else value
        return dt.datetime(1970, 1, 1) + dt.timedelta(seconds=seconds)
    else:
        text = str(value).strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{where} is {value!r}, not an ISO date or timestamp") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment
