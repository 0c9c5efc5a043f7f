"""MySQL and MariaDB as a migration source: information_schema, and rows through SSCursor.

PyMySQL: pure Python, so it installs anywhere without a compiler or the
MySQL client library, and its ``SSCursor`` streams rows without buffering the
whole result (mysqlclient is faster but needs libmysqlclient headers to build).

The session's time zone is UTC, so TIMESTAMP columns (stored in UTC) come back
in UTC; DATETIME has no zone and comes back as written.  MariaDB's JSON is a
LONGTEXT with a ``json_valid`` CHECK: the catalog recognises it by that check.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from d1bench.errors import UsageError
from d1bench.migrator.model import Column, ForeignKey, Index, SourceTable, SourceUrl
from d1bench.migrator.source import Source

__all__ = ["MySQLSource"]

_BASES = {"tinyint": "integer", "smallint": "integer", "mediumint": "integer", "int": "integer",
          "bigint": "integer", "year": "integer", "float": "real", "double": "real",
          "decimal": "numeric", "char": "text", "varchar": "text", "tinytext": "text",
          "text": "text", "mediumtext": "text", "longtext": "text", "json": "json",
          "date": "date", "time": "time", "datetime": "datetime", "timestamp": "timestamp",
          "enum": "enum", "set": "set", "blob": "bytea", "tinyblob": "bytea",
          "mediumblob": "bytea", "longblob": "bytea", "binary": "bytea", "varbinary": "bytea"}


class MySQLSource(Source):
    dialect = "mysql"

    def __init__(self, url: SourceUrl) -> None:
        super().__init__(url)
        import pymysql

        self._pymysql = pymysql
        self.conn = self._connect()

    def _connect(self, cursorclass: Any = None) -> Any:
        pymysql = self._pymysql
        url = self.url
        try:
            return pymysql.connect(host=url.host, port=url.port, user=url.user,
                                   password=url.password or "", database=url.database,
                                   connect_timeout=10, charset="utf8mb4",
                                   init_command="SET time_zone = '+00:00'",
                                   cursorclass=cursorclass or pymysql.cursors.Cursor)
        except pymysql.Error as exc:
            raise self.fail("cannot connect", exc) from None

    def _rows(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall())
        except self._pymysql.Error as exc:
            raise self.fail("query failed", exc) from None

    def table_names(self) -> list[str]:
        return [r[0] for r in self._rows(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1")]

    def not_converted(self) -> list[tuple[str, str]]:
        found = [("view", r[0]) for r in self._rows(
            "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE() "
            "ORDER BY 1")]
        found += [("trigger", f"{r[1]}.{r[0]}") for r in self._rows(
            "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS "
            "WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY 2, 1")]
        return found

    def describe(self, name: str) -> SourceTable:
        names = self.table_names()
        if name not in names:
            raise UsageError(f"{self.url.display}: no table {name!r} "
                             f"(found: {', '.join(names) or 'none'})")
        checks = {cname: clause for cname, clause in self._rows(
            "SELECT CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = %s", (name,))}
        json_cols = {m.group(1) for clause in checks.values()
                     if (m := re.fullmatch(r"json_valid\(`([^`]+)`\)", clause.strip()))}
        columns = []
        for col, ctype, nullable, default, extra, precision, scale in self._rows(
                "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA, "
                "NUMERIC_PRECISION, NUMERIC_SCALE FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
                (name,)):
            ctype = ctype.lower()
            family = ctype.split("(")[0].split()[0]
            base = "json" if col in json_cols else _BASES.get(family, family)
            if family == "tinyint" and ctype.startswith("tinyint(1)"):
                base = "boolean"
            enum = tuple(v.replace("''", "'") for v in re.findall(r"'((?:[^']|'')*)'", ctype)) \
                if family == "enum" else ()
            identity = "auto_increment" in (extra or "").lower()
            if default is not None and default.upper() == "NULL":
                default = None
            columns.append(Column(col, ctype, base, nullable == "YES", None if identity else default,
                                  identity, enum,
                                  int(precision) if base == "numeric" else None,
                                  int(scale) if base == "numeric" and scale is not None else None))
        keys: dict[tuple[str, str], list[tuple[str, str | None, str | None]]] = {}
        for cname, ctype, col, ref_table, ref_col in self._rows(
                "SELECT tc.CONSTRAINT_NAME, tc.CONSTRAINT_TYPE, k.COLUMN_NAME, "
                "k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME "
                "FROM information_schema.TABLE_CONSTRAINTS tc "
                "JOIN information_schema.KEY_COLUMN_USAGE k ON k.CONSTRAINT_SCHEMA = "
                "tc.CONSTRAINT_SCHEMA AND k.TABLE_NAME = tc.TABLE_NAME AND k.CONSTRAINT_NAME = "
                "tc.CONSTRAINT_NAME WHERE tc.TABLE_SCHEMA = DATABASE() AND tc.TABLE_NAME = %s "
                "ORDER BY tc.CONSTRAINT_NAME, k.ORDINAL_POSITION", (name,)):
            keys.setdefault((cname, ctype), []).append((col, ref_table, ref_col))
        rules = dict(self._rows(
            "SELECT CONSTRAINT_NAME, DELETE_RULE FROM information_schema.REFERENTIAL_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = %s", (name,)))
        pk: tuple[str, ...] = ()
        uniques, fks = [], []
        for (cname, ctype), parts in keys.items():
            cols = tuple(p[0] for p in parts)
            if ctype == "PRIMARY KEY":
                pk = cols
            elif ctype == "UNIQUE":
                uniques.append(cols)
            elif ctype == "FOREIGN KEY":
                fks.append(ForeignKey(cols, str(parts[0][1]), tuple(str(p[2]) for p in parts),
                                      rules.get(cname, "NO ACTION")))
        constraint_names = {c for c, _ in keys}
        index_cols: dict[str, list[str]] = {}
        unique_index: dict[str, bool] = {}
        for iname, non_unique, col, expr in self._rows(
                "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, NULL FROM information_schema.STATISTICS "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s "
                "ORDER BY INDEX_NAME, SEQ_IN_INDEX", (name,)):
            if iname == "PRIMARY" or iname in constraint_names:
                continue
            index_cols.setdefault(iname, []).append(col or expr)
            unique_index[iname] = not int(non_unique)
        # InnoDB makes an index for every foreign key; it is the FK's, not the user's.
        indexes = tuple(Index(n, tuple(c), unique_index[n]) for n, c in index_cols.items())
        table_checks = tuple(clause for cname, clause in sorted(checks.items())
                             if not re.fullmatch(r"json_valid\(`[^`]+`\)", clause.strip()))
        next_id = None
        if any(c.identity for c in columns):
            auto = self._rows("SELECT AUTO_INCREMENT FROM information_schema.TABLES "
                              "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s", (name,))
            next_id = int(auto[0][0]) if auto and auto[0][0] is not None else None
        return SourceTable(name, tuple(columns), pk, tuple(uniques), table_checks, tuple(fks),
                           indexes, next_id)

    def stream(self, table: SourceTable, key: Sequence[str], after: Sequence[Any] | None,
               batch: int) -> Iterator[list[tuple[Any, ...]]]:
        sql, params = self.select(table, key, after)
        # SSCursor holds its connection until the result is read: give it its own.
        conn = self._connect(self._pymysql.cursors.SSCursor)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                while rows := cur.fetchmany(batch):
                    yield list(rows)
        except self._pymysql.Error as exc:
            raise self.fail(f"reading {table.name}", exc) from None
        finally:
            conn.close()

    def query(self, sql: str) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        try:
            with self.conn.cursor() as cur:
                cur.execute("START TRANSACTION READ ONLY")
                cur.execute(sql)
                rows = list(cur.fetchall())
                names = tuple(d[0] for d in cur.description or ())
                cur.execute("ROLLBACK")
            return names, rows
        except self._pymysql.Error as exc:
            raise self.fail("check query failed on the source", exc) from None

    def close(self) -> None:
        self.conn.close()
