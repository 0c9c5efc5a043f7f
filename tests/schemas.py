"""The fixture schemas besides ``medical``: where their files are, and building their databases.

Each schema under ``tests/fixtures/schemas/NAME/`` has ``schema.sql`` (D1-valid,
indexed only by its keys), ``workload.toml`` and ``generate.py`` (a
deterministic generator, also runnable standalone).  Tests use them through
the ``saas_db``, ``events_db`` and ``other_schema`` fixtures of ``conftest.py``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

SCHEMAS = ("saas", "events")
ROOT = Path(__file__).resolve().parent / "fixtures" / "schemas"


def _dir(name: str) -> Path:
    if name not in SCHEMAS:
        raise ValueError(f"unknown fixture schema {name!r}; expected one of {', '.join(SCHEMAS)}")
    return ROOT / name


def schema_sql(name: str) -> str:
    """The DDL of schema ``name``."""
    return (_dir(name) / "schema.sql").read_text()


def workload_path(name: str) -> Path:
    """The workload file of schema ``name``."""
    return _dir(name) / "workload.toml"


def generator(name: str) -> ModuleType:
    """Schema ``name``'s ``generate.py``, loaded by path (the fixtures are not a package)."""
    path = _dir(name) / "generate.py"
    spec = importlib.util.spec_from_file_location(f"_fixture_{name}_generate", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(name: str, path: str | Path, *, scale: float = 1.0, seed: int = 0) -> Path:
    """Generate schema ``name``'s database at ``path`` and return the path.

    Written to a temporary file and renamed; an existing ``path`` is refused
    (``FileExistsError``).  The same ``scale`` and ``seed`` give the same rows.
    """
    return generator(name).generate(path, scale=scale, seed=seed)


def from_sql(schema: Path, path: Path) -> Path:
    """A database at ``path`` made by running the SQL file ``schema`` (its DDL and rows)."""
    import apsw

    conn = apsw.Connection(str(path))
    try:
        conn.execute(schema.read_text(encoding="utf-8"))
    finally:
        conn.close()
    return path
