"""Where d1bench finds the repository's committed inputs and writes generated files."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "REPO_ROOT", "cache_dir", "data_dir"]

#: The checkout d1bench runs from (d1bench is a workbench: it is used from its repository).
REPO_ROOT = Path(__file__).resolve().parent.parent


#: Environment variable naming the per-user cache folder (see :func:`cache_dir`).
CACHE_ENV = "D1BENCH_CACHE"


def cache_dir() -> Path:
    """The user's cache folder: statement analyses and corpus digests kept across runs.

    ``$D1BENCH_CACHE`` if set, else ``$XDG_CACHE_HOME/d1bench``, else
    ``~/.cache/d1bench`` (the XDG base-directory default).  Everything in it
    can be deleted at any time; it is only ever a shortcut.
    """
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache") / "d1bench"


def data_dir() -> Path:
    """The ``data/`` folder: committed vocabularies, and generated corpora (ignored by git).

    ``D1BENCH_DATA`` overrides it, for an installation outside the repository.
    """
    return Path(os.environ.get("D1BENCH_DATA", REPO_ROOT / "data"))
