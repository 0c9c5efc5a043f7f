"""Turning sampler specs into value pools, by asking the corpus through a connection.

Everything here runs once, when a workload is bound to a target, and only
through :meth:`d1bench.targets.base.Connection.execute` with plain SELECTs, so
it works the same on SQLite, a local D1 and Cloudflare D1.  D1 refuses TEMP
tables and most PRAGMAs, and bills ``ORDER BY random()`` and ``COUNT(*)`` as a
read of every row, so rows are sampled by probing random keys instead:
``SELECT ... WHERE rowid IN (?, ...)`` with at most 100 keys a statement (D1's
parameter limit), each probe reading about one row per key.

Every pool is sampled with a random generator seeded from the bind seed and the
spec itself, so the same seed gives the same pools whatever else the workload
contains, and templates whose samplers are alike share one pool.
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import json
import math
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from d1bench.errors import TargetError
from d1bench.sql.limits import MAX_PARAMS
from d1bench.workload.samplers import (
    ANCHOR_MAX,
    ConstDrawer,
    DateDrawer,
    Drawer,
    FloatDrawer,
    IntDrawer,
    PoolDrawer,
    PrefixDrawer,
    SamplerError,
    SamplerSpec,
    parse_moment,
)
from d1bench.workload.tables import Tables, q

__all__ = ["STOPWORDS", "Resolver", "tokenize"]

#: Keys per probe statement: as many bound parameters as D1 takes.
PROBE_BATCH = MAX_PARAMS
#: Probe statements before falling back to range scans (a selective ``where``).
PROBE_ROUNDS = 20
#: Range-scan statements at most, and rows each, when probing found too few rows.
RANGE_ROUNDS = 20
RANGE_ROWS = 50
#: Rows read from a table without an integer key, per value wanted.
FIRST_ROWS_FACTOR = 4
#: The committed term list, one word a line, most frequent first (in ``data/vocabulary``).
VOCABULARY_FILE = "terms.txt"
#: Share of the ranked terms called "common", and where "rare" starts.
COMMON_SHARE = 0.05
RARE_FROM = 0.5

STOPWORDS = frozenset(["a", "about", "above", "after", "again", "against", "all", "also", "among", "an", "and", "any", "are", "as", "at", "be", "because", "been", "before", "being", "between", "both", "but", "by", "can", "could", "did", "do", "does", "doing", "during", "each", "few", "for", "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "him", "his", "how", "however", "i", "if", "in", "into", "is", "it", "its", "itself", "may", "might", "more", "most", "must", "no", "nor", "not", "of", "off", "on", "once", "only", "or", "other", "our", "ours", "out", "over", "own", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "theirs", "them", "then", "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "upon", "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "within", "without", "would", "you", "your", "yours", "versus", "vs", "via", "per", "using", "used", "use", "based", "among"])

_WORD = re.compile(r"[a-z][a-z0-9]{2,}")


def tokenize(text: str) -> list[str]:
    """Lower-case words of three or more letters, stopwords removed, in order.

    The words are safe to send as FTS5 MATCH barewords (no operators, no quotes).

    >>> tokenize('["Atrial fibrillation", "stroke"] in the elderly')
    ['atrial', 'fibrillation', 'stroke', 'elderly']
    """
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


_q = q


class Resolver:
    """Binds specs against one connection, caching pools and corpus facts.

    Args:
        conn: a :class:`~d1bench.targets.base.Connection` (anything with
            ``execute(sql, params) -> Result``).
        seed: the bind seed.
        vocabulary_dir: where committed term lists live (``data/vocabulary``).
    """

    def __init__(self, conn: Any, seed: int, vocabulary_dir: Path | None = None) -> None:
        self.conn = conn
        self.seed = seed
        self.vocabulary_dir = vocabulary_dir
        self._pools: dict[SamplerSpec, Drawer] = {}
        self._as_of: tuple[dt.date, str] | None = None
        self._anchors: dict[str, tuple[dt.datetime, str]] = {}
        self.tables = Tables(self._rows)
        #: how many statements binding ran, for the record
        self.statements = 0

    # -- corpus facts ----------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.statements += 1
        return list(self.conn.execute(sql, tuple(params)).rows)

    def as_of(self) -> tuple[dt.date, str]:
        """The corpus's as-of date and where it came from."""
        if self._as_of is None:
            self._as_of = self._find_as_of()
        return self._as_of

    def _find_as_of(self) -> tuple[dt.date, str]:
        try:
            rows = self._rows("SELECT value FROM corpus_meta WHERE key = 'as_of'")
            if rows and rows[0][0]:
                return _parse_date(rows[0][0], "corpus_meta.as_of"), "corpus_meta.as_of"
        except TargetError:
            pass  # not a d1bench corpus: fall back to the newest paper
        try:
            rows = self._rows("SELECT max(publication_date) FROM papers")
        except TargetError:
            raise SamplerError("no as-of date (no corpus_meta 'as_of', no papers table): give the "
                               "date sampler anchor = \"now\" or anchor = \"max(table.column)\", "
                               "or absolute from = \"YYYY-MM-DD\", to = \"YYYY-MM-DD\"") from None
        if not rows or rows[0][0] is None:
            raise SamplerError("no as-of date: no corpus_meta 'as_of' and papers has no rows")
        return _parse_date(rows[0][0], "max(papers.publication_date)"), "max(papers.publication_date)"

    def anchor(self, name: str) -> tuple[dt.datetime, str]:
        """The moment relative dates count from: ``as_of``, ``now`` or ``max(table.column)``."""
        if name not in self._anchors:
            if name == "as_of":
                as_of, source = self.as_of()
                found = (dt.datetime.combine(as_of, dt.time()), f"{source} = {as_of.isoformat()}")
            elif name == "now":
                now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
                found = (now, f"now = {now.date().isoformat()} (windows move with the clock)")
            else:
                m = ANCHOR_MAX.match(name)
                assert m is not None  # checked when the file was read
                table, column = m.group(1), m.group(2)
                self.tables.need_column(table, column)
                rows = self._rows(f"SELECT max({_q(column)}) FROM {_q(table)}")
                if not rows or rows[0][0] is None:
                    raise SamplerError(f"anchor {name}: {table}.{column} has no values")
                moment = parse_moment(rows[0][0], f"max({table}.{column})")
                found = (moment, f"max({table}.{column}) = {moment.isoformat(sep=' ')}")
            self._anchors[name] = found
        return self._anchors[name]

    # -- binding ---------------------------------------------------------------

    def resolve(self, spec: SamplerSpec) -> Drawer:
        """The drawer for ``spec`` (pools are shared between equal specs)."""
        kind = spec.kind
        if kind == "int":
            return IntDrawer(spec)
        if kind == "float":
            return FloatDrawer(spec)
        if kind == "fixed":
            return ConstDrawer(spec, "fixed", spec.get("value"))
        if kind == "choice":
            return PoolDrawer(spec, "choice", spec.get("values"), spec.get("weights"))
        if kind == "date":
            if spec.get("from") is not None:
                return DateDrawer(spec, None, "absolute window")
            anchor, source = self.anchor(spec.get("anchor"))
            return DateDrawer(spec, anchor, source)
        if kind in ("from_row", "same"):
            raise SamplerError(f"{kind} takes its value from elsewhere; it has no pool")
        key = spec.corpus_key
        base = self._pools.get(key)
        if base is None:
            rng = random.Random(f"{self.seed}|{key!r}")
            try:
                base = {"id": self._id, "column": self._column, "term": self._term,
                        "vector": self._vector, "prefix": self._prefix}[kind](key, rng)
            except TargetError as exc:
                raise SamplerError(f"the corpus refused: {exc.message}") from None
            self._pools[key] = base
        return _rewrap(base, spec)

    # -- id and column: probe random keys ----------------------------------------

    def _probe(self, rng: random.Random, table: str, key: str | None, select: str,
               where: str | None, want: int, join: str = "") -> list[tuple[Any, ...]]:
        """Rows ``(key, *select)`` for about ``want`` random rows of ``table``.

        ``key`` is an integer key column (``None``: the table's rowid, or for a
        WITHOUT ROWID table its first primary-key column) so that each probe is
        a lookup.  Probing reads about one row per key tried.  The table is not
        aliased, so ``where`` and errors use the names the user wrote.
        """
        t = _q(table)
        key = self.tables.probe_key(table) if key is None else key
        self.tables.need_column(table, key)
        k = f"{t}.{key if key == 'rowid' else _q(key)}"
        lo, hi = self._rows(f"SELECT min({k}), max({k}) FROM {t}")[0]
        if lo is None:
            raise SamplerError(f"table {table} has no rows")
        if not (isinstance(lo, int) and isinstance(hi, int)):
            return self._first_rows(table, k, select, where, want, join)
        span = hi - lo + 1
        limit = PROBE_BATCH * PROBE_ROUNDS
        if span <= limit:
            candidates = list(range(lo, hi + 1))
            rng.shuffle(candidates)
        else:
            candidates = [lo + i for i in rng.sample(range(span), limit)]
        filt = f" AND ({where})" if where else ""
        out: list[tuple[Any, ...]] = []
        found: set[Any] = set()
        for start in range(0, len(candidates), PROBE_BATCH):
            if len(found) >= want:
                break
            batch = sorted(candidates[start:start + PROBE_BATCH])
            marks = ", ".join("?" * len(batch))
            rows = self._rows(f"SELECT {k}, {select} FROM {t}{join} "
                              f"WHERE {k} IN ({marks}){filt} ORDER BY {k}", batch)
            out.extend(rows)
            found.update(r[0] for r in rows)
        if len(found) < want and span > limit:
            # a selective filter, or a sparse key: walk the key order from random starts
            for _ in range(RANGE_ROUNDS):
                if len(found) >= want:
                    break
                start_key = lo + int(rng.random() * span)
                rows = self._rows(f"SELECT {k}, {select} FROM {t}{join} "
                                  f"WHERE {k} >= ?{filt} ORDER BY {k} LIMIT {RANGE_ROWS}",
                                  [start_key])
                rows = [r for r in rows if r[0] not in found]
                out.extend(rows)
                found.update(r[0] for r in rows)
        return out

    def _first_rows(self, table: str, k: str, select: str, where: str | None, want: int,
                    join: str) -> list[tuple[Any, ...]]:
        """Rows of a table whose key is not an integer (a text or composite
        primary key WITHOUT ROWID): random integers cannot be probed, so the
        first ``FIRST_ROWS_FACTOR * want`` rows in key order are read (one pass,
        billed as that many rows) and the caller draws from them."""
        filt = f" WHERE ({where})" if where else ""
        return self._rows(f"SELECT {k}, {select} FROM {_q(table)}{join}{filt} "
                          f"ORDER BY {k} LIMIT ?", [want * FIRST_ROWS_FACTOR])

    def _id(self, spec: SamplerSpec, rng: random.Random) -> Drawer:
        table, column = spec.table_column()
        rows = self._probe(rng, table, column, "1", spec.get("where"), spec.get("sample"))
        ids = sorted({r[0] for r in rows})
        if not ids:
            raise SamplerError(f"no rows of {table} match"
                               + (f" where {spec.get('where')}" if spec.get("where") else ""))
        source = f"{len(ids)} ids probed from {table}.{column}"
        zipf = spec.get("zipf")
        if zipf:
            # popular items are random ones, not the smallest ids
            rng.shuffle(ids)
            weights = [1.0 / (rank + 1) ** zipf for rank in range(len(ids))]
            return PoolDrawer(spec, source + f", zipf {zipf}", ids, weights)
        return PoolDrawer(spec, source, ids)

    def _column(self, spec: SamplerSpec, rng: random.Random) -> Drawer:
        (table, column), where = spec.table_column(), spec.get("where")
        as_json = spec.get("json_array")
        self.tables.need_column(table, column)
        value = "j.value" if as_json else f"{_q(table)}.{_q(column)}"
        join = f", json_each({_q(table)}.{_q(column)}) AS j" if as_json else ""
        if spec.get("distinct"):
            filt = f" WHERE ({where})" if where else ""
            rows = self._rows(f"SELECT DISTINCT {value} FROM {_q(table)}{join}{filt} "
                              f"ORDER BY 1 LIMIT ?", [spec.get("sample")])
            values = [r[0] for r in rows if r[0] is not None]
            source = f"{len(values)} distinct values of {table}.{column}"
        else:
            rows = self._probe(rng, table, None, value, where, spec.get("sample"), join)
            values = [r[1] for r in rows if r[1] is not None]
            # duplicates stay: a value is drawn as often as it occurs in the corpus
            source = f"{len({r[0] for r in rows})} rows probed from {table}, {len(set(values))} values"
        if not values:
            raise SamplerError("found no values"
                               + (f" where {where}" if where else ""))
        return PoolDrawer(spec, source, values)

    def _prefix(self, spec: SamplerSpec, rng: random.Random) -> Drawer:
        (table, column), where = spec.table_column(), spec.get("where")
        self.tables.need_column(table, column)
        value = f"{_q(table)}.{_q(column)}"
        rows = self._probe(rng, table, None, value, where, spec.get("sample"))
        shortest = spec.get("length") if isinstance(spec.get("length"), int) else spec.get("length")[0]
        # a value shorter than the prefix would give the whole value: an exact match, not a prefix
        values = [str(r[1]) for r in rows if r[1] is not None and len(str(r[1])) >= shortest]
        if not values:
            raise SamplerError(f"found no values of {table}.{column} at least {shortest} "
                               "characters long" + (f" where {where}" if where else ""))
        return PrefixDrawer(spec, f"prefixes of {len(values)} values probed from {table}.{column}",
                            values)

    # -- terms -----------------------------------------------------------------

    def _term(self, spec: SamplerSpec, rng: random.Random) -> Drawer:
        source = spec.get("source")
        tried: list[str] = []
        ranked: list[tuple[str, float]] = []
        label = ""
        finders: list[tuple[str, Callable[[], tuple[list[tuple[str, float]], str]]]] = [
            ("fts5vocab", lambda: self._terms_fts5vocab()),
            ("corpus", lambda: self._terms_corpus(spec, rng)),
            ("vocabulary", lambda: self._terms_vocabulary()),
        ]
        for name, finder in finders:
            if source not in ("auto", name):
                continue
            try:
                ranked, label = finder()
            except (TargetError, OSError, SamplerError) as exc:
                tried.append(f"{name}: {getattr(exc, 'message', exc)}")
                continue
            if ranked:
                break
            tried.append(f"{name}: no terms")
        if not ranked:
            raise SamplerError(f"found no terms ({'; '.join(tried)})")
        ranked.sort(key=lambda tw: (-tw[1], tw[0]))
        band = spec.get("band")
        n = len(ranked)
        if band == "common":
            ranked = ranked[:max(1, math.ceil(n * COMMON_SHARE))]
        elif band == "rare":
            ranked = ranked[min(n - 1, int(n * RARE_FROM)):]
        terms = [t for t, _ in ranked]
        weights = [w for _, w in ranked]
        return TermDrawer(spec, f"{label}, {len(terms)} {band} terms", terms, weights,
                          spec.get("words"))

    def _terms_fts5vocab(self) -> tuple[list[tuple[str, float]], str]:
        rows = self._rows("SELECT name, sql FROM sqlite_schema WHERE type = 'table' "
                          "AND sql LIKE '%fts5vocab%'")
        for name, sql in rows:
            # only a 'row' vocabulary gives one document frequency per term
            if re.search(r"(?i)['\"]?row['\"]?\s*\)\s*;?\s*$", sql or ""):
                found = self._rows(f"SELECT term, doc FROM {_q(name)} ORDER BY doc DESC LIMIT 50000")
                ranked = [(str(t), float(d)) for t, d in found if _WORD.fullmatch(str(t))
                          and str(t) not in STOPWORDS]
                return ranked, f"document frequencies from fts5vocab table {name}"
        return [], "no fts5vocab table"

    def _terms_corpus(self, spec: SamplerSpec, rng: random.Random) -> tuple[list[tuple[str, float]], str]:
        cols = spec.get("columns")
        if spec.table is None:
            raise SamplerError(f"sampler {spec.kind!r} needs a table to read terms from")
        for c in cols:
            self.tables.need_column(spec.table, c)
        select = ", ".join(f"{_q(spec.table)}.{_q(c)}" for c in cols)
        rows = self._probe(rng, spec.table, None, select, None, spec.get("sample"))
        df: Counter[str] = Counter()
        for row in rows:
            text = " ".join(str(v) for v in row[1:] if v is not None)
            df.update(set(tokenize(text)))
        label = (f"document frequencies in {len(rows)} sampled rows of "
                 f"{spec.table}({', '.join(cols)})")
        return [(t, float(c)) for t, c in df.items()], label

    def _terms_vocabulary(self) -> tuple[list[tuple[str, float]], str]:
        path = (self.vocabulary_dir or Path()) / VOCABULARY_FILE
        if self.vocabulary_dir is None or not path.is_file():
            return [], f"no {VOCABULARY_FILE} in the vocabulary folder"
        terms = _read_term_list(path)
        # a list in frequency order: weight by Zipf rank
        return ([(t, 1.0 / rank) for rank, t in enumerate(terms, 1)],
                f"Zipf ranks of vocabulary {path.name}")

    # -- vectors ---------------------------------------------------------------

    def _vector(self, spec: SamplerSpec, rng: random.Random) -> Drawer:
        dim = spec.get("dim")
        source = f"dimension {dim}"
        if dim is None:
            table, column = spec.table_column()
            rows = self._rows(f"SELECT {_q(column)} FROM {_q(table)} "
                              f"WHERE {_q(column)} IS NOT NULL LIMIT 1")
            if not rows:
                raise SamplerError(f"no {table}.{column} to take a dimension from")
            try:
                dim = len(json.loads(rows[0][0]))
            except (TypeError, ValueError):
                raise SamplerError(f"{table}.{column} is not a JSON array") from None
            source = f"dimension {dim} from {table}.{column}"
        digits = spec.get("digits")
        vectors = []
        for _ in range(spec.get("sample")):
            v = [rng.gauss(0.0, 1.0) for _ in range(dim)]
            norm = math.sqrt(sum(x * x for x in v)) or 1.0
            vectors.append(json.dumps([round(x / norm, digits) for x in v], separators=(",", ":")))
        return PoolDrawer(spec, f"{len(vectors)} random unit vectors, {source}", vectors)


class TermDrawer(PoolDrawer):
    """Draws ``words`` terms by weight and joins them with spaces (an FTS5 AND)."""

    __slots__ = ("words",)

    def __init__(self, spec: SamplerSpec, source: str, terms: Sequence[str],
                 weights: Sequence[float], words: int) -> None:
        super().__init__(spec, source, terms, weights)
        self.words = words

    def _draw(self, rng: random.Random) -> Any:
        if self.words == 1:
            return super()._draw(rng)
        words: list[str] = []
        want = min(self.words, len(self.values))
        for _ in range(self.words * 10):  # a few redraws, so the words differ
            word = super()._draw(rng)
            if word not in words:
                words.append(word)
                if len(words) == want:
                    break
        return " ".join(words)


def _rewrap(base: Drawer, spec: SamplerSpec) -> Drawer:
    """The shared pool with this parameter's own null_probability and format."""
    if base.spec == spec:
        return base
    clone = copy.copy(base)  # shallow: the pool itself is shared, not copied
    clone.spec = spec
    clone._null_p = spec.get("null_probability") or 0.0
    clone._fmt = spec.get("format")
    return clone


def _parse_date(value: Any, where: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise SamplerError(f"{where} is {value!r}, not an ISO date") from None


def _read_term_list(path: Path) -> list[str]:
    """Terms of a committed list, most frequent first: ``.txt`` one a line, or CSV/TSV with a
    ``term`` column (ordered by a ``count``/``frequency``/``df`` column when there is one)."""
    suffix = path.suffix.lower()
    if suffix == ".txt":
        lines = path.read_text(encoding="utf-8").splitlines()
        words = [ln.split("\t")[0].strip().lower() for ln in lines
                 if ln.strip() and not ln.startswith("#")]
        return [w for w in words if _WORD.fullmatch(w) and w not in STOPWORDS]
    if suffix in (".csv", ".tsv"):
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
            if not reader.fieldnames or "term" not in reader.fieldnames:
                return []
            rows = list(reader)
        for col in ("count", "frequency", "df"):
            if reader.fieldnames and col in reader.fieldnames:
                rows.sort(key=lambda r: -float(r[col] or 0))
                break
        words = [r["term"].strip().lower() for r in rows]
        return [w for w in words if _WORD.fullmatch(w) and w not in STOPWORDS]
    return []
