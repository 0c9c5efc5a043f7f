"""Targets: where d1bench sends SQL.  One protocol (:mod:`d1bench.targets.base`), three kinds.

``open_target`` turns a spec string into a :class:`~d1bench.targets.base.Target`:

=====================  ==========================================================
``sqlite:PATH``        a local SQLite file (also a bare path to a ``.sqlite``/``.db``)
``d1-local...``        a local D1 (Miniflare) that d1bench runs
``d1://ACCOUNT/DB``    Cloudflare D1 over its REST API
``d1-worker:URL``      Cloudflare D1 through the deployed bench Worker
=====================  ==========================================================

Each kind lives in its own module, imported only when used, so that opening a
SQLite file never loads an HTTP client.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any

from d1bench.errors import UsageError
from d1bench.targets.base import Connection, Meta, PlanStep, Result, Target

__all__ = ["TARGETS", "Connection", "Meta", "PlanStep", "Result", "Target", "open_target"]

#: scheme -> "module:Class"; each class has a ``from_spec(spec, **options)`` classmethod.
TARGETS = {
    "sqlite": "d1bench.targets.sqlite:SQLiteTarget",
    "d1-local": "d1bench.targets.d1.local:LocalD1Target",
    "d1-worker": "d1bench.targets.d1.worker:WorkerTarget",
    "d1": "d1bench.targets.d1:D1Target",
}

_SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")


def _scheme(spec: str) -> str | None:
    if spec.startswith("d1://"):
        return "d1"
    for scheme in sorted(TARGETS, key=len, reverse=True):  # "d1-worker", "d1-local" before "d1"
        if spec == scheme or spec.startswith((scheme + ":", scheme + "?")):
            return scheme
    if spec.lower().endswith(_SQLITE_SUFFIXES) and Path(spec).is_file():
        return "sqlite"
    return None


def open_target(spec: str, **options: Any) -> Target:
    """Open the target that ``spec`` names; ``options`` go to its constructor.

    >>> open_target("postgres://db")
    Traceback (most recent call last):
    ...
    d1bench.errors.UsageError: unknown target 'postgres://db': use one of sqlite:PATH, d1-local, d1://ACCOUNT/DB, d1-worker:https://HOST (or a path to an existing .sqlite/.db file)
    """
    scheme = _scheme(spec)
    if scheme is None:
        raise UsageError(f"unknown target {spec!r}: use one of sqlite:PATH, d1-local, "
                         "d1://ACCOUNT/DB, d1-worker:https://HOST (or a path to an existing "
                         ".sqlite/.db file)")
    module_name, class_name = TARGETS[scheme].split(":")
    try:
        cls = getattr(import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"target {spec!r}: the {scheme} target is not available ({exc})") from None
    return cls.from_spec(spec, **options)
