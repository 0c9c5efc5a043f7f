"""A medical-platform source database in PostgreSQL or MariaDB, filled from a d1bench corpus.

What a migration is tested, demonstrated and benchmarked on: the corpus a
team would have built in their own server, in their server's own types
(``medical_postgres.sql``, ``medical_mysql.sql`` beside this module), with the
generator's rows.  Migrating it back must give the corpus's answers to the
``medical`` workload.
"""

from __future__ import annotations

import json
import sqlite3
from importlib import resources
from pathlib import Path
from typing import Any

from d1bench.migrator.model import parse_source_url
from d1bench.schema import TABLES, split_statements

__all__ = ["create_database", "load_medical", "load_sqlite"]

_ARRAYS = {("clinical_trials", "primary_outcomes"), ("clinical_trials", "secondary_outcomes"),
           ("papers", "keywords"), ("papers", "conditions")}


def _ddl(kind: str) -> list[str]:
    name = "medical_postgres.sql" if kind == "postgresql" else "medical_mysql.sql"
    return split_statements(resources.files(__package__).joinpath(name).read_text("utf-8"))


def _connect(url: str, database: str | None = None) -> Any:
    u = parse_source_url(url)
    if u.kind == "postgresql":
        import psycopg

        return psycopg.connect(host=u.host, port=u.port, user=u.user, password=u.password or "",
                               dbname=database or u.database, autocommit=True,
                               options="-c TimeZone=UTC")
    import pymysql

    return pymysql.connect(host=u.host, port=u.port, user=u.user, password=u.password or "",
                           database=database or u.database, charset="utf8mb4", autocommit=True,
                           init_command="SET time_zone = '+00:00'")


def create_database(url: str, name: str) -> str:
    """Create database ``name`` on the server ``url`` points at; return the URL of the new one."""
    kind = parse_source_url(url).kind
    conn = _connect(url)
    try:
        with conn.cursor() as cur:
            if kind == "postgresql":
                cur.execute(f'CREATE DATABASE "{name}"')
            else:
                cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 "
                            "COLLATE utf8mb4_bin")
    finally:
        conn.close()
    return url.rsplit("/", 1)[0] + "/" + name


def load_medical(corpus: str | Path, url: str, *, tables: tuple[str, ...] = TABLES) -> dict[str, int]:
    """Create the medical tables at ``url`` in the server's own types and copy ``corpus`` in.

    Returns the rows loaded per table.
    """
    kind = parse_source_url(url).kind
    return load_sqlite(corpus, url, _ddl(kind), tables,
                       arrays=_ARRAYS if kind == "postgresql" else frozenset())


def load_sqlite(db: str | Path, url: str, ddl: list[str], tables: tuple[str, ...], *,
                arrays: frozenset[tuple[str, str]] | set[tuple[str, str]] = frozenset()
                ) -> dict[str, int]:
    """Run ``ddl`` at ``url``, then copy ``tables`` (parents first) from the SQLite file ``db``.

    ``arrays`` names ``(table, column)`` pairs holding JSON arrays that go into
    PostgreSQL array columns.  Sequences are moved past the copied ids.
    """
    kind = parse_source_url(url).kind
    src = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn = _connect(url)
    loaded = {}
    try:
        with conn.cursor() as cur:
            for statement in ddl:
                cur.execute(statement)
        for table in tables:
            cols = [r[1] for r in src.execute(f'PRAGMA table_info("{table}")')]
            array_at = [i for i, c in enumerate(cols) if (table, c) in arrays]
            rows = src.execute(f'SELECT * FROM "{table}"')
            loaded[table] = (_copy_pg if kind == "postgresql" else _copy_mysql)(
                conn, table, cols, rows, array_at)
        if kind == "postgresql":
            with conn.cursor() as cur:
                cur.execute("SELECT table_name, column_name FROM information_schema.columns "
                            "WHERE table_schema = current_schema() AND "
                            "(column_default LIKE 'nextval(%%' OR is_identity = 'YES')")
                for table, column in cur.fetchall():
                    cur.execute(f'SELECT setval(pg_get_serial_sequence(%s, %s), '
                                f'(SELECT max("{column}") FROM "{table}"))', (f'"{table}"', column))
    finally:
        conn.close()
        src.close()
    return loaded


def _copy_pg(conn: Any, table: str, cols: list[str], rows: Any, arrays: list[int]) -> int:
    names = ", ".join(f'"{c}"' for c in cols)
    n = 0
    with conn.cursor() as cur, cur.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
        for row in rows:
            if arrays:
                row = list(row)
                for i in arrays:
                    row[i] = json.loads(row[i])
            copy.write_row(row)
            n += 1
    return n


def _copy_mysql(conn: Any, table: str, cols: list[str], rows: Any, _arrays: list[int]) -> int:
    names = ", ".join(f"`{c}`" for c in cols)
    sql = f"INSERT INTO `{table}` ({names}) VALUES ({', '.join(['%s'] * len(cols))})"
    n = 0
    with conn.cursor() as cur:
        while batch := rows.fetchmany(1_000):
            cur.executemany(sql, batch)
            n += len(batch)
    return n
