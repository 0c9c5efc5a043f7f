"""Is ``d1bench import`` at least as fast as the ``sqlite3`` shell reading the same dump?

Goal (issue 11): a 1,000,000-row dump in D1's export format (``wrangler d1
export``: one ``INSERT INTO "t" ("c1",...) VALUES(...);`` a row, strings with
newlines as ``replace(...,'\\n',char(10))``) is imported by
:func:`d1bench.dump.import_dump` in at most the time the Debian ``sqlite3``
shell takes to ``.read`` the same file into a new database.

The shell is given its best case: ``BEGIN; .read dump.sql; COMMIT;``, one
transaction, since a D1 dump has no BEGIN/COMMIT and the shell would otherwise
commit (and sync) after every row, taking hours.  Both write a fresh file on
the same disk.  The machine may be shared, so rounds alternate shell and
d1bench, each d1bench round is divided by the shell round just before it, and
the headline ``ratio`` is the median of those paired ratios (lower is better;
goal <= 1.0).  ``cpu_ratio`` compares CPU seconds the same way: on a busy
machine the wall times mostly measure the neighbours, the CPU seconds the work
(d1bench reads the dump in one thread while SQLite inserts in another, so on
an idle machine its wall time is below its CPU time).  Both results are
checked to hold the same rows.

Run: ``python benchmarks/import.py [--rows 1000000] [--rounds 3]``.  Prints
one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from d1bench.dump import import_dump, write_dump

GOAL = 1.0

SCHEMA = """
CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT NOT NULL, plan TEXT NOT NULL,
                       created_at TEXT NOT NULL);
CREATE TABLE events (id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL REFERENCES accounts(id),
                     kind TEXT NOT NULL, at TEXT NOT NULL, duration_ms REAL, note TEXT,
                     payload BLOB);
CREATE INDEX events_account_at ON events(account_id, at);
"""


def build_source(path: Path, rows: int, seed: int = 0) -> None:
    """A two-table database of ``rows`` rows in all, with the value kinds dumps carry."""
    rng = random.Random(seed)
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    accounts = max(1, rows // 100)
    conn.executemany("INSERT INTO accounts VALUES (?, ?, ?, ?)",
                     ((i, f"Account {i} O'Brien", rng.choice(("free", "pro", "team")),
                       f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}") for i in range(1, accounts + 1)))
    kinds = ("login", "view", "export", "invite")
    conn.executemany(
        "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
        ((i, 1 + rng.randrange(accounts), rng.choice(kinds),
          f"2025-{1 + i % 12:02d}-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:00",
          round(rng.random() * 500, 3), None if i % 5 else f"line one\nline {i}",
          bytes([i % 256, 7]) if i % 50 == 0 else None)
         for i in range(1, rows - accounts + 1)))
    conn.commit()
    conn.close()


def digest(path: Path) -> tuple:
    conn = sqlite3.connect(path)
    try:
        return tuple(conn.execute(
            "SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM events), "
            "(SELECT total(duration_ms) FROM events), (SELECT total(length(note)) FROM events), "
            "(SELECT count(*) FROM events WHERE payload IS NOT NULL)").fetchone())
    finally:
        conn.close()


def shell_read(dump: Path, out: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of the shell's import."""
    out.unlink(missing_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(["sqlite3", str(out)], input=f"BEGIN;\n.read {dump}\nCOMMIT;\n", text=True,
                   check=True, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def d1bench_import(dump: Path, out: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (all threads) of d1bench's import."""
    out.unlink(missing_ok=True)
    started, cpu = time.perf_counter(), time.process_time()
    import_dump(dump, out, progress=False)
    return time.perf_counter() - started, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("sqlite3") is None:
        print("the sqlite3 shell is missing: run `make system-deps`", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="d1bench-import-") as tmp:
        folder = Path(tmp)
        build_source(folder / "source.sqlite", args.rows)
        dump = write_dump(folder / "source.sqlite", folder / "dump.sql")
        expected = digest(folder / "source.sqlite")
        shell, ours, shell_cpu, ours_cpu = [], [], [], []
        for _ in range(args.rounds):
            wall, cpu = shell_read(dump, folder / "shell.sqlite")
            shell.append(wall)
            shell_cpu.append(cpu)
            wall, cpu = d1bench_import(dump, folder / "d1bench.sqlite")
            ours.append(wall)
            ours_cpu.append(cpu)
        same = digest(folder / "shell.sqlite") == digest(folder / "d1bench.sqlite") == expected
        size = dump.stat().st_size
    ratios = [o / s for o, s in zip(ours, shell, strict=True)]
    ratio = statistics.median(ratios)
    print(json.dumps({
        "ratio": round(ratio, 3),
        "goal": GOAL,
        "ok": ratio <= GOAL and same,
        "same_rows": same,
        "rows": args.rows,
        "dump_mb": round(size / 1e6, 1),
        "d1bench_s": round(statistics.median(ours), 3),
        "sqlite3_shell_s": round(statistics.median(shell), 3),
        "d1bench_rows_per_s": round(args.rows / statistics.median(ours)),
        "ratio_best_rounds": round(min(ours) / min(shell), 3),
        # CPU seconds: what the work costs, whatever else the machine runs meanwhile
        "cpu_ratio": round(statistics.median(o / s for o, s in zip(ours_cpu, shell_cpu,
                                                                  strict=True)), 3),
        "ratio_rounds": [round(r, 3) for r in ratios],
        "d1bench_s_rounds": [round(x, 3) for x in ours],
        "sqlite3_shell_s_rounds": [round(x, 3) for x in shell],
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
