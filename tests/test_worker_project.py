"""``d1bench worker init|deploy``: the project it writes is accepted by the pinned wrangler, offline."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from d1bench.cli import main
from d1bench.errors import UsageError
from d1bench.worker import WorkerOptions, deploy_worker, init_worker

_DB_ID = "0b5d3c1e-7a9f-4e2b-8c6d-1f2e3a4b5c6d"


def _jsonc(path: Path) -> dict:
    """wrangler.jsonc without its // comment lines."""
    text = "\n".join(line for line in path.read_text().splitlines()
                     if not line.lstrip().startswith("//"))
    return json.loads(text)


@pytest.fixture
def wrangler_env(tmp_path: Path) -> dict[str, str]:
    """A private HOME: no login, no cached credentials, nothing of the user's."""
    home = tmp_path / "home"
    home.mkdir()
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "TMPDIR")}
    return {**keep, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "CI": "1"}


def test_init_writes_the_project_and_refuses_to_overwrite(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "w"
    assert main(["worker", "init", "--database", "papers-db", "--dir", str(folder),
                 "--cache", "memory:60,500", "--cache-invalidate"]) == 0
    config = _jsonc(folder / "wrangler.jsonc")
    assert config["d1_databases"] == [{"binding": "DB", "database_name": "papers-db"}]
    assert config["kv_namespaces"] == [{"binding": "CACHE_KV"}]
    assert config["vars"]["CACHE"] == "memory:60,500" and config["vars"]["CACHE_INVALIDATE"] == "1"
    assert config["vars"]["DATABASE_ID"] == "papers-db" and "TOKEN" not in config["vars"]
    # The deployed module is the very one the local D1 serves.
    served = Path(__file__).parent.parent / "d1bench" / "targets" / "worker.mjs"
    assert (folder / "worker.mjs").read_text() == served.read_text()
    assert "wrangler secret put TOKEN" in (folder / "README.md").read_text()
    before = (folder / "wrangler.jsonc").read_text()
    capsys.readouterr()
    assert main(["worker", "init", "--database", _DB_ID, "--dir", str(folder)]) == 2
    err = capsys.readouterr().err
    assert re.search(r"wrangler.jsonc: already exists; pass --force", err) and "Traceback" not in err
    assert (folder / "wrangler.jsonc").read_text() == before
    init_worker(_DB_ID, folder, force=True)
    assert _jsonc(folder / "wrangler.jsonc")["d1_databases"][0] == {"binding": "DB",
                                                                   "database_id": _DB_ID}
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary left


@pytest.mark.parametrize("bad, message", [
    (("--database", "Bad Name!"), "--database 'Bad Name!'"),
    (("--database", "db", "--cache", "kv:60,10"), "--cache 'kv:60,10'"),
    (("--database", "db", "--cache", "memory:0"), "--cache 'memory:0'"),
])
def test_init_rejects_bad_input(tmp_path: Path, capsys, bad: tuple[str, ...], message: str) -> None:
    assert main(["worker", "init", "--dir", str(tmp_path / "w"), *bad]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_pinned_wrangler_accepts_the_project_offline(tmp_path: Path,
                                                     wrangler_env: dict[str, str]) -> None:
    folder = tmp_path / "w"
    init_worker("papers-db", folder, options=WorkerOptions.from_strings("kv:300", check=True))
    result = deploy_worker(folder, dry_run=True, outdir=tmp_path / "out", env=wrangler_env)
    assert "--dry-run: exiting now." in result.output
    for binding in ("env.DB (papers-db)", "env.CACHE_KV", 'env.CACHE ("kv:300")',
                    'env.CACHE_CHECK ("1")'):
        assert binding in result.output, binding
    bundle = (tmp_path / "out" / "worker.js").read_text()
    assert "x-cf-d1-session-commit-token" in bundle and "timingSafeEqual" in bundle
    assert "wrangler" in result.command[1] and "node_modules" in result.command[1]
    # A project wrangler cannot bundle is refused, with wrangler's reason and no traceback.
    (folder / "worker.mjs").write_text("export default {")
    with pytest.raises(UsageError, match="wrangler deploy failed"):
        deploy_worker(folder, dry_run=True, outdir=tmp_path / "out2", env=wrangler_env)


def test_deploy_needs_a_project(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="run `d1bench worker init` first"):
        deploy_worker(tmp_path)
