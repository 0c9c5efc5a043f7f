"""Seed a local D1 with any SQLite database, by copying it into place before the server starts.

The local D1 keeps its database as a plain SQLite file (:func:`sqlite_file`),
so a copy is the whole load: its schema, rows and FTS indexes, in
milliseconds, for schemas that :func:`d1bench.upload` (which knows the
medical corpus) does not.  D1's own limits are not checked on the way in; a
replay then runs against the copy through the real Worker and workerd.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from d1bench._atomic import atomic_path
from d1bench.targets.d1.local import DEFAULT_DATABASE_ID, sqlite_file

__all__ = ["seed_from_sqlite"]


def seed_from_sqlite(db_path: str | Path, persist_dir: str | Path,
                     database_id: str = DEFAULT_DATABASE_ID) -> Path:
    """Make ``db_path`` the local D1's database in ``persist_dir``; return the file written.

    Call it before a server starts on ``persist_dir``.  A database already
    there is refused; the copy is written beside it and renamed into place.
    """
    target = sqlite_file(persist_dir, database_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        shutil.copyfile(db_path, tmp)
    return target
