"""How big a database is, next to what D1 can hold.

D1 stores one database in at most 10 GB on the paid plan and 500 MB on the
free plan (``../reference/d1.md``, "Limits"), and an index is stored bytes as
much as a table is.  This module answers three questions before an upload or
an index set finds the limit the hard way:

- :func:`object_sizes`: the bytes of every table, index and full-text index
  of a database file, from SQLite's ``dbstat`` table (the pages each b-tree
  really occupies, free space inside them included).
- :func:`index_set_bytes`: what an index set would add, *without* building
  it on the database: each index is built on a sample of its table's rows in
  memory and its size scaled up by the table's row count.  An index the
  database already has with the same definition is measured, not estimated.
- :func:`estimate_corpus_bytes`: the size of a generated corpus of N papers,
  so ``d1bench generate`` can warn before it builds one D1 could not hold.

:func:`size_report` puts these together, with the share of each D1 plan's
limit the database (and the database plus each index set) would use.
"""

from __future__ import annotations

import math
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

import apsw
import pandas as pd

from d1bench.errors import UsageError
from d1bench.sql.limits import MAX_DATABASE_BYTES

__all__ = [
    "BYTES_PER_PAPER",
    "SizeReport",
    "estimate_corpus_bytes",
    "index_set_bytes",
    "largest_corpus_for",
    "object_sizes",
    "plan_fit",
    "size_report",
]

#: Bytes a generated corpus takes per paper, all tables, indexes of set
#: ``none`` and the full-text index included.  Measured on ``generate --seed 0``:
#: 4,202 at 2,000 and 20,000 papers, 4,220 at 100,000, 4,370 at 1,000,000
#: (citations per paper grow with the corpus); rounded up so that a warning
#: errs on the side of caution.
BYTES_PER_PAPER = 4_400

#: Rows of a table an index is built on when its size is estimated.
SAMPLE_ROWS = 20_000
_PAGE_SLACK = 1.02

_CREATE_INDEX = re.compile(
    r"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    r"(?P<name>\"(?:[^\"]|\"\")+\"|`[^`]+`|\[[^\]]+\]|[\w$]+)\s+ON\s+"
    r"(?P<table>\"(?:[^\"]|\"\")+\"|`[^`]+`|\[[^\]]+\]|[\w$]+)", re.IGNORECASE)


def _unquote(name: str) -> str:
    if name[:1] == '"':
        return name[1:-1].replace('""', '"')
    if name[:1] in ("`", "["):
        return name[1:-1]
    return name


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _open(path: str | os.PathLike[str]) -> apsw.Connection:
    from d1bench.dbfile import open_readonly

    return open_readonly(path)


def object_sizes(db_path: str | os.PathLike[str]) -> pd.DataFrame:
    """Every b-tree of the database with its bytes, largest first.

    Columns: ``name``, ``kind`` (``table``, ``index``, ``fts`` for a full-text
    index's shadow tables, ``internal`` for ``sqlite_*``), ``table`` (the table
    an index belongs to; the virtual table a shadow table serves), ``bytes``,
    ``share`` (of the whole file).
    """
    db = _open(db_path)
    try:
        schema = db.execute("SELECT name, type, tbl_name, sql FROM sqlite_schema").fetchall()
        vtabs = [name for name, kind, _t, sql in schema
                 if kind == "table" and (sql or "").upper().startswith("CREATE VIRTUAL TABLE")]
        owner = {name: (kind, table) for name, kind, table, _sql in schema}
        sizes = db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall()
        file_bytes = db.pragma("page_count") * db.pragma("page_size")
    finally:
        db.close()
    rows = []
    for name, size in sizes:
        vtab = next((v for v in vtabs if name.startswith(v + "_")), None)
        kind, table = owner.get(name, ("table", name))
        if name.startswith("sqlite_autoindex_"):
            kind = "index"  # a PRIMARY KEY or UNIQUE constraint's own index
        elif name.startswith("sqlite_"):
            kind = "internal"
        elif vtab is not None:
            kind, table = "fts", vtab
        rows.append({"name": name, "kind": kind, "table": table, "bytes": int(size)})
    frame = pd.DataFrame(rows, columns=["name", "kind", "table", "bytes"])
    frame["share"] = frame["bytes"] / max(file_bytes, 1)
    return frame.sort_values(["bytes", "name"], ascending=[False, True], ignore_index=True)


def plan_fit(total_bytes: int) -> pd.DataFrame:
    """The share of each D1 plan's database limit that ``total_bytes`` uses.

    >>> plan_fit(750_000_000)[["plan", "fits"]].values.tolist()
    [['paid', True], ['free', False]]
    """
    rows = [{"plan": plan, "limit_bytes": limit, "bytes": int(total_bytes),
             "share": total_bytes / limit, "fits": total_bytes <= limit}
            for plan, limit in MAX_DATABASE_BYTES.items()]
    return pd.DataFrame(rows, columns=["plan", "limit_bytes", "bytes", "share", "fits"])


def estimate_corpus_bytes(papers: int) -> int:
    """The bytes of a corpus of ``papers`` generated papers (index set ``none``).

    >>> estimate_corpus_bytes(1_000_000)
    4400000000
    """
    return int(papers) * BYTES_PER_PAPER


def largest_corpus_for(plan: str = "paid") -> int:
    """The most papers a generated corpus can have and still fit ``plan``'s limit.

    >>> largest_corpus_for("paid")
    2272727
    """
    try:
        return MAX_DATABASE_BYTES[plan] // BYTES_PER_PAPER
    except KeyError:
        raise UsageError(f"plan {plan!r}: choose one of {', '.join(MAX_DATABASE_BYTES)}") from None


def _index_statements(sql: str) -> list[tuple[str, str, str]]:
    """``(name, table, statement)`` for each CREATE INDEX of an index set's text."""
    from d1bench.schema import split_statements

    found = []
    for statement in split_statements(sql):
        match = _CREATE_INDEX.match(statement)
        if match:
            found.append((_unquote(match["name"]), _unquote(match["table"]), statement.strip()))
    return found


def _normal(sql: str | None) -> str:
    text = re.sub(r"(?i)\bIF\s+NOT\s+EXISTS\b", " ", (sql or "").strip().rstrip(";"))
    return re.sub(r"\s+", "", text).lower()


def _sample(db: apsw.Connection, table: str, limit: int, seed: int) -> tuple[list[str], list[tuple]]:
    """Up to ``limit`` rows of ``table`` spread over its key range (all of them if fewer)."""
    q = _quote(table)
    columns = [r[1] for r in db.execute(f"PRAGMA table_info({q})")]
    select = f"SELECT {', '.join(_quote(c) for c in columns)} FROM {q}"
    without_rowid = bool(db.execute(
        "SELECT 1 FROM sqlite_schema WHERE name = ? AND sql LIKE '%WITHOUT%ROWID%'",
        (table,)).fetchall())
    if without_rowid:
        # No rowid to probe: take every k-th row of one pass (bounded by the table's size).
        total = db.execute(f"SELECT count(*) FROM {q}").fetchall()[0][0]
        step = max(1, total // max(limit, 1))
        rows = [r for i, r in enumerate(db.execute(select)) if i % step == 0][:limit]
        return columns, rows
    bounds = db.execute(f"SELECT min(rowid), max(rowid), count(*) FROM {q}").fetchall()[0]
    low, high, total = bounds
    if not total:
        return columns, []
    if total <= limit:
        return columns, db.execute(select).fetchall()
    # Probing random keys reads only the sampled rows, whatever the table's size.
    rng = random.Random(seed)
    keys = sorted({rng.randint(low, high) for _ in range(limit)})
    rows: list[tuple] = []
    for start in range(0, len(keys), 100):
        chunk = keys[start:start + 100]
        marks = ",".join("?" * len(chunk))
        rows.extend(db.execute(f"{select} WHERE rowid IN ({marks})", chunk).fetchall())
    return columns, rows


def index_set_bytes(db_path: str | os.PathLike[str], index_set: str | os.PathLike[str], *,
                    sample_rows: int = SAMPLE_ROWS, seed: int = 0) -> pd.DataFrame:
    """The bytes each index of ``index_set`` would take on ``db_path``.

    ``index_set`` is ``none``, ``seed`` or the path of a ``.sql`` file, as for
    ``d1bench indexes apply``.  The database is not changed: an index it
    already has with the same definition is measured with ``dbstat``; any
    other is built in memory on up to ``sample_rows`` rows of its table, drawn
    across the table's key range, and its bytes multiplied by the table's rows
    over the rows sampled (a partial index's WHERE and an expression index
    work as they would on the whole table).

    Columns: ``index``, ``table``, ``bytes``, ``method`` (``measured`` or
    ``sampled``), ``sampled_rows``, ``table_rows``.
    """
    from d1bench.schema import index_set_sql

    statements = _index_statements(index_set_sql(str(index_set)))
    db = _open(db_path)
    rows = []
    try:
        existing = {name: sql for name, sql in db.execute(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'index'")}
        measured = dict(db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"))
        table_ddl = dict(db.execute("SELECT name, sql FROM sqlite_schema WHERE type = 'table'"))
        for name, table, statement in statements:
            if table not in table_ddl:
                raise UsageError(f"index set {index_set}: index {name} is on {table!r}, "
                                 f"which {db_path} has no table of")
            table_rows = db.execute(f"SELECT count(*) FROM {_quote(table)}").fetchall()[0][0]
            if name in existing and _normal(existing[name]) == _normal(statement):
                rows.append({"index": name, "table": table, "bytes": int(measured.get(name, 0)),
                             "method": "measured", "sampled_rows": table_rows,
                             "table_rows": table_rows})
                continue
            columns, sample = _sample(db, table, sample_rows, seed)
            scratch = apsw.Connection(":memory:")
            try:
                scratch.execute(table_ddl[table])
                marks = ",".join("?" * len(columns))
                with scratch:
                    scratch.executemany(
                        f"INSERT INTO {_quote(table)} ({', '.join(_quote(c) for c in columns)}) "
                        f"VALUES ({marks})", sample)
                scratch.execute(statement)
                used, page = scratch.execute(
                    "SELECT coalesce(sum(pgsize - unused), 0), max(pgsize) FROM dbstat "
                    "WHERE name = ?", (name,)).fetchall()[0]
            except apsw.Error as exc:
                raise UsageError(f"index set {index_set}: cannot build {name} on a sample of "
                                 f"{table}: {exc}") from None
            finally:
                scratch.close()
            rows.append({"index": name, "table": table,
                         "bytes": _scaled_bytes(used, page or 4096, table_rows, len(sample)),
                         "method": "sampled", "sampled_rows": len(sample),
                         "table_rows": table_rows})
    finally:
        db.close()
    return pd.DataFrame(rows, columns=["index", "table", "bytes", "method", "sampled_rows",
                                       "table_rows"])


def _created_indexes(path: Path) -> set[str]:
    """Indexes made by CREATE INDEX (not those enforcing keys or UNIQUE), which sets replace."""
    db = _open(path)
    try:
        return {name for (name,) in db.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL")}
    finally:
        db.close()


def _scaled_bytes(used: int, page: int, table_rows: int, sampled: int) -> int:
    """Whole pages for ``used`` bytes of b-tree built on ``sampled`` of ``table_rows`` rows.

    Scaling the sample's *pages* would overstate a small index (a partial index
    of a few entries still takes one page in the sample); its bytes in use
    scale with the rows instead.  CREATE INDEX leaves its pages nearly full:
    about 2% slack, measured with ``dbstat`` on this corpus.

    >>> _scaled_bytes(1000, 4096, 10_000, 1_000)
    12288
    """
    if not sampled or not used:
        return 0
    raw = used * (table_rows / sampled) * _PAGE_SLACK
    return max(math.ceil(raw / page), 1) * page


@dataclass(frozen=True)
class SizeReport:
    """A database's size next to D1's limits, and what index sets would add.

    Attributes:
        path: the database file.
        objects: :func:`object_sizes` of the file.
        total_bytes: the file's bytes (pages in use and free).
        fit: :func:`plan_fit` of ``total_bytes``.
        sets: one row per index set: ``set``, ``indexes``, ``added_bytes``
            (bytes of its indexes the database does not already have),
            ``dropped_bytes`` (created indexes the set does not have: applying
            a set drops them), ``total_bytes`` (the database under the set),
            ``paid_share`` and ``free_share``.
        set_indexes: :func:`index_set_bytes` of every set, with a ``set`` column.
    """

    path: Path
    objects: pd.DataFrame
    total_bytes: int
    fit: pd.DataFrame
    sets: pd.DataFrame
    set_indexes: pd.DataFrame


def size_report(db_path: str | os.PathLike[str], index_sets: tuple[str, ...] | list[str] = (),
                *, sample_rows: int = SAMPLE_ROWS) -> SizeReport:
    """Sizes of ``db_path`` and, for each of ``index_sets``, what it would add."""
    path = Path(db_path)
    objects = object_sizes(path)
    total = path.stat().st_size
    per_set, frames = [], []
    indexes = objects[objects["kind"] == "index"]
    created_names = _created_indexes(path)
    created = indexes[indexes["name"].isin(created_names)]
    for name in index_sets:
        frame = index_set_bytes(path, name, sample_rows=sample_rows)
        frame.insert(0, "set", str(name))
        frames.append(frame)
        added = int(frame.loc[frame["method"] == "sampled", "bytes"].sum())
        # Applying a set is declarative: created indexes outside it are dropped.
        dropped = int(created.loc[~created["name"].isin(frame["index"]), "bytes"].sum())
        with_set = total + added - dropped
        per_set.append({"set": str(name), "indexes": len(frame), "added_bytes": added,
                        "dropped_bytes": dropped, "total_bytes": with_set,
                        "paid_share": with_set / MAX_DATABASE_BYTES["paid"],
                        "free_share": with_set / MAX_DATABASE_BYTES["free"]})
    sets = pd.DataFrame(per_set, columns=["set", "indexes", "added_bytes", "dropped_bytes",
                                          "total_bytes", "paid_share", "free_share"])
    set_indexes = (pd.concat(frames, ignore_index=True) if frames else
                   pd.DataFrame(columns=["set", "index", "table", "bytes", "method",
                                         "sampled_rows", "table_rows"]))
    return SizeReport(path, objects, total, plan_fit(total), sets, set_indexes)
