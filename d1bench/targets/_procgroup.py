"""Process groups from /proc: list a group's members, stop a group for good.

A server started with ``start_new_session=True`` leads its own process group,
and its children (workerd, under Miniflare's node) stay in it.  Killing by
group therefore reaches a child whose parent died without stopping it, and
the group id cannot be reused while any member lives.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

__all__ = ["StopFailed", "alive", "process_group", "stop_group"]


class StopFailed(RuntimeError):
    """Members of a process group survived SIGKILL."""


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state first), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def process_group(pgid: int) -> dict[int, str]:
    """Live processes of process group ``pgid``, as pid -> command name (from /proc)."""
    members = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            with contextlib.suppress(OSError):
                members[int(entry.name)] = (entry / "comm").read_text().strip()
    return members


def _wait_gone(pids: Iterable[int], deadline: float) -> set[int]:
    left = {p for p in pids if alive(p)}
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = {p for p in left if alive(p)}
    return left


def stop_group(pid: int, proc: subprocess.Popen | None = None, timeout: float = 10.0) -> None:
    """Stop the group led by ``pid`` (``proc``, if it is our child, gets waited for).

    SIGTERM to the leader, up to ``timeout`` seconds for it to exit; then
    SIGTERM to whatever is left of the group, and SIGKILL 2 s later.
    """
    members = set(process_group(pid)) | {pid}
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
    else:
        _wait_gone({pid}, deadline)
    # A leader stops its children on SIGTERM (Miniflare stops workerd); one that
    # died some other way left them in the group, reached by group id.
    for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        members |= set(process_group(pid))
        if not _wait_gone(members, time.monotonic()):
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace)
        if not _wait_gone(members, time.monotonic() + grace):
            break
    else:
        raise StopFailed(f"processes {sorted(_wait_gone(members, 0))} of group {pid} did not stop")
