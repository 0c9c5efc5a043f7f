"""Opening a user's SQLite database: the one place that checks the file first.

Every verb and library function that takes a database (``--db``, ``--corpus``,
``sqlite:PATH``) opens it through here, so a file that is missing, a
directory, unreadable, not SQLite at all, truncated or corrupt gives one
:class:`~d1bench.errors.UsageError` naming the file and what is wrong with it,
before anything is written and before a workload's templates are blamed for
what is really the file's fault.

The check reads the 100-byte header (SQLite's file format, section 1.3), holds
the file's size against the page count the header declares, then opens the
file read-only, reads its schema and the first row of every table.  Files up
to :data:`QUICK_CHECK_MAX_BYTES` also get ``PRAGMA quick_check``, which reads
every page (about 20-50 ms a MB here); larger ones are not read whole (that
would cost seconds on a big corpus for every command), so damage deep inside
them shows up when a query reaches it.  A file found sound is not checked again
in the same process until its size or modification time changes.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import apsw

from d1bench.errors import UsageError

__all__ = ["QUICK_CHECK_MAX_BYTES", "check_database", "open_database", "open_readonly"]

#: Files up to this size get ``PRAGMA quick_check`` (every page read: a quarter to most of a
#: second at this size, paid once per process).
QUICK_CHECK_MAX_BYTES = 16 * 1024 * 1024

#: Files found sound: (path, inode, size, mtime) of each, so a second open costs nothing.
_SOUND: set[tuple[str, int, int, int]] = set()

_MAGIC = b"SQLite format 3\x00"
_HEADER_BYTES = 100


def _header_problem(header: bytes, size: int) -> str | None:
    """What is wrong with a file from its first 100 bytes and its size, or None.

    >>> _header_problem(b"hello", 5)
    'not a SQLite database (it does not start with "SQLite format 3")'
    >>> good = bytearray(_MAGIC + bytes(84))
    >>> good[16:18] = (4096).to_bytes(2, "big"); good[28:32] = (3).to_bytes(4, "big")
    >>> _header_problem(bytes(good), 3 * 4096) is None
    True
    >>> _header_problem(bytes(good), 4096)
    'truncated: 4,096 bytes, but its header says 3 pages of 4,096 bytes (12,288 bytes)'
    """
    if not header.startswith(_MAGIC):
        return 'not a SQLite database (it does not start with "SQLite format 3")'
    if len(header) < _HEADER_BYTES:
        return f"truncated: {size:,} bytes, shorter than a SQLite header"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        return f"corrupt: its header gives an impossible page size ({page_size})"
    pages = int.from_bytes(header[28:32], "big")
    # The page count is trustworthy only when the header's version-valid-for
    # number matches its change counter (writers older than 3.7.0 leave it stale).
    if pages and header[24:28] == header[92:96] and size < pages * page_size:
        return (f"truncated: {size:,} bytes, but its header says {pages:,} pages of "
                f"{page_size:,} bytes ({pages * page_size:,} bytes)")
    return None


def check_database(path: str | os.PathLike[str], *, quick_check: bool | None = None) -> Path:
    """Check that ``path`` is a readable, sound SQLite database; return it as a Path.

    Raises :class:`UsageError` with one line naming the file and the fault:
    no such file, a directory, permission denied, empty, not a SQLite
    database, truncated, or corrupt.  ``quick_check`` forces (or skips)
    ``PRAGMA quick_check``; by default it runs on files up to
    :data:`QUICK_CHECK_MAX_BYTES`.  Nothing is written.
    """
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise UsageError(f"{p}: no such database file") from None
    except PermissionError:  # a folder on the way is closed to us
        raise UsageError(f"{p}: cannot be read (permission denied)") from None
    except OSError as exc:
        raise UsageError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(mode):
        raise UsageError(f"{p}: is a directory, not a SQLite database file")
    st = p.stat()
    key = (str(p.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    if key in _SOUND and quick_check is None and os.access(p, os.R_OK):
        return p
    try:
        with open(p, "rb") as f:
            header = f.read(_HEADER_BYTES)
            size = os.fstat(f.fileno()).st_size
    except PermissionError:
        raise UsageError(f"{p}: cannot be read (permission denied)") from None
    except OSError as exc:
        raise UsageError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    if size == 0:
        raise UsageError(f"{p}: is empty (0 bytes), not a SQLite database")
    # A -wal file may hold pages the main file does not have yet.
    wal = Path(f"{p}-wal")
    problem = _header_problem(header, size)
    if problem and not (problem.startswith("truncated: ") and wal.exists()):
        raise UsageError(f"{p}: {problem}")
    if quick_check is None:
        quick_check = size <= QUICK_CHECK_MAX_BYTES
    conn = _connect(p, apsw.SQLITE_OPEN_READONLY)
    try:
        tables = [name for name, sql in conn.execute(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'table'")
            if not str(sql or "").upper().startswith("CREATE VIRTUAL")]
        for name in tables:  # each table's root page (and the path to its first leaf)
            quoted = name.replace('"', '""')
            conn.execute(f'SELECT 1 FROM "{quoted}" LIMIT 1').fetchall()
        if quick_check:
            result = [row[0] for row in conn.execute("PRAGMA quick_check(1)")]
            if result != ["ok"]:
                # quick_check reports over several lines; the first fault is enough.
                first = " ".join(str(result[0]).replace("*** in database main ***", "").split())
                raise UsageError(f"{p}: corrupt (quick_check: {first})")
    except apsw.Error as exc:
        raise UsageError(f"{p}: corrupt ({_reason(exc)})") from None
    finally:
        conn.close()
    _SOUND.add(key)
    return p


def open_database(path: str | os.PathLike[str], *, readonly: bool = True,
                  **options: object) -> apsw.Connection:
    """An APSW connection to a checked database (see :func:`check_database`).

    ``readonly=False`` opens it for writing (only for verbs that change the
    database when asked, such as ``indexes apply``); ``options`` go to
    :class:`apsw.Connection` (e.g. ``statementcachesize``).
    """
    p = check_database(path)
    flags = apsw.SQLITE_OPEN_READONLY if readonly else apsw.SQLITE_OPEN_READWRITE
    return _connect(p, flags, **options)


def open_readonly(path: str | os.PathLike[str]) -> apsw.Connection:
    """A read-only APSW connection to a checked database."""
    return open_database(path, readonly=True)


def _connect(p: Path, flags: int, **options: object) -> apsw.Connection:
    try:
        return apsw.Connection(str(p), flags=flags, **options)  # type: ignore[arg-type]
    except apsw.Error as exc:
        raise UsageError(f"{p}: cannot be opened ({_reason(exc)})") from None


def _reason(exc: apsw.Error) -> str:
    """SQLite's own words, without APSW's class name: 'database disk image is malformed'."""
    text = str(exc)
    return text.split(": ", 1)[1] if ": " in text else text
