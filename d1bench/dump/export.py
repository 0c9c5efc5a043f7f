"""``d1bench export``: a D1 database's SQL dump through the REST API.

Cloudflare's export is asynchronous: ``POST .../d1/database/{id}/export`` with
``{"output_format": "polling"}`` starts it and answers with an ``at_bookmark``
and a ``status``; the same call with ``current_bookmark`` polls it until the
status is ``complete`` and ``result.signed_url`` names the dump, which is then
downloaded *without* the API token (the URL is signed; the token must go
nowhere but Cloudflare's API).  The dump lands in a temporary file renamed
into place when complete.  The token never appears in a message: every
error text passes through :func:`~d1bench.targets.d1.classify.redact`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from d1bench.errors import UsageError

__all__ = ["ExportInfo", "export_dump"]

#: Seconds before the first poll; each wait is 1.5 times the last, up to
#: POLL_MAX_SECONDS (a small database is ready at once, a large one takes minutes).
POLL_SECONDS = 0.2
POLL_MAX_SECONDS = 5.0
EXPORT_TIMEOUT = 600.0


@dataclass(frozen=True, slots=True)
class ExportInfo:
    """What :func:`export_dump` wrote.

    Attributes:
        path: the dump file.
        bytes: its size.
        polls: export calls made (the start included).
        bookmark: the database bookmark the dump was taken at.
        seconds: wall time.
    """

    path: Path
    bytes: int
    polls: int
    bookmark: str
    seconds: float


def export_dump(spec: str, out: str | os.PathLike[str], *, force: bool = False,
                no_data: bool = False, no_schema: bool = False, tables: tuple[str, ...] = (),
                poll_seconds: float = POLL_SECONDS, timeout: float = EXPORT_TIMEOUT,
                progress: bool = True, **options: Any) -> ExportInfo:
    """Export the D1 database ``spec`` (``d1://ACCOUNT/DB``, as for replay, or
    ``d1-local`` / ``d1-local:DIR``, whose Worker answers the same protocol with
    Miniflare's own dump code) to ``out``.

    ``options`` are those of :meth:`D1Target.from_spec` (``token``,
    ``base_url``, ``wrangler_config``...).  Raises
    :class:`~d1bench.errors.UsageError` for a refused token, a failed export
    or a download that fails; nothing is left at ``out`` then.
    """
    from d1bench.corpus.build import check_destination
    from d1bench.targets.d1.target import D1Target

    path = check_destination(out, force)
    if spec.startswith("d1-local"):
        from d1bench.targets.d1.local import LocalD1Target

        target: D1Target = LocalD1Target.from_spec(spec, **options)
    else:
        target = D1Target.from_spec(spec, **options)
    try:
        return _export(target, path, force, no_data, no_schema, tables, poll_seconds, timeout,
                       progress)
    finally:
        target.close()


def _export(target: Any, path: Path, force: bool, no_data: bool, no_schema: bool,
            tables: tuple[str, ...], poll_seconds: float, timeout: float,
            progress: bool) -> ExportInfo:
    import httpx

    from d1bench._atomic import publish
    from d1bench.targets.d1.classify import redact
    from d1bench.targets.d1.config import TOKEN_ADVICE

    token = target._token.reveal()
    secrets = [token]
    url = (f"{target.base_url}/accounts/{quote(target.account_id, safe='')}/d1/database/"
           f"{quote(target.database_id, safe='')}/export")
    body: dict[str, Any] = {"output_format": "polling"}
    dump_options = {k: v for k, v in (("no_data", no_data), ("no_schema", no_schema),
                                      ("tables", list(tables))) if v}
    if dump_options:
        body["dump_options"] = dump_options
    started = time.perf_counter()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.exporting")
    polls = 0
    try:
        with httpx.Client(timeout=target.timeout, verify=target.ssl_context or True) as client:
            while True:
                polls += 1
                try:
                    response = client.post(url, json=body,
                                           headers={"Authorization": f"Bearer {token}"})
                except httpx.HTTPError as exc:
                    raise UsageError(redact(f"{target.url}: export failed: "
                                            f"{type(exc).__name__}: {exc}", secrets)) from None
                if response.status_code in (401, 403):
                    raise UsageError(f"{target.url}: export refused (HTTP {response.status_code}): "
                                     + TOKEN_ADVICE)
                result = _result(response, target.url, secrets)
                status = result.get("status")
                bookmark = str(result.get("at_bookmark") or body.get("current_bookmark") or "")
                if status == "error" or result.get("error"):
                    raise UsageError(redact(f"{target.url}: export failed: "
                                            f"{result.get('error') or 'status error'}", secrets))
                signed = (result.get("result") or {}).get("signed_url")
                if status == "complete" and signed:
                    break
                if time.perf_counter() - started > timeout:
                    raise UsageError(f"{target.url}: export not complete after {timeout:.0f} s "
                                     f"(last status {status!r})")
                if progress:
                    print(f"export: {status or 'waiting'}...", file=sys.stderr)
                body["current_bookmark"] = bookmark
                time.sleep(poll_seconds)
                poll_seconds = min(POLL_MAX_SECONDS, poll_seconds * 1.5)
            # the signed URL carries its own authorisation: never send the token there
            secrets.append(str(signed))
            try:
                with httpx.Client(timeout=target.timeout) as plain, \
                        plain.stream("GET", signed) as download, open(tmp, "wb") as fh:
                    if download.status_code != 200:
                        raise UsageError(f"{target.url}: downloading the dump failed "
                                         f"(HTTP {download.status_code})")
                    fh.writelines(download.iter_bytes())
            except httpx.HTTPError as exc:
                raise UsageError(redact(f"{target.url}: downloading the dump failed: "
                                        f"{type(exc).__name__}: {exc}", secrets)) from None
        size = tmp.stat().st_size
        publish(tmp, path, force=force)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportInfo(path, size, polls, bookmark, time.perf_counter() - started)


def _result(response: Any, where: str, secrets: list[str]) -> Mapping[str, Any]:
    """The envelope's ``result``, or a one-line error from its ``errors``."""
    from d1bench.targets.d1.classify import redact

    try:
        doc = response.json()
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise UsageError(f"{where}: export answered HTTP {response.status_code} without a JSON "
                         "envelope")
    if response.status_code != 200 or not doc.get("success", False):
        errors = "; ".join(f"{e.get('code')}: {e.get('message')}" if isinstance(e, dict) else str(e)
                           for e in doc.get("errors") or []) or f"HTTP {response.status_code}"
        raise UsageError(redact(f"{where}: export failed: {errors}", secrets))
    result = doc.get("result")
    if not isinstance(result, dict):
        raise UsageError(f"{where}: export answered without a result object")
    return result
