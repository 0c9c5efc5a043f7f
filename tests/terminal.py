"""Running ``d1bench`` on a real terminal (a pty) and pressing Ctrl-C once its progress shows."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest


def interrupt_on_terminal(argv: list[object], marker: str, *, settle: float = 0.5,
               timeout: float = 300) -> tuple[int, str, list[str]]:
    """Run ``d1bench ARGV`` with stderr on a terminal, press Ctrl-C once ``marker`` is drawn.

    The live progress line (which contains ``marker``) says the work is under
    way.  Returns the exit status, stdout, and stderr's lines as a terminal
    shows them (each line's last redraw).
    """
    master, slave = pty.openpty()
    # A terminal 120 columns wide: with none, tqdm has no room to draw its bar.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "d1bench", *map(str, argv)],
                            stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + timeout
        while marker.encode() not in seen:
            assert proc.poll() is None, (proc.returncode, seen)
            assert time.monotonic() < deadline, f"no progress line: {seen!r}"
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    seen += os.read(master, 4096)
                except OSError:  # EIO: the child is gone
                    pytest.fail(f"ended before Ctrl-C: {proc.wait()} {seen.decode()!r}")
        time.sleep(settle)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = seen.decode(errors="replace").replace("\r\n", "\n")
    shown = [line.rsplit("\r", 1)[-1].strip() for line in text.split("\n")]
    return proc.returncode, out, [line for line in shown if line]
