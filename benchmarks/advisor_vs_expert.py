"""The workload advisor against SQLite's own ``.expert``, measured by replay.

Goals (issue 4), all measured, none predicted:

- ``read_ratio``: weighted rows read (per unit of the ``medical`` workload) with
  the advised set, over the same with the union of ``.expert``'s per-template
  answers: at most 0.75;
- ``bytes_ratio``: bytes of the advised indexes over ``.expert``'s: at most 1.0;
- on a write-heavy variant of the workload (writes are ``--write-share`` of the
  units), ``write_ratio``: rows written per unit with the advised set over
  ``.expert``'s: at most 0.7, while keeping at least 95% of ``.expert``'s read
  savings over no index (``read_savings_kept``);
- ``plan_match``: share of templates whose plan after building the advised set
  is the plan the advisor predicted: at least 0.95;
- ``advice_seconds``: advice for 1,000 distinct templates over 50 tables (a
  generated schema and workload): at most 60.

Also reported: the advised set's cut in rows read against no secondary index
(``reduction_vs_none``, issue goal 0.9 at 100,000 papers) and whether it beats
the seed's own index set (``beats_seed``), with every set's figures.  The same
cut and read ratio are given over the templates some index set changes at all
(``*_indexable``): the brute-force vector search over JSON reads every element
of every embedding whatever the indexes, and outweighs everything else.

Two figures say how far any index set could go on this workload:

- ``bounds``: the rows read that no index can remove.  ``semantic_search``
  steps ``json_each`` over every embedding once per element of the query
  vector, and D1 counts every step; counted exactly from the corpus, this
  floor caps the cut against no index (``reduction_vs_none_max``) and puts a
  floor under the read ratio (``read_ratio_min``), whatever the advisor does.
- ``write_tradeoff``: the most written table (``reading_history``) with one
  index, for each index either set has on it, beside every index either set
  has on the other tables; the write ratio and read savings kept of each, and
  the least write ratio of any set with two full indexes there (each adds one
  written row per insert into the table).  ``write_heavy_billed_per_unit`` is what D1 bills per unit (rows
  read plus 1,000 per row written), the quantity the advisor minimises.

Each index set is built on its own copy of the corpus (its CREATE INDEX
statements, then ``PRAGMA optimize``), and the workload is replayed on every
copy with the same seed, one statement at a time, so every copy sees the same
units, parameter values and writes.  Rows read and written are the SQLite
target's estimates of D1's counts.  ``.expert`` (SQLite 3.40 from Debian)
refuses databases with FTS5 tables, so it runs on a copy without them and
skips the templates that need them; it runs with ``--sample 100``, its most
favourable setting.

Issue 12 adds the same comparison on schemas no d1bench default was tuned on
(``schemas``: ``shop``, from ``tests/fixtures/advice/shop``, and the generated
``saas`` and ``events`` of ``tests/fixtures/schemas`` at ``--scale``): on each,
the advised set must read no more rows than ``.expert``'s union (``read_ratio``
at most 1.0) in at most 0.6x its bytes, writing no more rows; and, on every
schema, ``fidelity``: the share of templates whose predicted rows read after
building the advised set is within 15% of the rows read measured on the same
parameter values (:func:`d1bench.advisor.verify.fidelity`), at least 0.9.
``met_other_goals`` holds ``medical`` to the same four goals.  ``bytes_ratio_floor``
is the fewest bytes any set reading no more than ``.expert``'s union can take, over
``.expert``'s bytes (:func:`bytes_floor`: the needed leading keys, or substitutes led by
other keys, each as small as an index led by it can be); where it is over 0.6, no set
meets both the read and the bytes goal.

Fidelity is measured by local D1's own counter: the built copy is uploaded into
a local D1 (Miniflare) and every priced value runs there.  The SQLite target's
estimate of the same count is reported beside it (``sqlite_estimate_within``,
``fidelity_against_sqlite_estimate``, and per template under
``fidelity_misses`` and ``sqlite_estimate_misses``): with the advised indexes,
that estimate is itself a third off on a few plans (a LIMIT sorter, a LEFT JOIN
with filters, a recursive CTE), and a prediction should be held against what D1
bills.  ``--fidelity-on sqlite`` measures with the estimate alone (no Node).
For the same reason the advised set and ``.expert``'s union are replayed on local
D1 as well (``on_local_d1``: read and write ratios as D1 counts them, and
``read_ratio_on_local_d1`` under ``met``).

``fix`` (issue 12, item 2): the fix plan of ``d1bench fix`` (the advised indexes,
then rewrites and summary tables, each checked on scratch copies) on ``medical``:
its cut in weighted rows read against no index (goal 0.9 at 100,000 papers),
whether every exact step gave the same rows on every sampled parameter tuple,
the approximate vector search's recall@20 (goal 0.9), and the monthly bill
before and after at 100 units a second.  Its rows are measured on the sampled
parameters of each template (``--samples`` of fix), weighted by the
workload's frequencies, not by this script's replays.

Run: ``python benchmarks/advisor_vs_expert.py [--papers 20000] [--db CORPUS]
[--requests 400] [--write-share 0.5] [--seed 0] [--no-tradeoff] [--schemas shop,saas,events]
[--scale 3] [--no-medical] [--fidelity-on local-d1|sqlite]
[--no-fix | --only-fix | --only-advice]``.  Prints one JSON line; a ratio held to an
"at most" goal is rounded up, to four places.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: D1's price of a written row, in rows read.
WRITE_WEIGHT = 1000.0


def _up(ratio: float, digits: int = 4) -> float:
    """``ratio`` rounded up: a ratio held to "at most" a goal never rounds down onto it
    (62,261.0 rows read against 62,259.7 is 1.0001, not 1.0)."""
    import math

    scale = 10 ** digits
    return math.ceil(ratio * scale - 1e-9) / scale

GOALS = {"read_ratio": 0.75, "bytes_ratio": 1.0, "write_ratio": 0.7, "read_savings_kept": 0.95,
         "plan_match": 0.95, "advice_seconds": 60.0, "reduction_vs_none": 0.90}


def _build(corpus: Path, folder: Path, name: str, sql: str) -> Path:
    from d1bench.advisor.verify import apply_sql, copy_corpus

    path = copy_corpus(corpus, folder / f"{name}.sqlite")
    if sql.strip():
        apply_sql(path, sql)
    return path


def _measure(db: Path, workload: Any, requests: int, seed: int) -> dict[str, Any]:
    from d1bench.advisor.verify import measure

    m = measure(db, workload, requests=requests, seed=seed)
    units = max(m.attrs["units"], 1)
    return {
        "rows_read_per_unit": float((m["executions"] * m["rows_read"]).sum()) / units,
        "rows_written_per_unit": float((m["executions"] * m["rows_written"]).sum()) / units,
        "ms_per_unit": float((m["executions"] * m["ms"]).sum()) / units,
        "per_template": {k: round(float(v), 2) for k, v in m["rows_read"].items()},
        "executions_per_unit": {k: float(v) / units for k, v in m["executions"].items()},
        "per_unit": {k: float(e * r) / units for k, e, r in
                     zip(m.index, m["executions"], m["rows_read"])},
    }


def _measure_d1(db: Path, workload: Any, requests: int, seed: int, folder: Path) -> dict[str, Any]:
    """The same replay as :func:`_measure`, on a local D1 holding ``db``: rows read and
    written as D1 itself counts them (values bound through ``db``, so both replays send
    the same statements)."""
    from d1bench.runner import replay
    from d1bench.targets import open_target
    from d1bench.targets.d1.local import LocalD1
    from d1bench.uploader import upload

    with LocalD1(folder / f"d1-{db.stem}") as local, local.target(allow_writes=True) as target:
        upload(db, target)
        with open_target(f"sqlite:{db}", readonly=True) as reader, reader.connect() as bind:
            trace = replay(workload, target, concurrency=1, requests=requests, seed=seed,
                           progress=False, allow_writes=True, bind_conn=bind, corpus=db)
    frame = trace.measured
    ok = frame[frame["error_class"].isna()]
    units = max(int(frame["unit_index"].nunique()), 1)
    return {"rows_read_per_unit": float(ok["rows_read"].sum()) / units,
            "rows_written_per_unit": float(ok["rows_written"].sum()) / units,
            "per_template": {k: round(float(v), 1)
                             for k, v in ok.groupby("template")["rows_read"].mean().items()},
            "errors": int(frame["error_class"].notna().sum())}


def _d1_ratios(corpus: Path, folder: Path, name: str, sets: dict[str, str], workload: Any,
               requests: int, seed: int) -> dict[str, Any]:
    """The advised set against ``.expert``'s union in rows read and written, replayed on
    local D1 and counted by it (the SQLite target's estimate of those counts is off by up
    to a third on a few of these plans)."""
    got = {}
    for k in ("expert", "advised"):
        db = _build(corpus, folder, f"{name}_{k}_d1", sets[k])
        got[k] = _measure_d1(db, workload, requests, seed, folder)
        db.unlink()
    e, a = got["expert"], got["advised"]
    return {
        "read_ratio": _up(a["rows_read_per_unit"] / e["rows_read_per_unit"], 4)
        if e["rows_read_per_unit"] else None,
        "write_ratio": _up(a["rows_written_per_unit"] / e["rows_written_per_unit"], 4)
        if e["rows_written_per_unit"] else None,
        "rows_read_per_unit": {k: round(v["rows_read_per_unit"], 1) for k, v in got.items()},
        "rows_written_per_unit": {k: round(v["rows_written_per_unit"], 4) for k, v in got.items()},
        # rows read per execution, D1's count, where the two sets differ
        "per_template": {n: {k: got[k]["per_template"].get(n) for k in got}
                         for n in sorted(set(e["per_template"]) | set(a["per_template"]))
                         if e["per_template"].get(n) != a["per_template"].get(n)},
        "errors": {k: v["errors"] for k, v in got.items()},
    }


def _indexable(read: dict[str, dict[str, Any]]) -> set[str]:
    """Templates whose rows read some index set changed (the part indexes can act on)."""
    names = set(read["none"]["per_template"])
    return {n for n in names
            if any(abs(v["per_template"].get(n, 0.0) - read["none"]["per_template"][n])
                   > 0.01 * read["none"]["per_template"][n] + 1 for v in read.values())}


def _json_each_floor(corpus: Path, workload: Any, seed: int) -> dict[str, float]:
    """Rows read per execution that no index can remove, for the vector search template.

    ``semantic_search`` joins ``json_each`` over each paper's embedding with
    ``json_each`` over the bound query vector.  D1 counts every ``VNext``, and
    whichever loop SQLite puts inside, it steps through ``len(paper vector) *
    len(query vector)`` rows per paper with an embedding: a lower bound on the
    template's rows read under every index set, since no index (real tables
    only) changes a virtual table's loops or which papers have a vector.
    """
    import apsw

    from d1bench.advisor.preparation import bind_params

    name = "semantic_search"
    if name not in workload.templates:
        return {}
    params, _ = bind_params(workload, corpus, seed, 5)
    dims = {len(json.loads(p[0])) for p in params.get(name) or []}
    if len(dims) != 1:
        raise SystemExit(f"{name}: query vectors of lengths {sorted(dims)}; expected one length")
    conn = apsw.Connection(str(corpus), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        (elements,) = next(iter(conn.execute(
            "SELECT coalesce(sum(json_array_length(embedding_vector)), 0) FROM papers "
            "WHERE embedding_vector IS NOT NULL")))
    finally:
        conn.close()
    return {name: float(elements) * dims.pop()}


def _creates(sql: str) -> list[tuple[str, str]]:
    """(table, statement) for each CREATE INDEX of a migration."""
    import re

    return [(m.group(1), m.group(0)) for m in re.finditer(
        r"(?is)CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?\S+\s+ON\s+(\w+)[^;]*",
        sql)]


def _written_tables(workload: Any) -> dict[str, float]:
    """Tables the write templates insert into or update, with their total weight."""
    import re

    out: dict[str, float] = {}
    for t in workload.templates.values():
        if t.is_write:
            m = re.search(r"(?is)\b(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|UPDATE)\s+(\w+)", t.sql)
            if m:
                out[m.group(1)] = out.get(m.group(1), 0.0) + t.weight
    return out


def _shape(table: str, stmt: str) -> str:
    """An index's table, keys and WHERE, spelt the same whoever named it."""
    import re

    body = re.split(r"(?i)\bON\s+\w+", stmt, maxsplit=1)[1]
    return table + re.sub(r"\s+", "", body).lower()


def _write_tradeoff(corpus: Path, folder: Path, heavy: Any, heavy_sql: str, read_sql: str,
                    union: list[Any],
                    write: dict[str, dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """What the write ratio costs in read savings on the most written table.

    On the write-heavy variant, each index either set has on that table is
    built alone there, beside every index either set has on the other tables,
    and replayed: the most read savings one index there can keep.  Each extra
    full index on the table adds exactly one written row per insert into it,
    so the insert rate gives the least a set with two of them can write.
    """
    written = _written_tables(heavy)
    if not written:
        return {}
    hot = max(written, key=lambda t: written[t])
    # Every index either set has on the other tables stays: the most read
    # savings a set with one index on `hot` can keep.
    others: dict[str, str] = {}
    singles: dict[str, str] = {}
    for table, stmt in [*_creates(heavy_sql), *_creates(read_sql),
                        *((i.table, i.create_sql()) for i in union)]:
        (singles if table == hot else others).setdefault(_shape(table, stmt), stmt)
    none, expert = write["none"], write["expert"]
    savings = none["rows_read_per_unit"] - expert["rows_read_per_unit"]
    inserting = _inserting(heavy, hot)
    inserts = sum(rate for name, rate in none["executions_per_unit"].items() if name in inserting)
    one: dict[str, Any] = {}
    for n, (shape, stmt) in enumerate(sorted(singles.items())):
        db = _build(corpus, folder, f"one_{n}",
                    ";\n".join([*others.values(), stmt]) + ";\nPRAGMA optimize;\n")
        m = _measure(db, heavy, args.requests, args.seed)
        db.unlink()
        one[shape] = {
            "write_ratio": _up(m["rows_written_per_unit"] / expert["rows_written_per_unit"], 4),
            "read_savings_kept": round((none["rows_read_per_unit"] - m["rows_read_per_unit"])
                                       / savings, 4) if savings else None}
    return {
        "table": hot, "inserts_per_unit": round(inserts, 4), "one_index": one,
        "one_index_meets_both": sorted(k for k, v in one.items()
                                       if v["write_ratio"] <= GOALS["write_ratio"]
                                       and (v["read_savings_kept"] or 0) >= GOALS["read_savings_kept"]),
        # the least any set with two full indexes on the table can write: no index
        # anywhere else, and one more row per insert into the table for each of the two
        "write_ratio_min_two_indexes": round(
            (none["rows_written_per_unit"] + 2 * inserts) / expert["rows_written_per_unit"], 4),
    }


def _inserting(workload: Any, table: str) -> set[str]:
    """Write templates that insert rows into ``table``."""
    import re

    return {n for n, t in workload.templates.items() if t.is_write and re.search(
        rf"(?is)\bINSERT\s+(?:OR\s+\w+\s+)?INTO\s+{re.escape(table)}\b", t.sql)}


def _set_sql(indexes: list[Any]) -> str:
    return "".join(i.create_sql() + ";\n" for i in indexes) + "PRAGMA optimize;\n"


def _names(sql: str) -> list[str]:
    import re

    return re.findall(r"(?i)CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?(\S+)", sql)


def synthetic(folder: Path, tables: int = 50, templates: int = 1000, rows: int = 2000,
              seed: int = 0) -> tuple[Path, Path]:
    """A generated schema of ``tables`` tables and a workload of ``templates`` distinct templates."""
    import apsw

    rng = random.Random(seed)
    db_path = folder / "synthetic.sqlite"
    db = apsw.Connection(str(db_path))
    db.execute("BEGIN")
    for t in range(tables):
        db.execute(f"CREATE TABLE t{t} (id INTEGER PRIMARY KEY, parent INTEGER, a INTEGER, "
                   "b INTEGER, c TEXT, d TEXT, e REAL, f TEXT)")
        ca, cb, cc = rng.choice([5, 50, 500]), rng.choice([10, 100, 1000]), rng.choice([20, 200])
        db.executemany(
            f"INSERT INTO t{t} (parent, a, b, c, d, e, f) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(rng.randint(1, rows), rng.randrange(ca), rng.randrange(cb), f"c{rng.randrange(cc)}",
              f"2024-{1 + rng.randrange(12):02d}-{1 + rng.randrange(28):02d}", rng.random() * 100,
              rng.choice(["x", "y", None])) for _ in range(rows)])
    db.execute("COMMIT")
    db.close()
    lines = ["[workload]", 'name = "synthetic"', "format = 1", "write_weight = 0.05", ""]
    seen: set[str] = set()
    while len(seen) < templates:
        t = rng.randrange(tables)
        c1, c2 = rng.sample(["a", "b", "c", "d"], 2)

        def val(c: str, t: int = t) -> str:
            return f'{{ sampler = "column", table = "t{t}", column = "{c}" }}'

        kind = rng.choice(["eq", "eq2", "range", "order", "join", "group", "eqrange", "insert"])
        if kind == "eq":
            sql, params = f"SELECT id, e FROM t{t} WHERE {c1} = ?", [val(c1)]
        elif kind == "eq2":
            sql, params = f"SELECT id FROM t{t} WHERE {c1} = ? AND {c2} = ?", [val(c1), val(c2)]
        elif kind == "range":
            sql, params = f"SELECT id, {c2} FROM t{t} WHERE {c1} > ? ORDER BY {c1} LIMIT 20", [val(c1)]
        elif kind == "order":
            sql, params = f"SELECT id, e FROM t{t} WHERE {c1} = ? ORDER BY {c2} DESC LIMIT 10", [val(c1)]
        elif kind == "eqrange":
            sql, params = f"SELECT count(*) FROM t{t} WHERE {c1} = ? AND {c2} >= ?", [val(c1), val(c2)]
        elif kind == "join":
            u = rng.randrange(tables)
            sql = f"SELECT x.id, y.e FROM t{t} x JOIN t{u} y ON y.parent = x.id WHERE x.{c1} = ?"
            params = [val(c1)]
        elif kind == "group":
            sql, params = f"SELECT {c2}, count(*) FROM t{t} WHERE {c1} = ? GROUP BY {c2}", [val(c1)]
        else:
            sql = f"INSERT INTO t{t} (parent, a, b, c, d, e, f) VALUES (?, ?, ?, ?, ?, ?, 'x')"
            params = ['{ sampler = "int", min = 1, max = 2000 }', val("a"), val("b"), val("c"),
                      val("d"), '{ sampler = "float", min = 0, max = 100 }']
        if sql in seen:
            continue
        seen.add(sql)
        lines += [f"[templates.q{len(seen):04d}]", f"weight = {rng.choice([1, 2, 5, 10])}",
                  f'sql = "{sql}"', "params = [" + ", ".join(params) + "]", ""]
    wl = folder / "synthetic.toml"
    wl.write_text("\n".join(lines), encoding="utf-8")
    return db_path, wl


#: Goals on every schema besides medical (issue 12): reads no more than .expert's union, in
#: at most 0.6x its bytes, writing no more; predictions within 15% for 90% of templates.
OTHER_GOALS = {"read_ratio": 1.0, "bytes_ratio": 0.6, "write_ratio": 1.0, "fidelity": 0.9}
ROOT = Path(__file__).resolve().parents[1]


def _schema_db(name: str, folder: Path, scale: float, seed: int) -> tuple[Path, Path]:
    """A fixture schema's database and workload: ``shop`` is built from its SQL (fixed
    size); ``saas`` and ``events`` by their generators at ``scale``."""
    import subprocess

    db = folder / f"{name}.sqlite"
    if name == "shop":
        import apsw

        base = ROOT / "tests" / "fixtures" / "advice" / "shop"
        conn = apsw.Connection(str(db))
        conn.execute((base / "schema.sql").read_text(encoding="utf-8"))
        conn.close()
        return db, base / "workload.toml"
    base = ROOT / "tests" / "fixtures" / "schemas" / name
    subprocess.run([sys.executable, str(base / "generate.py"), str(db), "--scale", str(scale),
                    "--seed", str(seed)], check=True, capture_output=True)
    return db, base / "workload.toml"


def bytes_floor(corpus: Path, folder: Path, workload: Any, advice: Any, expert_reads: float,
                expert_bytes: float, requests: int, seed: int) -> dict[str, Any]:
    """The fewest index bytes a set reading no more than ``.expert``'s union can take.

    A leading key of the advised set is *needed* when the advised set without every
    index it leads reads more than ``.expert``'s union (replayed).  The smallest index
    led by it is the key alone, holding the rows an equality, IN or range on it can
    meet: ``WHERE key IS NOT NULL`` when some rows leave it NULL and no template asks
    for ``key IS NULL`` (the advised index's own WHERE, for a partial one).  Every
    index led by the key holds at least those entries, each at least that wide.

    A needed key's place may be taken by an index led by another key, on its table or
    on another the same templates read (a join served from the other side).  Each
    candidate the advisor would consider for the templates that read more without the
    key is tried in its place, the widest one of each leading key and WHERE: the
    advised set without the key, plus that candidate, replayed.  One that reads no more
    than ``.expert``'s union is a *substitute*, and its leading key alone (as above) is
    as small as any index led by it.  The floor (``bytes``) is then the cheapest way
    to fill every needed key's place, by the key itself or by a substitute (one index
    may fill several places); ``bytes_advised_keys`` is the same without substitutes.
    Needed and substitute are each judged one key at a time, the rest of the advised
    set kept.
    """
    import apsw

    from d1bench.advisor.candidates import generate
    from d1bench.advisor.preparation import prepare
    from d1bench.advisor.query import analyze
    from d1bench.advisor.verify import index_bytes
    from d1bench.sql.catalog import read_catalog
    from d1bench.sql.naming import Namer

    advised_sql = [row.sql.rstrip(";") for row in advice.indexes.itertuples()]
    leads: dict[str, dict[str, Any]] = {}  # label -> the key's floor index and what it leads
    conn = apsw.Connection(str(corpus), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        catalog = read_catalog(conn)
        asked_null = set()
        for t in workload.templates.values():
            info = analyze(t.sql, catalog)
            asked_null |= {(info.refs[q.ref].name, q.key) for q in info.preds
                           if q.op == "isnull" and 0 <= q.ref < len(info.refs)}

        def floor_index(table: str, key: str, where: str | None) -> tuple[str, str]:
            """The label and WHERE of the smallest index led by ``key``."""
            if where is None and (table, key) not in asked_null:
                (nulls,) = next(iter(conn.execute(f"SELECT count(*) FROM {table} "
                                                  f"WHERE {key} IS NULL")))
                where = f"{key} IS NOT NULL" if nulls else None
            return f"{table}({key})" + (f" WHERE {where}" if where else ""), where

        def add(label: str, table: str, key: str, where: str | None) -> dict[str, Any]:
            lead = leads.setdefault(label, {"name": f"d1bench_floor_{len(leads)}", "led": []})
            lead["sql"] = (f"CREATE INDEX {lead['name']} ON {table} ({key})"
                           + (f" WHERE {where}" if where else ""))
            return lead

        for row in advice.indexes.itertuples():
            label, where = floor_index(row.table, row.columns[0], row.where)
            add(label, row.table, row.columns[0], where)["led"].append(row.sql.rstrip(";"))
        own = list(leads)
        prepared = prepare(corpus, workload, seed=seed)
        try:
            candidates = generate(prepared.infos, prepared.catalog, prepared.stats,
                                  Namer(prepared.catalog.indexes))
        finally:
            prepared.close()
        widest: dict[str, Any] = {}  # floor label -> the widest candidate it leads
        served: dict[str, set[str]] = {}
        for cand in candidates.values():
            idx = cand.index
            if not idx.keys[0].is_column:
                continue
            label, where = floor_index(idx.table, idx.keys[0].expr, idx.where)
            served.setdefault(label, set()).update(cand.templates)
            if label not in widest or len(idx.keys) > len(widest[label].keys):
                widest[label] = idx
                add(label, idx.table, idx.keys[0].expr, where)
    finally:
        conn.close()
    built = _build(corpus, folder, "floor", "".join(v["sql"] + ";\n" for v in leads.values()))
    sizes = {label: index_bytes(built, [v["name"]]) for label, v in leads.items()}
    built.unlink()

    def replay(sql: list[str]) -> dict[str, Any]:
        db = _build(corpus, folder, "floor_without",
                    "".join(s + ";\n" for s in sql) + "PRAGMA optimize;\n")
        try:
            return _measure(db, workload, requests, seed)
        finally:
            db.unlink()

    advised = replay(advised_sql)["per_template"]
    without: dict[str, float] = {}
    substitutes: dict[str, dict[str, float]] = {}
    for label in own:
        rest = [sql for sql in advised_sql if sql not in leads[label]["led"]]
        got = replay(rest)
        without[label] = got["rows_read_per_unit"]
        substitutes[label] = {}
        if without[label] <= expert_reads:
            continue
        worse = {n for n, v in got["per_template"].items()
                 if v > advised.get(n, 0.0) * 1.01 + 0.5}
        for other, idx in widest.items():
            if other == label or not served.get(other, set()) & worse:
                continue
            reads = replay([*rest, idx.create_sql()])["rows_read_per_unit"]
            if reads <= expert_reads:
                substitutes[label][other] = round(reads, 1)
    needed = [label for label in own if without[label] > expert_reads]
    # the cheapest way to fill every needed place: a key fills its own, a substitute
    # every place it was found to fill (exact over the subsets of places)
    fills = [(sizes[label], {i}) for i, label in enumerate(needed)]
    for other in {o for label in needed for o in substitutes[label]}:
        fills.append((sizes[other], {i for i, label in enumerate(needed)
                                     if other in substitutes[label]}))
    best = [0.0] + [float("inf")] * ((1 << len(needed)) - 1)
    for mask in range(1, 1 << len(needed)):
        for cost, places in fills:
            bits = sum(1 << i for i in places)
            if mask & bits:
                best[mask] = min(best[mask], best[mask & ~bits] + cost)
    total = best[-1] if needed else 0.0
    own_total = sum(sizes[label] for label in needed)

    def ratio(b: float) -> float | None:
        return round(b / expert_bytes, 4) if expert_bytes else None

    return {
        "indexes": {label: {"bytes": int(sizes[label]), "needed": label in needed,
                            "advised_without_rows_read_per_unit": round(without[label], 1),
                            "substitutes": {o: {"bytes": int(sizes[o]),
                                                "rows_read_per_unit": r}
                                            for o, r in substitutes[label].items()}}
                    for label in own},
        "expert_rows_read_per_unit": round(expert_reads, 1),
        "bytes": int(total),
        "bytes_ratio": ratio(total),
        "bytes_advised_keys": int(own_total),
        "bytes_ratio_advised_keys": ratio(own_total),
    }


def _fidelity_figures(fid: Any) -> dict[str, Any]:
    """The fidelity frame's figures: the share of templates within 15% of what was measured,
    and the templates outside, each with its prediction, the measured count and (measured
    on local D1) the SQLite target's estimate of it, so the two errors can be told apart."""
    on_d1 = fid.attrs["measured_on"] == "local-d1"
    out: dict[str, Any] = {"fidelity": round(fid.attrs["fidelity"], 4),
                           "fidelity_measured_on": fid.attrs["measured_on"]}
    if on_d1:
        out["fidelity_against_sqlite_estimate"] = round(fid.attrs["fidelity_against_estimate"], 4)
        out["sqlite_estimate_within"] = round(fid.attrs["estimate_within"], 4)
    misses: dict[str, Any] = {}
    for row in fid.itertuples():
        if not row.within:
            misses[row.template] = {"predicted": round(row.rows_read_predicted, 1),
                                    "measured": round(row.rows_read_measured, 1)}
            if on_d1:
                misses[row.template]["sqlite_estimate"] = round(row.rows_read_sqlite_estimate, 1)
    out["fidelity_misses"] = misses
    if on_d1:
        out["sqlite_estimate_misses"] = {
            row.template: {"sqlite_estimate": round(row.rows_read_sqlite_estimate, 1),
                           "d1": round(row.rows_read_measured, 1)}
            for row in fid.itertuples() if abs(row.estimate_error) > 0.15}
    return out


def other_schema(name: str, folder: Path, scale: float, requests: int, seed: int,
                 fidelity_on: str = "local-d1") -> dict[str, Any]:
    """The advised set against ``.expert``'s union on one fixture schema, measured by replay,
    and the what-if's predicted rows read against the measured, template by template."""
    from d1bench.advisor import advise
    from d1bench.advisor.expert import expert_union, run_expert
    from d1bench.advisor.verify import fidelity, index_bytes
    from d1bench.workload import load_workload

    corpus, wl_path = _schema_db(name, folder, scale, seed)
    workload = load_workload(wl_path)
    answers = run_expert(corpus, {n: t.sql for n, t in workload.templates.items()})
    union = expert_union(answers)
    started = time.perf_counter()
    advice = advise(corpus, workload, seed=seed)
    seconds = time.perf_counter() - started
    sets = {"none": "", "expert": _set_sql(union), "advised": advice.migration_sql}
    built = {k: _build(corpus, folder, f"{name}_{k}", sql) for k, sql in sets.items()}
    sizes = {k: index_bytes(built[k], _names(sql)) for k, sql in sets.items()}
    m = {k: _measure(built[k], workload, requests, seed) for k in sets}
    fid = fidelity(corpus, workload, advice, workdir=folder, on=fidelity_on)
    for path in built.values():
        path.unlink()
    r = {k: v["rows_read_per_unit"] for k, v in m.items()}
    w = {k: v["rows_written_per_unit"] for k, v in m.items()}
    floor = bytes_floor(corpus, folder, workload, advice, r["expert"], sizes["expert"],
                        requests, seed)
    on_d1 = _d1_ratios(corpus, folder, name, sets, workload, requests, seed) \
        if fidelity_on == "local-d1" else None
    out = {
        "scale": scale if name != "shop" else None,
        "read_ratio": _up(r["advised"] / r["expert"], 4) if r["expert"] else None,
        "bytes_ratio": _up(sizes["advised"] / sizes["expert"], 4) if sizes["expert"] else None,
        # the least bytes ratio any set reading no more than .expert's can have (see
        # bytes_floor)
        "bytes_ratio_floor": floor["bytes_ratio"],
        "bytes_floor": floor,
        "write_ratio": _up(w["advised"] / w["expert"], 4) if w["expert"] else None,
        # the same two ratios, replayed on local D1 and counted by it
        "on_local_d1": on_d1,
        "reduction_vs_none": round(1 - r["advised"] / r["none"], 4) if r["none"] else None,
        # what D1 bills, in rows read (a written row = 1,000): the quantity the advisor
        # minimises, where .expert ignores writes
        "billed_per_unit": {k: round(r[k] + WRITE_WEIGHT * w[k], 1) for k in r},
        "billed_ratio": round((r["advised"] + WRITE_WEIGHT * w["advised"])
                              / (r["expert"] + WRITE_WEIGHT * w["expert"]), 4),
        **_fidelity_figures(fid),
        "rows_read_per_unit": {k: round(v, 1) for k, v in r.items()},
        "rows_written_per_unit": {k: round(v, 4) for k, v in w.items()},
        "index_bytes": {k: int(v) for k, v in sizes.items()},
        "advise_seconds": round(seconds, 2),
        "expert_skipped": sorted(a.template for a in answers if a.status != "ok"),
        "indexes": {"advised": [f"{t}({', '.join(c)})" + (f" WHERE {wh}" if wh else "")
                                for t, c, wh in zip(advice.indexes["table"],
                                                    advice.indexes["columns"],
                                                    advice.indexes["where"])],
                    "expert": [i.describe() for i in union]},
        "per_template_rows_read": {k: v["per_template"] for k, v in m.items()},
    }
    out["met"] = {
        "read_ratio": out["read_ratio"] is not None and out["read_ratio"] <= OTHER_GOALS["read_ratio"],
        "bytes_ratio": out["bytes_ratio"] is not None
        and out["bytes_ratio"] <= OTHER_GOALS["bytes_ratio"],
        "write_ratio": out["write_ratio"] is None or out["write_ratio"] <= OTHER_GOALS["write_ratio"],
        "fidelity": out["fidelity"] >= OTHER_GOALS["fidelity"],
    }
    if on_d1 is not None:
        # the read and write goals again, on D1's own count
        out["met"]["read_ratio_on_local_d1"] = on_d1["read_ratio"] is not None \
            and on_d1["read_ratio"] <= OTHER_GOALS["read_ratio"]
        out["met"]["write_ratio_on_local_d1"] = on_d1["write_ratio"] is None \
            or on_d1["write_ratio"] <= OTHER_GOALS["write_ratio"]
    return out


#: The fix plan's goals (issue 12, item 2), at 100,000 papers and 100 units a second.
FIX_GOALS = {"rows_read_cut": 0.9, "recall_at_20": 0.9, "rate": 100.0}


def fix_section(corpus: Path, seed: int, samples: int = 5) -> dict[str, Any]:
    """The fix plan (indexes, rewrites, summary tables) on ``corpus``: its cut against no index,
    every exact step's equivalence, the approximate vector search's recall@20, and the bill."""
    from d1bench.fixer import fix

    started = time.perf_counter()
    plan = fix(corpus, "medical", seed=seed, samples=samples, rate=FIX_GOALS["rate"])
    s = plan.summary
    steps = plan.steps
    exact = steps[steps["exact"]]
    approx = steps[~steps["exact"]]
    vector = approx[approx["target"] == "semantic_search"]
    out = {
        "rows_read_per_unit_none": round(s["rows_read_none"], 1),
        "rows_read_per_unit_after": round(s["rows_read_after"], 1),
        "rows_read_cut": round(s["rows_read_cut"], 4),
        "rows_written_per_unit": [round(s["rows_written_none"], 4),
                                  round(s["rows_written_after"], 4)],
        "usd_month_before": round(s["usd_month_before"], 2),
        "usd_month_after": round(s["usd_month_after"], 2),
        "rate": FIX_GOALS["rate"],
        "exact_all_equivalent": bool((exact["equivalent"] == exact["trials"]).all()),
        "recall_at_20": round(float(vector["recall"].iloc[0]), 4) if len(vector) else None,
        "steps": [{"kind": r.kind, "target": r.target, "exact": bool(r.exact),
                   "equivalent": f"{r.equivalent}/{r.trials}", "recall": round(r.recall, 4),
                   "rows_read": [round(r.rows_read_before, 1), round(r.rows_read_after, 1)],
                   "rows_written": [round(r.rows_written_before, 3), round(r.rows_written_after, 3)],
                   "usd_month_saved": round(r.usd_month_saved, 2)}
                  for r in steps.itertuples()],
        "rejected": {f"{r.kind}:{r.target}": r.reason for r in plan.rejected.itertuples()},
        "seconds": round(time.perf_counter() - started, 1),
        "goals": FIX_GOALS,
    }
    out["met"] = {"rows_read_cut": out["rows_read_cut"] >= FIX_GOALS["rows_read_cut"],
                  "exact_all_equivalent": out["exact_all_equivalent"],
                  "recall_at_20": (out["recall_at_20"] or 0) >= FIX_GOALS["recall_at_20"]}
    return out


def advice_speed(folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Advice for ``args.templates`` generated templates over ``args.tables`` tables: wall
    and CPU seconds, with the machine's load (a shared machine's wall clock waits for
    other people's work too; the CPU seconds are the advisor's own)."""
    import os

    from d1bench.advisor import advise

    syn_db, syn_wl = synthetic(folder, tables=args.tables, templates=args.templates,
                               seed=args.seed)
    load = os.getloadavg()[0]
    started, cpu = time.perf_counter(), time.process_time()
    syn = advise(syn_db, syn_wl, seed=args.seed)
    return {"advice_seconds": round(time.perf_counter() - started, 2),
            "advice_cpu_seconds": round(time.process_time() - cpu, 2),
            "advice_load_1min": [round(load, 2), round(os.getloadavg()[0], 2)],
            "advice_cores": os.cpu_count(),
            "advice_templates": args.templates, "advice_tables": args.tables,
            "advice_indexes": len(syn.indexes)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--papers", type=int, default=20_000)
    parser.add_argument("--db", type=Path, help="an existing corpus (index set none)")
    parser.add_argument("--requests", type=int, default=400, help="units per replay")
    parser.add_argument("--write-share", type=float, default=0.5,
                        help="share of units that are writes in the write-heavy variant")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--templates", type=int, default=1000)
    parser.add_argument("--tables", type=int, default=50)
    parser.add_argument("--no-tradeoff", action="store_true",
                        help="skip the replays that cut the most written table to one index")
    parser.add_argument("--schemas", default="shop,saas,events",
                        help="fixture schemas besides medical, comma-separated ('' for none)")
    parser.add_argument("--scale", type=float, default=3.0,
                        help="scale of the generated fixture schemas (saas, events)")
    parser.add_argument("--no-medical", action="store_true",
                        help="only the fixture schemas (a quick run)")
    parser.add_argument("--fidelity-on", choices=("local-d1", "sqlite"), default="local-d1",
                        help="what counts the rows read predictions are held against: local "
                             "D1's own counter (default), or the SQLite target's estimate of it")
    parser.add_argument("--no-fix", action="store_true", help="skip the fix plan's section")
    parser.add_argument("--only-fix", action="store_true",
                        help="only the fix plan's section on medical (a quick run)")
    parser.add_argument("--only-advice", action="store_true",
                        help="only advice_seconds: the generated schema and workload")
    args = parser.parse_args(argv)
    if args.only_advice:
        with tempfile.TemporaryDirectory(prefix="d1bench-bench-") as tmp:
            timing = advice_speed(Path(tmp), args)
        print(json.dumps({"benchmark": "advisor_vs_expert", **timing,
                          "goals": {"advice_seconds": GOALS["advice_seconds"]},
                          "met": {"advice_seconds": timing["advice_seconds"]
                                  <= GOALS["advice_seconds"]}}))
        return 0
    if args.only_fix:
        from d1bench import generate_corpus

        with tempfile.TemporaryDirectory(prefix="d1bench-bench-") as tmp:
            corpus = args.db or Path(tmp) / "corpus.sqlite"
            if args.db is None:
                generate_corpus(corpus, papers=args.papers, seed=args.seed)
            section = fix_section(corpus, args.seed)
        print(json.dumps({"benchmark": "advisor_vs_expert", "corpus_papers": args.papers,
                          "fix": section}, default=str))
        return 0
    if args.no_medical:
        out: dict[str, Any] = {"benchmark": "advisor_vs_expert", "schemas": {}}
        with tempfile.TemporaryDirectory(prefix="d1bench-bench-") as tmp:
            for name in [n for n in args.schemas.split(",") if n]:
                out["schemas"][name] = other_schema(name, Path(tmp), args.scale, args.requests,
                                                    args.seed, args.fidelity_on)
        out["other_goals"] = OTHER_GOALS
        print(json.dumps(out, default=str))
        return 0

    from d1bench import generate_corpus
    from d1bench.advisor import advise
    from d1bench.advisor.expert import expert_union, run_expert
    from d1bench.advisor.preparation import bind_params
    from d1bench.advisor.verify import index_bytes, real_plans
    from d1bench.schema import index_set_sql
    from d1bench.workload import load_workload

    out: dict[str, Any] = {"benchmark": "advisor_vs_expert"}
    with tempfile.TemporaryDirectory(prefix="d1bench-bench-") as tmp:
        folder = Path(tmp)
        corpus = args.db
        if corpus is None:
            corpus = folder / "corpus.sqlite"
            generate_corpus(corpus, papers=args.papers, seed=args.seed)
        out["corpus_papers"] = args.papers if args.db is None else None
        workload = load_workload("medical")
        heavy = workload.with_write_weight(args.write_share)

        started = time.perf_counter()
        answers = run_expert(corpus, {n: t.sql for n, t in workload.templates.items()})
        out["expert_seconds"] = round(time.perf_counter() - started, 2)
        union = expert_union(answers)
        out["expert_skipped"] = sorted(a.template for a in answers if a.status != "ok")
        out["expert_note"] = (".expert (SQLite 3.40) fails on FTS5 tables: it ran on a copy "
                              "without them and skipped the templates that need one")
        expert_sql = _set_sql(union)

        started = time.perf_counter()
        advice = advise(corpus, workload, seed=args.seed)
        out["advise_seconds_medical"] = round(time.perf_counter() - started, 2)
        heavy_advice = advise(corpus, heavy, seed=args.seed)

        sets = {"none": "", "seed": index_set_sql("seed") + "\nPRAGMA optimize;\n",
                "expert": expert_sql, "advised": advice.migration_sql,
                "advised_write_heavy": heavy_advice.migration_sql}
        built = {name: _build(corpus, folder, name, sql) for name, sql in sets.items()}
        sizes = {name: index_bytes(built[name], _names(sql)) for name, sql in sets.items()}

        read = {name: _measure(built[name], workload, args.requests, args.seed)
                for name in ("none", "seed", "expert", "advised")}
        for name in ("none", "expert"):  # fresh copies: the read-mostly replay wrote into these
            built[name] = _build(corpus, folder, f"{name}_heavy", sets[name])
        write = {name: _measure(built[name if name != "advised" else "advised_write_heavy"],
                                heavy, args.requests, args.seed)
                 for name in ("none", "expert", "advised")}

        floor = _json_each_floor(corpus, workload, args.seed)
        small = bytes_floor(corpus, folder, workload, advice, read["expert"]["rows_read_per_unit"],
                            sizes["expert"], args.requests, args.seed)
        on_d1 = _d1_ratios(corpus, folder, "medical", sets, workload, args.requests, args.seed) \
            if args.fidelity_on == "local-d1" else None
        tradeoff = None if args.no_tradeoff else _write_tradeoff(
            corpus, folder, heavy, heavy_advice.migration_sql, advice.migration_sql, union, write, args)

        params, _ = bind_params(workload, corpus, args.seed, 3)
        plans_db = _build(corpus, folder, "plans", advice.migration_sql)
        real = real_plans(plans_db, {n: t.sql for n, t in workload.templates.items()},
                          {n: (params.get(n) or [()])[0] for n in workload.templates})
        matches = [" | ".join(real[row.template]) == row.plan_after
                   for row in advice.templates.itertuples()]
        mismatched = [row.template for row, ok in zip(advice.templates.itertuples(), matches)
                      if not ok]

        from d1bench.advisor.verify import fidelity

        fid = fidelity(corpus, workload, advice, workdir=folder, on=args.fidelity_on)
        others = {name: other_schema(name, folder, args.scale, args.requests, args.seed,
                                       args.fidelity_on)
                  for name in [n for n in args.schemas.split(",") if n]}

        timing = advice_speed(folder, args)
        fix_out = None if args.no_fix else fix_section(corpus, args.seed)

    r = {k: v["rows_read_per_unit"] for k, v in read.items()}
    movable = _indexable(read)
    ri = {k: sum(v["per_unit"].get(n, 0.0) for n in movable) for k, v in read.items()}
    savings_expert = write["none"]["rows_read_per_unit"] - write["expert"]["rows_read_per_unit"]
    savings_advised = write["none"]["rows_read_per_unit"] - write["advised"]["rows_read_per_unit"]
    # The bound no index set can pass: the vector search's json_each rows.
    floor_pu = sum(read["none"]["executions_per_unit"].get(n, 0.0) * v for n, v in floor.items())
    billed = {k: round(v["rows_read_per_unit"] + WRITE_WEIGHT * v["rows_written_per_unit"], 1)
              for k, v in write.items()}
    out.update({
        "read_ratio": _up(r["advised"] / r["expert"], 4),
        "bytes_ratio": _up(sizes["advised"] / sizes["expert"], 4) if sizes["expert"] else None,
        "bytes_ratio_floor": small["bytes_ratio"],
        "bytes_floor": small,
        # the read ratio replayed on local D1 and counted by it (the write ratio above is
        # the write-heavy variant's, on SQLite)
        "on_local_d1": on_d1,
        "write_ratio": _up(write["advised"]["rows_written_per_unit"]
                           / write["expert"]["rows_written_per_unit"], 4),
        "read_savings_kept": round(savings_advised / savings_expert, 4) if savings_expert else None,
        "plan_match": round(sum(matches) / len(matches), 4),
        "plan_mismatches": mismatched,
        **timing,
        "reduction_vs_none": round(1 - r["advised"] / r["none"], 4),
        "reduction_vs_none_indexable": round(1 - ri["advised"] / ri["none"], 4),
        "read_ratio_indexable": round(ri["advised"] / ri["expert"], 4),
        "indexable_templates": sorted(movable),
        "not_indexable_templates": sorted(set(read["none"]["per_template"]) - movable),
        "beats_seed": r["advised"] < r["seed"],
        "bounds": {
            "index_independent_rows_read_per_execution": floor,
            "index_independent_rows_read_per_unit": round(floor_pu, 1),
            # any index set reads at least floor_pu per unit, so:
            "reduction_vs_none_max": round(1 - floor_pu / r["none"], 4),
            "read_ratio_min": round(floor_pu / r["expert"], 4),
        },
        "write_tradeoff": tradeoff,
        # what D1 bills on the write-heavy variant, in rows read (a written row = 1,000)
        "write_heavy_billed_per_unit": billed,
        "rows_read_per_unit": {k: round(v, 1) for k, v in r.items()},
        "rows_read_per_unit_indexable": {k: round(v, 1) for k, v in ri.items()},
        "index_bytes": {k: int(v) for k, v in sizes.items()},
        "write_heavy": {k: {"rows_read_per_unit": round(v["rows_read_per_unit"], 1),
                            "rows_written_per_unit": round(v["rows_written_per_unit"], 4)}
                        for k, v in write.items()},
        "write_share": args.write_share,
        "indexes": {"advised": [f"{t}({', '.join(c)})" + (f" WHERE {w}" if w else "")
                                for t, c, w in zip(advice.indexes["table"], advice.indexes["columns"],
                                                   advice.indexes["where"])],
                    "advised_write_heavy": list(heavy_advice.indexes["name"]),
                    "expert": [i.describe() for i in union]},
        "per_template_rows_read": {k: v["per_template"] for k, v in read.items()},
        "requests": args.requests, "seed": args.seed, "goals": GOALS,
        # what-if fidelity: predicted rows read after building the advised set, against
        # the rows read measured on the same values
        **_fidelity_figures(fid),
        "schemas": others, "other_goals": OTHER_GOALS,
    })
    out["met"] = {
        "read_ratio": out["read_ratio"] <= GOALS["read_ratio"],
        "bytes_ratio": out["bytes_ratio"] is not None and out["bytes_ratio"] <= GOALS["bytes_ratio"],
        "write_ratio": out["write_ratio"] <= GOALS["write_ratio"],
        "read_savings_kept": out["read_savings_kept"] is not None
        and out["read_savings_kept"] >= GOALS["read_savings_kept"],
        "plan_match": out["plan_match"] >= GOALS["plan_match"],
        "advice_seconds": out["advice_seconds"] <= GOALS["advice_seconds"],
        # the issue sets this one at 100,000 papers (run with --papers 100000)
        "reduction_vs_none": out["reduction_vs_none"] >= GOALS["reduction_vs_none"],
        "beats_seed": bool(out["beats_seed"]),
        "fidelity": out["fidelity"] >= OTHER_GOALS["fidelity"],
        "schemas": all(all(v["met"].values()) for v in others.values()),
    }
    # issue 12 holds medical to the goals of every other schema as well (its write ratio
    # taken on the write-heavy variant, where writes weigh)
    out["met_other_goals"] = {
        "read_ratio": out["read_ratio"] <= OTHER_GOALS["read_ratio"],
        "bytes_ratio": out["bytes_ratio"] is not None
        and out["bytes_ratio"] <= OTHER_GOALS["bytes_ratio"],
        "write_ratio": out["write_ratio"] <= OTHER_GOALS["write_ratio"],
        "fidelity": out["fidelity"] >= OTHER_GOALS["fidelity"],
    }
    if on_d1 is not None:
        out["met_other_goals"]["read_ratio_on_local_d1"] = on_d1["read_ratio"] is not None \
            and on_d1["read_ratio"] <= OTHER_GOALS["read_ratio"]
    if fix_out is not None:
        out["fix"] = fix_out
        out["met"]["fix"] = all(fix_out["met"].values())
    print(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
