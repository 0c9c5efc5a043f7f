"""PostgreSQL as a migration source: its catalog, and rows through a server-side cursor.

psycopg 3: server-side (named) cursors stream a table of any size in bounded
memory, and its binary wheel needs no compiler or libpq on the machine.

JSON and JSONB come back as the server's text (not parsed into Python), so a
JSON document keeps its digits and key order exactly; the type rules decide
what to do with it.  The session's time zone is UTC, so TIMESTAMPTZ values
arrive already in UTC.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from d1bench.errors import UsageError
from d1bench.migrator.model import Column, ForeignKey, Index, SourceTable, SourceUrl
from d1bench.migrator.source import Source, quote_ident

__all__ = ["PostgresSource"]

_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.attidentity <> '', t.typtype, t.typcategory,
       et.typname, a.atttypid, pg_get_serial_sequence(%(t)s, a.attname), t.typname
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %(t)s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

_CONSTRAINTS = """
SELECT c.contype, pg_get_constraintdef(c.oid),
       ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i),
       c.confrelid::regclass::text,
       ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i),
       c.confdeltype, c.condeferrable
FROM pg_constraint c WHERE c.conrelid = %(t)s::regclass ORDER BY c.conname
"""

_INDEXES = """
SELECT ic.relname, i.indisunique, pg_get_indexdef(i.indexrelid),
       i.indexprs IS NOT NULL OR i.indpred IS NOT NULL,
       ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o)
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
WHERE i.indrelid = %(t)s::regclass
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
ORDER BY ic.relname
"""

_ON_DELETE = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
_BASES = {"int2": "integer", "int4": "integer", "int8": "integer", "float4": "real",
          "float8": "real", "numeric": "numeric", "bool": "boolean", "text": "text",
          "varchar": "text", "bpchar": "text", "name": "text", "citext": "citext", "uuid": "uuid",
          "date": "date", "time": "time", "timetz": "timetz", "timestamp": "timestamp",
          "timestamptz": "timestamptz", "json": "json", "jsonb": "jsonb", "bytea": "bytea"}


class PostgresSource(Source):
    dialect = "postgres"

    def __init__(self, url: SourceUrl) -> None:
        super().__init__(url)
        import psycopg
        from psycopg.types.string import TextLoader

        try:
            self.conn = psycopg.connect(host=url.host, port=url.port, user=url.user,
                                        password=url.password or "", dbname=url.database,
                                        connect_timeout=10, options="-c TimeZone=UTC")
        except psycopg.Error as exc:
            raise self.fail("cannot connect", exc) from None
        for name in ("json", "jsonb"):
            self.conn.adapters.register_loader(name, TextLoader)
        self._psycopg = psycopg
        self._typnames: dict[int, str] = {}

    def _rows(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql, params)
                rows = cur.fetchall()
            self.conn.rollback()  # catalog reads only: end the transaction they opened
            return rows
        except self._psycopg.Error as exc:
            self.conn.rollback()
            raise self.fail("query failed", exc) from None

    def table_names(self) -> list[str]:
        return [r[0] for r in self._rows(
            "SELECT c.relname FROM pg_class c WHERE c.relkind IN ('r', 'p') "
            "AND c.relnamespace = current_schema()::regnamespace AND NOT c.relispartition "
            "ORDER BY 1")]

    def not_converted(self) -> list[tuple[str, str]]:
        found = [("view", r[0]) for r in self._rows(
            "SELECT viewname FROM pg_views WHERE schemaname = current_schema() ORDER BY 1")]
        found += [("trigger", f"{r[1]}.{r[0]}") for r in self._rows(
            "SELECT t.tgname, c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace "
            "ORDER BY 2, 1")]
        return found

    def describe(self, name: str) -> SourceTable:
        if name not in self.table_names():
            raise UsageError(f"{self.url.display}: no table {name!r} "
                             f"(found: {', '.join(self.table_names()) or 'none'})")
        qualified = quote_ident(name, self.dialect)
        columns, sequence = [], None
        for (col, typ, nullable, default, identity, typtype, category, elem, _oid,
             serial, typname) in self._rows(_COLUMNS, {"t": qualified}):
            typ = typ.lower()
            base = _BASES.get(typname) or _family(typname, typtype, category)
            enum = ()
            if typtype == "e":
                enum = tuple(r[0] for r in self._rows(
                    "SELECT enumlabel FROM pg_enum WHERE enumtypid = %s ORDER BY enumsortorder",
                    (_oid,)))
            precision = scale = None
            m = re.match(r"numeric\((\d+)(?:,(\d+))?\)", typ)
            if m:
                precision, scale = int(m.group(1)), int(m.group(2) or 0)
            is_identity = bool(identity) or bool(default and default.startswith("nextval("))
            if is_identity and serial:
                sequence = serial
            columns.append(Column(col, typ, base, bool(nullable),
                                  None if is_identity else default, is_identity, enum,
                                  precision, scale, _BASES.get(elem or "", elem)))
        pk: tuple[str, ...] = ()
        uniques, checks, fks = [], [], []
        for contype, definition, cols, ref, ref_cols, on_delete, deferrable in self._rows(
                _CONSTRAINTS, {"t": qualified}):
            if contype == "p":
                pk = tuple(cols)
            elif contype == "u":
                uniques.append(tuple(cols))
            elif contype == "c":
                checks.append(re.sub(r"(?is)^CHECK\s*", "", definition).strip())
            elif contype == "f":
                fks.append(ForeignKey(tuple(cols), ref.strip('"'), tuple(ref_cols),
                                      _ON_DELETE.get(on_delete, "NO ACTION"), bool(deferrable)))
        indexes = []
        for iname, unique, definition, special, cols in self._rows(_INDEXES, {"t": qualified}):
            indexes.append(Index(iname, tuple(cols), bool(unique), definition if special else None))
        next_id = None
        if sequence:
            last, called = self._rows(f"SELECT last_value, is_called FROM {sequence}")[0]
            next_id = int(last) + 1 if called else int(last)
        return SourceTable(name, tuple(columns), pk, tuple(uniques), tuple(checks), tuple(fks),
                           tuple(indexes), next_id)

    def stream(self, table: SourceTable, key: Sequence[str], after: Sequence[Any] | None,
               batch: int) -> Iterator[list[tuple[Any, ...]]]:
        sql, params = self.select(table, key, after)
        try:
            # A named cursor lives on the server: rows come over in batches.
            with self.conn.transaction(), self.conn.cursor(name="d1bench_migrate") as cur:
                cur.itersize = batch
                cur.execute(sql, params)
                while rows := cur.fetchmany(batch):
                    yield rows
        except self._psycopg.Error as exc:
            raise self.fail(f"reading {table.name}", exc) from None

    def query(self, sql: str) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        try:
            with self.conn.cursor() as cur:
                cur.execute("SET TRANSACTION READ ONLY")
                cur.execute(sql)
                rows = cur.fetchall()
                names = tuple(d.name for d in cur.description or ())
            self.conn.rollback()
            return names, rows
        except self._psycopg.Error as exc:
            self.conn.rollback()
            raise self.fail("check query failed on the source", exc) from None

    def close(self) -> None:
        self.conn.close()


def _family(typ: str, typtype: str, category: str) -> str:
    if category == "A":
        return "array"
    if typtype == "e":
        return "enum"
    if typtype == "d":
        return "domain"
    return typ.split("(")[0]
