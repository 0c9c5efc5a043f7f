"""A tiny asyncio server on 127.0.0.1, run in a daemon thread, for protocol tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def serve_in_thread(handler: Handler) -> tuple[asyncio.AbstractEventLoop, int]:
    """Start ``handler`` as a loopback server; return its loop and port once it listens."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: list[int] = []

    def run() -> None:
        server = loop.run_until_complete(asyncio.start_server(handler, "127.0.0.1", 0))
        port.append(server.sockets[0].getsockname()[1])
        ready.set()
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    ready.wait()
    return loop, port[0]
