"""One contract, every target: the SQLite file, a real local D1, the bench Worker that
local D1 serves (``d1-worker:``, with its shared secret) and the REST stand-in.

Each test runs on every target and on two schemas (medical and saas).  What a
target cannot do is said once, on the test, by a ``notimpl`` marker naming the
targets, the exception the test then raises and the ability the target declares
``False`` (the way ibis marks its backends' gaps); the test is then expected to
fail with exactly that exception, and to pass everywhere else.  A last test
holds the markers against the targets' declared abilities, so a declaration
cannot drift from what the target does.

Every target is opened read-only: writes are what the guard refuses.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import apsw
import pytest
from faultproxy import SQLiteD1Server

from d1bench.errors import TargetError, UsageError
from d1bench.sql.limits import MAX_PARAMS
from d1bench.targets import target_class
from d1bench.targets.base import Meta, PlanStep, Result, Target

KINDS = ("sqlite", "d1-local", "rest", "d1-worker")
SCHEMAS = ("medical", "saas")
#: Each kind's spec, for ``target_class`` (the REST stand-in speaks D1's protocol).
SPECS = {"sqlite": "sqlite:x.sqlite", "d1-local": "d1-local", "rest": "d1://account/database",
         "d1-worker": "d1-worker:https://worker.example"}
#: The kinds that are not a database file on this machine, and leave the estimate to D1.
REMOTE = ["d1-local", "rest", "d1-worker"]

F = TypeVar("F", bound=Callable[..., Any])


class NotRefused(AssertionError):
    """The target sent (and ran) what the contract says it refuses before sending."""


def notimpl(kinds: list[str], *, raises: type[BaseException], ability: str) -> Callable[[F], F]:
    """Mark a test as a declared gap of ``kinds``: it raises ``raises`` there.

    ``ability`` names the target class attribute that is ``False`` for exactly
    those kinds (checked by :func:`test_gaps_are_the_declared_abilities`).
    """
    return pytest.mark.notimpl(kinds, raises=raises, ability=ability)


@dataclass(frozen=True)
class Case:
    """One target over one schema, with the source database to hold it against."""

    kind: str
    schema: str
    target: Target
    #: Opens another target like ``target`` (for the test that closes one).
    reopen: Callable[[], Target]
    source: Path
    table: str
    #: REST stand-in only: requests it has answered (to see what was not sent).
    server: SQLiteD1Server | None = None


def _first_table(db: Path) -> str:
    conn = apsw.Connection(str(db), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        names = [name for (name,) in conn.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name NOT LIKE '%fts%' AND name != 'corpus_meta' AND sql NOT LIKE '%VIRTUAL%' "
            "ORDER BY name")]
    finally:
        conn.close()
    assert names, f"{db} holds no table"
    return names[0]


def _truth(db: Path, sql: str) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    conn = apsw.Connection(str(db), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        cursor = conn.execute(sql)
        columns = tuple(d[0] for d in cursor.description)
        rows = [tuple(r) for r in cursor]
    finally:
        conn.close()
    return columns, rows


#: The saas schema at a twentieth of its size: enough rows for every test, quick to load.
SAAS_SCALE = 0.05


@pytest.fixture(scope="module")
def small_saas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from schemas import build

    return build("saas", tmp_path_factory.mktemp("contract-saas") / "saas.sqlite",
                 scale=SAAS_SCALE)


def _load_into(target: Target, db: Path, ddl: str) -> None:
    """Run ``ddl`` on ``target`` and copy every ordinary table of ``db`` into it (parents first).

    The full-text index is left to the schema's triggers, as it is kept in use.
    """
    from d1bench.schema import split_statements

    conn = target.connect()
    for statement in split_statements(ddl):
        conn.execute(statement)
    source = apsw.Connection(str(db), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        tables = [name for (name,) in source.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE '%fts%' "
            "AND name NOT LIKE 'sqlite_%' ORDER BY rowid")]
        for table in tables:
            cursor = source.execute(f"SELECT * FROM {table}")
            width = len(cursor.description)
            insert = f"INSERT INTO {table} VALUES ({', '.join('?' * width)})"
            rows = [tuple(r) for r in cursor]
            for i in range(0, len(rows), 50):
                conn.execute_batch([(insert, row) for row in rows[i:i + 50]])
    finally:
        source.close()
        conn.close()


@pytest.fixture(scope="module")
def saas_local_d1(small_saas: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A local D1 of its own holding saas (the shared one holds medical, with clashing names)."""
    from schemas import schema_sql

    from d1bench.targets.d1.local import LocalD1

    with LocalD1(tmp_path_factory.mktemp("contract-d1")) as d1:
        with d1.target(allow_writes=True) as target:
            _load_into(target, small_saas, schema_sql("saas"))
        yield d1


@pytest.fixture(scope="module", params=[(k, s) for k in KINDS for s in SCHEMAS],
                ids=lambda p: f"{p[0]}-{p[1]}")
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Case]:
    kind, schema = request.param
    source: Path = request.getfixturevalue("small_corpus" if schema == "medical" else "small_saas")
    table = _first_table(source)
    server = None
    if kind == "sqlite":
        from d1bench.targets.sqlite import SQLiteTarget

        def reopen() -> Target:
            return SQLiteTarget(source, readonly=True)
    elif kind in ("d1-local", "d1-worker"):
        local = request.getfixturevalue("local_d1_corpus" if schema == "medical"
                                        else "saas_local_d1")
        if kind == "d1-local":
            def reopen() -> Target:
                return local.target()
        else:
            from d1bench.targets.d1.worker import WorkerTarget

            def reopen() -> Target:
                # The local D1 serves the bench Worker's module; its token is the shared secret.
                return WorkerTarget(local.origin, secret=local.token)
    else:
        from d1bench.targets.d1 import D1Target

        copy = tmp_path_factory.mktemp("contract-rest") / source.name
        shutil.copyfile(source, copy)
        server = SQLiteD1Server(str(copy)).start()
        rest = server

        def reopen() -> Target:
            return D1Target(rest.base_url, rest.account_id, rest.database_id, rest.token)
    target = reopen()
    try:
        yield Case(kind, schema, target, reopen, source, table, server)
    finally:
        target.close()
        if server is not None:
            server.stop()


@pytest.fixture(autouse=True)
def _declared_gaps(request: pytest.FixtureRequest) -> None:
    """Turn a ``notimpl`` marker naming this case's target into a strict expected failure."""
    if "case" not in request.fixturenames:
        return
    kind = request.getfixturevalue("case").kind
    for mark in request.node.iter_markers("notimpl"):
        if kind in mark.args[0]:
            request.applymarker(pytest.mark.xfail(
                raises=mark.kwargs["raises"], strict=True,
                reason=f"{kind}: {mark.kwargs['ability']} is False"))


def _sample(case: Case) -> str:
    # By the first column, not rowid: a table may be WITHOUT ROWID (saas has some).
    return f"SELECT * FROM {case.table} ORDER BY 1 LIMIT 3"


def test_execute_returns_the_rows_columns_and_meta(case: Case) -> None:
    result = case.target.connect().execute(_sample(case))
    columns, rows = _truth(case.source, _sample(case))
    assert isinstance(result, Result) and isinstance(result.meta, Meta)
    assert result.columns == columns and len(rows) == 3
    assert [tuple(r) for r in result.rows] == rows
    # Rows read as D1 bills them: at least the rows returned (exact or estimated), none written.
    assert isinstance(result.meta.rows_read, int) and result.meta.rows_read >= len(rows)
    assert result.meta.rows_written == 0
    assert result.meta.duration_ms is None or result.meta.duration_ms >= 0
    assert result.meta.attempts >= 1
    bound = case.target.connect().execute(
        f"SELECT count(*) FROM (SELECT 1 FROM {case.table} LIMIT ?)", [2])
    assert bound.rows == [(2,)]


def test_explain_returns_plan_steps_naming_the_table(case: Case) -> None:
    first = _truth(case.source, _sample(case))[0][0]
    steps = case.target.connect().explain(f"SELECT * FROM {case.table} WHERE {first} = ?", [1])
    assert steps and all(isinstance(s, PlanStep) for s in steps)
    assert any(case.table in s.detail for s in steps), steps


@pytest.mark.parametrize(("sql", "error_class"), [
    ("SELECT * FROM no_such_table_here", "syntax"),
    ("SELEC 1", "syntax"),
])
def test_errors_are_classified_alike(case: Case, sql: str, error_class: str) -> None:
    with pytest.raises(TargetError) as err:
        case.target.connect().execute(sql)
    assert err.value.error_class == error_class and not err.value.retryable
    assert str(err.value)


@notimpl(["sqlite"], raises=NotRefused, ability="checks_d1_limits")
def test_over_d1_limits_is_refused_before_sending(case: Case) -> None:
    params = list(range(MAX_PARAMS + 1))
    sql = "SELECT " + ", ".join("?" for _ in params)
    sent = case.server.requests if case.server is not None else None
    try:
        case.target.connect().execute(sql, params)
    except TargetError as exc:
        assert exc.error_class == "limit" and f"D1 allows {MAX_PARAMS}" in str(exc)
    else:
        raise NotRefused(f"{case.kind} ran a statement of {len(params)} parameters")
    if case.server is not None:
        assert case.server.requests == sent, "the refused statement reached the server"


def test_writes_are_refused_on_a_read_only_target(case: Case) -> None:
    before = _truth(case.source, f"SELECT count(*) FROM {case.table}")[1]
    sent = case.server.requests if case.server is not None else None
    with pytest.raises(TargetError) as err:
        case.target.connect().execute(f"DELETE FROM {case.table}")
    assert err.value.error_class == "read_only"
    assert case.target.connect().execute(f"SELECT count(*) FROM {case.table}").rows == before
    if case.server is not None:
        assert case.server.requests == sent + 1, "only the count was sent"


@notimpl(["sqlite"], raises=NotRefused, ability="guards_writes")
def test_the_guard_refuses_a_writing_workload_before_the_run(case: Case) -> None:
    from d1bench.workload import load_workload

    workload = load_workload("medical")
    assert any(t.is_write for t in workload.templates.values())
    case.target.check_writes(workload.reads_only())  # reads only: nothing to refuse
    try:
        case.target.check_writes(workload)
    except UsageError as exc:
        assert "writes" in str(exc) and "--allow-writes" in str(exc)
    else:
        raise NotRefused(f"{case.kind} would take the workload's writes")


@notimpl(["sqlite"], raises=NotImplementedError, ability="supports_async")
def test_async_execute_matches_the_sync_one(case: Case) -> None:
    sql = _sample(case)

    async def run() -> Result:
        try:
            return await case.target.execute_async(sql)
        finally:
            await case.target.aclose()

    result = asyncio.run(run())
    assert result.columns == case.target.connect().execute(sql).columns
    assert [tuple(r) for r in result.rows] == _truth(case.source, sql)[1]


@notimpl(REMOTE, raises=NotImplementedError, ability="local_file")
def test_a_local_file_opens_again_read_only_or_over_a_copy(case: Case, tmp_path: Path) -> None:
    sql = _sample(case)
    with case.target.sibling(readonly=True) as reader:
        assert reader.corpus_path() == case.target.corpus_path() == case.source
        assert reader.connect().execute(sql).rows == _truth(case.source, sql)[1]
    copy = tmp_path / "copy.sqlite"
    shutil.copyfile(case.source, copy)
    with case.target.sibling(copy, readonly=False) as writer:
        assert writer.corpus_path() == copy
        writer.connect().execute(f"DELETE FROM {case.table}")
    assert _truth(copy, f"SELECT count(*) FROM {case.table}")[1] == [(0,)]
    assert _truth(case.source, f"SELECT count(*) FROM {case.table}")[1] != [(0,)]


@notimpl(REMOTE, raises=NotImplementedError, ability="defers_estimates")
def test_estimates_can_wait_until_after_the_run(case: Case) -> None:
    sql = _sample(case)
    conn = case.target.connect()
    info = case.target.prepare_estimates([conn], [(sql, ())], estimate=True, corpus=None)
    assert info["estimated"] is True and info["analysed"] == 1
    result = conn.execute(sql)
    assert result.meta.rows_read is None and conn.pending_estimates == 1
    assert conn.finish_estimates() == 1 and conn.pending_estimates == 0
    assert isinstance(result.meta.rows_read, int) and result.meta.rows_read >= len(result.rows)


def test_close_releases_the_target_and_may_be_called_again(case: Case) -> None:
    with case.reopen() as target:
        assert target.describe()["target_kind"] == target.kind == target_class(
            SPECS[case.kind]).kind
        conn = target.connect()
        assert conn.execute("SELECT 1").rows == [(1,)]
        conn.close()
        conn.close()
    target.close()  # a second close (after the with block's) is harmless
    # and the target shared by the other tests still answers
    assert case.target.connect().execute("SELECT 2").rows == [(2,)]


def test_gaps_are_the_declared_abilities() -> None:
    """Every ``notimpl`` names an ability that is False for exactly the kinds it lists."""
    marks = [mark for test in vars(sys.modules[__name__]).values() if callable(test)
             for mark in getattr(test, "pytestmark", []) if mark.name == "notimpl"]
    assert {m.kwargs["ability"] for m in marks} == {"checks_d1_limits", "guards_writes",
                                                    "supports_async", "local_file",
                                                    "defers_estimates"}
    for mark in marks:
        for kind in KINDS:
            declared = getattr(target_class(SPECS[kind]), mark.kwargs["ability"])
            assert declared is (kind not in mark.args[0]), (kind, mark.kwargs["ability"])
