"""When to show live progress: on a terminal, unless turned off.

A progress bar redraws itself with carriage returns, which in a CI log or a
file piped to ``less`` is one long line of noise; so bars are drawn only when
their stream is a terminal, and long work that is not watched on a terminal
prints at most a plain line now and then (see the replay's progress line).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import TextIO

__all__ = ["is_terminal", "quiet_logger", "tqdm_disable"]


@contextlib.contextmanager
def quiet_logger(name: str, level: int = logging.CRITICAL) -> Iterator[None]:
    """Keep a library's log lines below ``level`` off the terminal for the ``with`` block,
    where d1bench reports what happened itself (in one line, or by handling the case)."""
    logger = logging.getLogger(name)
    old = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(old)


def is_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default stderr) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def tqdm_disable(progress: bool) -> bool | None:
    """tqdm's ``disable``: ``None`` lets tqdm draw only on a terminal; ``True`` never.

    >>> tqdm_disable(True) is None, tqdm_disable(False)
    (True, True)
    """
    return None if progress else True
