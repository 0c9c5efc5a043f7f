"""A lean HTTP/1.1 keep-alive client on asyncio, for D1's hot path.

Why not httpx: with 32 requests in flight against a local D1, httpx spent
more CPU per request than the database did (it measured about a quarter of a
raw socket client's throughput, and both share two cores with the server).
A D1 call is one small POST and one JSON answer, so this module does only that:
one ``asyncio.Protocol`` per connection, an incremental response parser
(Content-Length, chunked, or read-until-close), TLS through :mod:`ssl`, and a
pool of idle connections bounded by a semaphore.  ``benchmarks/d1_client.py``
measures it against httpx and a raw streams client.

Nothing here knows about D1, retries or tokens: headers arrive pre-built as
bytes from the caller, and exceptions never include them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

__all__ = ["ConnectionDropped", "HTTPPool", "HTTPResponse", "LoopThread", "ResponseTimeout"]

T = TypeVar("T")

_MAX_HEAD = 64 * 1024


class ConnectionDropped(ConnectionError):
    """The server closed the connection before a complete response arrived."""


class ResponseTimeout(TimeoutError):
    """No complete response within the request's timeout."""


@dataclass(frozen=True, slots=True)
class HTTPResponse:
    """A complete response: status, lower-cased headers, and the whole body."""

    status: int
    headers: dict[str, str]
    body: bytes


class _Conn(asyncio.Protocol):
    """One keep-alive connection, parsing responses as bytes arrive."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.keep_alive = True
        self.idle_since = 0.0
        self.received = 0
        self._buf = bytearray()
        self._waiter: asyncio.Future[HTTPResponse] | None = None
        self._reset()

    def _reset(self) -> None:
        self._status = 0
        self._headers: dict[str, str] | None = None
        self._length = -1
        self._chunked = False
        self._until_close = False
        self._pos = 0
        self._parts: list[bytes] = []

    # -- asyncio.Protocol ---------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's Protocol is typed for every transport; a stream connection gets this one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        self.received += len(data)
        if self._waiter is None:
            # Bytes nobody asked for: the stream is out of step, never reuse it.
            self.keep_alive = False
            self.abort()
            return
        try:
            self._advance()
        except Exception as exc:  # noqa: BLE001 - a malformed response fails this request only
            self.keep_alive = False
            self._fail(exc)
            self.abort()

    def eof_received(self) -> bool:
        self.keep_alive = False
        if self._waiter is not None and self._until_close and self._headers is not None:
            self._finish(bytes(self._buf))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.keep_alive = False
        if self._waiter is not None:
            if self._until_close and self._headers is not None:
                self._finish(bytes(self._buf))
            else:
                why = f": {exc}" if exc else ""
                self._fail(ConnectionDropped(
                    f"connection closed before a complete response "
                    f"({self.received} bytes received){why}"))

    # -- requests -----------------------------------------------------------
    def send(self, data: bytes) -> asyncio.Future[HTTPResponse]:
        waiter = self.loop.create_future()
        self._waiter = waiter
        self._reset()
        self.received = 0
        assert self.transport is not None
        self.transport.write(data)
        return waiter

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, exc: BaseException) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _finish(self, body: bytes) -> None:
        waiter, self._waiter = self._waiter, None
        assert self._headers is not None
        if waiter is not None and not waiter.done():
            waiter.set_result(HTTPResponse(self._status, self._headers, body))

    def _advance(self) -> None:
        buf = self._buf
        while self._headers is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > _MAX_HEAD:
                    raise ConnectionDropped("response headers larger than 64 KiB")
                return
            self._parse_head(bytes(buf[:end]).decode("latin-1"))
            del buf[:end + 4]
            if 100 <= self._status < 200:  # informational: the real answer follows
                self._reset()
        if self._length >= 0:
            if len(buf) >= self._length:
                body = bytes(buf[:self._length])
                del buf[:self._length]
                self._finish(body)
        elif self._chunked:
            self._advance_chunks()
        # until-close bodies complete in eof_received / connection_lost

    def _parse_head(self, head: str) -> None:
        lines = head.split("\r\n")
        version, _, rest = lines[0].partition(" ")
        if not version.startswith("HTTP/"):
            raise ConnectionDropped(f"not an HTTP response: {lines[0][:80]!r}")
        self._status = int(rest[:3])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        self._headers = headers
        connection = headers.get("connection", "").lower()
        self.keep_alive = ("close" not in connection) and (
            version != "HTTP/1.0" or "keep-alive" in connection)
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._chunked = True
        elif "content-length" in headers:
            self._length = int(headers["content-length"])
        elif self._status in (204, 304) or 100 <= self._status < 200:
            self._length = 0
        else:
            self._until_close = True
            self.keep_alive = False

    def _advance_chunks(self) -> None:
        buf = self._buf
        pos = self._pos
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(bytes(buf[pos:eol]).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                # trailers (usually none) end with an empty line
                if buf[eol + 2:eol + 4] == b"\r\n":
                    end = eol + 4
                else:
                    t = buf.find(b"\r\n\r\n", eol + 2)
                    if t < 0:
                        break
                    end = t + 4
                body = b"".join(self._parts)
                del buf[:end]
                self._pos = 0
                self._finish(body)
                return
            start = eol + 2
            if len(buf) < start + size + 2:
                break
            self._parts.append(bytes(buf[start:start + size]))
            pos = start + size + 2
        self._pos = pos


class HTTPPool:
    """Keep-alive connections to one origin, used from one event loop.

    ``max_connections`` bounds both the open connections and the requests in
    flight; further callers wait their turn.  Idle connections older than
    ``keepalive_expiry`` seconds are closed rather than reused, because a
    server that timed them out may close them while our request is on the wire,
    and a dropped request is then indistinguishable from a real failure.
    ``reuse=False`` closes every connection after its response (one TCP
    connect, and TLS handshake, per request), to measure what keep-alive saves.
    """

    def __init__(self, base_url: str, *, max_connections: int = 32,
                 connect_timeout: float = 10.0, keepalive_expiry: float = 4.0,
                 ssl_context: ssl.SSLContext | None = None, reuse: bool = True) -> None:
        self.reuse = reuse
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.path_prefix = parts.path.rstrip("/")
        default_port = self.port == (443 if self.scheme == "https" else 80)
        netloc = self.host if default_port else f"{self.host}:{self.port}"
        if ":" in self.host and not default_port:  # IPv6 literal
            netloc = f"[{self.host}]:{self.port}"
        self._host_line = f"Host: {netloc}\r\n".encode("ascii")
        self._ssl: ssl.SSLContext | None = None
        if self.scheme == "https":
            self._ssl = ssl_context or ssl.create_default_context()
        self.connect_timeout = connect_timeout
        self.keepalive_expiry = keepalive_expiry
        self.max_connections = max_connections
        self._sem = asyncio.Semaphore(max_connections)
        self._idle: list[_Conn] = []
        self._lines: dict[tuple[str, str], bytes] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        #: connections opened over the pool's life (reuse = requests - opened)
        self.opened = 0

    def __repr__(self) -> str:
        return f"HTTPPool({self.scheme}://{self.host}:{self.port}, max={self.max_connections})"

    async def request(self, method: str, path: str, headers: bytes = b"",
                      body: bytes = b"", *, timeout: float = 30.0) -> HTTPResponse:
        """Send one request and return the complete response.

        ``path`` is appended to the base URL's path; ``headers`` is pre-encoded
        ``Name: value\\r\\n`` lines.  Raises :class:`ConnectionDropped`,
        :class:`ResponseTimeout` or :class:`OSError` (connect failures).
        """
        line = self._lines.get((method, path))
        if line is None:
            line = f"{method} {self.path_prefix}{path} HTTP/1.1\r\n".encode("latin-1")
            line += self._host_line
            if len(self._lines) < 256:
                self._lines[(method, path)] = line
        request = b"".join((
            line, headers,
            b"Content-Length: %d\r\n\r\n" % len(body) if body or method != "GET" else b"\r\n",
            body,
        ))
        async with self._sem:
            loop = asyncio.get_running_loop()
            conn = self._checkout(loop)
            if conn is None:
                conn = await self._connect(loop)
            waiter = conn.send(request)
            timer = loop.call_later(timeout, _expire, conn, waiter, timeout)
            try:
                response = await waiter
            except BaseException:
                conn.abort()
                raise
            finally:
                timer.cancel()
            if conn.keep_alive and not conn.closed and self.reuse:
                conn.idle_since = loop.time()
                self._idle.append(conn)
            else:
                conn.close()
            return response

    def _checkout(self, loop: asyncio.AbstractEventLoop) -> _Conn | None:
        idle = self._idle
        now = loop.time()
        while idle:
            conn = idle.pop()
            if conn.closed or now - conn.idle_since > self.keepalive_expiry:
                conn.close()
                continue
            return conn
        return None

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Conn:
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Conn(loop), self.host, self.port, ssl=self._ssl,
                                       server_hostname=self.host if self._ssl else None),
                self.connect_timeout)
        except TimeoutError:
            raise ResponseTimeout(
                f"connect to {self.host}:{self.port} timed out after {self.connect_timeout:g} s"
            ) from None
        self.opened += 1
        return conn

    def close(self) -> None:
        """Close the idle connections (call from the pool's own loop)."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _expire(conn: _Conn, waiter: asyncio.Future[HTTPResponse], timeout: float) -> None:
    if not waiter.done():
        waiter.set_exception(ResponseTimeout(f"no complete response within {timeout:g} s"))
        conn.abort()


class LoopThread:
    """An event loop on a daemon thread, for callers that are not async.

    Synchronous connections of every worker thread submit their requests here,
    so that they share one keep-alive pool.
    """

    def __init__(self, name: str = "d1bench-http") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for its result in this thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def call(self, fn: Any, *args: Any) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def stop(self) -> None:
        if self.loop.is_closed():
            return

        async def _drain() -> None:
            # Requests still in flight (the caller was interrupted by Ctrl-C) are
            # cancelled and awaited here, or the loop's closing would destroy
            # them pending and print asyncio's "Task was destroyed" noise.
            me = asyncio.current_task()
            pending = [t for t in asyncio.all_tasks() if t is not me]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            # let aborted transports deliver connection_lost before the loop stops
            await asyncio.sleep(0)

        with contextlib.suppress(TimeoutError, RuntimeError):  # stopping regardless
            asyncio.run_coroutine_threadsafe(_drain(), self.loop).result(timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()
