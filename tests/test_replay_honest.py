"""Honest numbers on SQLite: the estimate stays off the timed path, the corpus stays as it was.

On ``medical`` (the small generated corpus) and on the fixture schema ``saas``:

- service time is the database's own time, even for templates whose
  rows-read estimate is costly (a view over a join, FTS5 with bm25);
- the deferred estimate gives exactly what the synchronous path gives;
- a replay with writes leaves the corpus's content and bytes as they were,
  unless ``in_place``; a write-protected corpus replays; the digest follows
  the content;
- statement analyses are cached per corpus content across runs.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import stat
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import apsw
import pytest

from d1bench import load_workload, replay
from d1bench.corpus.describe import content_digest
from d1bench.runner.schedule import Schedule
from d1bench.targets.sqlite import SQLiteTarget

#: Templates whose estimate is costly, per schema: (a view or join, FTS5 ranked by bm25).
COSTLY = {"medical": ("recent_trends_view", "search_papers_by_design"),
          "saas": ("tenant_projects_summary", "search_comments_fts")}




def _only(workload: Any, names: tuple[str, ...]) -> Any:
    """``workload`` drawing only ``names``, equally often."""
    templates = {n: replace(workload.templates[n], weight=1) for n in names}
    return replace(workload, templates=MappingProxyType(templates),
                   sessions=MappingProxyType({}), write_weight=0.0,
                   digest=f"{workload.digest}|only={','.join(names)}")


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _contents(path: Path) -> dict[str, list]:
    db = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        names = [r[0] for r in db.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND sql NOT LIKE 'CREATE VIRTUAL%'")]
        return {n: db.execute(f'SELECT * FROM "{n}"').fetchall() for n in names}
    finally:
        db.close()


def test_service_time_is_the_databases_own_for_costly_estimates(medical_or_saas) -> None:
    """Service time is the statement's own call, and what a worker does between two calls (its
    bookkeeping, and the estimate were it still inline, 5-150x the statement) stays small."""
    name, db, workload = medical_or_saas
    costly = COSTLY[name]
    trace = replay(_only(workload, costly), f"sqlite:{db}", concurrency=2, requests=120, seed=2,
                   progress=False)
    r = trace.requests
    assert r["error_class"].isna().all(), r["error"].dropna().unique()
    assert trace.meta["estimate"]["estimated"] and r["rows_read"].notna().all()
    medians = r.groupby("template")[["service_ms", "db_duration_ms"]].median()
    assert set(medians.index) == set(costly)
    for template, row in medians.iterrows():
        assert row.service_ms <= 1.25 * row.db_duration_ms + 0.3, (template, row.to_dict())
    assert trace.meta["service_time"] == "the statement's own call"
    assert (r["service_ms"] - r["db_duration_ms"]).abs().max() < 1e-3
    # The worker's own time between one statement's end and its next send.
    gaps = []
    for _, w in r.sort_values("sent_ns").groupby("worker"):
        gaps.extend(((w["sent_ns"].shift(-1) - w["done_ns"]).dropna() / 1e6).tolist())
    gaps.sort()
    assert gaps[len(gaps) // 2] < 0.3, gaps[len(gaps) // 2]
    assert sum(gaps) <= 0.25 * r["service_ms"].sum() + 0.3 * len(gaps), (sum(gaps), len(gaps))


def test_the_analyses_leave_the_workers_connection_as_a_bare_one(medical_or_saas) -> None:
    """Preparing every template (analysis, data facts, calibration) caches no statement of its
    own on the worker's connection: a cached statement holds lookaside slots, and with them held
    the workload's statements ran 7% slower than a bare loop's (medical's citation_network)."""
    from d1bench.runner.prepare import calibration_draws

    _name, db, workload = medical_or_saas
    target = SQLiteTarget(db, readonly=True)
    reads = workload.reads_only()
    with target.connect() as binding:  # as replay() does, not on a worker's connection
        bound = reads.bind(binding, seed=0)
    with target.connect() as conn:
        samples = {n: bound.draw_params(n, random.Random(0)) for n in reads.templates}
        draws = calibration_draws(bound, seed=0)
        statements = [(t.sql, samples[t.name]) for t in reads.templates.values()]
        info = target.prepare_estimates([conn], statements, estimate=True, corpus=None,
                                        calibration={t.sql: draws[t.name]
                                                     for t in reads.templates.values()})
        assert info["analysed"] == len(statements) and info["counted"], info
        cached = {e["query"] for e in conn._db.cache_stats(True)["entries"]}
        assert cached <= {t.sql for t in reads.templates.values()}, cached
        for sql, params in statements:
            conn.execute(sql, params)
        held = conn._db.status(apsw.SQLITE_DBSTATUS_LOOKASIDE_USED)[0]
    bare = apsw.Connection(str(db), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        bare.pragma("foreign_keys", True)
        for sql, params in statements:
            bare.execute(sql, params).fetchall()
        assert held <= bare.status(apsw.SQLITE_DBSTATUS_LOOKASIDE_USED)[0], held
    finally:
        bare.close()


def test_only_statements_whose_estimate_uses_counters_collect_them(medical_or_saas, monkeypatch,
                                                                   tmp_path: Path) -> None:
    """Calibrated before the clock: the profile callback runs only where the estimate needs it.

    ``extra`` (the counters) is filled exactly when an execution collected
    them; an uncounted template never does, a counted one does.
    """
    from d1bench._paths import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    _name, db, workload = medical_or_saas
    reads = workload.reads_only()
    trace = replay(reads, f"sqlite:{db}", concurrency=1, requests=150, seed=3, progress=False)
    info, r = trace.meta["estimate"], trace.requests
    counted, uncounted = set(info["counted"]), set(info["uncounted"])
    assert counted and uncounted and not counted & uncounted, info
    assert r["rows_read"].notna().all()
    ran = set(r["template"])
    assert ran & counted and ran & uncounted
    collected = r.groupby("template")["extra"].apply(lambda e: int(e.notna().sum()))
    assert all(collected[t] == 0 for t in ran & uncounted), collected.to_dict()
    assert all(collected[t] > 0 for t in ran & counted), collected.to_dict()
    again = replay(reads, f"sqlite:{db}", concurrency=1, requests=150, seed=3, progress=False)
    assert again.meta["estimate"]["from_cache"] and again.meta["estimate"]["analysed"] == 0
    assert (again.meta["estimate"]["counted"], again.meta["estimate"]["uncounted"]) == \
        (info["counted"], info["uncounted"])
    assert again.requests["rows_read"].tolist() == r["rows_read"].tolist()


def _calls(workload: Any, db: Path, n: int, seed: int) -> list[tuple[str, tuple]]:
    """The query units a replay with ``seed`` would draw (sessions left out)."""
    target = SQLiteTarget(db, readonly=True, estimate_rows=False)
    with target.connect() as conn:
        plan = Schedule(workload.bind(conn, seed).draw, random.Random(seed))
        plan.extend(n)
    return [(c[1], c[2]) for c in plan.calls if c is not None]


def _run(db: Path, workload: Any, calls: list, *, deferred: bool) -> list[tuple]:
    conn = SQLiteTarget(db).connect()
    try:
        if deferred:
            conn.defer_estimates()
        first: dict[str, tuple] = {}
        for sql, params in calls:
            first.setdefault(sql, params)
        for sql, params in first.items():  # both analysed up front, with the same parameters
            conn.prepare(sql, params)
        metas = []
        for sql, params in calls:
            try:
                metas.append(conn.execute(sql, params).meta)
            except Exception as exc:  # noqa: BLE001 - a constraint failure is an outcome too
                metas.append(type(exc).__name__)
        assert deferred == any(getattr(m, "rows_read", 0) is None for m in metas)
        conn.finish_estimates()
    finally:
        conn.close()
    return [m if isinstance(m, str) else (m.rows_read, m.rows_written) for m in metas]


@pytest.mark.slow
def test_deferred_estimates_equal_the_synchronous_ones(medical_or_saas, tmp_path: Path) -> None:
    _name, db, workload = medical_or_saas
    workload = workload.with_write_weight(0.2)
    calls = _calls(workload, db, 150, seed=5)
    twin = tmp_path / "twin.sqlite"
    shutil.copyfile(db, twin)
    deferred = _run(db, workload, calls, deferred=True)
    synchronous = _run(twin, workload, calls, deferred=False)
    assert deferred == synchronous
    assert all(r[0] is not None for r in deferred if not isinstance(r, str))
    assert any(r[1] for r in deferred if not isinstance(r, str)), "no write ran"
    assert len({r for r in deferred if not isinstance(r, str)}) > 10  # the figures vary


@pytest.mark.slow
def test_a_replay_with_writes_leaves_the_corpus_as_it_was(medical_or_saas) -> None:
    _name, db, workload = medical_or_saas
    writing = workload.with_write_weight(0.5)
    before_hash, before_rows = _file_hash(db), _contents(db)
    before_digest = content_digest(db, cache=False)
    trace = replay(writing, f"sqlite:{db}", concurrency=2, requests=40, seed=1, progress=False)
    r = trace.requests
    assert (r["rows_written"].fillna(0) > 0).any(), "no write ran"
    assert trace.meta["database"]["on"] == "snapshot"
    assert trace.meta["corpus"]["digest"] == before_digest
    assert _file_hash(db) == before_hash and _contents(db) == before_rows
    assert sorted(p.name for p in db.parent.iterdir()) == [db.name]  # the snapshot is gone

    in_place = replay(writing, f"sqlite:{db}", concurrency=2, requests=40, seed=1,
                      progress=False, in_place=True)
    assert in_place.meta["database"]["on"] == "original, in place"
    assert _contents(db) != before_rows
    assert content_digest(db) != before_digest


def _as_unprivileged() -> list[str]:
    """A command prefix under which file modes bind: none, or ``setpriv`` to nobody when root.

    Root reads and writes a mode-0444 file in a mode-0555 folder as if they
    were open, so a replay that wrote would pass unnoticed there (as in CI).
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("running as root without setpriv (util-linux): write protection cannot bind")
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]


_REPLAY_READS = """
import json, sys
from d1bench import load_workload, replay
trace = replay(load_workload("medical").reads_only(), "sqlite:" + sys.argv[1], concurrency=2,
               requests=30, seed=0, progress=False)
r = trace.requests
print(json.dumps({"errors": int(r["error_class"].notna().sum()), "statements": len(r),
                  "on": trace.meta["database"]["on"]}))
"""


@pytest.mark.slow
def test_a_write_protected_corpus_replays_its_reads(small_corpus: Path) -> None:
    """Run as nobody when root, where modes bind (an in-place write there fails 18 of 30)."""
    import json
    import subprocess
    import sys
    import tempfile

    prefix = _as_unprivileged()
    # Not under tmp_path: pytest makes that mode 0700, closed to the unprivileged uid.
    base = Path(tempfile.mkdtemp(prefix="d1bench-ro-"))
    folder, home = base / "ro", base / "home"
    folder.mkdir()
    home.mkdir()
    db = folder / "corpus.sqlite"
    shutil.copyfile(small_corpus, db)
    before = _file_hash(db)
    db.chmod(0o444)
    folder.chmod(0o555)
    base.chmod(0o755)
    home.chmod(0o777)  # the analysis cache of whoever runs the replay
    try:
        env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / "cache"),
               "PYTHONDONTWRITEBYTECODE": "1"}
        env.pop("D1BENCH_CACHE", None)
        proc = subprocess.run([*prefix, sys.executable, "-c", _REPLAY_READS, str(db)], env=env,
                              capture_output=True, text=True, timeout=300, check=False,
                              cwd=home)
        assert proc.returncode == 0, proc.stderr[-2000:]
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        assert out["errors"] == 0 and out["statements"] >= 30, out
        assert out["on"] == "original, read-only"
        assert stat.S_IMODE(db.stat().st_mode) == 0o444 and os.listdir(folder) == [db.name]
        assert _file_hash(db) == before
    finally:
        folder.chmod(0o755)
        db.chmod(0o644)
        shutil.rmtree(base, ignore_errors=True)


def test_the_corpus_digest_follows_one_changed_row(medical_or_saas) -> None:
    name, db, _workload = medical_or_saas
    first = content_digest(db)
    assert content_digest(db) == first  # the cached answer for the unchanged file
    table, column = ("papers", "citation_count") if name == "medical" else ("tasks", "title")
    conn = apsw.Connection(str(db))
    conn.execute("CREATE INDEX IF NOT EXISTS digest_test ON users (name)")
    assert content_digest(db) == first  # the file changed, its rows did not: an index set
    key = conn.execute(f"SELECT min(rowid) FROM {table}").fetchall()[0][0] \
        if name == "medical" else None
    if key is not None:
        conn.execute(f"UPDATE {table} SET {column} = {column} + 1 WHERE rowid = ?", (key,))
    else:  # tasks is WITHOUT ROWID
        conn.execute(f"UPDATE {table} SET {column} = {column} || '.' "
                     f"WHERE (project_id, task_no) = (SELECT project_id, task_no FROM {table} LIMIT 1)")
    assert conn.changes() == 1
    conn.close()
    assert content_digest(db) != first
    assert content_digest(db) == content_digest(db, cache=False)


@pytest.mark.slow
def test_the_second_replay_analyses_nothing_and_a_changed_corpus_misses(
        medical_or_saas, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import d1bench.targets.sqlite as sqlite_target
    from d1bench._paths import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "fresh-cache"))
    name, db, workload = medical_or_saas
    reads = workload.reads_only()
    explained: list[str] = []
    real = sqlite_target.read_program

    templates = {t.sql for t in reads.templates.values()}

    def counting(db_, sql, params):
        if sql in templates:  # not the statements that bind the workload's samplers
            explained.append(sql)
        return real(db_, sql, params)

    monkeypatch.setattr(sqlite_target, "read_program", counting)
    first = replay(reads, f"sqlite:{db}", concurrency=1, requests=20, seed=0, progress=False)
    assert first.meta["estimate"]["analysed"] == len(reads.templates) and explained
    explained.clear()
    second = replay(reads, f"sqlite:{db}", concurrency=1, requests=20, seed=0, progress=False)
    assert second.meta["estimate"]["analysed"] == 0 and explained == []
    assert second.meta["estimate"]["from_cache"] == len(reads.templates)
    key = ["unit_index", "step"]
    assert second.requests.sort_values(key)["rows_read"].tolist() == \
        first.requests.sort_values(key)["rows_read"].tolist()

    conn = apsw.Connection(str(db))
    table = "papers" if name == "medical" else "users"
    conn.execute(f"DELETE FROM {table} WHERE rowid = (SELECT max(rowid) FROM {table}) "
                 f"AND NOT EXISTS (SELECT 1 FROM pragma_foreign_key_list('{table}') WHERE 0)")
    conn.close()
    third = replay(reads, f"sqlite:{db}", concurrency=1, requests=20, seed=0, progress=False)
    assert third.meta["estimate"]["analysed"] == len(reads.templates) and explained


def test_no_estimate_says_so_and_leaves_rows_read_null(small_corpus: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    from d1bench.cli import main
    from d1bench.trace import load_trace

    out = tmp_path / "raw.parquet"
    code = main(["replay", "--target", f"sqlite:{small_corpus}", "--trace", str(out),
                 "--concurrency", "2", "--requests", "40", "--no-estimate", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    trace = load_trace(out)
    assert trace.meta["estimate"]["estimated"] is False
    assert "not estimated" in trace.meta["estimate"]["rows"]
    assert trace.requests["rows_read"].isna().all()
    assert trace.requests["rows_written"].isna().all()
    assert trace.requests["rows_returned"].notna().all()


def test_a_snapshot_holds_what_a_write_ahead_log_holds(tmp_path: Path) -> None:
    """Pages still in the WAL are not in the main file: the snapshot must take them too."""
    from d1bench.runner.snapshot import make_snapshot

    db = tmp_path / "wal.sqlite"
    writer = apsw.Connection(str(db))
    writer.pragma("journal_mode", "wal")
    writer.pragma("wal_autocheckpoint", 0)
    writer.execute("CREATE TABLE t (x)")
    writer.executemany("INSERT INTO t VALUES (?)", [(k,) for k in range(1, 501)])
    assert Path(f"{db}-wal").stat().st_size > 0
    snap = make_snapshot(db)
    try:
        assert snap.method == "backup" and snap.path.parent == db.parent
        copy = apsw.Connection(str(snap.path), flags=apsw.SQLITE_OPEN_READONLY)
        assert copy.execute("SELECT count(*), sum(x) FROM t").fetchall() == [(500, 125250)]
        copy.close()
    finally:
        snap.remove()
        writer.close()
    assert not snap.path.exists()

    rollback = tmp_path / "plain.sqlite"
    apsw.Connection(str(rollback)).execute("CREATE TABLE t (x); INSERT INTO t VALUES (1)")
    snap = make_snapshot(rollback)
    try:
        assert snap.method in ("reflink", "copy_file_range", "copy")
        assert _file_hash(snap.path) == _file_hash(rollback)
    finally:
        snap.remove()


def test_a_worker_sleeps_precisely_and_the_switch_interval_is_restored(small_corpus: Path) -> None:
    """Timer slack 1 ns in the calling thread (Linux); the GIL switch interval back after a run."""
    import ctypes
    import sys
    import threading

    from d1bench.runner.schedule import SWITCH_INTERVAL_S, precise_timers

    if not sys.platform.startswith("linux"):
        assert precise_timers() is False
        return
    prctl = ctypes.CDLL(None).prctl
    seen: list[int] = []

    def worker() -> None:
        before = prctl(30, 0, 0, 0, 0)  # PR_GET_TIMERSLACK
        assert precise_timers()
        seen.extend([before, prctl(30, 0, 0, 0, 0)])

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen[0] > 1 and seen[1] == 1  # the default (50 µs) was lowered, in that thread only
    assert prctl(30, 0, 0, 0, 0) > 1

    interval = sys.getswitchinterval()
    assert SWITCH_INTERVAL_S < interval
    trace = replay(load_workload("medical").reads_only(), f"sqlite:{small_corpus}", rate=200,
                   requests=20, seed=0, progress=False)
    assert trace.requests["error_class"].isna().all()
    assert sys.getswitchinterval() == interval
