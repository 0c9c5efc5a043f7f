"""Helpers for the replay, trace and analysis tests: small real databases and workloads.

``HookTarget`` wraps a real target and calls a function before each statement
(with the statement's sequence number), to stall one query or press Ctrl-C
after k requests, the way a slow server or an impatient user would.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import apsw
import numpy as np
import pyarrow as pa

from d1bench.targets.base import Connection, Target
from d1bench.trace import COLUMNS, Trace

ITEMS = 1_000

TOY_WORKLOAD = """
[workload]
name = "toy"
format = 1

[templates.item_by_id]
sql = "SELECT id, v FROM items WHERE id = ?"
weight = 1
family = "retrieval"
params = [{sampler = "int", min = 1, max = %(items)d}]

[templates.items_by_v]
sql = "SELECT id FROM items WHERE v = ?"
weight = %(scan_weight)s
family = "search"
params = [{sampler = "fixed", value = "v7"}]

[templates.list_items]
sql = "SELECT id FROM items WHERE id <= ? ORDER BY id"
weight = 0
params = [{sampler = "int", min = 3, max = 5}]

[sessions.browse]
weight = %(session_weight)s
steps = [
  {template = "list_items"},
  {template = "item_by_id", for_each_row = true, params = [{sampler = "from_row", column = "id"}]},
]
"""


def make_items_db(path: Path, rows: int = ITEMS) -> Path:
    """A real SQLite file: ``items(id INTEGER PRIMARY KEY, v TEXT)`` with ``rows`` rows."""
    db = apsw.Connection(str(path))
    db.execute("CREATE TABLE items(id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    with db:
        db.executemany("INSERT INTO items VALUES (?, ?)", ((i, f"v{i % 50}") for i in
                                                            range(1, rows + 1)))
    db.close()
    return path


def toy_workload(tmp_path: Path, *, scan_weight: float = 0, session_weight: float = 0) -> Any:
    from d1bench.workload import load_workload

    path = tmp_path / "toy.toml"
    path.write_text(TOY_WORKLOAD % {"items": ITEMS, "scan_weight": scan_weight,
                                    "session_weight": session_weight})
    return load_workload(path)


def sqlite_target(path: Path) -> Target:
    from d1bench.targets import open_target

    return open_target(f"sqlite:{path}")


class _HookConnection(Connection):
    def __init__(self, inner: Connection, before: Callable[[], None]) -> None:
        self.inner = inner
        self.before = before

    def execute(self, sql: str, params: Any = ()) -> Any:
        self.before()
        return self.inner.execute(sql, params)

    def explain(self, sql: str, params: Any = ()) -> Any:
        return self.inner.explain(sql, params)

    def close(self) -> None:
        self.inner.close()


class HookTarget(Target):
    """A real target whose statements first call ``hook(n)``, n = 1, 2, ... across threads."""

    kind = "sqlite"

    def __init__(self, inner: Target, hook: Callable[[int], None]) -> None:
        self.inner = inner
        self.hook = hook
        self.count = itertools.count(1).__next__
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.inner.url

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def connect(self) -> Connection:
        def before() -> None:
            self.hook(self.count())
        return _HookConnection(self.inner.connect(), before)

    def close(self) -> None:
        self.inner.close()


def stall_once(at: int, seconds: float) -> Callable[[int], None]:
    """A hook that sleeps ``seconds`` before statement number ``at`` (a stalled server)."""
    def hook(n: int) -> None:
        if n == at:
            time.sleep(seconds)
    return hook


def sleep_each(seconds: float) -> Callable[[int], None]:
    def hook(n: int) -> None:
        time.sleep(seconds)
    return hook


def synthetic_trace(times: dict[str, np.ndarray], *, meta: dict[str, Any] | None = None,
                    warmup: dict[str, int] | None = None,
                    errors: dict[str, int] | None = None) -> Trace:
    """A trace whose response times are given, one row per value, sent back to back.

    The first ``warmup[t]`` rows of template ``t`` are warm-up; the last
    ``errors[t]`` failed.
    """
    cols: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    clock = 0
    unit = 0
    for template, values in times.items():
        n_warm = (warmup or {}).get(template, 0)
        n_err = (errors or {}).get(template, 0)
        for k, ms in enumerate(values):
            ns = round(ms * 1e6)
            failed = k >= len(values) - n_err
            row = {
                "run": 0, "unit_index": unit, "unit": template, "kind": "query",
                "session_id": None, "step": 0, "worker": 0, "template": template,
                "intended_ns": clock, "sent_ns": clock, "done_ns": clock + ns,
                "response_ms": ns / 1e6, "service_ms": ns / 1e6, "lag_ms": 0.0,
                "rows_returned": 1, "rows_read": 1, "rows_written": 0, "db_duration_ms": None,
                "attempts": 1, "plan_class": "primary_key", "all_indexed": True,
                "error_class": "other" if failed else None, "error": "boom" if failed else None,
                "warmup": k < n_warm, "extra": None,
            }
            for name in COLUMNS:
                cols[name].append(row[name])
            clock += ns
            unit += 1
    table = pa.table({name: pa.array(cols[name], type=typ) for name, typ in COLUMNS.items()})
    base = {"format_version": 1, "machine": {"system": "Linux", "cpu_count": 2, "host": "h1"},
            "corpus": {"digest": "c1"}, "workload": {"name": "w", "digest": "w1"}}
    return Trace.from_rows(table, {**base, **(meta or {})})

