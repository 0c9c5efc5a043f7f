"""How fast is ``d1bench migrate`` from PostgreSQL into SQLite, against a bare copy?

    python benchmarks/migrate.py --rows 1000000

Starts a throwaway PostgreSQL on 127.0.0.1, fills one table of ``--rows``
rows in PostgreSQL's own types (BIGSERIAL, INTEGER, TIMESTAMPTZ, NUMERIC(5,2),
BOOLEAN, TEXT, TEXT[], JSONB) with ``generate_series``, then measures, in this
invocation, alternating with ``--repeat``:

* bare: a server-side (named) cursor, ``fetchmany`` and ``executemany`` into a
  SQLite table of the same shape, with only what sqlite3 needs to bind the
  values (datetime -> text, Decimal -> float, list -> JSON) and one commit;
* migrate: ``d1bench.migrate(...)`` end to end: catalog, conversion, the copy
  into a file built aside, validation (counts, checksums, samples, orphans),
  and the swap.

Goal: migrate's rows/s at least 0.8x the bare copy's, validation included.
Beside the figures, seed 000's claims (schema conversion 5 minutes for 10
tables, data migration 30 minutes per million records, validation 2 minutes).
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sqlite3
import tempfile
import time
from decimal import Decimal
from pathlib import Path

SEED_CLAIMS = {"schema_conversion_s_per_10_tables": 300, "data_migration_s_per_million": 1800,
               "validation_s": 120, "rollback_s": 30}

TABLE = """
CREATE TABLE reads (
    id BIGSERIAL PRIMARY KEY, user_id INTEGER NOT NULL, paper_id INTEGER NOT NULL,
    read_at TIMESTAMPTZ NOT NULL, read_percentage NUMERIC(5, 2) NOT NULL, finished BOOLEAN NOT NULL,
    device TEXT NOT NULL, tags TEXT[] NOT NULL, detail JSONB)
"""

FILL = """
INSERT INTO reads (user_id, paper_id, read_at, read_percentage, finished, device, tags, detail)
SELECT g % 5000, (g::bigint * 7919) % 200000, TIMESTAMPTZ '2026-01-01 00:00:00+00' + g * INTERVAL '17 s',
       (g % 10001) / 100.0, g % 3 = 0, (ARRAY['web', 'ios', 'android'])[1 + g % 3],
       ARRAY['t' || (g % 50), 'u' || (g % 7)], jsonb_build_object('src', 'feed', 'pos', g % 40)
FROM generate_series(1, {rows}) AS g
"""

SQLITE_TABLE = """
CREATE TABLE reads (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, paper_id INTEGER NOT NULL,
    read_at TEXT NOT NULL, read_percentage REAL NOT NULL, finished INTEGER NOT NULL,
    device TEXT NOT NULL, tags TEXT NOT NULL, detail TEXT)
"""


def _bare(url: str, out: Path, batch: int) -> float:
    import psycopg
    from psycopg.types.string import TextLoader

    sqlite3.register_adapter(dt.datetime, lambda v: v.isoformat(sep=" "))
    sqlite3.register_adapter(Decimal, float)
    sqlite3.register_adapter(list, json.dumps)
    from d1bench.migrator.model import parse_source_url

    u = parse_source_url(url)
    started = time.perf_counter()
    src = psycopg.connect(host=u.host, port=u.port, user=u.user, password=u.password,
                          dbname=u.database)
    src.adapters.register_loader("jsonb", TextLoader)
    dst = sqlite3.connect(out)
    dst.execute(SQLITE_TABLE)
    with src.transaction(), src.cursor(name="bare") as cur:
        cur.itersize = batch
        cur.execute("SELECT * FROM reads ORDER BY id")
        while rows := cur.fetchmany(batch):
            dst.executemany("INSERT INTO reads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    dst.commit()
    dst.close()
    src.close()
    return time.perf_counter() - started


def _migrate(url: str, out: Path, batch: int) -> tuple[float, dict]:
    from d1bench.migrator import migrate

    started = time.perf_counter()
    result = migrate(url, f"sqlite:{out}", batch_rows=batch, progress=False)
    seconds = time.perf_counter() - started
    assert result.ok, result.checks
    return seconds, dict(result.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each side, alternating")
    args = parser.parse_args()

    from d1bench.migrator.demo import _connect, create_database
    from d1bench.migrator.servers import postgres_server

    with postgres_server("bench-only-password") as server, \
            tempfile.TemporaryDirectory(prefix="d1bench-migrate-") as tmp:
        url = create_database(server.url(), "bench")
        conn = _connect(url)
        with conn.cursor() as cur:
            cur.execute(TABLE)
            cur.execute(FILL.format(rows=int(args.rows)))
            cur.execute("ANALYZE reads")
        conn.close()
        bare, mig, stages = [], [], {}
        for i in range(args.repeat):
            bare.append(_bare(url, Path(tmp) / f"bare{i}.sqlite", args.batch))
            seconds, stages = _migrate(url, Path(tmp) / f"mig{i}.sqlite", args.batch)
            mig.append(seconds)
    bare_rps = args.rows / min(bare)
    mig_rps = args.rows / min(mig)
    print(json.dumps({
        "rows": args.rows, "bare_seconds": round(min(bare), 2), "migrate_seconds": round(min(mig), 2),
        "bare_rows_per_s": round(bare_rps), "migrate_rows_per_s": round(mig_rps),
        "ratio": round(mig_rps / bare_rps, 3), "goal_ratio": 0.8,
        "stages_s": {k: round(v, 2) for k, v in stages.items()},
        "seed_claims": SEED_CLAIMS,
    }))


if __name__ == "__main__":
    main()
