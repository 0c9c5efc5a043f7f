"""The medical platform's schema and its named index sets.

The DDL lives in ``.sql`` files beside this module so that it reads as SQL, can
be fed to ``wrangler d1 execute --file`` as it is, and is the same text every
target runs.  Index sets are kept apart from the tables so that one corpus can
be replayed under each set in turn.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from d1bench.errors import UsageError

__all__ = [
    "TABLES",
    "create_schema",
    "d1_problems",
    "ddl",
    "index_set_names",
    "index_set_sql",
    "split_statements",
    "statements_with_lines",
]

#: Tables in the order a loader must fill them (parents before children).
TABLES = (
    "clinical_trials",
    "papers",
    "citations",
    "users",
    "reading_history",
    "paper_reviews",
    "corpus_meta",
)

_PARTS = ("tables", "fts", "triggers", "views")


def _read(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def ddl(*parts: str) -> str:
    """Return the DDL of the given parts (default: all, in load order).

    >>> "CREATE TABLE IF NOT EXISTS papers" in ddl("tables")
    True
    """
    chosen = parts or _PARTS
    unknown = set(chosen) - set(_PARTS)
    if unknown:
        raise ValueError(f"unknown schema part(s) {sorted(unknown)}; choose from {_PARTS}")
    return "\n".join(_read(f"{part}.sql") for part in chosen)


def create_schema(conn, *parts: str) -> None:
    """Run the DDL of ``parts`` (default: all) on an APSW or sqlite3 connection."""
    for statement in split_statements(ddl(*parts)):
        conn.execute(statement)


def index_set_names() -> list[str]:
    """Names of the index sets shipped with d1bench (``none``, ``seed``)."""
    folder = resources.files(__package__).joinpath("indexes")
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".sql"))


def index_set_sql(name_or_path: str | Path) -> str:
    """The SQL of a named index set, or of a ``.sql`` file of CREATE/DROP INDEX statements."""
    name = str(name_or_path)
    if name in index_set_names():
        return _read(f"indexes/{name}.sql")
    path = Path(name)
    if not path.is_file():
        raise UsageError(
            f"index set {name!r}: not one of {index_set_names()} and no such file"
        )
    text = path.read_text(encoding="utf-8")
    for lineno, statement in statements_with_lines(text):
        if not re.match(r"(?is)^\s*(CREATE\s+(UNIQUE\s+)?INDEX|DROP\s+INDEX|PRAGMA\s+optimize|ANALYZE)",
                        statement):
            first = statement.strip().splitlines()[0][:60]
            raise UsageError(f"{path}:{lineno}: an index set may only create or drop indexes, "
                             f"found {first!r}")
    return text


# --- D1 compatibility -------------------------------------------------------

_ALLOWED_PRAGMAS = {
    "table_list", "table_info", "table_xinfo", "index_list", "index_info", "index_xinfo",
    "foreign_key_list", "foreign_key_check", "quick_check", "optimize", "data_version",
    "foreign_keys", "defer_foreign_keys", "case_sensitive_like", "ignore_check_constraints",
    "legacy_alter_table", "recursive_triggers", "reverse_unordered_selects",
}

_REFUSED = [
    (re.compile(r"(?i)^\s*(BEGIN|COMMIT|END|ROLLBACK|SAVEPOINT|RELEASE)\b"),
     "transactions are refused: every D1 query or batch is its own transaction"),
    (re.compile(r"(?i)^\s*(ATTACH|DETACH)\b"), "ATTACH/DETACH is refused by D1"),
    (re.compile(r"(?i)^\s*VACUUM\b"), "VACUUM is refused by D1"),
    (re.compile(r"(?i)^\s*CREATE\s+(TEMP|TEMPORARY)\b"), "TEMP objects are refused by D1"),
    (re.compile(r"(?i)\bload_extension\s*\("), "load_extension is refused by D1"),
    (re.compile(r"(?i)\bUSING\s+fts[34]\b"), "only FTS5 is available on D1"),
    (re.compile(r"(?i)^\s*CREATE\s+VIRTUAL\s+TABLE\b(?!.*\bUSING\s+fts5\b)", re.DOTALL),
     "D1 offers no virtual table module but fts5"),
]


def d1_problems(sql: str) -> list[str]:
    """Say what in ``sql`` D1 would refuse; an empty list means nothing found.

    A static check: statements are matched against D1's published refusals
    (disallowed PRAGMAs, transactions, ATTACH, TEMP objects, non-FTS5 virtual
    tables).  The local D1 target runs the DDL for real.

    >>> d1_problems("PRAGMA journal_mode = WAL;")
    ['line 1: PRAGMA journal_mode is not authorized on D1']
    >>> d1_problems("CREATE INDEX i ON t (a);")
    []
    """
    problems = []
    for lineno, statement in statements_with_lines(sql):
        pragma = re.match(r"(?i)^\s*PRAGMA\s+(?:\w+\.)?(\w+)", statement)
        if pragma and pragma.group(1).lower() not in _ALLOWED_PRAGMAS:
            problems.append(f"line {lineno}: PRAGMA {pragma.group(1)} is not authorized on D1")
        for pattern, why in _REFUSED:
            if pattern.search(statement):
                problems.append(f"line {lineno}: {why}")
    return problems


def split_statements(sql: str) -> list[str]:
    """Split SQL text into complete statements, trigger bodies kept whole."""
    return [statement for _, statement in statements_with_lines(sql)]


def statements_with_lines(sql: str) -> list[tuple[int, str]]:
    """Split SQL text like :func:`split_statements`, with each statement's first line number."""
    import apsw

    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start = None
    for lineno, line in enumerate(sql.splitlines(keepends=True), 1):
        if start is None:
            if not line.strip() or line.lstrip().startswith("--"):
                continue
            start = lineno
        buf.append(line)
        text = "".join(buf)
        if apsw.complete(text):
            out.append((start, text.strip()))
            buf, start = [], None
    if buf and "".join(buf).strip():
        out.append((start or 1, "".join(buf).strip()))
    return out
