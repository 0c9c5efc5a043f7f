"""What a source catalog says about a table, in one shape for PostgreSQL and MySQL.

The catalogs (:mod:`d1bench.migrator.postgres`, :mod:`d1bench.migrator.mysql`)
fill these records; the type rules and the DDL conversion read only these, so
they never care which server the table came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from d1bench.errors import UsageError

__all__ = ["Column", "ForeignKey", "Index", "SourceTable", "SourceUrl", "parse_source_url"]


@dataclass(frozen=True, slots=True)
class Column:
    """One source column.

    Attributes:
        name: as the source spells it.
        type: the source's full type text, lower case (``numeric(5,2)``, ``text[]``,
            ``timestamp with time zone``, ``tinyint(1)``, ``enum('a','b')``).
        base: the type's family name (``numeric``, ``array``, ``enum``, ``json`` ...).
        nullable: NULL allowed.
        default: the source's default expression, or None.
        identity: filled by a sequence (SERIAL, IDENTITY, AUTO_INCREMENT).
        enum_values: the labels of an ENUM type.
        precision, scale: of NUMERIC/DECIMAL, when declared.
        element: an array's element family (``text``, ``integer`` ...).
    """

    name: str
    type: str
    base: str
    nullable: bool = True
    default: str | None = None
    identity: bool = False
    enum_values: tuple[str, ...] = ()
    precision: int | None = None
    scale: int | None = None
    element: str | None = None


@dataclass(frozen=True, slots=True)
class ForeignKey:
    """``columns`` reference ``ref_table(ref_columns)``."""

    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]
    on_delete: str = "NO ACTION"
    deferrable: bool = False


@dataclass(frozen=True, slots=True)
class Index:
    """A secondary index; ``definition`` is the source's own text when it is not plain columns."""

    name: str
    columns: tuple[str, ...]
    unique: bool = False
    definition: str | None = None  # set: expression or partial index (not converted mechanically)


@dataclass(frozen=True, slots=True)
class SourceTable:
    """A table as the source's catalog describes it.

    ``next_id`` is the identity column's sequence's next value (None: no sequence).
    ``checks`` are the source's CHECK expressions in its own dialect.
    """

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    uniques: tuple[tuple[str, ...], ...] = ()
    checks: tuple[str, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    indexes: tuple[Index, ...] = ()
    next_id: int | None = None
    others: tuple[str, ...] = field(default=())  # triggers and the like, named in the report

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


@dataclass(frozen=True, slots=True)
class SourceUrl:
    """A parsed ``postgresql://`` or ``mysql://`` URL; ``display`` never holds the password."""

    kind: str  # "postgresql" or "mysql"
    host: str
    port: int
    user: str
    password: str | None
    database: str

    @property
    def display(self) -> str:
        return f"{self.kind}://{self.user}@{self.host}:{self.port}/{self.database}"

    def __repr__(self) -> str:
        return f"SourceUrl({self.display!r})"


_SCHEMES = {"postgresql": ("postgresql", 5432), "postgres": ("postgresql", 5432),
            "mysql": ("mysql", 3306), "mariadb": ("mysql", 3306)}


def parse_source_url(url: str, password: str | None = None) -> SourceUrl:
    """Parse a source URL; the password may be in it, in ``password``, or in PGPASSWORD/MYSQL_PWD.

    >>> parse_source_url("postgresql://ann:pw@db.example:6543/shop").display
    'postgresql://ann@db.example:6543/shop'
    >>> parse_source_url("mysql://root@localhost/app").port
    3306
    """
    import os

    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        # The URL may hold a password: never echo it.
        raise UsageError(f"source {parts.scheme or '(none)'}://...: use postgresql://USER@HOST:PORT/DB "
                         "or mysql://USER@HOST:PORT/DB")
    kind, default_port = _SCHEMES[parts.scheme]
    try:
        port = parts.port or default_port
    except ValueError:
        raise UsageError(f"source {kind}://{parts.hostname}: the port is not a number") from None
    database = unquote(parts.path.lstrip("/"))
    if not parts.username or not database:
        raise UsageError(f"source {kind}://{parts.hostname or ''}: give USER@HOST:PORT/DATABASE")
    secret = unquote(parts.password) if parts.password is not None else password
    if secret is None:
        secret = os.environ.get("PGPASSWORD" if kind == "postgresql" else "MYSQL_PWD")
    return SourceUrl(kind, parts.hostname or "localhost", port, unquote(parts.username), secret,
                     database)
