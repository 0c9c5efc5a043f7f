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

import hashlib
import os
import pickle
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["AnalysisStore"]

_FORMAT = 2  # 2: the counting verdict joined the analysis


class AnalysisStore:
    """Analyses of SQL texts on one database state, one file each.

    ``identity`` holds everything besides the SQL that decides an analysis:
    the corpus content digest, the schema's digest, the SQLite version, the
    d1bench version and the connection options that change the bytecode.
    """

    def __init__(self, root: str | os.PathLike[str], identity: Mapping[str, Any]) -> None:
        self.root = Path(root) / "analysis"
        self._prefix = repr(sorted({**identity, "format": _FORMAT}.items()))
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
            fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    pickle.dump(analysis, fh, protocol=pickle.HIGHEST_PROTOCOL)
                os.replace(tmp, path)
            finally:
                Path(tmp).unlink(missing_ok=True)
        except (OSError, pickle.PicklingError, TypeError, AttributeError):
            pass  # a cache is a shortcut: without it the next run analyses again
