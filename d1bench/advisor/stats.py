"""What the data looks like: row counts, distinct keys, a row sample, key sizes.

Everything the what-if engine and the cost model need to know about the
*data* comes from here, read from the corpus once and cached:

* exact row counts, and exact distinct counts of every key prefix an index
  could have, from which the ``sqlite_stat1`` row of any index, existing or
  imagined, is written exactly as ``ANALYZE`` would write it;
* exact frequencies of the values a template compares a key with (so a skewed
  column such as a specialty is costed by the values the workload really asks
  for, not by an average);
* a random sample of every table, kept in an in-memory database, on which any
  other predicate (ranges, LIKE, json_extract) is simply run by SQLite itself;
* the average stored size of each key, for index sizes.

The corpus is only read, never analysed or changed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import apsw
import numpy as np
import pandas as pd

from d1bench.advisor.query import ROWID
from d1bench.sql.catalog import Catalog, IndexDef, Key, quote_ident

__all__ = ["DEFAULT_SAMPLE_ROWS", "Stats", "stat1_text"]

_PAGE = 4096
_CELL_OVERHEAD = 3
_PAGE_SLACK = 1.02
#: Rows sampled per table for predicates that cannot be counted exactly.
DEFAULT_SAMPLE_ROWS = 4000
#: Below this many sample rows satisfying the equality part of a conjunction,
#: the other conjuncts are estimated on the whole sample instead (independence).
_MIN_CONDITIONAL = 20


def stat1_text(n_rows: int, distinct: Sequence[int], unique: bool = False) -> str:
    """The ``sqlite_stat1.stat`` text ANALYZE writes for an index.

    The first number is the entry count, then for each key prefix the average
    number of entries sharing one value of it, rounded up, as SQLite computes
    it (including its rule that an average of 2 over nearly distinct keys is 1).

    >>> stat1_text(20000, [50, 20000])
    '20000 400 1'
    >>> stat1_text(10, [10], unique=True)
    '10 1'
    """
    parts = [str(n_rows)]
    for i, d in enumerate(distinct):
        d = max(int(d), 1)
        value = (n_rows + d - 1) // d if n_rows else 1
        if value == 2 and n_rows * 10 <= d * 11:
            value = 1
        if unique and i == len(distinct) - 1:
            value = 1
        parts.append(str(max(value, 1)))
    return " ".join(parts)


class Stats:
    """Statistics of one corpus, computed lazily and cached.

    Args:
        conn: an open APSW connection to the corpus (only read).
        catalog: its :class:`~d1bench.sql.catalog.Catalog`.
        sample_rows: rows sampled per table.
        seed: seed of the sample, so advice is reproducible.
    """

    def __init__(self, conn: Any, catalog: Catalog, *, sample_rows: int = DEFAULT_SAMPLE_ROWS,
                 seed: int = 0) -> None:
        self.conn = conn
        self.catalog = catalog
        self.sample_rows = sample_rows
        self.seed = seed
        self._counts: dict[str, int] = {}
        self._values: dict[tuple[str, str], pd.Series] = {}
        self._freq: dict[tuple[str, str], pd.Series] = {}
        self._ndv: dict[tuple, int] = {}
        self._codes_cache: dict[tuple, np.ndarray] = {}
        self._sel: dict[tuple, float | None] = {}
        self._bytes: dict[tuple[str, str, str | None], float] = {}
        self._sample: Any = None
        self._sample_sizes: dict[str, int] = {}
        self._fts: dict[tuple, int] = {}
        self._rows: dict[tuple, np.ndarray | None] = {}

    # --- counts ----------------------------------------------------------------
    def row_count(self, table: str) -> int:
        """Rows in ``table`` (0 for views and unknown names)."""
        table = table.lower()
        if table not in self._counts:
            td = self.catalog.table(table)
            if td is None or td.kind == "view":
                self._counts[table] = 0
            else:
                self._counts[table] = int(next(iter(self.conn.execute(
                    f"SELECT count(*) FROM {quote_ident(td.name)}")))[0])
        return self._counts[table]

    # --- full key values --------------------------------------------------------
    def prefetch(self, table: str, keys: Iterable[str]) -> None:
        """Read the values of several keys of ``table`` in one scan."""
        table = table.lower()
        missing = sorted({k for k in keys if (table, k) not in self._values})
        if not missing:
            return
        td = self.catalog.table(table)
        if td is None or td.kind != "table":
            for k in missing:
                self._values[(table, k)] = pd.Series([], dtype=object)
            return
        exprs = []
        for k in missing:
            if k == ROWID:
                exprs.append("rowid" if not td.without_rowid else "NULL")
            elif Key(k).is_column:
                exprs.append(quote_ident(k))
            else:
                exprs.append(k)
        # One order for every read of the table, so that keys read apart line up row by row
        # (without ORDER BY, SQLite may answer from whichever index covers the columns).
        order = "rowid" if not td.without_rowid else self._pk_order(td.name)
        try:
            rows = list(self.conn.execute(
                f"SELECT {', '.join(exprs)} FROM {quote_ident(td.name)} ORDER BY {order}"))
        except apsw.Error:
            # an expression this SQLite cannot evaluate: fall back to one key at a time
            if len(missing) == 1:
                self._values[(table, missing[0])] = pd.Series([None] * self.row_count(table),
                                                              dtype=object)
                return
            for k in missing:
                self.prefetch(table, [k])
            return
        frame = pd.DataFrame.from_records(rows, columns=range(len(missing))) if rows else \
            pd.DataFrame({i: pd.Series([], dtype=object) for i in range(len(missing))})
        for i, k in enumerate(missing):
            self._values[(table, k)] = frame[i]

    def _pk_order(self, table: str) -> str:
        cols = [r[1] for r in sorted((r for r in self.conn.execute(
            "SELECT pk, name FROM pragma_table_info(?)", (table,)) if r[0]), key=lambda r: r[0])]
        return ", ".join(quote_ident(c) for c in cols) or "1"

    def values(self, table: str, key: str) -> pd.Series:
        """Every row's value of ``key`` (a column, ``rowid`` or a canonical expression)."""
        table = table.lower()
        if (table, key) not in self._values:
            self.prefetch(table, [key])
        return self._values[(table, key)]

    def _where_mask(self, table: str, where: str | None) -> np.ndarray | None:
        if where is None:
            return None
        values = self.values(table, f"({where})")
        return values.fillna(0).astype(bool).to_numpy()

    def entries(self, table: str, where: str | None = None) -> int:
        """Entries an index on ``table`` with predicate ``where`` holds."""
        if where is None:
            return self.row_count(table)
        mask = self._where_mask(table, where)
        return int(mask.sum()) if mask is not None else self.row_count(table)

    def distinct(self, table: str, keys: Sequence[str], where: str | None = None) -> int:
        """Distinct combinations of ``keys`` (NULLs equal, as ANALYZE counts them)."""
        table = table.lower()
        cache = (table, tuple(keys), where)
        if cache not in self._ndv:
            self.prefetch(table, list(keys) + ([f"({where})"] if where else []))
            # Asked for every prefix of every index tried: each column's values are
            # factorised once, and a combination is the tuple of its columns' codes.
            combined: np.ndarray | None = None
            for k in keys:
                codes = self._codes(table, k)
                if combined is None:
                    combined = codes
                else:
                    combined = np.unique(combined * (int(codes.max(initial=0)) + 1) + codes,
                                         return_inverse=True)[1]
            mask = self._where_mask(table, where)
            if combined is not None and mask is not None:
                combined = combined[mask]
            self._ndv[cache] = 0 if combined is None or not len(combined) else \
                len(np.unique(combined))
        return self._ndv[cache]

    def _codes(self, table: str, key: str) -> np.ndarray:
        """Each row's value of ``key`` as a small integer, equal values equal (NULLs too)."""
        cache = (table, key)
        hit = self._codes_cache.get(cache)
        if hit is None:
            hit = self._codes_cache[cache] = pd.factorize(
                self.values(table, key), use_na_sentinel=False)[0].astype(np.int64)
        return hit

    def stat1(self, index: IndexDef) -> str | None:
        """The ``sqlite_stat1`` text ANALYZE would write for ``index`` (None if it is empty)."""
        n = self.entries(index.table, index.where)
        if n == 0:
            return None
        keys = [k.expr for k in index.keys]
        distinct = [self.distinct(index.table, keys[: i + 1], index.where) for i in range(len(keys))]
        return stat1_text(n, distinct, unique=index.unique)

    # --- equality frequencies ---------------------------------------------------
    def frequencies(self, table: str, key: str) -> pd.Series:
        """Rows per value of ``key`` (NULL among them)."""
        cache = (table.lower(), key)
        if cache not in self._freq:
            vals = self.values(table, key)
            self._freq[cache] = vals.value_counts(dropna=False)
        return self._freq[cache]

    def eq_fraction(self, table: str, key: str, values: Sequence[Any] | None) -> float:
        """Fraction of rows whose ``key`` equals one of ``values`` (``None``: an average value)."""
        n = self.row_count(table)
        if n == 0:
            return 0.0
        if values is None:
            return 1.0 / max(self.distinct(table, [key]), 1)
        freq = self.frequencies(table, key)
        hits = 0
        for v in values:
            if v is None:
                continue  # `key = NULL` matches nothing
            hits += int(freq.get(v, 0))
            if isinstance(v, str) and hits == 0 and v.lstrip("-").isdigit():
                hits += int(freq.get(int(v), 0))  # numeric text meets an INTEGER column
        return hits / n

    def null_fraction(self, table: str, key: str) -> float:
        n = self.row_count(table)
        return float(self.values(table, key).isna().sum()) / n if n else 0.0

    def rows_per_key(self, table: str, key: str) -> float:
        """Average rows sharing one value of ``key``."""
        n = self.row_count(table)
        return n / max(self.distinct(table, [key]), 1) if n else 0.0

    # --- the sample -----------------------------------------------------------------
    @property
    def sample(self) -> Any:
        """An in-memory database holding a random sample of every table."""
        if self._sample is None:
            self._sample = self._build_sample()
        return self._sample

    def _build_sample(self) -> Any:
        db = apsw.Connection(":memory:")
        rng = random.Random(self.seed)
        for td in self.catalog.real_tables:
            if not td.sql or td.name.lower().startswith("sqlite_"):
                continue
            db.execute(td.sql)
            name = quote_ident(td.name)
            if td.without_rowid:
                rows = list(self.conn.execute(
                    f"SELECT * FROM {name} ORDER BY random() LIMIT {self.sample_rows}"))
            else:
                rowids = [r[0] for r in self.conn.execute(f"SELECT rowid FROM {name}")]
                chosen = rowids if len(rowids) <= self.sample_rows else rng.sample(rowids, self.sample_rows)
                rows = []
                for i in range(0, len(chosen), 500):
                    chunk = chosen[i: i + 500]
                    marks = ",".join("?" * len(chunk))
                    rows += list(self.conn.execute(f"SELECT * FROM {name} WHERE rowid IN ({marks})",
                                                   chunk))
            self._sample_sizes[td.name.lower()] = len(rows)
            if rows:
                marks = ",".join("?" * len(rows[0]))
                db.execute("BEGIN")
                db.executemany(f"INSERT INTO {name} VALUES ({marks})", rows)
                db.execute("COMMIT")
        return db

    def sample_size(self, table: str) -> int:
        _ = self.sample
        return self._sample_sizes.get(table.lower(), 0)

    def sample_fraction(self, table: str, alias: str, preds: Sequence[str],
                        params: Mapping[str, Any]) -> float | None:
        """Fraction of sampled rows of ``table`` (named ``alias``) satisfying every predicate.

        ``None`` when the sample cannot say (no sample rows, or SQLite refused).
        """
        table = table.lower()
        size = self.sample_size(table)
        if size == 0:
            return None
        if not preds:
            return 1.0
        cache = ("sample", table, alias, tuple(preds), tuple(sorted(params.items(), key=str)))
        if cache in self._sel:
            return self._sel[cache]
        td = self.catalog.table(table)
        sql = (f"SELECT count(*) FROM {quote_ident(td.name if td else table)} AS {quote_ident(alias)} "
               f"WHERE " + " AND ".join(f"({p})" for p in preds))
        try:
            value = next(iter(self.sample.execute(sql, dict(params))))[0] / size
        except apsw.Error:
            value = None  # SQLite refused the predicate alone: the caller falls back
        self._sel[cache] = value
        return value

    def corpus_fraction(self, table: str, alias: str, preds: Sequence[str],
                        params: Mapping[str, Any]) -> float | None:
        """Fraction of ``table``'s rows satisfying every predicate, counted on the corpus
        (for predicates too selective for the sample; cached per values)."""
        table = table.lower()
        n = self.row_count(table)
        if n == 0:
            return 0.0
        cache = ("corpus", table, alias, tuple(preds), tuple(sorted(params.items(), key=str)))
        if cache not in self._sel:
            td = self.catalog.table(table)
            sql = (f"SELECT count(*) FROM {quote_ident(td.name if td else table)} AS "
                   f"{quote_ident(alias)} WHERE " + " AND ".join(f"({p})" for p in preds))
            try:
                self._sel[cache] = next(iter(self.conn.execute(sql, dict(params))))[0] / n
            except apsw.Error:
                self._sel[cache] = None
        return self._sel[cache]

    def fraction_among(self, table: str, alias: str, mask: np.ndarray, preds: Sequence[str],
                       params: Mapping[str, Any]) -> float | None:
        """Fraction of the rows ``mask`` picks out of ``table`` (in rowid order, as
        :meth:`values` reads them) that satisfy every predicate, counted on the corpus
        with one rowid seek per row; ``None`` for a WITHOUT ROWID table, or when SQLite
        refuses a predicate."""
        import json

        table = table.lower()
        td = self.catalog.table(table)
        chosen = int(mask.sum())
        if td is None or td.without_rowid or chosen == 0:
            return None
        rowids = self.values(table, ROWID).to_numpy()[mask]
        cache = ("among", table, alias, tuple(preds), hash(rowids.tobytes()),
                 tuple(sorted(params.items(), key=str)))
        if cache not in self._sel:
            sql = (f"SELECT count(*) FROM {quote_ident(td.name)} AS {quote_ident(alias)} "
                   f"WHERE {quote_ident(alias)}.rowid IN (SELECT value FROM json_each(:d1bench_rowids)) "
                   "AND " + " AND ".join(f"({p})" for p in preds))
            try:
                (count,) = next(iter(self.conn.execute(
                    sql, {**params, "d1bench_rowids": json.dumps([int(r) for r in rowids])})))
                self._sel[cache] = count / chosen
            except apsw.Error:
                self._sel[cache] = None
        return self._sel[cache]

    def passing(self, table: str, alias: str, preds: Sequence[str],
                params: Mapping[str, Any]) -> np.ndarray | None:
        """Which rows of ``table`` (in rowid order) satisfy every predicate, counted on the
        corpus; ``None`` for a WITHOUT ROWID table or when SQLite refuses a predicate."""
        table = table.lower()
        td = self.catalog.table(table)
        if td is None or td.without_rowid:
            return None
        cache = ("passing", table, alias, tuple(preds), tuple(sorted(params.items(), key=str)))
        if cache not in self._rows:
            sql = (f"SELECT {quote_ident(alias)}.rowid FROM {quote_ident(td.name)} AS "
                   f"{quote_ident(alias)} WHERE " + " AND ".join(f"({p})" for p in preds))
            try:
                found = np.fromiter((r[0] for r in self.conn.execute(sql, dict(params))),
                                    dtype=np.int64)
            except apsw.Error:
                self._rows[cache] = None
            else:
                self._rows[cache] = np.isin(self.values(table, ROWID).to_numpy(dtype=np.int64),
                                            found)
        return self._rows[cache]

    def order(self, table: str, keys: tuple[str, ...]) -> np.ndarray | None:
        """Row positions (rowid order) sorted as an index on ``keys`` holds them, rowid
        last; ``None`` when a key mixes value types (SQLite's order across types is not
        reproduced here)."""
        table = table.lower()
        td = self.catalog.table(table)
        if td is None or td.without_rowid:
            return None
        cache = ("order", table, keys)
        if cache not in self._rows:
            columns = []
            for key in keys:
                values = self.values(table, key)
                kinds = {type(v) for v in values.dropna()}
                if len(kinds) > 1 and not kinds <= {int, float}:
                    self._rows[cache] = None
                    return None
                # NULLs first, as in SQLite's index order; codes follow the values' order
                codes = pd.factorize(values, sort=True, use_na_sentinel=True)[0]
                columns.append(codes.astype(np.int64))
            rowids = self.values(table, ROWID).to_numpy(dtype=np.int64)
            # np.lexsort sorts by the last key first
            self._rows[cache] = np.lexsort([rowids, *reversed(columns)])
        return self._rows[cache]

    # --- full-text matches ------------------------------------------------------------
    def fts_matches(self, table: str, query: Any) -> int:
        """Rows an FTS5 table returns for ``query`` (run on the corpus, cached)."""
        cache = (table, query)
        if cache not in self._fts:
            td = self.catalog.table(table)
            try:
                self._fts[cache] = int(next(iter(self.conn.execute(
                    f"SELECT count(*) FROM {quote_ident(td.name if td else table)} "
                    f"WHERE {quote_ident(td.name if td else table)} MATCH ?", (query,))))[0])
            except apsw.Error:
                self._fts[cache] = max(self.row_count(_fts_content(td) or table) // 100, 1)
        return self._fts[cache]

    # --- sizes ------------------------------------------------------------------------
    def avg_bytes(self, table: str, key: str, where: str | None = None) -> float:
        """Average bytes a value of ``key`` takes in a record (SQLite's serial types),
        over the rows ``where`` holds for."""
        cache = (table.lower(), key, where)
        if cache not in self._bytes:
            vals = self.values(table, key)
            mask = self._where_mask(table, where)
            if mask is not None:
                vals = vals[mask]
            self._bytes[cache] = _avg_record_bytes(vals)
        return self._bytes[cache]

    def index_bytes(self, index: IndexDef) -> float:
        """Estimated size of ``index`` on disk: entries times the average cell, in whole pages.

        A cell is the record (a header byte per key plus the rowid, the keys, the
        rowid) plus its 2-byte pointer and size byte; b-tree pages built by
        CREATE INDEX are nearly full (2% slack measured with ``dbstat``).
        """
        n = self.entries(index.table, index.where)
        payload = 2 + len(index.keys) + sum(self.avg_bytes(index.table, k.expr, index.where)
                                            for k in index.keys)
        payload += self.avg_bytes(index.table, ROWID, index.where)
        raw = n * (payload + _CELL_OVERHEAD) * _PAGE_SLACK
        return float(max(math.ceil(raw / _PAGE), 1) * _PAGE)


def _fts_content(td: Any) -> str | None:
    if td is None:
        return None
    import re

    m = re.search(r"(?i)content\s*=\s*'([^']+)'", td.sql)
    return m.group(1) if m else None


def _avg_record_bytes(values: pd.Series) -> float:
    if len(values) == 0:
        return 1.0
    sample = values if len(values) <= 20000 else values.sample(20000, random_state=0)
    total = 0.0
    for v in sample.tolist():
        total += _value_bytes(v)
    return total / len(sample)


def _value_bytes(v: Any) -> float:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return 0.0
    if isinstance(v, bool | int | np.integer):
        a = abs(int(v))
        if a <= 1:
            return 0.0
        for size, limit in ((1, 1 << 7), (2, 1 << 15), (3, 1 << 23), (4, 1 << 31), (6, 1 << 47)):
            if a < limit:
                return float(size)
        return 8.0
    if isinstance(v, float | np.floating):
        return 8.0
    if isinstance(v, str):
        return float(len(v.encode("utf-8")))
    if isinstance(v, bytes | bytearray | memoryview):
        return float(len(v))
    return 8.0
