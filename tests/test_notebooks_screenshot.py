"""The rendered reports, opened in headless Chromium: they must show something.

``make report`` is what people read, so this test renders the first
notebook through the same pipeline (on the suite's small corpus), opens
``index.html`` and the notebook's page in Debian's ``chromium`` with the
network off, and checks the screenshots are not blank.  The Makefile
installs chromium (``make system-deps``); without it this test fails rather
than pretending the pages were seen.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from d1bench.report import build_report, default_notebooks, network_references

pytestmark = pytest.mark.slow

WINDOW = (1280, 2000)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("chromium is not installed: run `make system-deps` (apt-get install chromium)")


def screenshot(page: Path, png: Path, profile: Path) -> Image.Image:
    """Open ``page`` in headless Chromium, network disabled, and return its screenshot."""
    assert page.is_file(), page
    cmd = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--hide-scrollbars", "--mute-audio",
        # Any attempt to reach the network fails: the page must stand on its own.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--screenshot={png}", page.resolve().as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert png.is_file(), f"chromium wrote no screenshot: {done.stderr[-2000:]}"
    return Image.open(png).convert("L")


def assert_not_blank(image: Image.Image, name: str) -> None:
    pixels = np.asarray(image, dtype=float)
    assert pixels.shape == (WINDOW[1], WINDOW[0]), pixels.shape
    ink = (pixels < 200).mean()  # share of clearly non-background pixels
    assert pixels.std() > 12, f"{name}: screenshot is nearly uniform (std {pixels.std():.1f})"
    assert ink > 0.01, f"{name}: almost nothing drawn ({ink:.2%} dark pixels)"
    # More than a heading: text, cards or charts on a good part of the screen's rows.
    rows_with_ink = (pixels < 200).any(axis=1)
    assert rows_with_ink.sum() > 150, f"{name}: only {rows_with_ink.sum()} rows drawn"


@pytest.fixture(scope="module")
def rendered(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reports")
    first = default_notebooks()[0]
    build_report([first], out, {"corpus_path": str(small_corpus), "papers": 2_000},
                 progress=False)
    return out


def test_index_and_a_notebook_page_render_in_chromium(rendered: Path, tmp_path: Path):
    pages = [rendered / "index.html", *sorted(rendered.glob("0*.html"))[:1]]
    assert len(pages) == 2
    for page in pages:
        assert network_references(page.read_text()) == [], page.name
        image = screenshot(page, tmp_path / f"{page.stem}.png", tmp_path / "profile")
        assert_not_blank(image, page.name)


def test_blank_page_is_caught(tmp_path: Path):
    """The check itself can fail: a blank page does not pass."""
    page = tmp_path / "blank.html"
    page.write_text("<!DOCTYPE html><html><body></body></html>")
    image = screenshot(page, tmp_path / "blank.png", tmp_path / "profile")
    with pytest.raises(AssertionError, match="uniform|nothing"):
        assert_not_blank(image, page.name)
