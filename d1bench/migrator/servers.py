"""Throwaway PostgreSQL and MariaDB servers on 127.0.0.1, for tests, notebooks and benchmarks.

A migration is only proven against the real thing, so the suite, notebook 07
and ``benchmarks/migrate.py`` start Debian's own servers in a temporary data
directory on a free port, with a password set, and stop them afterwards.

PostgreSQL refuses to run as root (and CI runs as root), so both servers run
as an unprivileged system user (``postgres``/``mysql`` as Debian's packages
create them, else ``nobody``) through ``runuser``; the data directory is made
theirs.  Durability is switched off (fsync, synchronous commit): these
databases live for one session and start in a couple of seconds.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from d1bench.targets._procgroup import stop_group

__all__ = ["LocalServer", "mariadb_server", "postgres_server", "server_binaries"]


@dataclass(frozen=True)
class LocalServer:
    """A running server: connect with :meth:`url` (the password is kept out of ``repr``)."""

    kind: str  # "postgresql" or "mysql"
    host: str
    port: int
    user: str
    password: str
    database: str

    def url(self, database: str | None = None, *, with_password: bool = True) -> str:
        """``postgresql://user:password@127.0.0.1:PORT/DB`` (or ``mysql://...``)."""
        secret = f":{self.password}" if with_password else ""
        return f"{self.kind}://{self.user}{secret}@{self.host}:{self.port}/{database or self.database}"

    def __repr__(self) -> str:
        return f"LocalServer({self.url(with_password=False)!r})"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _system_user(*names: str) -> str:
    for name in names:
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    return "nobody"


def server_binaries() -> dict[str, Path | None]:
    """Where Debian's ``postgresql`` and ``mariadb-server`` put their binaries (None: missing)."""
    pg = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    found: dict[str, Path | None] = {"initdb": Path(pg[-1]) if pg else None}
    found["postgres"] = found["initdb"].with_name("postgres") if found["initdb"] else None
    for name, candidates in (("mariadbd", ("/usr/sbin/mariadbd", "/usr/sbin/mysqld")),
                             ("mariadb-install-db", ("/usr/bin/mariadb-install-db",
                                                     "/usr/bin/mysql_install_db"))):
        found[name] = next((Path(c) for c in candidates if Path(c).is_file()), None)
    return found


def _as(user: str, argv: list[str]) -> list[str]:
    """``argv`` run as ``user`` when we are root (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", user, "--", *argv]


def _workdir(user: str, prefix: str) -> Path:
    # Not under pytest's tmp_path: its parents are private to root, and the
    # server's user must reach the data directory.
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(0o700)
    return path


def _wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: "
                               f"{log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on port {port} within {timeout:.0f} s")


def _need(path: Path | None, package: str) -> Path:
    if path is None:
        raise RuntimeError(f"Debian's {package} is not installed: `make system-deps` installs it")
    return path


@contextlib.contextmanager
def _running(owner: str, work: Path, init: list[str],
             serve: Callable[[int], list[str]]) -> Iterator[int]:
    """Initialise a data directory (``init``) and start the server (``serve(port)``) as
    ``owner`` on a free loopback port; yield the port, then stop it and remove ``work``."""
    log = work / "server.log"
    proc = None
    try:
        subprocess.run(_as(owner, init), check=True, capture_output=True, timeout=120)
        port = _free_port()
        with open(log, "wb") as out:
            proc = subprocess.Popen(_as(owner, serve(port)), stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        _wait_port(port, proc, log)
        yield port
    finally:
        if proc is not None:
            stop_group(proc.pid, proc)
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def postgres_server(password: str, *, user: str = "d1bench",
                    database: str = "postgres") -> Iterator[LocalServer]:
    """A PostgreSQL server for the life of the ``with`` block (scram-sha-256 password auth)."""
    bins = server_binaries()
    initdb = _need(bins["initdb"], "postgresql")
    owner = _system_user("postgres")
    work = _workdir(owner, "d1bench-pg-")
    pwfile = work / "pw"
    pwfile.write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(pwfile, owner)
    init = [str(initdb), "-D", str(work / "data"), "-U", user, f"--pwfile={pwfile}",
            "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"]

    def serve(port: int) -> list[str]:
        return [str(bins["postgres"]), "-D", str(work / "data"), "-p", str(port),
                "-h", "127.0.0.1", "-k", str(work), "-c", "fsync=off",
                "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                "-c", "shared_buffers=32MB", "-c", "max_connections=20"]

    with _running(owner, work, init, serve) as port:
        pwfile.unlink()
        yield LocalServer("postgresql", "127.0.0.1", port, user, password, database)


@contextlib.contextmanager
def mariadb_server(password: str, *, user: str = "d1bench",
                   database: str = "mysql") -> Iterator[LocalServer]:
    """A MariaDB server for the life of the ``with`` block; ``user`` may connect from anywhere."""
    import pymysql

    bins = server_binaries()
    install = _need(bins["mariadb-install-db"], "mariadb-server")
    mariadbd = _need(bins["mariadbd"], "mariadb-server")
    owner = _system_user("mysql")
    work = _workdir(owner, "d1bench-mariadb-")
    sock = work / "mysqld.sock"
    init = [str(install), "--no-defaults", f"--datadir={work / 'data'}",
            "--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve",
            f"--user={owner}"]

    def serve(port: int) -> list[str]:
        return [str(mariadbd), "--no-defaults", f"--datadir={work / 'data'}", f"--socket={sock}",
                f"--port={port}", "--bind-address=127.0.0.1", "--skip-name-resolve",
                "--skip-log-bin", f"--pid-file={work / 'mysqld.pid'}",
                "--innodb-buffer-pool-size=32M", "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0", "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_bin"]

    with _running(owner, work, init, serve) as port:
        # root has no password on the socket; give the test user a real one.
        root = pymysql.connect(unix_socket=str(sock), user="root", password="")
        try:
            with root.cursor() as cur:
                cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
                cur.execute("GRANT ALL PRIVILEGES ON *.* TO %s@'%%' WITH GRANT OPTION", (user,))
        finally:
            root.close()
        yield LocalServer("mysql", "127.0.0.1", port, user, password, database)
