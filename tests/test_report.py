"""Reports: papermill execution, offline HTML without code, headline sidecars, the index page."""

from __future__ import annotations

import doctest
import json
import re
from pathlib import Path

import nbformat
import pytest

from d1bench.cli import main
from d1bench.errors import UsageError
from d1bench.report import (
    HEADLINE_MIME,
    ReportError,
    build_report,
    headlines_from_notebook,
    make_headline,
    network_references,
    record,
    render_html,
)
from d1bench.report import build as report

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
SECRET_CODE = "distinctive_name_in_code_only = 41"


def _notebook(path: Path, cells: list[tuple[str, str, list[str]]]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    for kind, source, tags in cells:
        cell = (nbformat.v4.new_markdown_cell(source) if kind == "md"
                else nbformat.v4.new_code_cell(source))
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One report run over two small notebooks: one succeeds, one fails."""
    src = tmp_path_factory.mktemp("nb")
    out = tmp_path_factory.mktemp("reports")
    good = _notebook(src / "01_good.ipynb", [
        ("md", "# Is it good?\n\nHow many *widgets* fit, and why.\n\nMore words.", []),
        ("code", "scale = 3\nlabel = 'default'", ["parameters"]),
        ("code", SECRET_CODE + "\n"
                 "import pandas as pd\n"
                 "from d1bench.report import record\n"
                 "from d1bench.charts._style import new_figure, finish\n"
                 "record('widgets', scale * 1000, label='Widgets that fit', unit='widgets',"
                 " note='because scale', top=True)\n"
                 "record('table', pd.DataFrame({'template': ['a', 'b'], 'p99_ms': [1.5, 20.25]}),"
                 " label='Slowest templates')\n"
                 "fig, ax = new_figure()\n"
                 "ax.plot([1, 2, 3], [scale, 2, 1])\n"
                 "finish(ax, 'A line (ms)', 'x (s)', 'y (ms)')\n"
                 "record('line', fig, label='The line', note='a figure')", []),
        ("code", "print('scale is', scale, 'label is', label)\nassert scale == 7", []),
        ("code", "boom = 1 / 0", ["raises-exception"]),
        ("code", "record('after', 'still running', label='After the expected error')", []),
    ])
    bad = _notebook(src / "02_bad.ipynb", [
        ("md", "# Does it fail?\n\nIt does.", []),
        ("code", "scale = 1", ["parameters"]),
        ("code", "raise RuntimeError('deliberate failure')", []),
    ])
    with pytest.raises(ReportError, match="02_bad"):
        build_report([good, bad], out, {"scale": 7, "undeclared": 5}, progress=False)
    return {"out": out, "good": good, "bad": bad}


def test_pages_sidecars_and_index_are_written(built):
    out = built["out"]
    for name in ("01_good.html", "01_good.json", "02_bad.html", "02_bad.json", "index.html"):
        assert (out / name).is_file(), name
    assert (out / "01_good--line.png").read_bytes().startswith(b"\x89PNG")


def test_html_has_outputs_but_no_code(built):
    page = (built["out"] / "01_good.html").read_text()
    assert "distinctive_name_in_code_only" not in page
    assert "scale is 7 label is default" in page  # the injected parameter ran
    assert "Widgets that fit" in page and "7,000 widgets" in page
    assert "Is it good?" in page
    assert 'href="index.html"' in page
    assert "<img" in page and "data:image/png;base64," in page


def test_pages_fetch_nothing_from_the_network(built):
    for page in built["out"].glob("*.html"):
        text = page.read_text()
        assert network_references(text) == [], page.name
        assert not re.search(r"<script[^>]+src=", text), page.name
        assert "mathjax" not in text.lower() or "cdn" not in text.lower()


def test_sidecar_holds_parameters_and_headlines(built):
    sidecar = json.loads((built["out"] / "01_good.json").read_text())
    assert sidecar["format"] == report.SIDECAR_FORMAT
    assert sidecar["status"] == "ok" and sidecar["error"] is None
    assert sidecar["parameters"] == {"scale": 7, "label": "default"}  # undeclared not injected
    assert sidecar["title"] == "Is it good?"
    assert sidecar["question"] == "How many widgets fit, and why."
    by_key = {h["key"]: h for h in sidecar["headlines"]}
    assert by_key["widgets"]["value"] == 7000 and by_key["widgets"]["unit"] == "widgets"
    assert by_key["table"]["columns"] == ["template", "p99_ms"]
    assert by_key["table"]["rows"] == [["a", 1.5], ["b", 20.25]]
    assert by_key["line"]["image"] == "01_good--line.png"
    assert by_key["after"]["text"] == "still running"  # a raises-exception cell did not stop it
    assert sidecar["seconds"] > 0


def test_failed_notebook_is_reported_not_hidden(built):
    sidecar = json.loads((built["out"] / "02_bad.json").read_text())
    assert sidecar["status"] == "failed"
    assert "deliberate failure" in sidecar["error"]
    assert "deliberate failure" in (built["out"] / "02_bad.html").read_text()
    index = (built["out"] / "index.html").read_text()
    assert "1 of 2 notebooks failed" in index


def test_index_links_pages_under_their_headlines(built):
    index = (built["out"] / "index.html").read_text()
    assert 'href="01_good.html"' in index and 'href="02_bad.html"' in index
    assert index.index("Widgets that fit") < index.index("Read the full report")
    assert "7,000 widgets" in index and "because scale" in index
    assert "<td>20.2</td>" in index or "<td>20.25</td>" in index
    assert 'src="01_good--line.png"' in index
    assert network_references(index) == []
    glance = index[index.index("At a glance"):index.index('<section id="01_good"')]
    assert "7,000 widgets" in glance and 'href="#01_good"' in glance
    assert "Slowest templates" not in glance  # only headlines marked top


def test_rerun_replaces_own_files_but_not_foreign_ones(built, tmp_path):
    foreign = tmp_path / "01_good.html"
    foreign.write_text("<html>my own notes</html>")
    with pytest.raises(UsageError, match="--force"):
        build_report([built["good"]], tmp_path, {}, progress=False)
    assert foreign.read_text() == "<html>my own notes</html>"
    assert report._ours(built["out"] / "01_good.html")
    assert report._ours(built["out"] / "01_good.json")


def test_cli_renders_one_notebook_and_rejects_bad_params(built, tmp_path, capfd):
    capsys = capfd  # the kernel is a child process: capture at the file descriptors
    out = tmp_path / "cli"
    code = main(["report", "--notebooks", str(built["good"]), "--out", str(out),
                 "-p", "scale=7", "-p", "label='cli'"])
    assert code == 0
    printed = capsys.readouterr()
    assert "index.html" in printed.out
    assert "WARNING" not in printed.err  # the kernel's transport warning stays out of the way
    assert "label is cli" in (out / "01_good.html").read_text()
    assert main(["report", "--out", str(out), "-p", "no-equals-sign"]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err
    assert main(["report", "--out", str(out), "--notebooks", "99_missing"]) == 2
    assert main(["report", "--corpus", str(tmp_path / "absent.sqlite")]) == 2


def test_cli_scale_builds_the_corpus_first(built, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("D1BENCH_DATA", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    out = tmp_path / "scaled"
    assert main(["report", "--notebooks", str(built["good"]), "--out", str(out),
                 "--scale", "300", "-p", "scale=7"]) == 0
    assert (tmp_path / "data" / "corpus-300.sqlite").is_file()
    sidecar = json.loads((out / "01_good.json").read_text())
    assert sidecar["status"] == "ok"


def test_render_refuses_a_template_that_fetches(monkeypatch):
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell('<script src="https://cdn.example/x.js"></script>'))
    with pytest.raises(ReportError, match="network"):
        render_html(nb)


def test_network_references_catch_each_kind_of_fetch():
    assert network_references('<link rel="stylesheet" href="https://cdn/x.css">')
    assert network_references('<style>@import url("https://fonts/x.css");</style>')
    assert network_references('<img src="//cdn/x.png">')
    assert network_references('<script>import("https://cdn/m.mjs")</script>')
    assert network_references('<a href="https://example.org/docs">docs</a>') == []
    assert network_references('<img src="01_x--y.png">') == []


def test_headlines_round_trip_through_a_notebook():
    h = make_headline("p99", 12.345, label="p99", unit="ms", note="slowest")
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [nbformat.v4.new_output("display_data", data={
        "text/plain": h.text, HEADLINE_MIME: h.payload()})]
    nb.cells.append(cell)
    back = headlines_from_notebook(nb)
    assert back == [h]
    assert h.text == "12.3 ms"


def test_headline_kinds_and_bad_keys():
    import pandas as pd

    assert make_headline("a", 3).kind == "number"
    assert make_headline("b", "WNAM").kind == "text"
    assert make_headline("c", True).text == "yes"
    table = make_headline("d", pd.Series([1, 2], index=["x", "y"], name="n"))
    assert table.kind == "table" and table.rows == [["x", 1], ["y", 2]]
    with pytest.raises(ValueError, match="key"):
        make_headline("has space", 1)
    assert record("quiet", 1) is None  # outside IPython: nothing shown, nothing returned


def test_doctests_pass():
    from d1bench.report import headlines, render

    attempted = 0
    for module in (report, headlines, render):
        result = doctest.testmod(module)
        assert result.failed == 0, module.__name__
        attempted += result.attempted
    assert attempted >= 4


# --------------------------------------------------------------------- the repository's notebooks


def _repo_notebooks() -> list[Path]:
    return sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


def test_repository_has_the_numbered_notebooks():
    names = [p.stem for p in _repo_notebooks()]
    assert names[:1] == ["01_corpus"], names


@pytest.mark.parametrize("path", _repo_notebooks(), ids=lambda p: p.stem)
def test_repository_notebooks_are_stripped_and_tagged(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and "parameters" in code[0].metadata.get("tags", []), "first code cell is parameters"
    assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    for cell in code:
        assert cell.outputs == [], f"{path.name}: stored outputs (strip them)"
        assert cell.execution_count is None, f"{path.name}: stored execution count"
        assert "# NBVAL_" not in cell.source, "use nbval cell tags, not comments"
        assert "papermill" not in cell.metadata
    assert "papermill" not in nb.metadata
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_repository_notebooks_pass_nbstripout_verify():
    import subprocess
    import sys

    paths = [str(p) for p in _repo_notebooks()]
    done = subprocess.run([sys.executable, "-m", "nbstripout", "--verify", *paths],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", _repo_notebooks(), ids=lambda p: p.stem)
def test_papermill_sees_every_parameter(path):
    """A parameter papermill cannot parse is silently never injected: catch it here."""
    import ast

    import papermill as pm

    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assigned = [t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
                for t in node.targets]
    assert assigned, "the parameters cell assigns nothing"
    assert list(pm.inspect_notebook(str(path))) == assigned


def test_a_cell_that_times_out_is_named_in_one_line(tmp_path: Path) -> None:
    """Past --timeout the report names the notebook and cell, writes every page, exits 1."""
    import subprocess
    import sys

    src = tmp_path / "nb"
    src.mkdir()
    good = _notebook(src / "01_quick.ipynb", [
        ("md", "# Quick\n\nIt finishes.", []),
        ("code", "scale = 1", ["parameters"]),
        ("code", "from d1bench.report import record\nrecord('done', 'yes', label='Done')", []),
    ])
    slow = _notebook(src / "02_slow.ipynb", [
        ("md", "# Slow\n\nOne cell runs past the timeout.", []),
        ("code", "scale = 1", ["parameters"]),
        ("code", "print('before')", []),
        ("code", "import time\ntime.sleep(120)", []),
        ("code", "print('never')", []),
    ])
    out = tmp_path / "reports"
    proc = subprocess.run(
        [sys.executable, "-m", "d1bench", "report", "--notebooks", str(good), str(slow),
         "--out", str(out), "--timeout", "5"],
        check=False, capture_output=True, text=True, timeout=240)
    said = proc.stdout + proc.stderr
    assert proc.returncode == 1, said
    assert "Traceback" not in said and "ZMQError" not in said, said
    failed = [line for line in said.splitlines() if "02_slow.ipynb" in line]
    # The fourth cell of the notebook as written (the injected parameters are not counted).
    assert len(failed) == 1 and "cell 4 (In [" in failed[0] and "timed out after 5 s" in failed[0]
    sidecar = json.loads((out / "02_slow.json").read_text())
    assert sidecar["status"] == "failed" and "timed out" in sidecar["error"]
    assert json.loads((out / "01_quick.json").read_text())["status"] == "ok"
    assert (out / "02_slow.html").is_file() and (out / "01_quick.html").is_file()
    assert "1 of 2 notebooks failed" in (out / "index.html").read_text()


def test_seed_table_gets_its_own_section_on_the_front_page():
    import pandas as pd

    from d1bench.report.index import SEED_TABLE_KEY, index_page

    table = make_headline(SEED_TABLE_KEY, pd.DataFrame(
        {"target": ["SQLite", "local D1"], "family": ["search", "search"], "claimed_ms": [45, 45],
         "mean_ms": [3.25, 9.5], "verdict": ["faster than claimed", "faster than claimed"]}),
        label="Seed 000's benchmark table").payload()
    other = make_headline("other_table", pd.DataFrame({"a": [1]}), label="Another").payload()
    sidecar = {"notebook": "05_local_vs_d1", "title": "Local vs D1", "status": "ok",
               "headlines": [other, table]}
    page = index_page([sidecar], generator="test")
    assert '<section id="seed-table">' in page
    section = page.split('<section id="seed-table">', 1)[1].split("</section>", 1)[0]
    assert "local D1" in section and "9.5" in section and "Another" not in section
    # Before the table of contents: the figure the seed leads with is read first.
    assert page.index('id="seed-table"') < page.index("<nav>")
    assert '<section id="seed-table">' not in index_page(
        [dict(sidecar, headlines=[other])], generator="test")
