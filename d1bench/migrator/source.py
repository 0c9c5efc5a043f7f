"""The one protocol both source servers speak, and opening one from a URL.

A source describes its tables (:class:`~d1bench.migrator.model.SourceTable`),
counts them, streams their rows in key order through a server-side cursor
(resuming after a key), and runs the user's check queries.  Errors from the
driver become one-line :class:`~d1bench.errors.UsageError` messages with the
password scrubbed, whatever the driver put in them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from importlib import import_module
from typing import Any, Self

from d1bench.errors import UsageError
from d1bench.migrator.model import SourceTable, SourceUrl, parse_source_url

__all__ = ["Source", "open_source", "scrub"]


def scrub(message: str, secret: str | None) -> str:
    """The first line of a driver's message, with ``secret`` blanked out.

    >>> scrub("failed: pw=hunter2\\nDETAIL: more", "hunter2")
    'failed: pw=***'
    """
    text = str(message).strip().splitlines()[0] if str(message).strip() else "failed"
    if secret:
        text = text.replace(secret, "***")
    return text


class Source(ABC):
    """A PostgreSQL or MySQL database to migrate from."""

    #: sqlglot's name for the source dialect.
    dialect: str

    def __init__(self, url: SourceUrl) -> None:
        self.url = url

    def fail(self, what: str, exc: BaseException) -> UsageError:
        """A one-line error about ``what``, naming the source but never its password."""
        return UsageError(f"{self.url.display}: {what}: {scrub(str(exc), self.url.password)}")

    @abstractmethod
    def table_names(self) -> list[str]:
        """Base tables of the database (or schema), sorted."""

    @abstractmethod
    def describe(self, name: str) -> SourceTable:
        """The catalog's account of one table."""

    @abstractmethod
    def not_converted(self) -> list[tuple[str, str]]:
        """Objects a migration does not carry (views, triggers, routines): ``(kind, name)``."""

    @abstractmethod
    def stream(self, table: SourceTable, key: Sequence[str], after: Sequence[Any] | None,
               batch: int) -> Iterator[list[tuple[Any, ...]]]:
        """Rows of ``table`` (its columns in catalog order) ordered by ``key``, after ``after``."""

    @abstractmethod
    def _rows(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run a catalog query (driver placeholders ``%s``)."""

    def count(self, table: str) -> int:
        """Rows in ``table``."""
        return int(self._rows(f"SELECT count(*) FROM {quote_ident(table, self.dialect)}")[0][0])

    def select(self, table: SourceTable, key: Sequence[str],
               after: Sequence[Any] | None) -> tuple[str, tuple[Any, ...]]:
        """The streaming SELECT of ``table``: key order, rows after ``after`` (both drivers: ``%s``)."""
        q = self.dialect
        cols = ", ".join(quote_ident(c.name, q) for c in table.columns)
        sql = f"SELECT {cols} FROM {quote_ident(table.name, q)}"
        params: tuple[Any, ...] = ()
        if key:
            keys = ", ".join(quote_ident(k, q) for k in key)
            if after is not None:
                sql += f" WHERE ({keys}) > ({', '.join(['%s'] * len(key))})"
                params = tuple(after)
            sql += f" ORDER BY {keys}"
        return sql, params

    @abstractmethod
    def query(self, sql: str) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        """Run a read-only query: its column names and rows."""

    @abstractmethod
    def close(self) -> None:
        """Close the connections."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_KINDS = {"postgresql": "d1bench.migrator.postgres:PostgresSource",
          "mysql": "d1bench.migrator.mysql:MySQLSource"}


def open_source(url: str | SourceUrl, password: str | None = None) -> Source:
    """Connect to the source a ``postgresql://`` or ``mysql://`` URL names."""
    parsed = url if isinstance(url, SourceUrl) else parse_source_url(url, password)
    module, cls = _KINDS[parsed.kind].split(":")
    return getattr(import_module(module), cls)(parsed)


def quote_ident(name: str, dialect: str) -> str:
    """An identifier quoted for the source dialect."""
    if dialect == "mysql":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'
