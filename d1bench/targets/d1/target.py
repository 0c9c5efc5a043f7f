"""Cloudflare D1 over its REST API, and the same client for the local D1.

Every request goes through one path, :meth:`D1Target._call`:

1. the read-only guard (a connection without ``allow_writes`` refuses any
   statement that is not read-only, before it is sent);
2. D1's limits (:mod:`d1bench.targets.d1.limits`);
3. the POST on a keep-alive pool of the calling event loop (synchronous
   connections share one pool on a background loop thread);
4. on failure, classification and, for read-only statements only (unless
   ``retry_writes``), exponential backoff with full jitter, honouring a 429's
   ``retry-after``; every attempt's error class is kept.

``meta`` is copied whole: the five fields :class:`~d1bench.targets.base.Meta`
names, and everything else D1 sent in ``Meta.extra``.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import threading
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlsplit

from d1bench.errors import TargetError, UsageError
from d1bench.targets.base import Connection, Params, PlanStep, Result, Target
from d1bench.targets.d1 import config as _config
from d1bench.targets.d1._http import HTTPPool, LoopThread
from d1bench.targets.d1.classify import error_from_exception, error_from_response, redact
from d1bench.targets.d1.guard import guard_read_only, read_only_verdict
from d1bench.targets.d1.limits import check_statement
from d1bench.targets.d1.results import (
    Secret,
    Statement,
    decode,
    merge,
    plan_of,
    statements_of,
)
from d1bench.targets.d1.retry import RetryPolicy, parse_retry_after

if TYPE_CHECKING:
    from d1bench.workload.model import Workload

__all__ = ["D1Connection", "D1Target", "Statement"]



#: One encoder for every request body (``json.dumps`` rebuilds one per call with options).
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class D1Target(Target):
    """A D1 database reached over Cloudflare's REST API (or a local look-alike).

    Args:
        base_url: the API root, ``https://api.cloudflare.com/client/v4`` by default.
        account_id, database_id: which database.
        token: the API token (``Authorization: Bearer``); never shown anywhere.
        retry_writes: retry statements that are not read-only too (CLI ``--retry-writes``).
        max_attempts: sends per request, retries included (Cloudflare's guidance: 5).
        timeout: seconds to wait for one response (D1 stops a query at 30 s).
        concurrency: connections in the keep-alive pool, i.e. requests in flight.
        endpoint: ``raw`` (columns and rows, the faster) or ``query`` (row objects).
        allow_writes: connections may send statements that write (CLI ``--allow-writes``).
        backoff_base, backoff_cap, max_retry_after, seed: see :class:`RetryPolicy`.
        check_limits: check D1's limits before sending (turn off only to probe D1 itself).
        ssl_context: for https, instead of the system's default trust store.
        keep_alive: reuse HTTP connections (``False`` opens one per request, to
            measure what keep-alive is worth).
    """

    kind: ClassVar[str] = "d1"
    exact_rows_read: ClassVar[bool] = True
    supports_async: ClassVar[bool] = True
    supports_concurrency: ClassVar[bool] = True
    guards_writes: ClassVar[bool] = True
    checks_d1_limits: ClassVar[bool] = True
    cli_options: ClassVar[frozenset[str]] = _config.D1_OPTIONS | _config.HTTP_OPTIONS

    def __init__(self, base_url: str = _config.DEFAULT_BASE_URL, account_id: str = "",
                 database_id: str = "", token: str | None = None, *,
                 retry_writes: bool = False, max_attempts: int = 5, timeout: float = 30.0,
                 concurrency: int = 32, endpoint: str = "raw", allow_writes: bool = False,
                 backoff_base: float = 0.05, backoff_cap: float = 2.0,
                 max_retry_after: float = 60.0, seed: int | None = None,
                 check_limits: bool = True, database_name: str | None = None,
                 ssl_context: ssl.SSLContext | None = None, keep_alive: bool = True) -> None:
        if endpoint not in ("raw", "query"):
            raise UsageError(f"endpoint must be 'raw' or 'query', not {endpoint!r}")
        if not account_id or not database_id:
            raise UsageError("a D1 target needs an account id and a database id")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"--base-url {base_url!r}: expected an http(s) URL")
        if parts.username or parts.password:
            raise UsageError("--base-url must not carry credentials; use CLOUDFLARE_API_TOKEN")
        self.base_url = base_url.rstrip("/")
        self.account_id = account_id
        self.database_id = database_id
        self.database_name = database_name
        self.endpoint = endpoint
        self.timeout = timeout
        self.concurrency = concurrency
        self.allow_writes = allow_writes
        self.check_limits = check_limits
        self.ssl_context = ssl_context
        self.keep_alive = keep_alive
        self.policy = RetryPolicy(max_attempts=max_attempts, base=backoff_base, cap=backoff_cap,
                                  max_retry_after=max_retry_after, retry_writes=retry_writes,
                                  seed=seed)
        self._token = Secret(token or "")
        self._headers = Secret(
            ((f"Authorization: Bearer {token}\r\n" if token else "")
             + "Content-Type: application/json\r\nAccept: application/json\r\n").encode("latin-1"))
        base = f"/accounts/{quote(account_id, safe='')}/d1/database/{quote(database_id, safe='')}"
        self._paths = {"raw": f"{base}/raw", "query": f"{base}/query"}
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, HTTPPool] = (
            weakref.WeakKeyDictionary())
        self._last: tuple[asyncio.AbstractEventLoop, HTTPPool] | None = None
        self._thread: LoopThread | None = None
        self._lock = threading.Lock()

    # -- construction ---------------------------------------------------------
    @classmethod
    def from_spec(cls, spec: str, **options: Any) -> D1Target:
        """Open ``d1://ACCOUNT_ID/DATABASE_ID``, ``d1://DATABASE_NAME`` or a wrangler binding.

        Options: ``token`` (default ``CLOUDFLARE_API_TOKEN``), ``account_id``
        (default ``CLOUDFLARE_ACCOUNT_ID``), ``wrangler_config=PATH`` and
        ``binding=NAME``, ``base_url`` (CLI ``--base-url``), ``env`` (a mapping
        used instead of ``os.environ``), and every keyword of the constructor.
        """
        env: Mapping[str, str] = options.pop("env", None) or os.environ
        token = options.pop("token", None) or env.get("CLOUDFLARE_API_TOKEN")
        account = options.pop("account_id", None)
        wrangler = options.pop("wrangler_config", None)
        binding = options.pop("binding", None)
        base_url = options.pop("base_url", None) or _config.DEFAULT_BASE_URL
        parts = _config.parse_spec(spec)
        name: str | None = None
        database: str | None = None
        if wrangler:
            entry = _config.read_wrangler_config(wrangler, binding or (parts[0] if len(parts) == 1
                                                                       else None))
            account = account or entry.account_id
            database, name = entry.database_id, entry.database_name
            if not database and not name:
                raise UsageError(f"{entry.source}: binding {entry.binding!r} has neither "
                                 "database_id nor database_name")
        elif len(parts) == 2:
            account, database = parts
        elif len(parts) == 1:
            if _config.is_uuid(parts[0]):
                database = parts[0]
            else:
                name = parts[0]
        else:
            raise UsageError(f"{spec!r}: name a database (d1://ACCOUNT_ID/DATABASE_ID or "
                             "d1://DATABASE_NAME) or pass --wrangler-config")
        account = account or env.get("CLOUDFLARE_ACCOUNT_ID")
        if not token:
            raise UsageError(f"{spec}: no API token: {_config.TOKEN_ADVICE}")
        if not account:
            raise UsageError(f"{spec}: no account id: write d1://ACCOUNT_ID/DATABASE_ID or "
                             "set CLOUDFLARE_ACCOUNT_ID")
        if not database:
            assert name is not None
            database = _config.resolve_database_name(base_url, account, name, token,
                                                     timeout=options.get("timeout", 30.0))
        return cls(base_url, account, database, token, database_name=name, **options)

    # -- the Target protocol --------------------------------------------------
    @property
    def url(self) -> str:
        return f"d1://{self.account_id}/{self.database_id}"

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(url={self.url!r}, base_url={self.base_url!r}, "
                f"endpoint={self.endpoint!r}, token={self._token!r})")

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(base_url=self.base_url, endpoint=self.endpoint,
                    retry_writes=self.policy.retry_writes, max_attempts=self.policy.max_attempts,
                    concurrency=self.concurrency, timeout_s=self.timeout,
                    keep_alive=self.keep_alive)
        if self.database_name:
            info["database_name"] = self.database_name
        return info

    def connect(self, *, allow_writes: bool | None = None) -> D1Connection:
        """A synchronous connection for one worker thread; all share one keep-alive pool."""
        return D1Connection(self, self.allow_writes if allow_writes is None else allow_writes)

    async def execute_async(self, sql: str, params: Params = (), *,
                            allow_writes: bool | None = None,
                            bookmark: str | None = None) -> Result:
        """Run one statement on the calling event loop's pool.

        ``bookmark`` continues a D1 session (targets with ``supports_sessions``).
        """
        results = await self._call([(sql, params)], batch=False, allow_writes=allow_writes,
                                   extra_headers=self._session_headers(bookmark))
        return merge(results)

    def _session_headers(self, bookmark: str | None) -> bytes:
        """Header lines carrying a session; the REST API has none (Sessions are binding-only)."""
        if bookmark is not None:
            raise UsageError(f"{self.url}: D1's REST API has no sessions; replay through the "
                             "bench Worker (d1-worker: or d1-local) for --session")
        return b""

    async def execute_batch_async(self, statements: Iterable[Statement], *,
                                  allow_writes: bool | None = None) -> list[Result]:
        """Run statements as one atomic D1 batch; one Result per statement."""
        return await self._call(statements_of(statements), batch=True, allow_writes=allow_writes)

    async def explain_async(self, sql: str, params: Params = ()) -> list[PlanStep]:
        result = await self.execute_async(f"EXPLAIN QUERY PLAN {sql}", params)
        return plan_of(result)

    def close(self) -> None:
        """Close every pool's idle connections and stop the background loop."""
        for loop, pool in list(self._pools.items()):
            if loop.is_closed():
                continue
            if loop.is_running():
                loop.call_soon_threadsafe(pool.close)
            else:
                pool.close()
        self._pools.clear()
        self._last = None
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.stop()

    def check_writes(self, workload: Workload, allow_writes: bool | None = None) -> None:
        """Refuse a workload that writes unless writes are allowed here and by the caller."""
        if allow_writes and not self.allow_writes:
            # The connections enforce the target's own setting on every statement, so
            # allowing writes for one run alone would only turn each write into an error.
            raise UsageError(f"{self.url}: open the target with allow_writes=True to "
                             "replay writes (CLI: --allow-writes)")
        guard_read_only(workload, self.allow_writes if allow_writes is None else allow_writes,
                        target=self)

    async def aclose(self) -> None:
        """Close the calling loop's pool (call before ``asyncio.run`` returns)."""
        pool = self._pools.pop(asyncio.get_running_loop(), None)
        self._last = None
        if pool is not None:
            pool.close()
            await asyncio.sleep(0)

    # -- health ---------------------------------------------------------------
    def health(self, tables: Iterable[str] | None = None) -> dict[str, Any]:
        """Check auth, that the database exists and that the schema is there.

        ``tables``: names that must exist (default: at least one table).
        Returns what was found; raises :class:`~d1bench.errors.UsageError`
        saying what to fix.
        """
        if not self._token:
            raise UsageError(f"{self.url}: no API token: {_config.TOKEN_ADVICE}")
        started = time.perf_counter()
        try:
            result = self._sync(self._call([("PRAGMA table_list", ())], batch=False,
                                           allow_writes=False))[0]
        except TargetError as exc:
            raise UsageError(self._advice(exc)) from None
        elapsed = (time.perf_counter() - started) * 1000
        col = {name: i for i, name in enumerate(result.columns)}
        if "name" not in col:
            raise UsageError(f"{self.url}: PRAGMA table_list answered without a name column; "
                             f"is {self.base_url} a D1 API?")
        present = sorted(
            str(row[col["name"]]) for row in result.rows
            if (row[col["schema"]] if "schema" in col else "main") == "main"
            and not str(row[col["name"]]).startswith(("sqlite_", "_cf_")))
        wanted = list(tables or ())
        missing = [t for t in wanted if t not in present]
        if missing:
            raise UsageError(f"{self.url}: tables missing: {', '.join(missing)}; load the corpus "
                             "first (d1bench upload --db CORPUS --target ...)")
        if not present:
            raise UsageError(f"{self.url}: the database has no tables; load a corpus first "
                             "(d1bench upload --db CORPUS --target ...)")
        return {"target": self.url, "ok": True, "auth": "ok", "database": "ok",
                "tables": present, "latency_ms": round(elapsed, 3),
                "served_by_region": result.meta.extra.get("served_by_region")}

    def _advice(self, exc: TargetError) -> str:
        what = f"{self.url} ({self.base_url})"
        if exc.error_class == "auth":
            return f"{what}: the API token was refused ({exc.message}): {_config.TOKEN_ADVICE}"
        if exc.error_class == "not_found":
            return (f"{what}: {exc.message}: check the account and database ids "
                    "(`wrangler d1 list` shows them) or the database name")
        if exc.error_class in ("network", "timeout"):
            return f"{what}: cannot reach the API: {exc.message}; check the network or --base-url"
        if exc.error_class == "rate_limited":
            return (f"{what}: rate limited ({exc.message}); D1 blocks a token for 5 minutes "
                    "past 1,200 requests per 5 minutes: wait, then lower --concurrency")
        return f"{what}: health check failed: {exc}"

    # -- the one request path -------------------------------------------------
    def _sync(self, coro: Any) -> Any:
        with self._lock:
            if self._thread is None:
                self._thread = LoopThread()
            thread = self._thread
        return thread.run(coro)

    async def _pool(self) -> HTTPPool:
        loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last[0] is loop:  # skips the weak dictionary on the hot path
            return last[1]
        pool = self._pools.get(loop)
        if pool is None:
            pool = HTTPPool(self.base_url, max_connections=self.concurrency,
                            connect_timeout=min(self.timeout, 10.0), ssl_context=self.ssl_context,
                            reuse=self.keep_alive)
            self._pools[loop] = pool
            # Callers such as the replay engine run us inside asyncio.run(), which
            # offers no close hook but finalises live async generators before the
            # loop closes (shutdown_asyncgens): a parked one closes the pool there.
            guardian = _close_with_loop(pool)
            await guardian.asend(None)
            pool.guardian = guardian  # type: ignore[attr-defined]  # the loop holds it weakly
        self._last = (loop, pool)
        return pool

    def _encode(self, statements: list[tuple[str, Params]], batch: bool) -> bytes:
        try:
            if batch:
                doc: Any = {"batch": [{"sql": s, "params": list(p)} for s, p in statements]}
            else:
                sql, params = statements[0]
                doc = {"sql": sql, "params": list(params)}
            return _ENCODER.encode(doc).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise TargetError(f"a parameter cannot travel as JSON over D1's REST API: {exc}",
                              error_class="other", attempts=0) from None

    async def _call(self, statements: list[tuple[str, Params]], *, batch: bool,
                    allow_writes: bool | None, template: str | None = None,
                    extra_headers: bytes = b"") -> list[Result]:
        allow = self.allow_writes if allow_writes is None else allow_writes
        read_only = True
        for sql, params in statements:
            verdict = read_only_verdict(sql)
            if not verdict.read_only:
                read_only = False
                if not allow:
                    raise TargetError(
                        f"refused before sending: {verdict.reason}; this D1 connection is "
                        "read-only (pass --allow-writes / allow_writes=True to write)",
                        error_class="read_only", attempts=0)
            if self.check_limits:
                check_statement(sql, params, template=template)
        body = self._encode(statements, batch)
        path = self._paths[self.endpoint]
        headers = self._headers.reveal() + extra_headers
        secrets = (self._token.reveal(),)
        pool = await self._pool()
        policy = self.policy
        errors: list[str] = []
        delays: list[float] = []
        attempt = 0
        while True:
            attempt += 1
            retry_after = None
            try:
                response = await pool.request("POST", path, headers, body, timeout=self.timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every transport failure is classified
                error = error_from_exception(exc, secrets=secrets, attempts=attempt)
            else:
                if response.status == 200:
                    try:
                        return decode(response.body, attempt, errors, delays)
                    except TargetError as exc:
                        error = exc
                        error.message = redact(error.message, secrets)
                        error.args = (error.message,)
                else:
                    error = error_from_response(response.status, response.body, secrets=secrets,
                                                attempts=attempt)
                    if response.status in (429, 503):
                        retry_after = parse_retry_after(response.headers.get("retry-after"))
            errors.append(error.error_class)
            retry = policy.should_retry(error, attempt, read_only)
            if retry and retry_after is not None and retry_after > policy.max_retry_after:
                retry = False
                error.message += (f" (retry-after {retry_after:g} s exceeds max_retry_after "
                                  f"{policy.max_retry_after:g} s)")
            if not retry:
                error.attempts = attempt
                error.attempt_errors = list(errors)
                error.backoff_s = list(delays)
                error.args = (error.message,)
                raise error
            delay = policy.delay(attempt, retry_after)
            delays.append(delay)
            await asyncio.sleep(delay)


async def _close_with_loop(pool: HTTPPool) -> Any:
    try:
        yield
    finally:
        pool.close()


class D1Connection(Connection):
    """A synchronous session on a :class:`D1Target`, safe to use from one worker thread.

    Requests run on the target's background loop, so every thread's
    connection shares one keep-alive pool.  ``allow_writes=False`` refuses
    statements that are not read-only before they are sent.
    """

    def __init__(self, target: D1Target, allow_writes: bool) -> None:
        self.target = target
        self.allow_writes = allow_writes

    def __repr__(self) -> str:
        return f"D1Connection({self.target.url!r}, allow_writes={self.allow_writes})"

    def execute(self, sql: str, params: Params = (), *, template: str | None = None,
                bookmark: str | None = None) -> Result:
        results = self.target._sync(self.target._call(
            [(sql, params)], batch=False, allow_writes=self.allow_writes, template=template,
            extra_headers=self.target._session_headers(bookmark)))
        return merge(results)

    def execute_batch(self, statements: Sequence[Statement]) -> list[Result]:
        """Run ``statements`` as one atomic batch (``{"batch": [...]}``)."""
        return self.target._sync(self.target._call(
            statements_of(statements), batch=True, allow_writes=self.allow_writes))

    def explain(self, sql: str, params: Params = ()) -> list[PlanStep]:
        return plan_of(self.execute(f"EXPLAIN QUERY PLAN {sql}", params))

