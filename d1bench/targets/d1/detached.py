"""Local D1 servers that outlive the process that started them (``d1bench d1-local``).

The state of a detached server (pid, port, where its token file is) lives in
``state.json`` of its state directory (default :func:`~d1bench.targets.d1.local.state_dir`);
the token itself in a 0600 file beside it, never in the state.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from d1bench._atomic import write_atomic
from d1bench.errors import UsageError
from d1bench.targets._procgroup import StopFailed, process_group, stop_group
from d1bench.targets.d1.local import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_DATABASE_ID,
    LocalD1,
    LocalD1Error,
    _read_state,
    state_dir,
)

__all__ = ["local_status", "start_detached", "stop_detached"]


def start_detached(persist_dir: str | Path | None = None, *, port: int | None = None,
                   token: str | None = None, directory: str | Path | None = None,
                   database_id: str = DEFAULT_DATABASE_ID,
                   account_id: str = DEFAULT_ACCOUNT_ID) -> dict[str, Any]:
    """Start a local D1 that outlives this process; return its state (without the token).

    The state goes to ``directory/state.json`` (default :func:`state_dir`), the
    token to ``directory/token`` (mode 0600), node's output to ``directory/node.*``.
    """
    directory = Path(directory) if directory else state_dir()
    running = _read_state(directory)
    if running is not None:
        raise UsageError(f"{directory / 'state.json'}: a local D1 already runs "
                         f"(pid {running['pid']}, port {running['port']}); "
                         "stop it with `d1bench d1-local stop`")
    directory.mkdir(parents=True, exist_ok=True)
    persist = Path(persist_dir) if persist_dir is not None else directory / "persist"
    local = LocalD1(persist, port=port, token=token, database_id=database_id,
                    account_id=account_id)
    local.start(log_dir=directory, detached=True)
    token_file = directory / "token"
    try:
        write_atomic(token_file, local.token + "\n", force=True, mode=0o600)
        state = {"pid": local.pid, "port": local.port, "base_url": local.base_url,
                 "account_id": local.account_id, "database_id": local.database_id,
                 "persist_dir": str(local.persist_dir), "sqlite_path": str(local.sqlite_path),
                 "token_file": str(token_file.resolve()), "log": str(directory / "node.err"),
                 "ready_seconds": round(local.ready_seconds, 3), "started_at": time.time()}
        write_atomic(directory / "state.json", json.dumps(state, indent=2) + "\n", force=True,
                     mode=0o644)
    except BaseException:
        local.stop()
        raise
    local._release()
    return state


def stop_detached(directory: str | Path | None = None,
                  timeout: float = 10.0) -> dict[str, Any] | None:
    """Stop the detached local D1 of ``directory``; return its last state, or ``None``."""
    directory = Path(directory) if directory else state_dir()
    state = _read_state(directory)
    if state is not None:
        try:
            stop_group(state["pid"], None, timeout)
        except StopFailed as exc:
            raise LocalD1Error(str(exc)) from None
    (directory / "state.json").unlink(missing_ok=True)
    return state


def local_status(directory: str | Path | None = None) -> dict[str, Any]:
    """Whether a detached local D1 runs, and where (never the token)."""
    directory = Path(directory) if directory else state_dir()
    state = _read_state(directory)
    if state is None:
        return {"running": False, "state_dir": str(directory)}
    try:
        LocalD1.attach(directory).health()
        healthy, problem = True, None
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        healthy, problem = False, str(exc)
    return {"running": True, "healthy": healthy, "problem": problem, **state,
            "processes": process_group(state["pid"])}
