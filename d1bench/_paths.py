"""Where d1bench reads its committed inputs and writes what it generates.

Nothing is written into the package's own folder or the checkout it was
installed from: generated data (corpora, caches) goes to ``D1BENCH_DATA`` or
the per-user data directory, state (detached local D1 servers) to
``D1BENCH_STATE_DIR`` or the per-user state directory, following the XDG base
directory convention; files a command is told to write (``--out``) go where it
is told, relative to the current directory.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "REPO_ROOT", "cache_dir", "data_dir", "inputs_dir", "state_dir",
           "vocabulary_dir"]

#: The checkout d1bench runs from: read for committed inputs, never written to.
REPO_ROOT = Path(__file__).resolve().parent.parent


#: Environment variable naming the per-user cache folder (see :func:`cache_dir`).
CACHE_ENV = "D1BENCH_CACHE"


def _xdg(variable: str, fallback: str) -> Path:
    base = os.environ.get(variable)
    # the spec says a relative path in these variables is invalid and to be ignored
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / fallback
    return root / "d1bench"


def inputs_dir() -> Path:
    """The committed ``data/`` folder of the checkout (vocabularies, term lists)."""
    return REPO_ROOT / "data"


def data_dir() -> Path:
    """Where generated data goes: ``D1BENCH_DATA``, else ``$XDG_DATA_HOME/d1bench``
    (``~/.local/share/d1bench``).  Its ``vocabulary/``, if any, replaces the
    committed one."""
    override = os.environ.get("D1BENCH_DATA")
    return Path(override) if override else _xdg("XDG_DATA_HOME", ".local/share")


def state_dir() -> Path:
    """Where running things keep their state (a detached local D1's pid, port and
    token file): ``D1BENCH_STATE_DIR``, else ``$XDG_STATE_HOME/d1bench``
    (``~/.local/state/d1bench``)."""
    override = os.environ.get("D1BENCH_STATE_DIR")
    return Path(override) if override else _xdg("XDG_STATE_HOME", ".local/state")


def vocabulary_dir() -> Path:
    """The folder the default vocabulary is read from: ``<data>/vocabulary``.

    The data folder (``D1BENCH_DATA``) may hold a vocabulary of its own; when it
    has none, the repository's committed one is used.
    """
    folder = data_dir() / "vocabulary"
    if not folder.is_dir():
        shipped = inputs_dir() / "vocabulary"
        if shipped.is_dir():
            return shipped
    return folder


def cache_dir() -> Path:
    """The user's cache folder: statement analyses and corpus digests kept across runs.

    ``$D1BENCH_CACHE`` if set, else ``$XDG_CACHE_HOME/d1bench`` (``~/.cache/d1bench``).
    Everything in it can be deleted at any time; it is only ever a shortcut.
    """
    override = os.environ.get(CACHE_ENV)
    return Path(override) if override else _xdg("XDG_CACHE_HOME", ".cache")
