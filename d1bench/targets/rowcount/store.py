"""Statement analyses kept across runs in the user's cache folder.

Analysing a SQL text (``EXPLAIN``, the flow model, its first systems) takes
milliseconds to a few hundred; a replay does it for every template before its
clock starts.  The result depends only on the SQL, the database's content and
schema, the SQLite build and d1bench itself, so it is stored under a key
made of exactly those, and the second replay of a workload on the same
corpus loads it instead (a changed row changes the corpus digest, hence the
key: a stale analysis is never used).

Files are pickles written by this user's own d1bench into this user's own
cache folder (:func:`d1bench._paths.cache_dir`); a file that fails to load
is treated as missing.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from d1bench._atomic import write_atomic
from d1bench.errors import UsageError

__all__ = ["AnalysisStore", "store_for"]

# 3: triggers' Trace falls through; static tests, foreign-key counter, seek hits;
# 4: the counting verdict joined the analysis
_FORMAT = 4


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    """A digest of this package's source: an analysis is the output of this code, so a
    changed estimator (even within one release) must not load analyses the old one made."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


class AnalysisStore:
    """Analyses of SQL texts on one database state, one file each.

    ``identity`` holds everything besides the SQL that decides an analysis:
    the corpus content digest, the schema's digest, the SQLite version, the
    d1bench version and the connection options that change the bytecode.
    """

    def __init__(self, root: str | os.PathLike[str], identity: Mapping[str, Any]) -> None:
        self.root = Path(root) / "analysis"
        self._prefix = repr(sorted({**identity, "format": _FORMAT,
                                    "code": _code_digest()}.items()))
        self.hits = 0
        self.misses = 0

    def _path(self, sql: str) -> Path:
        key = hashlib.sha256(f"{self._prefix}\x00{sql}".encode()).hexdigest()
        return self.root / key[:2] / f"{key}.pickle"

    def load(self, sql: str) -> Any | None:
        """The stored analysis of ``sql``, or ``None``."""
        try:
            with open(self._path(sql), "rb") as fh:
                found = pickle.load(fh)
        except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError,
                TypeError, ValueError):
            self.misses += 1
            return None
        self.hits += 1
        return found

    def save(self, sql: str, analysis: Any) -> None:
        """Store ``analysis`` (atomically; a cache that cannot be written is skipped)."""
        path = self._path(sql)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, pickle.dumps(analysis, protocol=pickle.HIGHEST_PROTOCOL),
                         force=True)
        except (OSError, UsageError, pickle.PicklingError, TypeError, AttributeError):
            pass  # a cache is a shortcut: without it the next run analyses again


def store_for(path: str | os.PathLike[str], corpus: Mapping[str, Any] | None,
              **options: object) -> AnalysisStore | None:
    """The analysis cache for the database file at ``path``, keyed by its content digest
    and schema; ``options`` are the connection options that change the bytecode.

    ``None`` when the corpus has no content digest (then every run analyses).
    """
    digest = (corpus or {}).get("digest")
    if not digest or (corpus or {}).get("digest_of") != "content":
        return None
    import apsw

    from d1bench import __version__
    from d1bench._paths import cache_dir

    db = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        schema = db.execute("SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_schema "
                            "ORDER BY type, name").fetchall()
    finally:
        db.close()
    return AnalysisStore(cache_dir(), {
        "corpus": digest, "schema": hashlib.sha256(repr(schema).encode()).hexdigest(),
        "sqlite": apsw.sqlite_lib_version(), "d1bench": __version__, **options})
