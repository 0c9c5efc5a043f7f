"""Building reports: run the notebooks headless and render them as HTML people can read offline.

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
                    "top": false, "columns": [...], "rows": [[...]],
                    "image": "02_latency--key.png"}]}

``kind`` is ``number``, ``text``, ``table`` (``columns`` and ``rows``) or
``figure`` (``image``, a PNG file beside the sidecar); ``top`` puts the
headline in the index's "at a glance" strip as well.

The pages are static and offline: the nbconvert template leaves out every
script it would fetch (require.js, MathJax, mermaid, widgets), charts are
embedded PNGs, and :func:`network_references` fails the build should a
fetch ever reappear.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from d1bench import __version__
from d1bench._atomic import atomic_path, shared_mode, write_atomic
from d1bench._paths import REPO_ROOT
from d1bench.errors import UsageError
from d1bench.progress import quiet_logger
from d1bench.report.headlines import Headline, headlines_from_notebook, json_safe
from d1bench.report.render import (
    GENERATOR,
    PM_ERROR_TAG,
    ReportError,
    network_references,
    render_html,
    title_and_question,
)

__all__ = [
    "NOTEBOOK_DIR",
    "SIDECAR_FORMAT",
    "Execution",
    "build_report",
    "default_notebooks",
    "execute_notebook",
    "read_sidecars",
    "write_index",
]

SIDECAR_FORMAT = 1
NOTEBOOK_DIR = REPO_ROOT / "notebooks"


# --------------------------------------------------------------------------- files


def _atomic_write(path: Path, data: str | bytes) -> None:
    """Write beside ``path`` and rename into place: readers never see half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data, force=True, mode=shared_mode())  # reports are for sharing


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
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    path = Path(path)
    declared = pm.inspect_notebook(str(path))
    if not declared:
        raise UsageError(f"{path}: no cell tagged 'parameters'")
    chosen = {k: v for k, v in (parameters or {}).items() if k in declared}
    output.parent.mkdir(parents=True, exist_ok=True)
    error = None
    start = time.perf_counter()
    # nbclient logs "Timeout waiting for execute reply" through papermill's logger before
    # raising the timeout that becomes this function's one-line error: keep it quiet.
    with atomic_path(output, force=True, suffix=".ipynb", mode=shared_mode()) as tmp, \
            quiet_logger("papermill"):
        try:
            pm.execute_notebook(
                str(path), str(tmp), parameters=chosen, cwd=str(path.parent),
                kernel_name=kernel_name, progress_bar=False, log_output=False,
                execution_timeout=timeout, report_mode=False,
                # The kernel talks to papermill over loopback TCP; its warning that
                # this is unencrypted would otherwise interleave with the progress bar.
                # A timed-out cell's kernel also logs a traceback as it is torn down.
                extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
            )
        except pm.PapermillExecutionError as exc:
            error = f"{exc.ename}: {_first_line(exc.evalue)}"
        except CellTimeoutError:
            error = f"timed out after {timeout:g} s"
        except DeadKernelError:
            error = "the kernel died"
        seconds = time.perf_counter() - start
        nb = nbformat.read(tmp, as_version=4)
        if error:
            error = f"{_failed_cell(nb)}: {error}"
        if error and not _unexpected_errors(nb):
            # papermill fails a run on any error output, even in a cell tagged
            # ``raises-exception`` (which nbclient and nbval accept): undo that.
            error = None
            nb.cells = [c for c in nb.cells if PM_ERROR_TAG not in c.metadata.get("tags", [])]
            nbformat.write(nb, tmp)
    effective = {k: json_safe(v) for k, v in chosen.items()}
    for name, info in declared.items():
        effective.setdefault(name, _literal_or_text(info.get("default")))
    return Execution(nb, effective, seconds, error)




def _first_line(text: object) -> str:
    lines = str(text).strip().splitlines()
    return lines[0] if lines else ""


def _failed_cell(nb: Any) -> str:
    """Where an executed notebook stopped, as the notebook's own cell number.

    The number counts the cells of the notebook as written (the cell papermill
    injects after ``parameters`` is not one of them), from 1, and gives the
    execution count JupyterLab shows as ``In [N]``.
    """
    number = 0
    for cell in nb.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            continue
        number += 1
        if cell.cell_type != "code":
            continue
        failed = cell.metadata.get("papermill", {}).get("exception") or any(
            o.get("output_type") == "error" for o in cell.get("outputs", []))
        if failed:
            count = cell.get("execution_count")
            return f"cell {number}" + (f" (In [{count}])" if count else "")
    return "a cell"


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
        return json_safe(ast.literal_eval(source))
    except (ValueError, SyntaxError, TypeError):
        return source


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

    from d1bench.progress import tqdm_disable

    paths = _resolve_notebooks(notebooks)
    out = Path(out_dir)
    planned = [out / f"{p.stem}{ext}" for p in paths for ext in (".html", ".json", ".ipynb")]
    _check_writable([*planned, out / "index.html"], force)
    out.mkdir(parents=True, exist_ok=True)

    written: list[Path] = []
    failures: list[str] = []
    for path in tqdm(paths, desc="report", unit="notebook", disable=tqdm_disable(progress)):
        run = execute_notebook(path, out / f"{path.stem}.ipynb", parameters, timeout=timeout)
        title, question = title_and_question(run.notebook, path.stem)
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
        "executed_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
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
    from d1bench.report.index import index_page

    out = Path(out_dir)
    path = out / "index.html"
    page = index_page(read_sidecars(out), generator=GENERATOR)
    found = network_references(page)
    if found:
        raise ReportError(f"index would fetch from the network: {found[:3]}")
    _atomic_write(path, page)
    return path
