"""Reports: run the notebooks headless and render them as HTML people can read offline.

:mod:`~d1bench.report.build` runs the notebooks and writes each page and its
sidecar of headline figures (the sidecar format is described there),
:mod:`~d1bench.report.headlines` is how a notebook records a headline,
:mod:`~d1bench.report.render` turns an executed notebook into an offline page,
and :mod:`~d1bench.report.index` builds ``index.html`` from the sidecars.
"""

from __future__ import annotations

from d1bench.report.build import (
    SIDECAR_FORMAT,
    build_report,
    default_notebooks,
    execute_notebook,
    read_sidecars,
    write_index,
)
from d1bench.report.headlines import (
    HEADLINE_MIME,
    Headline,
    format_number,
    headlines_from_notebook,
    make_headline,
    record,
    record_thresholds,
)
from d1bench.report.render import ReportError, network_references, render_html

__all__ = [
    "HEADLINE_MIME",
    "SIDECAR_FORMAT",
    "Headline",
    "ReportError",
    "build_report",
    "default_notebooks",
    "execute_notebook",
    "format_number",
    "headlines_from_notebook",
    "make_headline",
    "network_references",
    "read_sidecars",
    "record",
    "record_thresholds",
    "render_html",
    "write_index",
]
