"""Loopback HTTP servers for testing the D1 client: a fault-injecting proxy, and a D1 double.

:class:`FaultProxy` sits between the D1 client and a D1 REST endpoint (the
local D1, usually) on 127.0.0.1 and, for a chosen share of requests, does
what the internet and D1 do on a bad day: drops the connection without an
answer, answers one of D1's retryable error messages, answers 429 with a
``retry-after``, answers a 5xx, or answers late.  Which request gets which
fault is drawn from a seeded generator in arrival order, so a run repeats
with its seed (and exactly, with one request in flight); every decision is
counted, so a test can reconcile the client's recorded attempts with what
was injected.

:class:`SQLiteD1Server` answers the same REST shape over an SQLite file of its
own, for protocol tests that need no Node.js.  Its ``meta`` is approximate
(rows read = rows returned); use the local D1 for anything that measures.

Both run their own event loop on a daemon thread, so synchronous code (and
pytest) can use them with ``with``.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import ssl
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["FAULTS", "RETRYABLE_SENTENCES", "FaultProxy", "SQLiteD1Server"]

#: Fault kinds, in the order the generator's draw is compared against their rates.
FAULTS = ("drop", "retryable_message", "rate_limit", "server_error", "slow", "lost_response",
          "overloaded")

#: D1's transient failures as it words them.
RETRYABLE_SENTENCES = (
    "Network connection lost.",
    "Internal error in D1 DB storage caused object to be reset.",
    "D1 DB reset because its code was updated.",
    "Cannot resolve D1 DB due to transient issue on remote node.",
    "Can't read from request stream because client disconnected.",
)


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "application/json"


def _envelope(status: int, code: int, message: str,
              headers: tuple[tuple[str, str], ...] = ()) -> _Response:
    body = {"success": False, "errors": [{"code": code, "message": message}], "messages": [],
            "result": None}
    return _Response(status, json.dumps(body).encode(), headers)


class _LoopbackServer:
    """An HTTP/1.1 keep-alive server on 127.0.0.1, running on its own thread."""

    def __init__(self, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self.requested_port = port
        self.tls = tls
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def origin(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> _LoopbackServer:
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(asyncio.start_server(
                    self._client, "127.0.0.1", self.requested_port, limit=1 << 20,
                    ssl=self.tls))
                self.port = self._server.sockets[0].getsockname()[1]
                loop.run_until_complete(self._started())
            except BaseException as exc:  # noqa: BLE001 - reported to start()'s caller
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._stopping())
            loop.close()

        self._thread = threading.Thread(target=run, name=type(self).__name__, daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = None

    async def _started(self) -> None:
        """Hook: runs on the server's loop once it listens."""

    async def _stopping(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await asyncio.sleep(0)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0") or 0)
                body = await reader.readexactly(length) if length else b""
                response = await self.handle(_Request(method, target, headers, body))
                if response is None:  # the handler dropped the connection on purpose
                    writer.transport.abort()
                    return
                try:
                    phrase = HTTPStatus(response.status).phrase
                except ValueError:
                    phrase = ""
                out = [f"HTTP/1.1 {response.status} {phrase}",
                       f"Content-Type: {response.content_type}",
                       f"Content-Length: {len(response.body)}"]
                out += [f"{k}: {v}" for k, v in response.headers]
                writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + response.body)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    async def handle(self, request: _Request) -> _Response | None:
        raise NotImplementedError


class FaultProxy(_LoopbackServer):
    """Forward D1 REST requests to ``upstream_base_url``, injecting faults.

    Args:
        upstream_base_url: e.g. a ``LocalD1``'s ``base_url``.
        seed: seeds the fault draws (one per request, in arrival order).
        drop: share of requests whose connection is closed unanswered, before
            forwarding (the database never sees them).
        retryable_message: share answered with one of D1's retryable messages
            (HTTP 400, code 7500), not forwarded.
        rate_limit: share answered 429 with ``retry-after: <retry_after>``, not forwarded.
        server_error: share answered 500 (an envelope) or 502 (an HTML page), not forwarded.
        slow: share forwarded after ``slow_ms`` milliseconds.
        lost_response: share forwarded, then dropped before the answer reaches
            the client: the database *did* run them (the case that makes
            retrying writes unsafe).  0 by default.
        overloaded: share answered 429 with D1's "overloaded" message (code
            7429), which a client must not retry.  0 by default.
        script: faults for the first requests, in order (``"ok"`` for none);
            the random draws take over when it runs out.

    After a run, :attr:`counts` says how many requests arrived and what each got,
    and :attr:`log` lists ``(sequence, fault, sql)`` per request (``sql``: the
    statement's first 80 characters, or ``"batch"``), so a test can leave out
    requests that are not its own.
    """

    def __init__(self, upstream_base_url: str, *, seed: int = 0, drop: float = 0.02,
                 retryable_message: float = 0.02, rate_limit: float = 0.02,
                 server_error: float = 0.02, slow: float = 0.02, slow_ms: float = 200.0,
                 retry_after: float = 1, lost_response: float = 0.0, overloaded: float = 0.0,
                 script: Sequence[str] = (), port: int = 0) -> None:
        super().__init__(port)
        parts = urlsplit(upstream_base_url)
        if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("FaultProxy forwards to a loopback http:// endpoint only")
        self.upstream_base_url = upstream_base_url.rstrip("/")
        self._upstream_origin = f"{parts.scheme}://{parts.netloc}"
        self._base_path = parts.path.rstrip("/")
        self.rates = {"drop": drop, "retryable_message": retryable_message,
                      "rate_limit": rate_limit, "server_error": server_error, "slow": slow,
                      "lost_response": lost_response, "overloaded": overloaded}
        if sum(self.rates.values()) > 1:
            raise ValueError("fault rates add up to more than 1")
        unknown = set(script) - set(FAULTS) - {"ok"}
        if unknown:
            raise ValueError(f"unknown faults in script: {sorted(unknown)}")
        self.seed = seed
        self.slow_ms = slow_ms
        self.retry_after = retry_after
        self._script = list(script)
        self._rng = random.Random(seed)
        self.counts: Counter[str] = Counter()
        self.log: list[tuple[int, str, str]] = []
        self._pool: Any = None

    @property
    def base_url(self) -> str:
        """The proxy's API root: point a D1 client here instead of at the upstream."""
        return f"{self.origin}{self._base_path}"

    async def _started(self) -> None:
        from d1bench.targets.d1._http import HTTPPool

        self._pool = HTTPPool(self._upstream_origin, max_connections=128)

    async def _stopping(self) -> None:
        if self._pool is not None:
            self._pool.close()
        await super()._stopping()

    def _draw(self) -> str:
        if self._script:
            return self._script.pop(0)
        r = self._rng.random()
        edge = 0.0
        for fault in FAULTS:
            edge += self.rates[fault]
            if r < edge:
                return fault
        return "ok"

    async def handle(self, request: _Request) -> _Response | None:
        fault = self._draw()
        seq = self.counts["requests"]
        self.counts["requests"] += 1
        self.counts[fault] += 1
        self.log.append((seq, fault, _sql_of(request.body)))
        if fault == "drop":
            return None
        if fault == "retryable_message":
            return _envelope(400, 7500, self._rng.choice(RETRYABLE_SENTENCES))
        if fault == "rate_limit":
            return _envelope(429, 971, "Please wait and consider throttling your request speed",
                             (("Retry-After", f"{self.retry_after:g}"),))
        if fault == "overloaded":
            return _envelope(429, 7429, "D1 DB is overloaded. Requests queued for too long.")
        if fault == "server_error":
            if self._rng.random() < 0.5:
                return _envelope(500, 7500, "Internal server error")
            return _Response(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                             content_type="text/html")
        if fault == "slow":
            await asyncio.sleep(self.slow_ms / 1000)
        response = await self._forward(request)
        if fault == "lost_response":
            return None
        return response

    async def _forward(self, request: _Request) -> _Response:
        keep = ("authorization", "content-type", "accept")
        headers = "".join(f"{k}: {v}\r\n" for k, v in request.headers.items() if k in keep)
        try:
            upstream = await self._pool.request(request.method, request.target,
                                                headers.encode("latin-1"), request.body,
                                                timeout=60.0)
        except Exception as exc:  # noqa: BLE001 - the upstream failed on its own: say so as a gateway would
            self.counts["upstream_failed"] += 1
            return _envelope(502, 7500, f"fault proxy: upstream failed: {type(exc).__name__}")
        self.counts["forwarded"] += 1
        passed = tuple((k, v) for k, v in upstream.headers.items() if k == "retry-after")
        return _Response(upstream.status, upstream.body, passed,
                         upstream.headers.get("content-type", "application/json"))


def _sql_of(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(doc, dict):
        return ""
    return "batch" if "batch" in doc else str(doc.get("sql", ""))[:80]


_API = re.compile(r"^/client/v4/accounts/([^/]+)/d1/database(?:/([^/]+)/(query|raw))?/?$")


class SQLiteD1Server(_LoopbackServer):
    """D1's REST API over a local SQLite database, for tests without Node.js.

    Answers ``POST .../query`` and ``.../raw`` (single statements and batches),
    ``GET /accounts/{id}/d1/database?name=...``, and D1's auth (401/10000),
    account (403/7403) and database (404/7404) errors.  ``meta_extra`` is
    merged into every statement's ``meta`` (to play remote D1's extra fields);
    ``tls`` serves https with that server-side context.
    """

    def __init__(self, path: str = ":memory:", *, token: str = "test-token",
                 account_id: str = "test-account", database_id: str = "test-database",
                 database_name: str = "test-db", meta_extra: dict[str, Any] | None = None,
                 port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(port, tls)
        import apsw

        self.db = apsw.Connection(path)
        self.token = token
        self.account_id = account_id
        self.database_id = database_id
        self.database_name = database_name
        self.meta_extra = dict(meta_extra or {})
        self.requests = 0

    @property
    def base_url(self) -> str:
        return f"{self.origin}/client/v4"

    async def handle(self, request: _Request) -> _Response | None:
        self.requests += 1
        parts = urlsplit(request.target)
        match = _API.match(parts.path)
        if not match:
            return _envelope(404, 7000, "No route for that URI")
        if request.headers.get("authorization", "") != f"Bearer {self.token}":
            return _envelope(401, 10000, "Authentication error")
        account, database, endpoint = (unquote(g) if g else g for g in match.groups())
        if account != self.account_id:
            return _envelope(403, 7403, "The given account is not valid or is not authorized "
                             "to access this service")
        if database is None:
            wanted = parse_qs(parts.query).get("name", [""])[0]
            found = [{"uuid": self.database_id, "name": self.database_name}]
            found = [d for d in found if wanted in d["name"]]  # a search, as the API's is
            return _Response(200, json.dumps({"success": True, "errors": [], "messages": [],
                                              "result": found}).encode())
        if database != self.database_id:
            return _envelope(404, 7404, f"The database {database} could not be found")
        try:
            doc = json.loads(request.body)
            items = doc.get("batch", [doc])
            results = self._run(items, endpoint)
        except (ValueError, KeyError, TypeError) as exc:
            return _envelope(400, 7400, f"The request is malformed: {exc}")
        except Exception as exc:  # noqa: BLE001 - an SQLite error, worded as D1 words it
            return _envelope(400, 7500, f"{exc}: {type(exc).__name__.upper()}")
        return _Response(200, json.dumps({"success": True, "errors": [], "messages": [],
                                          "result": results}).encode())

    def _run(self, items: list[dict[str, Any]], endpoint: str) -> list[dict[str, Any]]:
        out = []
        with self.db:  # a batch is one transaction, as on D1
            for item in items:
                cursor = self.db.cursor()
                before = self.db.total_changes()
                cursor.execute(item["sql"], item.get("params") or [])
                try:  # before the rows: a finished statement has no description
                    columns = [d[0] for d in cursor.getdescription()]
                except Exception:  # noqa: BLE001 - statements without result columns
                    columns = []
                rows = [list(r) for r in cursor]
                changes = self.db.total_changes() - before
                meta = {"served_by": "sqlite-double", "duration": 0.0, "changes": changes,
                        "last_row_id": self.db.last_insert_rowid(), "changed_db": changes > 0,
                        "size_after": 0, "rows_read": len(rows), "rows_written": changes,
                        **self.meta_extra}
                results: Any = ({"columns": columns, "rows": rows} if endpoint == "raw"
                                else [dict(zip(columns, r)) for r in rows])
                out.append({"results": results, "success": True, "meta": meta})
        return out
