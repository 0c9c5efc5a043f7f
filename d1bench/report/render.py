"""Executed notebook to static HTML without code cells, readable offline."""

from __future__ import annotations

import re
from typing import Any

from d1bench.errors import D1benchError

__all__ = [
    "GENERATOR",
    "PM_ERROR_TAG",
    "ReportError",
    "network_references",
    "render_html",
    "title_and_question",
]

#: Written into every generated page, so that a re-run may replace it without ``--force``.
GENERATOR = "d1bench report"
#: Tag papermill puts on the cells it adds to announce an error.
PM_ERROR_TAG = "papermill-error-cell-tag"


class ReportError(D1benchError):
    """A notebook failed, or a page would not be readable offline."""


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
    re.compile(r"""<(?:script|img|iframe|audio|video|source|embed)\b[^>]*\bsrc\s*=\s*["']?(https?:)?//""", re.IGNORECASE),
    re.compile(r"""<link\b[^>]*\bhref\s*=\s*["']?(https?:)?//""", re.IGNORECASE),
    re.compile(r"""@import\s+(?:url\()?\s*["']?(https?:)?//""", re.IGNORECASE),
    re.compile(r"""url\(\s*["']?(https?:)?//""", re.IGNORECASE),
    re.compile(r"""\bimport\(\s*["'](https?:)?//""", re.IGNORECASE),
    re.compile(r"""\brequire(?:js)?\.config\b""", re.IGNORECASE),
)


def network_references(page: str) -> list[str]:
    """Places where ``page`` would fetch a script, style, font or image from the network.

    Plain links (``<a href="https://...">``) are not fetches and are allowed.

    >>> network_references('<a href="https://example.org">docs</a><img src="data:image/png;base64,AA">')
    []
    >>> network_references('<script src="https://cdn.example/x.js"></script>')
    ['<script src="https://']
    """
    hits: list[str] = []
    for pattern in _NETWORK_PATTERNS:
        hits.extend(m.group(0) for m in pattern.finditer(page))
    return hits


def title_and_question(nb: Any, fallback: str) -> tuple[str, str]:
    for cell in nb.cells:
        if cell.cell_type != "markdown" or PM_ERROR_TAG in cell.metadata.get("tags", []):
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
