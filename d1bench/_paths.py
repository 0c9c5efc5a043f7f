"""Where d1bench finds the repository's committed inputs and writes generated files."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["REPO_ROOT", "data_dir"]

#: The checkout d1bench runs from (d1bench is a workbench: it is used from its repository).
REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The ``data/`` folder: committed vocabularies, and generated corpora (ignored by git).

    ``D1BENCH_DATA`` overrides it, for an installation outside the repository.
    """
    return Path(os.environ.get("D1BENCH_DATA", REPO_ROOT / "data"))
