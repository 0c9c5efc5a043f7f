"""Reports: run the notebooks headless and render them as HTML people can read offline.

``build_report`` executes each notebook with papermill (injecting parameters
after its ``parameters`` cell), renders it with nbconvert without code cells,
and writes ``NN_name.html`` beside a small JSON *sidecar*, ``NN_name.json``,
holding the notebook's headline figures.  ``index.html`` is then built from
every sidecar in the folder, so re-running one notebook refreshes its part of
the index without re-running the others.

Headlines are recorded by the notebook itself with :func:`record`, which shows
the figure in the notebook and tags the output with the MIME type
:data:`HEADLINE_MIME`; the report reads those outputs back from the executed
notebook.  Nothing else passes between the notebook and the report: a notebook
run in JupyterLab or under nbval records the same way and writes no files.

Sidecar format (``format`` 1)::

    {"format": 1, "notebook": "02_latency", "html": "02_latency.html",
     "title": "...", "question": "...", "status": "ok" | "failed", "error": null,
     "parameters": {"papers": 100000, ...}, "seconds": 12.3,
     "executed_at": "2026-11-22T10:00:00+00:00", "d1bench_version": "0.1.0",
     "headlines": [{"key": "slowest_p99", "label": "...", "kind": "number",
                    "value": 120.5, "unit": "ms", "note": "...", "text": "...",
                    "columns": [...], "rows": [[...]], "image": "02_latency--key.png"}]}

``kind`` is ``number``, ``text``, ``table`` (``columns`` and ``rows``) or
``figure`` (``image``, a PNG file beside the sidecar).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from d1bench import __version__
from d1bench._paths import REPO_ROOT
from d1bench.errors import D1benchError, UsageError

__all__ = [
    "HEADLINE_MIME",
    "SIDECAR_FORMAT",
    "Headline",
    "ReportError",
    "record",
    "default_notebooks",
    "build_report",
    "execute_notebook",
    "render_html",
    "headlines_from_notebook",
    "write_index",
    "network_references",
]

#: MIME type of the output :func:`record` adds; the report collects these.
HEADLINE_MIME = "application/vnd.d1bench.headline+json"
SIDECAR_FORMAT = 1
#: Written into every generated page, so that a re-run may replace it without ``--force``.
GENERATOR = "d1bench report"
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
#: Tables recorded as headlines are cut to this many rows: the index is a summary.
MAX_TABLE_ROWS = 25


class ReportError(D1benchError):
    """One or more notebooks failed; their pages were still written and say why."""


# --------------------------------------------------------------------------- headlines


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

    def payload(self) -> dict[str, Any]:
        """The JSON stored in the notebook output (without the PNG, stored as ``image/png``)."""
        out = {"key": self.key, "label": self.label, "kind": self.kind, "value": self.value,
               "unit": self.unit, "note": self.note, "text": self.text}
        if self.kind == "table":
            out.update(columns=self.columns, rows=self.rows)
        return out


def format_number(value: float, unit: str = "") -> str:
    """A number as a reader wants it: thousands separated, about three significant digits.

    >>> format_number(1234567), format_number(45.25, "ms"), format_number(0.01234, "USD")
    ('1,234,567', '45.2 ms', '0.0123 USD')
    >>> format_number(float("nan"))
    'n/a'
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        text = "n/a"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif float(value).is_integer() and abs(value) >= 1:
        text = f"{int(value):,}"
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    elif value == 0:
        text = "0"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip() if text != "n/a" else text


def _json_safe(value: Any) -> Any:
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
                  note: str = "") -> Headline:
    """Build the :class:`Headline` for ``value`` (number, text, DataFrame or Figure)."""
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
        rows = [[_json_safe(v) for v in row] for row in frame.itertuples(index=False)]
        return Headline(key, label, "table", unit=unit, note=note,
                        text=f"{label} ({len(value)} rows)", columns=columns, rows=rows)
    if hasattr(value, "savefig"):
        import io

        buf = io.BytesIO()
        value.savefig(buf, format="png", dpi=100)
        png = base64.b64encode(buf.getvalue()).decode("ascii")
        return Headline(key, label, "figure", unit=unit, note=note, text=label, png=png)
    value = _json_safe(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        text = value if isinstance(value, str) else format_number(value)
        return Headline(key, label, "text", value=value, unit=unit, note=note,
                        text=f"{text} {unit}".strip())
    return Headline(key, label, "number", value=value, unit=unit, note=note,
                    text=format_number(value, unit))


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
           note: str = "") -> None:
    """Show a headline figure in the notebook and mark it for the report's index page.

    ``value`` is a number, a short text, a DataFrame (the index shows its first
    rows) or a matplotlib Figure (shown here and on the index).  Outside
    IPython nothing is shown.  Returns nothing, so a cell ending in ``record``
    shows the headline once.
    """
    headline = make_headline(key, value, label=label, unit=unit, note=note)
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
                     ("key", "label", "kind", "value", "unit", "note", "text")}
            found.pop(known["key"], None)
            found[known["key"]] = Headline(
                **{k: v for k, v in known.items() if v is not None},
                columns=list(payload.get("columns") or []),
                rows=[list(r) for r in payload.get("rows") or []],
                png=png.replace("\n", "") if isinstance(png, str) else None,
            )
    return list(found.values())


# --------------------------------------------------------------------------- files


def _atomic_write(path: Path, data: str | bytes) -> None:
    """Write beside ``path`` and rename into place: readers never see half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; reports are for sharing
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _ours(path: Path) -> bool:
    """True when ``path`` is absent or was written by d1bench (safe to replace)."""
    if not path.exists():
        return True
    if path.suffix == ".png" or path.name.startswith("."):
        return True
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError:
        return False
    if path.suffix == ".json":
        return '"format"' in head and '"notebook"' in head
    if path.suffix == ".ipynb":
        return '"papermill"' in path.read_text(encoding="utf-8", errors="replace")
    return GENERATOR in head


def _check_writable(paths: Iterable[Path], force: bool) -> None:
    if force:
        return
    for path in paths:
        if not _ours(path):
            raise UsageError(f"{path}: exists and was not written by d1bench; use --force")


def default_notebooks(folder: Path | None = None) -> list[Path]:
    """The numbered notebooks (``NN_name.ipynb``) of the repository, in order."""
    folder = folder or NOTEBOOK_DIR
    return sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb"))


# --------------------------------------------------------------------------- execute


@dataclass(frozen=True, slots=True)
class Execution:
    """What running one notebook gave: the executed notebook and how it went."""

    notebook: Any
    parameters: dict[str, Any]
    seconds: float
    error: str | None


def execute_notebook(path: Path, output: Path, parameters: Mapping[str, Any] | None = None,
                     *, timeout: float | None = 1800, kernel_name: str = "python3") -> Execution:
    """Run ``path`` with papermill, injecting those ``parameters`` it declares.

    Parameters a notebook does not declare in its ``parameters`` cell are not
    injected (a global ``--scale`` need not suit every notebook).  The executed
    notebook is written to ``output`` atomically, also when a cell fails.
    """
    import nbformat
    import papermill as pm

    path = Path(path)
    declared = pm.inspect_notebook(str(path))
    if not declared:
        raise UsageError(f"{path}: no cell tagged 'parameters'")
    chosen = {k: v for k, v in (parameters or {}).items() if k in declared}
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{output.stem}.", suffix=".ipynb", dir=output.parent)
    os.close(fd)
    error = None
    start = time.perf_counter()
    try:
        try:
            pm.execute_notebook(
                str(path), tmp, parameters=chosen, cwd=str(path.parent),
                kernel_name=kernel_name, progress_bar=False, log_output=False,
                execution_timeout=timeout, report_mode=False,
            )
        except pm.PapermillExecutionError as exc:
            error = f"{exc.ename}: {exc.evalue} (cell {exc.exec_count})"
        seconds = time.perf_counter() - start
        nb = nbformat.read(tmp, as_version=4)
        if error and not _unexpected_errors(nb):
            # papermill fails a run on any error output, even in a cell tagged
            # ``raises-exception`` (which nbclient and nbval accept): undo that.
            error = None
            nb.cells = [c for c in nb.cells if _PM_ERROR_TAG not in c.metadata.get("tags", [])]
            nbformat.write(nb, tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, output)
    finally:
        Path(tmp).unlink(missing_ok=True)
    effective = {k: _json_safe(v) for k, v in chosen.items()}
    for name, info in declared.items():
        effective.setdefault(name, _literal_or_text(info.get("default")))
    return Execution(nb, effective, seconds, error)


_PM_ERROR_TAG = "papermill-error-cell-tag"


def _unexpected_errors(nb: Any) -> list[str]:
    """Errors raised by cells not tagged ``raises-exception``."""
    found = []
    for cell in nb.cells:
        if "raises-exception" in cell.metadata.get("tags", []):
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                found.append(f"{output.get('ename')}: {output.get('evalue')}")
        if cell.metadata.get("papermill", {}).get("exception") and not found:
            found.append("cell failed without an error output")
    return found


def _literal_or_text(source: Any) -> Any:
    """A parameter cell's default as a value when it is a literal, else its source text."""
    import ast

    try:
        return _json_safe(ast.literal_eval(source))
    except (ValueError, SyntaxError, TypeError):
        return source


# --------------------------------------------------------------------------- render

#: Offline page template: JupyterLab's look, with every script it would fetch
#: from a CDN (require.js, MathJax, mermaid, widgets) left out.  The reports
#: are static: charts are PNGs, tables are HTML.
_TEMPLATE = r"""{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{% block extra_css %}
<meta name="generator" content="GENERATOR">
<style type="text/css">
main { max-width: 1100px; margin: 0 auto; padding: 1em 2em 3em; }
.d1b-back { font-family: var(--jp-ui-font-family); font-size: 0.9em; margin: 0.5em 0 0; }
.d1b-headline { border-left: 4px solid #0072B2; background: #f3f8fc; padding: 0.5em 0.9em;
                margin: 0.3em 0; font-size: 1.05em; }
.d1b-headline .d1b-label { color: #333; }
.d1b-headline .d1b-value { font-weight: bold; }
.d1b-headline .d1b-note { color: #555; font-size: 0.9em; margin-top: 0.2em; }
.d1b-table { border-collapse: collapse; margin-top: 0.4em; }
.d1b-table th, .d1b-table td { border-bottom: 1px solid #ddd; padding: 2px 8px; text-align: right; }
.d1b-table th:first-child, .d1b-table td:first-child { text-align: left; }
</style>
{% endblock extra_css %}
{%- block body_header -%}
{{ super() }}
<p class="d1b-back"><a href="index.html">&larr; all reports</a></p>
{%- endblock body_header -%}
""".replace("GENERATOR", GENERATOR)


def render_html(nb: Any, *, title: str | None = None) -> str:
    """An executed notebook as a static HTML page without code cells, readable offline.

    Cells tagged ``report-hide`` are left out (setup cells whose output only
    matters in the notebook).
    """
    import jinja2
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    from traitlets.config import Config

    config = Config()
    config.TagRemovePreprocessor.remove_cell_tags = {"report-hide"}
    config.TagRemovePreprocessor.enabled = True
    exporter = HTMLExporter(
        config=config,
        template_name="lab",
        extra_loaders=[jinja2.DictLoader({"d1bench_offline.html.j2": _TEMPLATE})],
        template_file="d1bench_offline.html.j2",
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
    )
    exporter.register_preprocessor(TagRemovePreprocessor(config=config), enabled=True)
    if title:
        nb.metadata["title"] = title
    body, _resources = exporter.from_notebook_node(nb)
    found = network_references(body)
    if found:  # a template change upstream would bring a CDN back: fail loudly
        raise ReportError(f"rendered page would fetch from the network: {found[:3]}")
    return body


_NETWORK_PATTERNS = (
    re.compile(r"""<(?:script|img|iframe|audio|video|source|embed)\b[^>]*\bsrc\s*=\s*["']?(https?:)?//""", re.I),
    re.compile(r"""<link\b[^>]*\bhref\s*=\s*["']?(https?:)?//""", re.I),
    re.compile(r"""@import\s+(?:url\()?\s*["']?(https?:)?//""", re.I),
    re.compile(r"""url\(\s*["']?(https?:)?//""", re.I),
    re.compile(r"""\bimport\(\s*["'](https?:)?//""", re.I),
    re.compile(r"""\brequire(?:js)?\.config\b""", re.I),
)


def network_references(page: str) -> list[str]:
    """Places where ``page`` would fetch a script, style, font or image from the network.

    Plain links (``<a href="https://...">``) are not fetches and are allowed.

    >>> network_references('<a href="https://example.org">docs</a><img src="data:image/png;base64,AA">')
    []
    >>> network_references('<script src="https://cdn.example/x.js"></script>')
    ['<script src="https://']
    """
    hits = []
    for pattern in _NETWORK_PATTERNS:
        hits.extend(m.group(0) for m in pattern.finditer(page))
    return hits


def _title_and_question(nb: Any, fallback: str) -> tuple[str, str]:
    for cell in nb.cells:
        if cell.cell_type != "markdown" or _PM_ERROR_TAG in cell.metadata.get("tags", []):
            continue
        lines = cell.source.strip().splitlines()
        title = fallback
        rest = lines
        if lines and lines[0].startswith("# "):
            title, rest = lines[0][2:].strip(), lines[1:]
        paragraphs = "\n".join(rest).strip().split("\n\n")
        question = paragraphs[0].replace("\n", " ").strip() if paragraphs else ""
        return title, re.sub(r"[*_`]", "", question)
    return fallback, ""


# --------------------------------------------------------------------------- build


def build_report(notebooks: Sequence[str | Path] | None = None, out_dir: str | Path = "reports",
                 parameters: Mapping[str, Any] | None = None, *, force: bool = False,
                 timeout: float | None = 1800, progress: bool = True,
                 raise_on_error: bool = True) -> list[Path]:
    """Execute ``notebooks``, write their HTML pages and sidecars, then ``index.html``.

    ``notebooks`` are paths or names (``02_latency``, ``02``); ``None`` means
    every numbered notebook.  ``parameters`` are injected into each notebook
    that declares them.  Returns the pages written, ``index.html`` last.  A
    notebook that fails still gets its page (showing the error) and its entry
    on the index; :class:`ReportError` is raised at the end unless
    ``raise_on_error`` is false.  Files in ``out_dir`` that d1bench did not
    write are never replaced without ``force``.
    """
    from tqdm import tqdm

    paths = _resolve_notebooks(notebooks)
    out = Path(out_dir)
    planned = [out / f"{p.stem}{ext}" for p in paths for ext in (".html", ".json", ".ipynb")]
    _check_writable([*planned, out / "index.html"], force)
    out.mkdir(parents=True, exist_ok=True)

    written: list[Path] = []
    failures: list[str] = []
    for path in tqdm(paths, desc="report", unit="notebook", disable=not progress):
        run = execute_notebook(path, out / f"{path.stem}.ipynb", parameters, timeout=timeout)
        title, question = _title_and_question(run.notebook, path.stem)
        headlines = headlines_from_notebook(run.notebook)
        page = out / f"{path.stem}.html"
        _atomic_write(page, render_html(run.notebook, title=title))
        sidecar = _sidecar(path.stem, title, question, run, headlines, out)
        _atomic_write(out / f"{path.stem}.json", json.dumps(sidecar, indent=1) + "\n")
        written.append(page)
        if run.error:
            failures.append(f"{path.name}: {run.error}")
    written.append(write_index(out))
    if failures and raise_on_error:
        raise ReportError("notebook(s) failed: " + "; ".join(failures))
    return written


def _resolve_notebooks(notebooks: Sequence[str | Path] | None) -> list[Path]:
    available = default_notebooks()
    if not notebooks:
        if not available:
            raise UsageError(f"{NOTEBOOK_DIR}: no numbered notebooks (NN_name.ipynb)")
        return available
    chosen = []
    for item in notebooks:
        path = Path(item)
        if path.suffix == ".ipynb":
            if not path.is_file():
                raise UsageError(f"{path}: no such notebook")
            chosen.append(path)
            continue
        matches = [p for p in available if p.stem == str(item) or p.stem.split("_", 1)[0] == str(item)
                   or p.stem.split("_", 1)[-1] == str(item)]
        if len(matches) != 1:
            names = ", ".join(p.stem for p in available)
            raise UsageError(f"notebook {item!r}: not found; choose from {names}")
        chosen.append(matches[0])
    return chosen


def _sidecar(stem: str, title: str, question: str, run: Execution,
             headlines: list[Headline], out: Path) -> dict[str, Any]:
    items = []
    for h in headlines:
        item = h.payload()
        if h.kind == "figure" and h.png:
            image = f"{stem}--{h.key}.png"
            _atomic_write(out / image, base64.b64decode(h.png))
            item["image"] = image
        items.append(item)
    return {
        "format": SIDECAR_FORMAT,
        "notebook": stem,
        "html": f"{stem}.html",
        "title": title,
        "question": question,
        "status": "failed" if run.error else "ok",
        "error": run.error,
        "parameters": run.parameters,
        "seconds": round(run.seconds, 2),
        "executed_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "d1bench_version": __version__,
        "headlines": items,
    }


def read_sidecars(out_dir: str | Path) -> list[dict[str, Any]]:
    """Every readable sidecar in ``out_dir``, in notebook order (unknown formats skipped)."""
    found = []
    for path in sorted(Path(out_dir).glob("[0-9][0-9]_*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and data.get("format") == SIDECAR_FORMAT:
            found.append(data)
    return found


def write_index(out_dir: str | Path) -> Path:
    """Write ``index.html``: each report's question and headline figures, linking the page."""
    from d1bench._report_index import index_page

    out = Path(out_dir)
    path = out / "index.html"
    page = index_page(read_sidecars(out), generator=GENERATOR)
    found = network_references(page)
    if found:
        raise ReportError(f"index would fetch from the network: {found[:3]}")
    _atomic_write(path, page)
    return path
