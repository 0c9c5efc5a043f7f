"""Brute-force vector search over JSON -> an approximate index of random-hyperplane buckets.

``ORDER BY (distance over two json_each loops) LIMIT k`` steps through every
element of every stored vector once per element of the query vector, and D1
bills each step.  D1 has no vector index (no vec0, no loadable extensions), but
a table with a key is enough for locality-sensitive hashing: ``L`` hash tables,
each the sign pattern of a row's vector against ``K`` random hyperplanes,
stored as ``(tbl, bucket, id)`` with the table's key.  The query computes its
own buckets in SQL from the bound vector, takes the rows sharing a bucket in
any table, and ranks only those, with the distance summed over one
``json_each`` and ``json_extract`` (the same terms in the same order, so the
same values).  It is approximate: the plan reports its measured recall@k and
only proposes it at :data:`RECALL_TARGET` or better.  Triggers keep the buckets
in step with inserts, deletes and updates of the vector.

The rows already stored are bucketed by a backfill, in two forms that give the
same buckets.  For D1: statements of :data:`BACKFILL_ROWS` rows each, computed
in SQL from the stored planes, to be sent one per request after the migration
(a migration is one request, held to D1's 30 s as a whole; each of these stays
well inside 30 s on its own, and INSERT OR IGNORE makes a repeated or
interrupted run harmless).  For the plan's scratch copies: the same sign
patterns computed in numpy from the stored vectors and the same rounded planes,
written in one transaction, since bucketing in SQL costs ``L*K*dim`` JSON
lookups a row (minutes at 100,000 rows).
"""

from __future__ import annotations

import math
from typing import Any

from d1bench.fixer.model import Context, Rewrite, Skip, Trial
from d1bench.fixer.sqlshape import placeholder_index, read_select, table_aliases, to_sql

KIND = "vector_lsh"

#: An approximate rewrite is proposed only at this measured recall@k or better.
RECALL_TARGET = 0.9
#: K and L are chosen to predict this recall on the sampled queries (a margin over the target).
PREDICTED_RECALL = 0.96
#: Tables (L) and hyperplanes per table (K) tried.
TABLE_CHOICES = tuple(range(4, 97, 4))
BIT_CHOICES = tuple(range(1, 21))
#: Rows per backfill statement for D1.  Bucketing is L*K dot products per row in
#: SQL: at 20,000 papers (L=76, K=11) 5,000 rows took 50 s here, past D1's 30 s
#: per statement, so each statement takes 500 (about 5 s here).
BACKFILL_ROWS = 500
#: Seed of the hyperplanes (a fixed seed: the same corpus gets the same migration).
SEED = 20_261_202


def bucket_sql(vector: str, planes: str) -> str:
    """A SELECT of ``(tbl, bucket)`` for the vector expression ``vector``: one row per hash table."""
    return (f"SELECT pl.tbl AS tbl, SUM(CASE WHEN (SELECT SUM(w.value * json_extract({vector}, "
            f"'$[' || w.key || ']')) FROM json_each(pl.plane) AS w) > 0 THEN 1 << pl.bit ELSE 0 "
            f"END) AS bucket FROM {planes} AS pl GROUP BY pl.tbl")


def choose(vectors: Any, queries: Any, k: int) -> tuple[int, int, float]:
    """(L tables, K hyperplanes, predicted recall@k): the cheapest pair predicted to reach
    :data:`PREDICTED_RECALL` on these queries.

    A random hyperplane separates two vectors at angle theta with probability
    theta/pi, so a true neighbour shares a table's bucket with probability
    ``(1 - theta/pi)^K`` and is found in one of L tables with probability
    ``1 - (1 - (1 - theta/pi)^K)^L``.  The angles are those of each query's
    true k nearest rows; the cost is D1's rows read: the query's own buckets
    (``L*K`` planes of ``dim`` elements) plus ``L * n / 2^K`` candidates of
    ``dim`` elements each.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> v = rng.standard_normal((2000, 8))
    >>> tables, bits, recall = choose(v, v[:20] + 0.05 * rng.standard_normal((20, 8)), 10)
    >>> recall >= PREDICTED_RECALL, tables * 2000 / 2**bits < 2000
    (True, True)
    """
    import numpy as np

    n, dim = vectors.shape
    norms = np.linalg.norm(vectors, axis=1) + 1e-12
    thetas = []
    for q in queries:
        d = ((vectors - q) ** 2).sum(axis=1)
        top = np.argsort(d, kind="stable")[:k]
        cos = vectors[top] @ q / (norms[top] * (np.linalg.norm(q) + 1e-12))
        thetas.extend(np.arccos(np.clip(cos, -1.0, 1.0)))
    p = 1.0 - np.asarray(thetas) / math.pi
    best: tuple[float, int, int, float] | None = None
    for bits in BIT_CHOICES:
        hit = p ** bits
        for tables in TABLE_CHOICES:
            recall = float(np.mean(1.0 - (1.0 - hit) ** tables))
            if recall < PREDICTED_RECALL:
                continue
            cost = tables * bits * (dim + 1) + tables * n / 2 ** bits * (dim + 3)
            if best is None or cost < best[0]:
                best = (cost, tables, bits, recall)
            break  # more tables only cost more at this K
    if best is None:
        return TABLE_CHOICES[-1], 1, float(np.mean(1.0 - (1.0 - p) ** TABLE_CHOICES[-1]))
    return best[1], best[2], best[3]


def _shape(tree: Any) -> tuple[str, str, str, int, int, Any] | None:
    """(table, alias, vector column, vector placeholder, limit placeholder, the distance select item)."""
    from sqlglot import exp

    order = tree.args.get("order")
    limit = tree.args.get("limit")
    if order is None or limit is None or len(order.expressions) != 1:
        return None
    key = order.expressions[0].this
    if not isinstance(key, exp.Column) or order.expressions[0].args.get("desc"):
        return None
    item = next((e for e in tree.expressions if isinstance(e, exp.Alias) and e.alias == key.name),
                None)
    if item is None or not isinstance(item.this, exp.Subquery):
        return None
    stored = vec = None
    for call in item.this.find_all(exp.Anonymous, exp.Func):
        name = (call.name if isinstance(call, exp.Anonymous) else call.sql_name()).lower()
        if name not in {"json_each", "jsoneach", "explodingjsoneach"} and "json_each" not in (
                call.sql(dialect="sqlite").lower()):
            continue
        arg = call.expressions[0] if call.expressions else call.this
        if isinstance(arg, exp.Column) and stored is None:
            stored = arg
        elif placeholder_index(arg) is not None and vec is None:
            vec = placeholder_index(arg)
    lim = placeholder_index(limit.expression)
    if stored is None or vec is None or lim is None:
        return None
    aliases = table_aliases(tree)
    table = aliases.get(stored.table) if stored.table else next(iter(aliases.values()), None)
    return (table, stored.table or table, stored.name, vec, lim, item) if table else None


def propose(name: str, ctx: Context) -> Rewrite | Skip | None:
    import json

    import numpy as np

    found = read_select(ctx.workload, name)
    if found is None or "json_each" not in found[0].sql.lower():
        return None
    template, parsed = found
    shape = _shape(parsed.tree)
    if shape is None:
        return None
    table, alias, column, vec, limit_at, item = shape
    td = ctx.catalog.table(table)
    key = td.rowid_alias or "rowid" if td else "rowid"
    first = ctx.conn.execute(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL "
                             "LIMIT 1").fetchall()
    if not first:
        return Skip(KIND, name, f"{table}.{column} holds no vectors to index")
    dim = len(json.loads(first[0][0]))
    stored = np.array([json.loads(v) for (v,) in ctx.conn.execute(
        f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL")], dtype=float)
    samples = [t for t in ctx.params.get(name) or [] if len(t) >= vec]
    queries = (np.array([json.loads(t[vec - 1]) for t in samples], dtype=float) if samples
               else stored[:: max(len(stored) // 20, 1)][:20])
    k = next((int(t[limit_at - 1]) for t in samples if len(t) >= limit_at), 20)
    top = ctx.conn.execute(f"SELECT max({key}) FROM {table}").fetchone()[0] or 0
    tables, bits, predicted = choose(stored, queries, k)
    planes, buckets = f"{table}_{column}_planes", f"{table}_{column}_buckets"
    rng = np.random.default_rng(SEED)
    # Rounded once: the SQL and numpy backfills both use these very numbers.
    plane_json = [json.dumps([round(float(x), 6) for x in rng.standard_normal(dim)])
                  for _ in range(tables * bits)]
    ddl = [(f"CREATE TABLE IF NOT EXISTS {planes} (tbl INTEGER NOT NULL, bit INTEGER NOT NULL, "
           "plane TEXT NOT NULL, PRIMARY KEY (tbl, bit)) WITHOUT ROWID;"),
           *plane_inserts(planes, plane_json, bits),
           (f"CREATE TABLE IF NOT EXISTS {buckets} (tbl INTEGER NOT NULL, bucket INTEGER NOT NULL, "
           "id INTEGER NOT NULL, PRIMARY KEY (tbl, bucket, id)) WITHOUT ROWID;"),
           f"CREATE INDEX IF NOT EXISTS idx_{buckets}_id ON {buckets} (id);"]
    per_row = bucket_sql(f"p.{column}", planes).replace(
        "FROM " + planes + " AS pl GROUP BY pl.tbl", "")
    backfill = [f"INSERT OR IGNORE INTO {buckets} (tbl, bucket, id) {per_row}, p.{key} "
                f"FROM {table} AS p, {planes} AS pl WHERE p.{column} IS NOT NULL AND p.{key} "
                f"BETWEEN {lo} AND {lo + BACKFILL_ROWS - 1} GROUP BY p.{key}, pl.tbl;"
                for lo in range(0, top + 1, BACKFILL_ROWS)]
    new_rows = bucket_sql(f"new.{column}", planes).replace("GROUP BY", f"WHERE new.{column} IS "
                                                           "NOT NULL GROUP BY")
    insert = f"INSERT INTO {buckets} (tbl, bucket, id) SELECT tbl, bucket, new.{key} FROM ({new_rows});"
    ddl += [f"CREATE TRIGGER IF NOT EXISTS {buckets}_ai AFTER INSERT ON {table} BEGIN\n    {insert}\nEND;",
            (f"CREATE TRIGGER IF NOT EXISTS {buckets}_ad AFTER DELETE ON {table} BEGIN\n"
            f"    DELETE FROM {buckets} WHERE id = old.{key};\nEND;"),
            (f"CREATE TRIGGER IF NOT EXISTS {buckets}_au AFTER UPDATE OF {column} ON {table} BEGIN\n"
            f"    DELETE FROM {buckets} WHERE id = old.{key};\n    {insert}\nEND;")]
    from sqlglot import exp

    distance: exp.Expression = exp.maybe_parse(
        f"(SELECT SUM(POW(a.value - json_extract(:p{vec}, '$[' || a.key || ']'), 2)) FROM "
        f"json_each({alias}.{column}) AS a WHERE a.value IS NOT NULL)", dialect="sqlite")
    item.this.replace(distance)
    cand = (f"{alias}.{key} IN (SELECT DISTINCT vb.id FROM ({bucket_sql(f':p{vec}', planes)}) AS qb "
            f"JOIN {buckets} AS vb ON vb.tbl = qb.tbl AND vb.bucket = qb.bucket)")
    select = parsed.tree
    assert isinstance(select, exp.Select)  # read_select returns SELECTs only
    tree = select.where(exp.condition(cand, dialect="sqlite"), dialect="sqlite")
    sql = to_sql(tree)

    def trial(params: tuple, _conn: Any) -> Trial:
        return Trial(before=((template.sql, params),), after=((sql, params),))

    fill = _filler(table, key, column, buckets, plane_json, bits)
    return Rewrite(KIND, name, sql, "\n".join(ddl), False,
                   f"APPROXIMATE: ranks only the rows sharing a bucket with the query in one of "
                   f"{tables} tables of {bits} random hyperplanes ({planes}, {buckets}) instead of "
                   f"every vector (predicted recall@{k} {predicted:.2f} on the sampled queries; "
                   f"the plan reports the measured one)", trial,
                   templates={name: 1.0}, writes=True, recall_k=k,
                   trigger_writes=_inserts(ctx, table, 2.0 * tables),
                   backfill_sql="\n".join(backfill), backfill=fill)


def plane_inserts(planes: str, plane_json: list[str], bits: int) -> list[str]:
    """INSERTs of the planes, as many as D1's statement length needs (at 100,000 rows the
    planes alone are about 200 KB of SQL).

    >>> len(plane_inserts("p", ["[0.5]"] * 40, 4))
    1
    >>> parts = plane_inserts("p", ["[" + "0.123456, " * 999 + "0.5]"] * 20, 4)
    >>> len(parts) > 1, max(len(s.encode()) for s in parts) <= 100_000
    (True, True)
    """
    from d1bench.sql.limits import D1_LIMITS

    head = f"INSERT OR REPLACE INTO {planes} (tbl, bit, plane) VALUES "
    room = D1_LIMITS.sql_bytes - len(head) - 2
    out: list[str] = []
    values: list[str] = []
    used = 0
    for i, text in enumerate(plane_json):
        value = f"({i // bits}, {i % bits}, '{text}')"
        if values and used + len(value) + 2 > room:
            out.append(head + ", ".join(values) + ";")
            values, used = [], 0
        values.append(value)
        used += len(value) + 2
    if values:
        out.append(head + ", ".join(values) + ";")
    return out


def signatures(vectors: Any, planes: Any, bits: int) -> Any:
    """Each vector's bucket in each table: bit ``b`` of table ``t`` is set when the vector
    lies on the positive side of plane ``t*bits + b`` (what :func:`bucket_sql` computes).

    >>> import numpy as np
    >>> signatures(np.array([[1.0, 2.0]]), np.array([[1.0, 0], [0, 1.0], [0, -1.0], [-1.0, 0]]), 2)
    array([[3, 0]])
    """
    import numpy as np

    side = (vectors @ planes.T > 0).reshape(len(vectors), -1, bits)
    return side.astype(np.int64) @ (np.int64(1) << np.arange(bits, dtype=np.int64))


def _filler(table: str, key: str, column: str, buckets: str, plane_json: list[str],
            bits: int) -> Any:
    """The backfill for a scratch copy: the same buckets as the SQL statements, from numpy."""
    import json
    from itertools import repeat

    import numpy as np

    planes = np.array([json.loads(t) for t in plane_json], dtype=float)
    dim = planes.shape[1]

    def fill(conn: Any) -> None:
        ids, rows = [], []
        for rowid, text in conn.execute(f"SELECT {key}, {column} FROM {table} "
                                        f"WHERE {column} IS NOT NULL"):
            v = json.loads(text)
            # SQL's SUM skips the NULL products of missing elements: as if they were 0.
            row = [float(x) if isinstance(x, (int, float)) else 0.0 for x in v[:dim]]
            rows.append(row + [0.0] * (dim - len(row)))
            ids.append(rowid)
        if not ids:
            return
        sig = signatures(np.array(rows, dtype=float), planes, bits)
        keys = np.array(ids, dtype=np.int64)
        index = f"idx_{buckets}_id"
        (made,) = next(iter(conn.execute("SELECT sql FROM sqlite_schema WHERE type = 'index' "
                                         "AND name = ?", (index,))), (None,))
        conn.execute("SAVEPOINT d1bench_fill")  # a transaction, or a part of the caller's
        try:
            # Millions of rows: the id index is built once at the end rather than kept in
            # step, and each table's rows go in the primary key's order (b-tree appends).
            if made:
                conn.execute(f"DROP INDEX {index}")
            for t in range(sig.shape[1]):
                col = sig[:, t]
                order = np.lexsort((keys, col))
                conn.executemany(f"INSERT OR IGNORE INTO {buckets} (tbl, bucket, id) "
                                 "VALUES (?, ?, ?)",
                                 zip(repeat(t), col[order].tolist(), keys[order].tolist()))
            if made:
                conn.execute(made)
            conn.execute("RELEASE d1bench_fill")
        except BaseException:
            conn.execute("ROLLBACK TO d1bench_fill; RELEASE d1bench_fill")
            raise

    return fill


def _inserts(ctx: Context, table: str, rows: float) -> dict[str, float]:
    """Write templates inserting into ``table``: each adds a bucket row and its index entry per table."""
    import re

    pattern = re.compile(rf"\bINSERT\s+(?:OR\s+\w+\s+)?INTO\s+\"?{table}\b", re.IGNORECASE)
    return {n: rows for n, t in ctx.workload.templates.items() if t.is_write and pattern.search(t.sql)}
