"""Type rules: what each source type becomes in SQLite/D1, how its values convert, and why.

One rule per source type family.  A rule names the SQLite type, the
function that turns a value the driver returns into the value stored (None:
stored as it comes), an optional CHECK that keeps the source's constraint,
and the sentence the conversion report shows the user.  A type with no rule
stops the migration before any data moves.

Text forms chosen so that SQLite's own functions and comparisons work on them:
timestamps are written the way SQLite's ``datetime()`` writes them
(``YYYY-MM-DD HH:MM:SS``, fractional seconds only when present), in UTC, so
``created_at > datetime('now', '-30 days')`` compares correctly as text.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from d1bench.errors import UsageError
from d1bench.migrator.model import Column

__all__ = ["EXACT_REAL_DIGITS", "TypeRule", "rule_for"]

#: Decimal digits a double keeps exactly: NUMERIC(p, s) with p up to this
#: becomes REAL, wider ones TEXT (every digit kept).
EXACT_REAL_DIGITS = 15


@dataclass(frozen=True)
class TypeRule:
    """How one column converts.

    Attributes:
        sqlite_type: the declared type in the converted DDL.
        convert: value as the driver returns it -> value stored (None: unchanged).
        decision: what the conversion report says, in one sentence.
        check: a CHECK expression to add, with ``{col}`` for the quoted column.
        strict: the same conversion for a NOT NULL column, without the None
            test (a builtin, so a whole column converts inside C).
    """

    sqlite_type: str
    convert: Callable[[Any], Any] | None
    decision: str
    check: str | None = None
    strict: Callable[[Any], Any] | None = None


def timestamp_text(value: Any) -> Any:
    """A datetime as SQLite's datetime() writes it, in UTC when it has a zone.

    >>> timestamp_text(dt.datetime(2024, 3, 1, 13, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))))
    '2024-03-01 11:05:00'
    >>> timestamp_text(dt.datetime(2024, 3, 1, 0, 0, 0, 250000))
    '2024-03-01 00:00:00.250000'
    """
    if isinstance(value, dt.datetime):
        spec = "microseconds" if value.microsecond else "seconds"
        if value.tzinfo is None:
            return value.isoformat(" ", spec)
        if value.utcoffset():
            value = value.astimezone(dt.UTC)
        return value.isoformat(" ", spec)[:-6]  # drop "+00:00": the text is UTC by rule
    if isinstance(value, str) and value.startswith("0000-00-00"):
        return None  # a MySQL zero date: no such day
    return value


def _date_text(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str) and value.startswith("0000-00-00"):
        return None
    return value


def _time_text(value: Any) -> Any:
    """A TIME as ``HH:MM:SS[.ffffff]`` (PyMySQL returns a timedelta for it)."""
    if isinstance(value, dt.timedelta):
        seconds = int(value.total_seconds())
        text = f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
        return text + (f".{value.microseconds:06d}" if value.microseconds else "")
    if isinstance(value, dt.time):
        return value.isoformat(timespec="microseconds" if value.microsecond else "seconds")
    return value


_OUTSIDE_STRINGS = re.compile(r'("(?:[^"\\]|\\.)*")|\s+')


def compact_json(text: Any) -> Any:
    """JSON text without the whitespace between tokens; every digit and key order kept.

    >>> compact_json('{"a": [1.50, "x y"], "b": null}')
    '{"a":[1.50,"x y"],"b":null}'
    >>> compact_json('{"q": "say \\\\"a, b\\\\" "}')
    '{"q":"say \\\\"a, b\\\\" "}'
    """
    if not isinstance(text, str):
        return text
    if "\\" in text:  # an escaped quote may hide in a string: tokenise properly
        return _OUTSIDE_STRINGS.sub(lambda m: m.group(1) or "", text)
    # Without escapes every '"' opens or closes a string: the even pieces of a
    # split are outside strings (the fast path, most documents).
    parts = text.split('"')
    parts[0::2] = [p.replace(" ", "").replace("\n", "").replace("\t", "") for p in parts[0::2]]
    return '"'.join(parts)


def _json_element(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "E" not in str(value) \
            else float(value)
    if isinstance(value, dt.datetime):
        return timestamp_text(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list):
        return [_json_element(v) for v in value]
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def array_json(value: Any) -> Any:
    """A PostgreSQL array as a compact JSON array.

    >>> array_json(["a", "b c"]), array_json([1, None]), array_json([dt.date(2024, 1, 2)])
    ('["a","b c"]', '[1,null]', '["2024-01-02"]')
    """
    if value is None:
        return None
    return _ENCODE([_json_element(v) for v in value])


def _plain_array_json(value: Any) -> Any:
    # Text, integer and float elements are JSON as they are: no per-element step.
    return None if value is None else _ENCODE(value)


def _bool(value: Any) -> Any:
    return None if value is None else int(bool(value))


def _decimal_text(value: Any) -> Any:
    return None if value is None else format(value, "f")


def _float(value: Any) -> Any:
    return None if value is None else float(value)


def _str(value: Any) -> Any:
    return None if value is None else str(value)


def _bytes(value: Any) -> Any:
    return None if value is None else bytes(value)


def _none_safe(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda v: None if v is None else fn(v)


def _enum_check(column: Column) -> str:
    labels = ", ".join("'" + v.replace("'", "''") + "'" for v in column.enum_values)
    return "{col} IN (" + labels + ")"


def rule_for(column: Column, table: str) -> TypeRule:
    """The rule for one source column; a type with no rule is a :class:`UsageError`.

    >>> rule_for(Column("ok", "boolean", "boolean"), "t").sqlite_type
    'INTEGER'
    >>> rule_for(Column("p", "numeric", "numeric"), "t").sqlite_type
    'TEXT'
    """
    base, typ = column.base, column.type
    if base == "integer":
        return TypeRule("INTEGER", None, f"{typ} -> INTEGER (64-bit in SQLite; D1's JavaScript "
                        "API loses digits beyond 2^53, so such values are sent as SQL literals)")
    if base == "boolean":
        return TypeRule("INTEGER", _bool, f"{typ} -> INTEGER 0/1 with a CHECK (SQLite has no "
                        "boolean)", "{col} IN (0, 1)", int)
    if base == "real":
        return TypeRule("REAL", None, f"{typ} -> REAL (a double, as in the source)")
    if base == "numeric":
        p = column.precision
        if p is not None and p <= EXACT_REAL_DIGITS:
            return TypeRule("REAL", _float, f"{typ} -> REAL: {p} digits fit a double exactly, "
                            "and arithmetic and ordering stay numeric", strict=float)
        return TypeRule("TEXT", _decimal_text, f"{typ} -> TEXT: "
                        + ("no declared precision" if p is None else f"{p} digits")
                        + f" may exceed the {EXACT_REAL_DIGITS} a double keeps; every digit is "
                        "kept as text (CAST it to REAL to compute)")
    if base in ("text", "citext"):
        if base == "citext":
            return TypeRule("TEXT COLLATE NOCASE", None, "citext -> TEXT COLLATE NOCASE "
                            "(case-insensitive like the source, for ASCII letters only)")
        return TypeRule("TEXT", None, f"{typ} -> TEXT (compared with SQLite's BINARY collation)")
    if base == "uuid":
        return TypeRule("TEXT", _str, f"{typ} -> TEXT in the canonical 8-4-4-4-12 form",
                        strict=str)
    if base == "date":
        return TypeRule("TEXT", _date_text, f"{typ} -> TEXT 'YYYY-MM-DD' (SQLite's date form)"
                        + ("; zero dates '0000-00-00' -> NULL" if column.type == "date" else ""))
    if base in ("time", "timetz"):
        return TypeRule("TEXT", _time_text, f"{typ} -> TEXT 'HH:MM:SS[.ffffff]'"
                        + ("; the zone offset is dropped" if base == "timetz" else ""))
    if base == "timestamptz":
        return TypeRule("TEXT", timestamp_text, f"{typ} -> TEXT in UTC, 'YYYY-MM-DD HH:MM:SS"
                        "[.ffffff]' (SQLite's datetime() form): converted to UTC, not dropped")
    if base in ("timestamp", "datetime"):
        return TypeRule("TEXT", timestamp_text, f"{typ} -> TEXT 'YYYY-MM-DD HH:MM:SS[.ffffff]' "
                        "(no zone in the column: kept as read in a UTC session; zero dates "
                        "-> NULL)")
    if base == "json":
        return TypeRule("TEXT", None, f"{typ} -> TEXT, the document exactly as the source holds "
                        "it (D1's JSON functions read it)")
    if base == "jsonb":
        return TypeRule("TEXT", compact_json, f"{typ} -> TEXT, compact JSON (the source's "
                        "normalised key order and every digit kept)")
    if base == "array":
        plain = column.element in ("text", "integer", "real", "boolean")
        return TypeRule("TEXT", _plain_array_json if plain else array_json,
                        f"{typ} -> TEXT holding a JSON array (query it with json_each)")
    if base == "enum":
        return TypeRule("TEXT", _str, f"{typ} -> TEXT with a CHECK on its "
                        f"{len(column.enum_values)} labels", _enum_check(column), str)
    if base == "set":
        return TypeRule("TEXT", _none_safe(lambda v: ",".join(sorted(v)) if isinstance(v, set)
                                           else v),
                        f"{typ} -> TEXT, the members comma-separated")
    if base == "bytea":
        return TypeRule("BLOB", _bytes, f"{typ} -> BLOB, byte for byte", strict=bytes)
    raise UsageError(f"{table}.{column.name}: source type {typ!r} has no conversion rule "
                     "(leave the table out with --tables, or change the column's type at the source)")
