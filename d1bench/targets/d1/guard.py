"""Keep replays against D1 from writing unless the user said they may.

A replay against a real database must not change it by accident, and D1
bills a written row a thousand times a read one.  Two independent opinions
decide whether a statement only reads:

1. sqlglot's parse (the same :func:`d1bench.sql.text.classify_write`
   the workload checks use), and
2. SQLite's own ``sqlite3_stmt_readonly`` flag on the statement prepared
   against an in-memory copy of the d1bench schema.

A statement counts as read-only only when neither says it writes.  When SQLite
cannot prepare it (a table the d1bench schema lacks), the parse decides alone;
the verdict records which opinions were available.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from d1bench.errors import UsageError

__all__ = [
    "D1_KINDS",
    "ReadOnlyVerdict",
    "guard_read_only",
    "is_read_only",
    "read_only_verdict",
    "split_sql",
]

#: Target kinds the guard protects.
D1_KINDS = frozenset({"d1", "d1-local", "d1-worker"})


@dataclass(frozen=True, slots=True)
class ReadOnlyVerdict:
    """Whether a statement only reads, and who said so.

    Attributes:
        read_only: the decision.
        by_parse: sqlglot's opinion (``True`` = reads only); ``None`` if it could not parse.
        by_sqlite: SQLite's ``stmt_readonly``; ``None`` if the statement did not
            prepare against the d1bench schema.
        reason: one line saying why a statement counts as a write ('' for reads).
    """

    read_only: bool
    by_parse: bool | None
    by_sqlite: bool | None
    reason: str


_lock = threading.Lock()
_oracle: Any = None


def _oracle_db() -> Any:
    """An in-memory database holding the d1bench schema, shared and locked."""
    global _oracle
    if _oracle is None:
        import apsw

        from d1bench.schema import create_schema

        db = apsw.Connection(":memory:")
        create_schema(db)
        _oracle = db
    return _oracle


_COMMENTS = re.compile(r"--[^\n]*|/\*.*?(\*/|$)", re.DOTALL)


def split_sql(sql: str) -> list[str]:
    """Split text at statement-ending semicolons (strings and comments respected).

    Trigger bodies are split too, which is harmless here: every piece of a
    CREATE TRIGGER counts as a write.

    >>> split_sql("SELECT ';'; -- a; b\\nDELETE FROM t;")
    ["SELECT ';'", '-- a; b\\nDELETE FROM t']
    """
    import sqlglot
    from sqlglot.tokens import TokenType

    try:
        tokens = sqlglot.tokenize(sql, read="sqlite")
    except Exception:  # noqa: BLE001 - an unterminated string or comment: let SQLite judge the whole text
        return [sql] if sql.strip() else []
    pieces, start = [], 0
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            pieces.append(sql[start:token.start])
            start = token.end + 1
    pieces.append(sql[start:])
    return [p.strip() for p in pieces if _COMMENTS.sub("", p).strip()]


def _sqlite_read_only(statement: str) -> bool | None:
    import apsw
    import apsw.ext

    with _lock:
        try:
            info = apsw.ext.query_info(_oracle_db(), statement)
        except apsw.Error:
            return None
    # SQLite flags EXPLAIN of a write as a write, but EXPLAIN never runs the statement
    return bool(info.is_readonly or info.is_explain)


@lru_cache(maxsize=4096)
def read_only_verdict(sql: str) -> ReadOnlyVerdict:
    """Decide whether ``sql`` (one or several statements) only reads.

    >>> read_only_verdict("SELECT id FROM papers WHERE id = ?").read_only
    True
    >>> v = read_only_verdict("PRAGMA optimize")  # runs ANALYZE where due: both layers see it
    >>> (v.read_only, v.by_parse, v.by_sqlite)
    (False, False, False)
    >>> read_only_verdict("SELECT 1; DELETE FROM papers").read_only
    False
    >>> read_only_verdict("EXPLAIN QUERY PLAN DELETE FROM papers WHERE id = ?").read_only
    True
    """
    from d1bench.sql.text import classify_write

    statements = split_sql(sql)
    if not statements:
        return ReadOnlyVerdict(True, True, None, "")
    by_parse: bool | None = True
    by_sqlite: bool | None = True
    reasons: list[str] = []
    for statement in statements:
        writes, parse_error = classify_write(statement)
        sqlite_ro = _sqlite_read_only(statement)
        first = " ".join(statement.split())[:60]
        if parse_error is not None:
            by_parse = None if by_parse is not False else False
        if writes:
            by_parse = False
            reasons.append(f"{first!r} writes (parsed)")
        if sqlite_ro is None:
            by_sqlite = None if by_sqlite is not False else False
        elif not sqlite_ro:
            by_sqlite = False
            if not writes:
                reasons.append(f"{first!r} writes (SQLite's stmt_readonly is false)")
    read_only = by_parse is not False and by_sqlite is not False
    return ReadOnlyVerdict(read_only, by_parse, by_sqlite, "; ".join(reasons))


def is_read_only(sql: str) -> bool:
    """True when ``sql`` only reads (see :func:`read_only_verdict`).

    >>> is_read_only("INSERT INTO users (id) VALUES (?)")
    False
    """
    return read_only_verdict(sql).read_only


def _templates(workload: Any) -> Iterable[tuple[str, Any]]:
    templates = getattr(workload, "templates", workload)
    if isinstance(templates, Mapping):
        return templates.items()
    return ((getattr(t, "name", str(i)), t) for i, t in enumerate(templates))


def guard_read_only(workload: Any, allow_writes: bool = False, *,
                    target: Any = None) -> dict[str, ReadOnlyVerdict]:
    """Refuse a workload that writes, unless ``allow_writes`` (CLI ``--allow-writes``).

    Every template is judged by :func:`read_only_verdict`; a template the
    workload itself marks ``is_write`` counts as a write too.  With ``target``
    given, only D1 targets (``d1``, ``d1-local``) are guarded: a local SQLite
    file is the user's own scratch copy.  Returns the verdict of each template.

    Raises :class:`~d1bench.errors.UsageError` naming every writing template.
    """
    verdicts: dict[str, ReadOnlyVerdict] = {}
    writers: list[str] = []
    for name, template in _templates(workload):
        sql = getattr(template, "sql", template)
        verdict = read_only_verdict(sql)
        if getattr(template, "is_write", False) and verdict.read_only:
            verdict = ReadOnlyVerdict(False, verdict.by_parse, verdict.by_sqlite,
                                      "the workload marks it as a write")
        verdicts[name] = verdict
        if not verdict.read_only:
            source, line = getattr(template, "source", None), getattr(template, "line", None)
            where = f"{source}:{line}" if source and line else source
            label = f"{name} ({where})" if where else name
            writers.append(f"{label}: {verdict.reason}")
    guarded = target is None or getattr(target, "kind", None) in D1_KINDS
    if writers and guarded and not allow_writes:
        wl = getattr(workload, "name", None) or "the workload"
        on = f" on {target.url}" if target is not None and hasattr(target, "url") else ""
        raise UsageError(
            f"workload {wl!r} writes{on}, and D1 bills a written row like 1,000 read ones: "
            + "; ".join(writers)
            + ". Replay it against a copy, or pass --allow-writes (allow_writes=True).")
    return verdicts
