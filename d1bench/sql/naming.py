"""Index names in seed 001's convention: ``idx_<table>_<columns>``.

Expression keys and partial predicates are turned into words
(``json_extract(conditions, '$[0]')`` -> ``conditions_0``, ``WHERE abstract IS
NULL`` -> ``where_abstract_null``) and a ``DESC`` key gets ``_desc``.  A name
that is taken by a different index gets a short digest of the definition, so
the same index always gets the same name and two indexes never share one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from d1bench.sql.catalog import IndexDef, Key

__all__ = ["MAX_NAME", "Namer", "index_name"]

#: Longer names are cut and finished with a digest (wrangler and SQLite accept
#: any length; people reading a migration do not).
MAX_NAME = 64


def _words(text: str) -> str:
    text = text.lower()
    text = re.sub(r"json_extract\(\s*([a-z0-9_]+)\s*,\s*'\$\.?([^']*)'\s*\)", r"\1 \2", text)
    text = re.sub(r"\bis\s+not\s+null\b", " notnull ", text)
    text = re.sub(r"\bis\s+null\b", " null ", text)
    text = re.sub(r"[^a-z0-9]+", "_", text)
    return text.strip("_")


def _key_words(key: Key) -> str:
    word = key.expr if key.is_column else _words(key.expr)
    return f"{word}_desc" if key.desc else word


def index_name(table: str, keys: Iterable[Key], where: str | None = None) -> str:
    """The conventional name of an index, before any collision is resolved.

    >>> index_name("users", [Key("email"), Key("status")])
    'idx_users_email_status'
    >>> index_name("papers", [Key("medical_specialty"), Key("citation_count", desc=True)])
    'idx_papers_medical_specialty_citation_count_desc'
    >>> index_name("papers", [Key("abstract")], "abstract IS NULL")
    'idx_papers_abstract_where_abstract_null'
    >>> index_name("papers", [Key("json_extract(conditions, '$[0]')")])
    'idx_papers_conditions_0'
    """
    parts = ["idx", table.lower(), *(_key_words(k) for k in keys)]
    if where:
        parts += ["where", _words(where)]
    name = re.sub(r"_+", "_", "_".join(p for p in parts if p))
    if len(name) > MAX_NAME:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = f"{name[: MAX_NAME - 9].rstrip('_')}_{digest}"
    return name


class Namer:
    """Hands out names, keeping them unique across existing and proposed indexes."""

    def __init__(self, taken: Iterable[IndexDef] = ()) -> None:
        self._by_name: dict[str, tuple] = {}
        self._by_shape: dict[tuple, str] = {}
        for index in taken:
            self._by_name[index.name.lower()] = index.shape
            self._by_shape.setdefault(index.shape, index.name)

    def name(self, table: str, keys: tuple[Key, ...], where: str | None = None) -> str:
        """The name of the index ``table(keys) WHERE where``; the same shape, the same name."""
        shape = (table, keys, where)
        if shape in self._by_shape:
            return self._by_shape[shape]
        base = index_name(table, keys, where)
        name = base
        if name.lower() in self._by_name and self._by_name[name.lower()] != shape:
            digest = hashlib.sha1(repr(shape).encode()).hexdigest()[:6]
            name = f"{base[: MAX_NAME - 7]}_{digest}"
        self._by_name[name.lower()] = shape
        self._by_shape[shape] = name
        return name
