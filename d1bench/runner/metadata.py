"""What a trace records about its run: the machine, versions, corpus, workload and plans.

Recorded so that a result can be reproduced and so that runs taken on
different machines or corpora are never compared or merged silently.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import platform
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from d1bench import __version__
from d1bench.targets.base import Connection, Params, Target
from d1bench.trace import FORMAT_VERSION

if TYPE_CHECKING:
    from d1bench.workload.model import Workload

__all__ = ["corpus_info", "describe_plans", "machine_info", "run_metadata"]


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_info() -> dict[str, Any]:
    """The client machine, as compared between traces.

    The host name is kept only as a short hash: enough to tell two machines
    apart, without putting a name in a file that may be shared.
    """
    uname = platform.uname()
    return {
        "system": uname.system,
        "machine": uname.machine,
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "host": hashlib.sha256(uname.node.encode()).hexdigest()[:12],
    }


def corpus_info(target: Target, corpus: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """``describe_corpus`` of the corpus file, given or behind a ``sqlite:`` target."""
    path = corpus if corpus is not None else target.corpus_path()
    if path is None or str(path) == ":memory:":
        return None
    path = Path(path)
    try:
        from d1bench.corpus import describe_corpus

        return dict(describe_corpus(path))
    except Exception as exc:  # noqa: BLE001 - a user's own database: describe what we can
        info: dict[str, Any] = {"path": str(path), "digest": None,
                                "describe_error": f"{type(exc).__name__}: {exc}"}
        if path.is_file():
            info["bytes"] = path.stat().st_size
        return info


def describe_plans(conn: Connection, workload: Workload,
                   samples: Mapping[str, Params]) -> dict[str, dict[str, Any]]:
    """EXPLAIN QUERY PLAN of every template, once, before the run, classified.

    Explained with the first parameters drawn for the template when the run
    draws it as a query; a template met only inside sessions is explained with
    NULLs bound, which gives the same plan for ``=``/range placeholders.
    """
    from d1bench.plans import classify_plan

    fts = _fts_tables(conn)
    out: dict[str, dict[str, Any]] = {}
    for template in workload.templates.values():
        params = samples.get(template.name)
        if params is None:
            params = (None,) * len(template.params)
        try:
            steps = conn.explain(template.sql, params)
        except Exception as exc:  # noqa: BLE001 - the run still says which template failed
            out[template.name] = {"plan_class": None, "all_indexed": None, "classes": [],
                                  "plan": [], "explain_error": f"{type(exc).__name__}: {exc}"}
            continue
        info = classify_plan(steps, fts_tables=fts, sql=template.sql)
        out[template.name] = {
            "plan_class": info.plan_class,
            "all_indexed": info.all_indexed,
            "classes": sorted(info.classes),
            "tables_scanned": list(info.tables_scanned),
            "plan": [step.detail for step in steps],
        }
    return out


def _fts_tables(conn: Any) -> set[str]:
    """Names of the FTS5 tables, so their scans are classed as full-text searches."""
    try:
        result = conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table' "
                              "AND sql LIKE '%USING fts5%'")
    except Exception:  # noqa: BLE001 - a target that hides its schema: classify without
        return set()
    return {str(row[0]) for row in result.rows}


def run_metadata(target: Target, workload: Any, *, corpus: str | os.PathLike[str] | None,
                 seed: int, schedule: Mapping[str, Any],
                 plans: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata a trace starts with; the run adds its outcome when it ends."""
    try:
        import apsw

        sqlite_version = apsw.sqlite_lib_version()
    except ImportError:  # pragma: no cover - apsw is a dependency
        sqlite_version = None
    return {
        "format_version": FORMAT_VERSION,
        "run_id": uuid.uuid4().hex,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "d1bench_version": __version__,
        "python_version": platform.python_version(),
        "sqlite_version": sqlite_version,
        "platform": platform.platform(),
        "machine": machine_info(),
        "target": dict(target.describe()),
        "corpus": corpus_info(target, corpus),
        "workload": {"name": workload.name, "digest": workload.digest,
                     "templates": list(workload.templates)},
        "seed": seed,
        "schedule": dict(schedule),
        "plans": dict(plans),
        "interrupted": False,
    }
