"""Files written whole or not at all: a temporary file beside the target, renamed onto it.

A reader (a notebook polling for a trace, wrangler reading a migration, a
second process sharing a cache) never sees half a file, and a failed or
interrupted write leaves the old file, or nothing, behind.  Without ``force`` a
file is never replaced, even one that appeared while the new one was being
written: the rename is then a hard link, which fails if the name is taken.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from d1bench.errors import UsageError

__all__ = ["atomic_path", "publish", "shared_mode", "write_atomic"]


def shared_mode() -> int:
    """The mode a new ordinary file gets under the current umask (``mkstemp`` makes 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _exists(path: Path) -> UsageError:
    return UsageError(f"{path}: already exists (use --force to replace it)")


def publish(tmp: Path, path: Path, *, force: bool = False) -> None:
    """Move the finished ``tmp`` onto ``path``; without ``force`` never replace a file."""
    if force:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise _exists(path) from None
    except OSError:  # a file system without hard links
        if path.exists():
            raise _exists(path) from None
        os.replace(tmp, path)
        return
    tmp.unlink()


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, force: bool = False, suffix: str = ".tmp",
                mode: int | None = None) -> Iterator[Path]:
    """A temporary path beside ``path``, published onto it when the block ends without error.

    Args:
        path: the file to write.
        force: replace ``path`` if it exists (else a :class:`UsageError`, before
            any work when it exists already).
        suffix: the temporary file's suffix (some writers choose a format by it).
        mode: permissions of the published file (``None``: mkstemp's 0600; see
            :func:`shared_mode` for a file others may read).

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("whole")
    >>> target.read_text()
    'whole'
    """
    path = Path(path)
    if not force and path.exists():
        raise _exists(path)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except FileNotFoundError:
        raise UsageError(f"{path}: folder {path.parent} does not exist") from None
    except OSError as exc:
        raise UsageError(f"{path.parent}: cannot write here ({exc.strerror})") from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        publish(tmp, path, force=force)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike[str], data: str | bytes, *, force: bool = False,
                 mode: int | None = None) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` with :func:`atomic_path`; return the path."""
    with atomic_path(path, force=force, mode=mode) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")
    return Path(path)
