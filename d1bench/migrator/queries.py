"""The source's own queries, read from a file, to compare on both sides of a migration.

A team moving off PostgreSQL or MySQL knows the queries its application runs;
written into a ``.sql`` file (one query per statement, in the source's own
dialect, comments allowed), each is run on the source and, transpiled, on the
migrated database, and the results compared (:func:`.validate.check_queries`).
The file is split with the source dialect's own tokenizer, so a semicolon
inside a string or comment does not end a query.
"""

from __future__ import annotations

import os
from pathlib import Path

from d1bench.errors import UsageError

__all__ = ["read_query_file"]

_QUERY_STARTS = {"SELECT", "WITH", "VALUES", "TABLE"}


def read_query_file(path: str | os.PathLike[str], dialect: str) -> list[str]:
    """The queries of ``path``, in order, each as written.

    Raises :class:`UsageError` naming the file and line for a file that cannot be
    read, a statement the dialect cannot tokenize, or one that is not a query
    (only reads are run on the source).

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "q.sql"
    >>> _ = f.write_text("SELECT 'a;b' FROM t; -- total;\\nSELECT count(*) FROM t;\\n")
    >>> read_query_file(f, "postgres")
    ["SELECT 'a;b' FROM t", 'SELECT count(*) FROM t']
    """
    from sqlglot.dialects.dialect import Dialect
    from sqlglot.errors import TokenError
    from sqlglot.tokens import TokenType

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{p}: no such query file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{p}: cannot be read ({exc})") from None
    try:
        tokens = Dialect.get_or_raise(dialect).tokenize(text)
    except TokenError as exc:
        raise UsageError(f"{p}: cannot be read as {dialect} SQL: {str(exc).splitlines()[0]}") \
            from None
    queries: list[str] = []
    statement: list = []
    for token in [*tokens, None]:
        if token is not None and token.token_type != TokenType.SEMICOLON:
            statement.append(token)
            continue
        if statement:
            first = statement[0]
            if first.text.upper() not in _QUERY_STARTS:
                raise UsageError(f"{p}:{first.line}: {first.text} ...: only queries (SELECT or "
                                 "WITH) are run on the source")
            queries.append(text[first.start:statement[-1].end + 1].strip())
        statement = []
    if not queries:
        raise UsageError(f"{p}: no queries in the file")
    return queries
