"""Headline figures: what a notebook records for the report's index page.

:func:`record` shows a figure in the notebook and tags the output with the
MIME type :data:`HEADLINE_MIME`; :func:`headlines_from_notebook` reads those
outputs back from an executed notebook.  Nothing else passes between a
notebook and the report, so a notebook run in JupyterLab or under nbval
records the same way and writes no files.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "HEADLINE_MIME",
    "MAX_TABLE_ROWS",
    "Headline",
    "format_number",
    "headlines_from_notebook",
    "json_safe",
    "make_headline",
    "record",
    "record_thresholds",
    "threshold_headline",
]

#: MIME type of the output :func:`record` adds; the report collects these.
HEADLINE_MIME = "application/vnd.d1bench.headline+json"
#: Tables recorded as headlines are cut to this many rows: the index is a summary.
MAX_TABLE_ROWS = 25
#: Key prefix of threshold tables (:func:`record_thresholds`): the index flags their crossings.
THRESHOLDS_KEY = "thresholds"
#: Columns of a threshold table, as the index reads them back.
THRESHOLD_COLUMNS = ["result", "threshold", "template", "value", "limit", "by"]


@dataclass(frozen=True, slots=True)
class Headline:
    """One figure a notebook wants on the report's index page.

    Attributes:
        key: identifier, unique within a notebook (``slowest_p99_ms``).
        label: what the figure is, in words a reader of the index understands.
        kind: ``number``, ``text``, ``table`` or ``figure``.
        value: the number or text (``None`` for tables and figures).
        unit: unit of a number (``ms``, ``rows``, ``USD/month``).
        note: one sentence of context (why, compared with what).
        text: the figure as the index prints it.
        columns, rows: a table's header and cells (JSON-safe).
        png: a figure's PNG, base64 (kept in the notebook output, written as a file by the report).
        top: also show it in the index's "at a glance" strip, above every section.
        lead: show it first of all on the index, above "at a glance" (the fix plan:
            what to change, before any detail).
    """

    key: str
    label: str
    kind: str
    value: Any = None
    unit: str = ""
    note: str = ""
    text: str = ""
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    png: str | None = None
    top: bool = False
    lead: bool = False

    def payload(self) -> dict[str, Any]:
        """The JSON stored in the notebook output (without the PNG, stored as ``image/png``)."""
        out = {"key": self.key, "label": self.label, "kind": self.kind, "value": self.value,
               "unit": self.unit, "note": self.note, "text": self.text, "top": self.top,
               "lead": self.lead}
        if self.kind == "table":
            out.update(columns=self.columns, rows=self.rows)
        return out


def format_number(value: float, unit: str = "") -> str:
    """A number as a reader wants it: thousands separated, about three significant digits.

    >>> format_number(1234567), format_number(45.25, "ms"), format_number(0.01234, "USD")
    ('1,234,567', '45.2 ms', '0.0123 USD')
    >>> format_number(1.0), format_number(3), format_number(2500.0)
    ('1.00', '3', '2,500')
    >>> format_number(float("nan"))
    'n/a'
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        text = "n/a"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, int) or (hasattr(value, "is_integer") and abs(value) >= 1000
                                    and float(value).is_integer()):
        text = f"{int(value):,}"
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    elif value == 0:
        text = "0"
    else:
        # Three significant digits, trailing zeros kept: 1.00 reads as measured, 1 as counted.
        text = f"{value:#.3g}".rstrip(".")
    return f"{text} {unit}".strip() if text != "n/a" else text


def json_safe(value: Any) -> Any:
    """Plain JSON types from numpy/pandas scalars (NaN becomes null)."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if hasattr(value, "item") and not isinstance(value, (list, dict)):
        try:
            value = value.item()
        except (ValueError, TypeError):
            return str(value)
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, int):
        return value
    if isinstance(value, (_dt.date, _dt.datetime)):
        return value.isoformat()
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError, ImportError):
        pass
    return str(value)


def make_headline(key: str, value: Any, *, label: str | None = None, unit: str = "",
                  note: str = "", top: bool = False, lead: bool = False) -> Headline:
    """Build the :class:`Headline` for ``value`` (number, text, DataFrame or Figure)."""
    headline = _make(key, value, label=label, unit=unit, note=note)
    return replace(headline, top=bool(top), lead=bool(lead)) if top or lead else headline


def _make(key: str, value: Any, *, label: str | None, unit: str, note: str) -> Headline:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", key):
        raise ValueError(f"headline key {key!r}: use letters, digits, '_', '.', '-'")
    label = label or key.replace("_", " ")
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover
        pd = None
    if pd is not None and isinstance(value, pd.Series):
        value = value.to_frame()
    if pd is not None and isinstance(value, pd.DataFrame):
        frame = value.head(MAX_TABLE_ROWS)
        if not isinstance(frame.index, pd.RangeIndex):
            frame = frame.reset_index()
        columns = [str(c) for c in frame.columns]
        rows = [[json_safe(v) for v in row] for row in frame.itertuples(index=False)]
        return Headline(key, label, "table", unit=unit, note=note,
                        text=f"{label} ({len(value)} rows)", columns=columns, rows=rows)
    if hasattr(value, "savefig"):
        import io

        buf = io.BytesIO()
        value.savefig(buf, format="png", dpi=100)
        png = base64.b64encode(buf.getvalue()).decode("ascii")
        return Headline(key, label, "figure", unit=unit, note=note, text=label, png=png)
    value = json_safe(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        text = value if isinstance(value, str) else format_number(value)
        return Headline(key, label, "text", value=value, unit=unit, note=note,
                        text=f"{text} {unit}".strip())
    return Headline(key, label, "number", value=value, unit=unit, note=note,
                    text=format_number(value, unit))


def threshold_headline(checked: Any, *, key: str = THRESHOLDS_KEY, note: str = "") -> Headline:
    """A headline table of :func:`d1bench.thresholds.check_thresholds`' result, crossed first.

    Every crossed row is kept (the index flags each one); rows that held fill
    the rest up to :data:`MAX_TABLE_ROWS`.
    """
    import pandas as pd

    if not key.startswith(THRESHOLDS_KEY):
        raise ValueError(f"threshold headline key {key!r} must start with {THRESHOLDS_KEY!r}")
    frame = pd.DataFrame({
        "result": checked["crossed"].map({True: "CROSSED", False: "held"}),
        "threshold": checked["threshold"], "template": checked["template"],
        "value": checked["value"], "limit": checked["limit"], "by": checked["by"],
    })[THRESHOLD_COLUMNS]
    crossed = frame[frame["result"] == "CROSSED"]
    kept = pd.concat([crossed, frame[frame["result"] != "CROSSED"]]).head(
        max(MAX_TABLE_ROWS, len(crossed)))
    label = f"Thresholds: {len(frame) - len(crossed)} held, {len(crossed)} crossed"
    rows = [[json_safe(v) for v in row] for row in kept.itertuples(index=False)]
    return Headline(key, label, "table", note=note, text=label, columns=THRESHOLD_COLUMNS,
                    rows=rows)


def record_thresholds(checked: Any, *, key: str = THRESHOLDS_KEY, note: str = "") -> None:
    """Record a threshold check for the report, whose index page flags every crossing."""
    _display(threshold_headline(checked, key=key, note=note))


def _headline_html(h: Headline) -> str:
    note = f'<div class="d1b-note">{html.escape(h.note)}</div>' if h.note else ""
    if h.kind == "table":
        head = "".join(f"<th>{html.escape(c)}</th>" for c in h.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
            for row in h.rows
        )
        return (f'<div class="d1b-headline"><div class="d1b-label">{html.escape(h.label)}</div>'
                f'<table class="d1b-table"><thead><tr>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table>{note}</div>")
    return (f'<div class="d1b-headline"><span class="d1b-label">{html.escape(h.label)}</span> '
            f'<span class="d1b-value">{html.escape(h.text)}</span>{note}</div>')


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return format_number(value)
    if value is None:
        return ""
    return str(value)


def record(key: str, value: Any, *, label: str | None = None, unit: str = "",
           note: str = "", top: bool = False, lead: bool = False) -> None:
    """Show a headline figure in the notebook and mark it for the report's index page.

    ``value`` is a number, a short text, a DataFrame (the index shows its first
    rows) or a matplotlib Figure (shown here and on the index).  Outside
    IPython nothing is shown.  Returns nothing, so a cell ending in ``record``
    shows the headline once.  ``top`` puts a number or text in the index's
    "at a glance" strip too: the few answers a reader wants first; ``lead``
    puts it (a table too) above even those, where the report leads with it.
    """
    _display(make_headline(key, value, label=label, unit=unit, note=note, top=top, lead=lead))


def _display(headline: Headline) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover
        return
    if get_ipython() is None:
        return
    bundle: dict[str, Any] = {"text/plain": headline.text, HEADLINE_MIME: headline.payload()}
    if headline.kind == "figure":
        bundle["image/png"] = headline.png
    else:
        bundle["text/html"] = _headline_html(headline)
    display(bundle, raw=True)


def headlines_from_notebook(nb: Any) -> list[Headline]:
    """The headlines an executed notebook recorded, in order (a repeated key keeps the last)."""
    found: dict[str, Headline] = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            payload = data.get(HEADLINE_MIME)
            if not payload:
                continue
            if isinstance(payload, str):
                payload = json.loads(payload)
            png = data.get("image/png") if payload.get("kind") == "figure" else None
            known = {k: payload.get(k) for k in
                     ("key", "label", "kind", "value", "unit", "note", "text", "top", "lead")}
            found.pop(known["key"], None)
            found[known["key"]] = Headline(
                **{k: v for k, v in known.items() if v is not None},
                columns=list(payload.get("columns") or []),
                rows=[list(r) for r in payload.get("rows") or []],
                png=png.replace("\n", "") if isinstance(png, str) else None,
            )
    return list(found.values())
