"""A private copy of a SQLite database for a replay that writes, so the user's file stays as it was.

The fastest way that gives a consistent copy, in order:

1. a reflink (``FICLONE``): the copy shares the original's blocks until
   either is written, so it takes no time and no space (Btrfs, XFS, ...);
2. ``os.copy_file_range``: the kernel copies, nothing passes through Python;
3. a plain ``shutil.copyfile``.

A database with a write-ahead log holding committed pages is copied with
SQLite's backup API instead, since a copy of the main file alone would miss
them.  The copy goes beside the original when that folder is writable (a
reflink needs the same file system), else in the system's temporary folder.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Snapshot", "make_snapshot"]

_FICLONE = 0x40049409  # _IOW(0x94, 9, int), linux/fs.h


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A copy of ``source`` at ``path``, made by ``method`` in ``seconds``."""

    source: Path
    path: Path
    method: str
    seconds: float

    def remove(self) -> None:
        """Delete the copy and the journal files SQLite left beside it."""
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)


def _clone(src: Path, dst: Path) -> str:
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        try:
            fcntl.ioctl(fout.fileno(), _FICLONE, fin.fileno())
            return "reflink"
        except OSError:
            pass
        try:
            size = os.fstat(fin.fileno()).st_size
            copied = 0
            while copied < size:
                n = os.copy_file_range(fin.fileno(), fout.fileno(), size - copied)
                if n == 0:
                    break
                copied += n
            if copied == size:
                return "copy_file_range"
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise
    shutil.copyfile(src, dst)
    return "copy"


def _backup(src: Path, dst: Path) -> str:
    import apsw

    source = apsw.Connection(str(src), flags=apsw.SQLITE_OPEN_READONLY)
    dest = apsw.Connection(str(dst))
    try:
        with dest.backup("main", source, "main") as b:
            while not b.done:
                b.step(-1)
    finally:
        dest.close()
        source.close()
    return "backup"


def make_snapshot(source: str | os.PathLike[str]) -> Snapshot:
    """Copy the database ``source`` to a new private file (see the module's docstring)."""
    src = Path(source)
    folder = src.parent if os.access(src.parent, os.W_OK) else Path(tempfile.gettempdir())
    fd, name = tempfile.mkstemp(prefix=f".{src.name}.replay-", suffix=".sqlite", dir=folder)
    os.close(fd)
    dst = Path(name)
    start = time.perf_counter()
    try:
        wal = Path(f"{src}-wal")
        method = _backup(src, dst) if wal.is_file() and wal.stat().st_size > 0 else _clone(src, dst)
    except BaseException:
        dst.unlink(missing_ok=True)
        raise
    return Snapshot(src, dst, method, time.perf_counter() - start)
