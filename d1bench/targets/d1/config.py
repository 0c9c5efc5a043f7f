"""Where a D1 target's account, database and token come from.

A user names a database three ways: ``d1://ACCOUNT_ID/DATABASE_ID``;
``d1://DATABASE_NAME`` (or a bare database id) with the account in
``CLOUDFLARE_ACCOUNT_ID``; or a ``d1_databases`` binding of their
``wrangler.toml`` / ``wrangler.jsonc``, which is where the ids already live in
a Workers project.  Names are resolved through the API's list-databases call.
The token always comes from ``CLOUDFLARE_API_TOKEN`` (or an explicit option),
never from the spec, so that it cannot end up in a trace's ``target`` field.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from d1bench.errors import UsageError
from d1bench.targets.d1.classify import redact

__all__ = [
    "D1_OPTIONS",
    "D1_OPTION_DEFAULTS",
    "DEFAULT_BASE_URL",
    "HTTP_OPTIONS",
    "LOCAL_D1_OPTIONS",
    "LOCAL_WORKER_OPTIONS",
    "TOKEN_ADVICE",
    "WORKER_OPTIONS",
    "WranglerDatabase",
    "is_uuid",
    "parse_spec",
    "read_wrangler_config",
    "resolve_database_name",
    "strip_jsonc",
]

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"

#: What to tell a user whose token is missing or refused.
TOKEN_ADVICE = ("set CLOUDFLARE_API_TOKEN with D1 Read permission "
                "(D1 Write as well to replay writes with --allow-writes)")

_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                   r"[0-9a-fA-F]{12}$")


def is_uuid(text: str) -> bool:
    """D1 database ids are UUIDs; names are anything else.

    >>> is_uuid("c020574a-5623-407b-be0c-cd192bab9545"), is_uuid("medical-prod")
    (True, False)
    """
    return bool(_UUID.match(text))


@dataclass(frozen=True, slots=True)
class WranglerDatabase:
    """One ``d1_databases`` entry of a wrangler configuration."""

    binding: str
    database_name: str | None
    database_id: str | None
    account_id: str | None
    source: str


def parse_spec(spec: str) -> list[str]:
    """The path parts of a ``d1://`` spec.

    >>> parse_spec("d1://acc/db"), parse_spec("d1://medical"), parse_spec("d1://")
    (['acc', 'db'], ['medical'], [])
    """
    if not spec.startswith("d1://"):
        raise UsageError(f"{spec!r}: a D1 target is written d1://ACCOUNT_ID/DATABASE_ID, "
                         "d1://DATABASE_NAME, or d1:// with --wrangler-config")
    parts = [p for p in spec[len("d1://"):].split("/") if p]
    if len(parts) > 2 or any("@" in p or ":" in p for p in parts):
        raise UsageError(f"{spec!r}: expected d1://ACCOUNT_ID/DATABASE_ID or d1://DATABASE_NAME "
                         "(the token comes from CLOUDFLARE_API_TOKEN, never from the URL)")
    return parts


def strip_jsonc(text: str) -> str:
    """Remove ``//`` and ``/* */`` comments and trailing commas, outside strings.

    >>> json.loads(strip_jsonc('{"a": "x//y", // note\\n "b": [1, 2,], /* c */}'))
    {'a': 'x//y', 'b': [1, 2]}
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif ch == ",":
            k = i + 1
            while k < n and text[k] in " \t\r\n":
                k += 1
            # a comma followed (after comments) by a closer is a trailing comma
            rest = strip_jsonc(text[k:]) if text.startswith(("//", "/*"), k) else text[k:]
            if not rest.lstrip().startswith(("}", "]")):
                out.append(ch)
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def read_wrangler_config(path: str | Path, binding: str | None = None) -> WranglerDatabase:
    """Find a D1 database in a ``wrangler.toml``, ``wrangler.json`` or ``wrangler.jsonc``.

    ``binding`` matches a binding name or a database name; it may be omitted
    when the file declares exactly one database.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such wrangler configuration file")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".toml":
            config: Mapping[str, Any] = tomllib.loads(text)
        else:
            config = json.loads(strip_jsonc(text))
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read it: {exc}") from None
    entries = config.get("d1_databases") or []
    if not isinstance(entries, list) or not entries:
        raise UsageError(f"{path}: declares no d1_databases")
    found = [e for e in entries if isinstance(e, Mapping)]
    if binding is not None:
        found = [e for e in found if binding in (e.get("binding"), e.get("database_name"))]
    names = ", ".join(str(e.get("binding")) for e in entries if isinstance(e, Mapping))
    if not found:
        raise UsageError(f"{path}: no d1_databases binding {binding!r} (found: {names})")
    if len(found) > 1:
        raise UsageError(f"{path}: {len(found)} d1_databases ({names}); choose one with --binding")
    entry = found[0]
    account = config.get("account_id")
    return WranglerDatabase(
        binding=str(entry.get("binding", "")),
        database_name=entry.get("database_name"),
        database_id=entry.get("database_id"),
        account_id=str(account) if account else None,
        source=str(path),
    )


def resolve_database_name(base_url: str, account_id: str, name: str, token: str, *,
                          timeout: float = 30.0) -> str:
    """The id of the database called ``name``, from ``GET /accounts/{id}/d1/database``."""
    import httpx

    url = f"{base_url.rstrip('/')}/accounts/{quote(account_id, safe='')}/d1/database"
    try:
        with httpx.Client(timeout=timeout) as client:
            response = client.get(url, params={"name": name, "per_page": 1000},
                                  headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        # httpx messages can carry the request; keep only our own words and the cause's text
        raise UsageError(redact(f"cannot list D1 databases at {base_url}: "
                                f"{type(exc).__name__}: {exc}", [token])) from None
    try:
        doc = response.json()
    except ValueError:
        doc = {}
    if response.status_code in (401, 403):
        raise UsageError(f"listing D1 databases was refused (HTTP {response.status_code}): "
                         + TOKEN_ADVICE)
    if response.status_code != 200 or not doc.get("success", False):
        errors = "; ".join(str(e.get("message", e)) for e in doc.get("errors") or []
                           if isinstance(e, Mapping)) or f"HTTP {response.status_code}"
        raise UsageError(redact(f"cannot list D1 databases of account {account_id}: {errors}",
                                [token]))
    matches = [d for d in doc.get("result") or [] if d.get("name") == name]
    if not matches:
        near = ", ".join(sorted(str(d.get("name")) for d in doc.get("result") or [])) or "none"
        raise UsageError(f"no D1 database named {name!r} in account {account_id} "
                         f"(names containing it: {near})")
    return str(matches[0].get("uuid"))


def add_d1_arguments(parser: Any) -> None:
    """Add the D1 target's options to an argparse parser (verbs that take ``--target``)."""
    group = parser.add_argument_group("D1 targets (d1://..., d1-local)")
    group.add_argument("--base-url", metavar="URL",
                       help=f"D1 REST API root (default {DEFAULT_BASE_URL})")
    group.add_argument("--wrangler-config", metavar="PATH",
                       help="read the database from this wrangler.toml / wrangler.jsonc")
    group.add_argument("--binding", metavar="NAME",
                       help="the d1_databases binding to use from --wrangler-config")
    group.add_argument("--allow-writes", action="store_true",
                       help="let statements that write reach D1 (refused by default)")
    group.add_argument("--retry-writes", action="store_true",
                       help="retry writes too after a transient failure (a write whose answer "
                            "was lost may then be applied twice)")
    group.add_argument("--max-attempts", type=int, default=5, metavar="N",
                       help="sends per request, retries included (default 5)")
    group.add_argument("--d1-endpoint", choices=("raw", "query"), default="raw",
                       help="REST endpoint: raw (columns and rows, faster) or query")


#: What :func:`d1_options` gives when none of the D1 options was given.
D1_OPTION_DEFAULTS: dict[str, Any] = {"allow_writes": False, "retry_writes": False,
                                      "max_attempts": 5, "endpoint": "raw"}
#: The keywords of :func:`d1_options` a local D1 takes (it runs its own server).
LOCAL_D1_OPTIONS = frozenset(D1_OPTION_DEFAULTS)
#: ... and those a remote D1 takes.
D1_OPTIONS = LOCAL_D1_OPTIONS | {"base_url", "wrangler_config", "binding"}
#: The HTTP client's option (``--no-keep-alive``), and the bench Worker's (``--session``;
#: ``--cache``, ``worker``, for the Worker d1bench runs itself): see cli/worker.py.
HTTP_OPTIONS = frozenset({"keep_alive"})
WORKER_OPTIONS = frozenset({"session"})
LOCAL_WORKER_OPTIONS = WORKER_OPTIONS | {"worker"}


def d1_options(args: Any) -> dict[str, Any]:
    """The keywords for ``D1Target.from_spec`` from :func:`add_d1_arguments`' options."""
    options: dict[str, Any] = {
        "allow_writes": bool(getattr(args, "allow_writes", False)),
        "retry_writes": bool(getattr(args, "retry_writes", False)),
        "max_attempts": getattr(args, "max_attempts", D1_OPTION_DEFAULTS["max_attempts"]),
        "endpoint": getattr(args, "d1_endpoint", D1_OPTION_DEFAULTS["endpoint"]),
    }
    for name in ("base_url", "wrangler_config", "binding"):
        value = getattr(args, name, None)
        if value:
            options[name] = value
    return options
