"""PostgreSQL and MySQL to SQLite or D1: convert, copy, prove, and only then swap in.

``migrate(source_url, to)`` runs the stages of :mod:`d1bench.migrator` in order:

1. the source's catalog (:mod:`.postgres`, :mod:`.mysql`) into records (:mod:`.model`);
2. the type rules (:mod:`.types`) and DDL conversion (:mod:`.convert`), with the
   conversion report; ``dry_run`` stops here, having written nothing;
3. the copy (:mod:`.copy`) into a database built aside (:mod:`.sinks`): a
   hidden file beside a SQLite target, or fresh tables in a D1 database;
4. validation (:mod:`.validate`), on by default;
5. the swap: the aside file replaces the target (a rename), or the D1 tables
   are kept; when validation fails they are removed instead, and the target
   is as it was.

An interrupted run leaves its aside build with its progress; running the same
migration again resumes it (see :mod:`.sinks`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from d1bench._atomic import publish
from d1bench.errors import D1benchError, UsageError
from d1bench.migrator.convert import Conversion, convert
from d1bench.migrator.copy import BatchHook, CopyResult, copy_table
from d1bench.migrator.queries import read_query_file
from d1bench.migrator.sinks import STATE_TABLE, D1Sink, Sink, SQLiteSink
from d1bench.migrator.source import Source, open_source
from d1bench.migrator.validate import Finding, check_queries, findings_frame, validate_tables
from d1bench.targets.base import Target
from d1bench.uploader.packing import quote

__all__ = ["Migration", "ValidationFailed", "aside_path", "migrate", "parse_maps"]

_SCHEMA_ITEM = "(schema)"


@dataclass(frozen=True)
class Migration:
    """What a migration did.

    Attributes:
        source: the source URL, without its password.
        target: the target as given.
        conversion: DDL and the conversion report (:attr:`Conversion.report`).
        copies: one row per table: ``rows``, ``rows_copied`` (this run),
            ``seconds``, ``rows_per_s``, ``resumed``.
        checks: validation findings (:data:`~d1bench.migrator.validate.CHECK_COLUMNS`).
        dry_run: stopped after the conversion report.
        seconds: the stages' wall time: ``convert``, ``copy``, ``validate``, ``swap``.
    """

    source: str
    target: str
    conversion: Conversion
    copies: pd.DataFrame = field(default_factory=pd.DataFrame)
    checks: pd.DataFrame = field(default_factory=pd.DataFrame)
    dry_run: bool = False
    seconds: Mapping[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Every validation check passed (a dry run has none)."""
        return bool(self.checks.empty or self.checks["ok"].all())


class ValidationFailed(D1benchError):
    """Validation found a difference; the target was left as it was.

    ``migration`` holds the report and the findings; the message names the
    first failing table and the first key that differs.
    """

    def __init__(self, message: str, migration: Migration) -> None:
        super().__init__(message)
        self.migration = migration


def parse_maps(items: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    """``OLD=NEW`` renames: ``table=new`` for tables, ``table.column=new`` for columns.

    >>> parse_maps(["users=people", "papers.authors=authors_json"])
    ({'users': 'people'}, {'papers.authors': 'authors_json'})
    """
    tables: dict[str, str] = {}
    columns: dict[str, str] = {}
    for item in items:
        old, sep, new = item.partition("=")
        if not sep or not old or not new or "." in new:
            raise UsageError(f"--map {item!r}: write OLD=NEW (table=new or table.column=new)")
        (columns if "." in old else tables)[old] = new
    return tables, columns


def aside_path(target: Path) -> Path:
    """Where a SQLite target is built before it takes the target's place.

    >>> aside_path(Path("out/shop.sqlite")).name
    '.shop.sqlite.migrating'
    """
    return target.with_name(f".{target.name}.migrating")


def _sqlite_path(to: str | Target) -> Path | None:
    if not isinstance(to, str):
        return None  # an opened target
    if to.startswith("sqlite:"):
        return Path(to[len("sqlite:"):])
    if to.lower().endswith((".sqlite", ".sqlite3", ".db")) and "://" not in to:
        return Path(to)
    return None


def _describe(source: Source, tables: Sequence[str] | None) -> list[Any]:
    names = list(tables) if tables else source.table_names()
    if not names:
        raise UsageError(f"{source.url.display}: no tables to migrate")
    return [source.describe(name) for name in names]


def _max_ids(source: Source, described: Sequence[Any]) -> dict[str, int | None]:
    from d1bench.migrator.source import quote_ident

    out: dict[str, int | None] = {}
    for t in described:
        if len(t.primary_key) == 1 and t.column(t.primary_key[0]).identity:
            col = quote_ident(t.primary_key[0], source.dialect)
            _, rows = source.query(f"SELECT max({col}) FROM {quote_ident(t.name, source.dialect)}")
            out[t.name] = None if rows[0][0] is None else int(rows[0][0])
    return out


def migrate(source_url: str, to: str | Target, *, tables: Sequence[str] | None = None,
            maps: Sequence[str] = (), dry_run: bool = False, batch_rows: int | None = None,
            validate: bool = True, queries: Sequence[str] = (),
            query_file: str | os.PathLike[str] | None = None, force: bool = False,
            progress: bool = True, password: str | None = None,
            on_batch: BatchHook | None = None) -> Migration:
    """Migrate a PostgreSQL or MySQL database into SQLite or D1, validated before it is swapped in.

    Args:
        source_url: ``postgresql://USER[:PASSWORD]@HOST:PORT/DB`` or ``mysql://...``
            (the password may also come from ``password``, PGPASSWORD or MYSQL_PWD).
        to: ``sqlite:PATH`` (or a ``.sqlite``/``.db`` path), ``d1-local``, ``d1://ACCOUNT/DB``,
            or an opened D1 :class:`~d1bench.targets.base.Target` (left open).
        tables: the tables to migrate (default: all).
        maps: renames, ``table=new`` or ``table.column=new``.
        dry_run: stop after the conversion report; nothing is written.
        batch_rows: rows per write (SQLite transaction or D1 request; default 5,000 for
            SQLite, as many as D1's limits allow in a request for D1).
        validate: run the checks (counts, checksums, samples, orphans, queries).
        queries: source queries to run on both sides and compare (transpiled by sqlglot).
        query_file: a ``.sql`` file of more such queries, in the source's dialect
            (:func:`~d1bench.migrator.queries.read_query_file`); read before anything moves.
        force: replace an existing SQLite target file (only once validation passed).
        progress: a progress bar per table on a terminal.
        on_batch: called as ``on_batch(table, n)`` after each written batch.

    Raises:
        UsageError: bad input (unreachable server, wrong password, missing table,
            a type with no rule, an existing target without ``force``).
        ValidationFailed: a check failed; the target is untouched.
    """
    if batch_rows is not None and batch_rows < 1:
        raise UsageError(f"--batch-rows {batch_rows}: must be at least 1")
    table_names, column_names = parse_maps(maps)
    sqlite_target = _sqlite_path(to)
    if sqlite_target is not None and sqlite_target.exists() and not force and not dry_run:
        raise UsageError(f"{sqlite_target} exists: pass --force to replace it "
                         "(it is replaced only once the migration is validated)")
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    with open_source(source_url, password) as source:
        if query_file is not None:
            queries = [*queries, *read_query_file(query_file, source.dialect)]
        described = _describe(source, tables)
        conversion = convert(described, source.dialect, max_ids=_max_ids(source, described),
                             table_names=table_names, column_names=column_names,
                             not_converted=[] if tables else source.not_converted())
        seconds["convert"] = time.perf_counter() - started
        if dry_run:
            return Migration(source.url.display, _name(to), conversion, dry_run=True,
                             seconds=seconds)
        if sqlite_target is not None:
            return _into_sqlite(source, conversion, sqlite_target, _name(to), batch_rows or 5_000,
                                validate, queries, progress, on_batch, seconds, force)
        return _into_d1(source, conversion, to, batch_rows, validate, queries, progress,
                        on_batch, seconds)


def _digest(conversion: Conversion) -> str:
    return hashlib.sha256(conversion.ddl.encode()).hexdigest()[:16]


def _start(sink: Sink, conversion: Conversion, where: str) -> None:
    """Create the schema, or check that the build being resumed is of the same schema."""
    state = sink.state()
    digest = _digest(conversion)
    if _SCHEMA_ITEM in state:
        if state[_SCHEMA_ITEM][0] != [digest]:
            raise UsageError(f"{where}: holds an interrupted migration of a different schema: "
                             "delete it to start again")
        return
    existing = set(sink.user_tables()) & {p.name for p in conversion.tables}
    if existing:
        raise UsageError(f"{where}: already holds table {min(existing)!r}: migrate into "
                         "a fresh database")
    # The schema and the record of it in one transaction: a run killed here leaves
    # either nothing or a build that the next run recognises and resumes.
    statements = [(s, ()) for plan in conversion.tables for s in plan.ddl]
    sink.run_params([*statements, sink.mark_statement(_SCHEMA_ITEM, [digest], 0, True)])


def _run(source: Source, sink: Sink, conversion: Conversion, batch_rows: int, validate: bool,
         queries: Sequence[str], progress: bool, on_batch: BatchHook | None,
         seconds: dict[str, float], to: str) -> Migration:
    started = time.perf_counter()
    copies: dict[str, CopyResult] = {}
    for plan in conversion.tables:
        # A count costs a scan at the source: only for a bar someone will see.
        total = source.count(plan.source.name) if progress and sys.stderr.isatty() else None
        copies[plan.name] = copy_table(source, sink, plan, batch_rows=batch_rows,
                                       progress=progress, total_hint=total, on_batch=on_batch)
    seconds["copy"] = time.perf_counter() - started
    started = time.perf_counter()
    findings: list[Finding] = []
    if validate:
        findings = validate_tables(source, sink, conversion.tables, copies, batch_rows=batch_rows)
        findings += check_queries(source, sink, queries)
    seconds["validate"] = time.perf_counter() - started
    frame = pd.DataFrame([{"table": c.table, "rows": c.rows_total, "rows_copied": c.rows_copied,
                           "seconds": round(c.seconds, 3),
                           "rows_per_s": round(c.rows_copied / c.seconds) if c.seconds else None,
                           "resumed": c.resumed} for c in copies.values()])
    return Migration(source.url.display, to, conversion, frame, findings_frame(findings),
                     seconds=seconds)


def _failure(migration: Migration) -> ValidationFailed:
    bad = migration.checks[~migration.checks["ok"]].iloc[0]
    detail = f": {bad['detail']}" if bad["detail"] else ""
    return ValidationFailed(f"validation failed: table {bad['table']}, {bad['check']} "
                            f"(source {bad['source']}, target {bad['target']}){detail}; "
                            "the target was left as it was", migration)


def _into_sqlite(source: Source, conversion: Conversion, final: Path, to: str, batch_rows: int,
                 validate: bool, queries: Sequence[str], progress: bool,
                 on_batch: BatchHook | None, seconds: dict[str, float],
                 force: bool) -> Migration:
    if not final.parent.is_dir():
        raise UsageError(f"{final.parent}: no such directory")
    aside = aside_path(final)
    sink = SQLiteSink(aside)
    try:
        _start(sink, conversion, str(aside))
        migration = _run(source, sink, conversion, batch_rows, validate, queries, progress,
                         on_batch, seconds, to)
        if not migration.ok:
            sink.close()
            for path in (aside, *(Path(f"{aside}-{end}") for end in ("journal", "wal", "shm"))):
                path.unlink(missing_ok=True)
            raise _failure(migration)
        started = time.perf_counter()
        sink.finish()
        sink.close()
        # Atomic: the target is the old file or the new, never half; without --force
        # a file that appeared meanwhile is not replaced either.
        publish(aside, final, force=force)
        seconds["swap"] = time.perf_counter() - started
        return migration
    finally:
        sink.close()


def _name(to: str | Target) -> str:
    return to if isinstance(to, str) else to.url


def _into_d1(source: Source, conversion: Conversion, to: str | Target, batch_rows: int | None,
             validate: bool, queries: Sequence[str], progress: bool,
             on_batch: BatchHook | None, seconds: dict[str, float]) -> Migration:
    from d1bench.targets import open_target

    opened = open_target(to) if isinstance(to, str) else contextlib.nullcontext(to)
    with opened as target:
        if target.kind not in ("d1-local", "d1"):
            raise UsageError(f"--to {target.url}: use sqlite:PATH, d1-local or d1://ACCOUNT/DB")
        to = target.url
        conn = target.connect(allow_writes=True)  # the user asked for a migration: writes
        sink = D1Sink(conn, batch_rows)
        try:
            _start(sink, conversion, to)
            migration = _run(source, sink, conversion, batch_rows or 1_000, validate, queries,
                             progress, on_batch, seconds, to)
            if not migration.ok:
                # Rollback: the tables were new, so removing them restores the database.
                sink.run([f"DROP TABLE IF EXISTS {quote(p.name)}"
                          for p in reversed(conversion.tables)] + [f"DROP TABLE {STATE_TABLE}"])
                raise _failure(migration)
            sink.run([f"DROP TABLE {STATE_TABLE}"])
            return migration
        finally:
            with contextlib.suppress(Exception):
                conn.close()
