"""Query plans: what ``EXPLAIN QUERY PLAN`` says a statement does, in a few classes.

Each row of a plan is sorted into a class; a plan's headline class is its most
expensive one (:data:`EXPENSE`), and it is *all indexed* when every access to a
stored table goes through an index or the table's key.  The index hit rate of
a replay is then the share of executions (and of time) whose plan is all
indexed (:func:`index_hit_rates`).

Classes, from ``EXPLAIN QUERY PLAN`` details (SQLite and D1 print the same):

==================  ======================================================
``full_scan``       ``SCAN t``, with or without ``USING [COVERING] INDEX``:
                    every row of a stored table is visited
``automatic_index`` ``USING AUTOMATIC [PARTIAL] COVERING INDEX``: SQLite
                    builds a throw-away index (a full scan) for this query
``temp_btree_group`` ``USE TEMP B-TREE FOR GROUP BY / DISTINCT /
                    count(DISTINCT)``, ``UNION USING TEMP B-TREE``
``temp_btree_order`` ``USE TEMP B-TREE FOR [... OF] ORDER BY``
``other_virtual``   a virtual table that is not FTS5 (``json_each``...)
``fts``             ``VIRTUAL TABLE INDEX`` of an FTS5 table (a MATCH)
``index_search``    ``SEARCH t USING INDEX i (...)``: index, then table row
``covering_index``  ``SEARCH t USING COVERING INDEX i (...)``: index only
``primary_key``     ``SEARCH t USING INTEGER PRIMARY KEY`` / ``PRIMARY KEY``
``subquery``        co-routines, materialised views and CTEs, and the SCAN
                    of them (not a table scan), correlated subqueries
``constant``        ``SCAN CONSTANT ROW``, or no table at all
==================  ======================================================
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from d1bench.targets.base import PlanStep

__all__ = [
    "EXPENSE",
    "INDEXED",
    "PlanInfo",
    "TableAccess",
    "classify_detail",
    "classify_plan",
    "index_hit_rates",
    "plan_report",
    "plan_text",
]

#: Classes from most to least expensive; a plan's headline is the first it has.
EXPENSE = ("full_scan", "automatic_index", "temp_btree_group", "temp_btree_order",
           "other_virtual", "fts", "index_search", "covering_index", "primary_key",
           "subquery", "constant")
#: Table accesses that count as "through an index or key".
INDEXED = frozenset({"index_search", "covering_index", "primary_key", "fts"})

_SCAN_SEARCH = re.compile(r"^(SCAN|SEARCH) (?P<table>\S+)(?: AS \S+)?(?P<rest>.*)$")
_DECLARES = re.compile(r"^(?:CO-ROUTINE|MATERIALIZE) (?P<name>.+?)\s*$")
_FTS_IDX = re.compile(r"VIRTUAL TABLE INDEX \d+:.*M\d")
_KNOWN_VIRTUAL = frozenset({"json_each", "json_tree", "generate_series", "pragma_table_info",
                            "dbstat", "carray", "fts5vocab"})


@dataclass(frozen=True, slots=True)
class TableAccess:
    """One access to a table in a plan.

    Attributes:
        table: the name the plan uses (an alias when the query gives one).
        kind: its class (one of :data:`EXPENSE`).
        index: the index it goes through, if any.
        detail: the plan row it came from.
    """

    table: str
    kind: str
    index: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class PlanInfo:
    """A classified plan.

    Attributes:
        classes: every class its rows fall into.
        plan_class: the most expensive of them (see :data:`EXPENSE`).
        accesses: one entry per table access, in plan order.
        all_indexed: every access to a stored table is a search through an
            index or key (an FTS5 MATCH counts as one; table-valued functions
            such as ``json_each`` and temporary b-trees do not count either
            way).  A plan without table accesses is all indexed.
        tables_scanned: tables read in full (``full_scan``) or to build an
            automatic index, by their names in the schema when the
            statement's ``sql`` was given (else as the plan names them).
    """

    classes: frozenset[str]
    plan_class: str
    accesses: tuple[TableAccess, ...]
    all_indexed: bool
    tables_scanned: tuple[str, ...]


def classify_detail(detail: str, subqueries: Iterable[str] = (),
                    fts_tables: Iterable[str] = ()) -> tuple[str | None, TableAccess | None]:
    """Class of one plan row, and the table access it describes (if any).

    ``subqueries`` are names the plan declared as co-routines or materialised
    views (their SCAN is not a table scan); ``fts_tables`` names known to be
    FTS5 tables.

    >>> classify_detail("SCAN papers")[0]
    'full_scan'
    >>> classify_detail("SEARCH papers USING INTEGER PRIMARY KEY (rowid=?)")[0]
    'primary_key'
    >>> classify_detail("SEARCH c USING COVERING INDEX sqlite_autoindex_citations_1 (citing_paper_id=?)")[0]
    'covering_index'
    >>> classify_detail("USE TEMP B-TREE FOR ORDER BY")
    ('temp_btree_order', None)
    >>> classify_detail("SCAN citation_network", subqueries={"citation_network"})[0]
    'subquery'
    """
    d = detail.strip()
    if d.startswith(("USE TEMP B-TREE FOR", "USING TEMP B-TREE")):
        return ("temp_btree_order" if "ORDER BY" in d else "temp_btree_group"), None
    if d.startswith("UNION USING TEMP B-TREE") or d.endswith("USING TEMP B-TREE"):
        return "temp_btree_group", None
    if d == "SCAN CONSTANT ROW":
        return "constant", None
    if _DECLARES.match(d) or d.startswith(("CORRELATED ", "SCALAR SUBQUERY", "LIST SUBQUERY",
                                           "RECURSIVE STEP", "SETUP", "COMPOUND QUERY",
                                           "LEFT-MOST SUBQUERY")):
        return "subquery", None
    m = _SCAN_SEARCH.match(d)
    if m is None:
        return None, None  # BLOOM FILTER, MULTI-INDEX OR, UNION ALL, ...: no class of their own
    table, rest = m.group("table"), m.group("rest")
    if table in set(subqueries) or table.startswith(("(subquery-", "(join-")):
        # Not a stored table; an automatic index over it still costs a build.
        return ("automatic_index" if "AUTOMATIC" in rest else "subquery"), None
    index = None
    im = re.search(r"USING (?:COVERING )?INDEX (\S+)", rest)
    if im:
        index = im.group(1)
    if "VIRTUAL TABLE" in rest:
        fts = table in set(fts_tables) or bool(_FTS_IDX.search(d))
        if not fts and (table in _KNOWN_VIRTUAL or table.startswith("pragma_")):
            kind = "other_virtual"
        else:
            kind = "fts" if fts else "other_virtual"
    elif "AUTOMATIC" in rest:
        kind, index = "automatic_index", None
    elif m.group(1) == "SCAN":
        kind = "full_scan"
    elif "INTEGER PRIMARY KEY" in rest or "USING PRIMARY KEY" in rest or \
            "ROWID SEARCH" in rest or re.search(r"\(rowid[=<>]", rest):
        kind = "primary_key"
    elif "COVERING INDEX" in rest:
        kind = "covering_index"
    elif "USING INDEX" in rest:
        kind = "index_search"
    else:
        kind = "index_search"
    return kind, TableAccess(table, kind, index, d)


def classify_plan(steps: Sequence[PlanStep], *, fts_tables: Iterable[str] = (),
             sql: str | None = None) -> PlanInfo:
    """Classify a plan (the rows of ``EXPLAIN QUERY PLAN``, as a target returns them).

    A plan names a recursive CTE by the alias its recursive step gives it
    (``SCAN cn``), which nothing in the plan ties to the CTE: the first plain
    ``SCAN`` under ``RECURSIVE STEP`` is taken to be it, and passing the
    statement's ``sql`` resolves such aliases exactly.

    >>> from d1bench.targets.base import PlanStep
    >>> info = classify_plan([PlanStep(2, 0, "SCAN papers"), PlanStep(10, 0, "USE TEMP B-TREE FOR ORDER BY")])
    >>> info.plan_class, sorted(info.classes), info.all_indexed, info.tables_scanned
    ('full_scan', ['full_scan', 'temp_btree_order'], False, ('papers',))
    >>> classify_plan([]).plan_class
    'constant'
    """
    fts = set(fts_tables)
    ctes, tables = _sql_names(sql) if sql else (set(), {})
    subqueries: set[str] = set(ctes)
    for step in steps:
        m = _DECLARES.match(step.detail.strip())
        if m:
            subqueries.add(m.group("name"))
    recursive = {s.id for s in steps if s.detail.strip() == "RECURSIVE STEP"}
    for r in recursive:
        first = next((s for s in steps if s.parent == r and _SCAN_SEARCH.match(s.detail.strip())),
                     None)
        if first is not None and re.fullmatch(r"SCAN \S+", first.detail.strip()) and not sql:
            subqueries.add(first.detail.split()[1])
    classes: set[str] = set()
    accesses: list[TableAccess] = []
    for step in steps:
        kind, access = classify_detail(step.detail, subqueries, fts)
        if kind is not None:
            classes.add(kind)
        if access is not None:
            accesses.append(access)
    if not classes:
        classes.add("constant")
    stored = [a for a in accesses if a.kind != "other_virtual"]
    all_indexed = all(a.kind in INDEXED for a in stored)
    scanned = tuple(dict.fromkeys(tables.get(a.table, a.table) for a in accesses
                                  if a.kind in ("full_scan", "automatic_index")))
    headline = next(c for c in EXPENSE if c in classes)
    return PlanInfo(frozenset(classes), headline, tuple(accesses), all_indexed, scanned)


def _sql_names(sql: str) -> tuple[set[str], dict[str, str]]:
    """Names under which ``sql`` reads its CTEs (the CTE names and their aliases),
    and the stored table each other alias stands for.

    >>> ctes, tables = _sql_names("WITH c AS (SELECT 1) SELECT * FROM papers p JOIN c x ON 1")
    >>> sorted(ctes), tables
    (['c', 'x'], {'p': 'papers'})
    """
    try:
        import sqlglot
        from sqlglot import exp

        from d1bench.sql.text import quiet_sqlglot

        with quiet_sqlglot():
            tree = sqlglot.parse_one(sql, read="sqlite")
    except Exception:  # noqa: BLE001 - unparsable: fall back to the plan alone
        return set(), {}
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    names = set(ctes)
    tables: dict[str, str] = {}
    for table in tree.find_all(exp.Table):
        if table.name in ctes:
            if table.alias:
                names.add(table.alias)
        elif table.alias and table.alias != table.name:
            tables[table.alias] = table.name
    return names, tables


def plan_text(steps: Sequence[PlanStep]) -> str:
    """The plan as the ``sqlite3`` shell draws it, one indented line per row.

    >>> print(plan_text([PlanStep(2, 0, "SCAN t"), PlanStep(5, 2, "USE TEMP B-TREE FOR ORDER BY")]))
    SCAN t
      USE TEMP B-TREE FOR ORDER BY
    """
    depth: dict[int, int] = {0: -1}
    lines = []
    for step in steps:
        level = depth.get(step.parent, -1) + 1
        depth[step.id] = level
        lines.append("  " * level + step.detail)
    return "\n".join(lines)


def plan_report(workload: Any, db_path: str | Path, *, params: str = "draw",
                seed: int = 0) -> pd.DataFrame:
    """EXPLAIN QUERY PLAN of every template of ``workload`` on ``db_path``, classified.

    ``workload`` is a name (``"medical"``), a path, or what
    :func:`d1bench.load_workload` returned.  ``params="draw"`` binds values
    drawn from the database by the workload's samplers (the plan can depend
    on them when ``sqlite_stat4`` exists); ``"null"`` binds NULLs, which is
    enough for most plans and needs no sampling.

    Returns one row per template: ``template``, ``sql``, ``plan`` (the
    indented plan text), ``plan_class``, ``classes`` (list), ``all_indexed``,
    ``tables_scanned`` (list), ``error`` (``None`` unless EXPLAIN failed).
    """
    from d1bench.errors import TargetError, UsageError
    from d1bench.targets.sqlite import SQLiteTarget

    if params not in ("draw", "null"):
        raise UsageError(f"params={params!r}: choose 'draw' or 'null'")
    if isinstance(workload, (str, Path)):
        from d1bench.workload import load_workload

        workload = load_workload(workload)
    conn = SQLiteTarget(db_path, readonly=True, estimate_rows=False).connect()
    try:
        fts = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND sql LIKE '%USING fts5%'").rows}
        drawn = _drawer(workload, conn, seed) if params == "draw" else None
        rows = []
        for template in workload.templates.values():
            values: Any = (None,) * len(template.params)
            if drawn is not None:
                with contextlib.suppress(Exception):  # no draw: NULLs for this template
                    values = drawn(template.name)
            try:
                steps = conn.explain(template.sql, values)
            except TargetError as exc:
                rows.append({"template": template.name, "sql": template.sql.strip(), "plan": "",
                             "plan_class": None, "classes": [], "all_indexed": None,
                             "tables_scanned": [], "error": f"{exc.error_class}: {exc.message}"})
                continue
            info = classify_plan(steps, fts_tables=fts, sql=template.sql)
            rows.append({"template": template.name, "sql": template.sql.strip(),
                         "plan": plan_text(steps), "plan_class": info.plan_class,
                         "classes": sorted(info.classes), "all_indexed": info.all_indexed,
                         "tables_scanned": list(info.tables_scanned), "error": None})
    finally:
        conn.close()
    columns = ["template", "sql", "plan", "plan_class", "classes", "all_indexed",
               "tables_scanned", "error"]
    return pd.DataFrame(rows, columns=columns)


def _drawer(workload: Any, db: Any, seed: int) -> Any:
    """A function template name -> drawn parameters, or None if the workload cannot bind."""
    import random

    try:
        bound = workload.bind(db, seed)
    except Exception:  # noqa: BLE001 - samplers that need more than this database: use NULLs
        return None
    rng = random.Random(seed)
    return lambda name: bound.draw_params(name, rng)


def index_hit_rates(frame: pd.DataFrame) -> pd.DataFrame:
    """Index hit rate per template and overall, from per-execution rows.

    ``frame`` needs columns ``template``, ``all_indexed`` (bool, or missing
    when the plan is unknown) and ``service_ms``.  Returns one row per
    template plus an ``ALL`` row: ``executions``, ``indexed_executions``,
    ``hit_rate`` (share of executions whose every table access is an index or
    key search), ``time_ms``, ``indexed_time_ms`` and ``time_hit_rate`` (the
    same share weighted by service time).  Executions with an unknown plan are
    counted in ``executions`` but left out of both rates.

    >>> import pandas as pd
    >>> f = pd.DataFrame({"template": ["a", "a", "b"], "all_indexed": [True, True, False],
    ...                   "service_ms": [1.0, 1.0, 8.0]})
    >>> index_hit_rates(f)[["template", "hit_rate", "time_hit_rate"]].to_string(index=False)
    'template  hit_rate  time_hit_rate\\n       a  1.000000            1.0\\n       b  0.000000            0.0\\n     ALL  0.666667            0.2'
    """
    missing = {"template", "all_indexed", "service_ms"} - set(frame.columns)
    if missing:
        raise ValueError(f"index_hit_rates needs columns {sorted(missing)}")
    f = frame[["template", "all_indexed", "service_ms"]].copy()
    known = f["all_indexed"].notna()
    f["known"] = known
    f["hit"] = known & f["all_indexed"].fillna(False).astype(bool)
    f["ms_known"] = f["service_ms"].where(known, 0.0).fillna(0.0)
    f["ms_hit"] = f["service_ms"].where(f["hit"], 0.0).fillna(0.0)

    def summarise(g: pd.DataFrame) -> dict[str, Any]:
        n_known = int(g["known"].sum())
        ms_known = float(g["ms_known"].sum())
        return {
            "executions": len(g),
            "indexed_executions": int(g["hit"].sum()),
            "hit_rate": (g["hit"].sum() / n_known) if n_known else float("nan"),
            "time_ms": float(g["service_ms"].fillna(0.0).sum()),
            "indexed_time_ms": float(g["ms_hit"].sum()),
            "time_hit_rate": (float(g["ms_hit"].sum()) / ms_known) if ms_known else float("nan"),
        }

    rows = [{"template": name, **summarise(g)} for name, g in f.groupby("template", sort=True)]
    rows.append({"template": "ALL", **summarise(f)})
    columns = ["template", "executions", "indexed_executions", "hit_rate", "time_ms",
               "indexed_time_ms", "time_hit_rate"]
    return pd.DataFrame(rows, columns=columns)
