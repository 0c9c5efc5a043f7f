"""Composite indexes grown from the predicates that occur together, and prefix-redundant
proposals merged, on the shop fixture (a schema no d1bench default was tuned on).

The choice is proven by measurement: each alternative is built on its own copy
and the template run through the SQLite target, whose rows read are D1's count."""

from __future__ import annotations

import shutil
from pathlib import Path

import apsw
import pytest

from d1bench.advisor import advise
from d1bench.advisor.select import Selection, merge_prefixes
from d1bench.sql.catalog import IndexDef, Key
from d1bench.targets import open_target

SHOP = Path(__file__).parent / "fixtures" / "advice" / "shop"


@pytest.fixture(scope="module")
def shop_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from schemas import from_sql

    return from_sql(SHOP / "schema.sql", tmp_path_factory.mktemp("shop") / "shop.sqlite")


@pytest.fixture(scope="module")
def shop_advice(shop_db: Path):
    return advise(shop_db, SHOP / "workload.toml")


def _built(db: Path, folder: Path, name: str, ddl: str) -> Path:
    """A copy of ``db`` with ``ddl`` built and analysed."""
    copy = folder / f"{name}.sqlite"
    shutil.copyfile(db, copy)
    conn = apsw.Connection(str(copy))
    conn.execute(ddl + "; ANALYZE;")
    conn.close()
    return copy


def _rows_read(db: Path, folder: Path, name: str, ddl: str, sql: str, params: list) -> float:
    """Mean rows read of ``sql`` over ``params`` on a copy of ``db`` with ``ddl`` built."""
    copy = _built(db, folder, name, ddl)
    target = open_target(f"sqlite:{copy}", readonly=True)
    c = target.connect()
    try:
        return sum(c.execute(sql, p).meta.rows_read for p in params) / len(params)
    finally:
        c.close()


def _advised(advice) -> set[tuple[str, tuple[str, ...]]]:
    return {(r.table, tuple(r.columns)) for r in advice.indexes.itertuples()}


def test_equality_keys_first_then_the_shared_null_test(shop_advice, shop_db: Path,
                                                       tmp_path: Path) -> None:
    got = _advised(shop_advice)
    assert ("customers", ("country", "deleted_at")) in got
    assert not {("customers", ("country",)), ("customers", ("deleted_at", "country"))} & got
    sql = "SELECT id, email FROM customers WHERE country = ? AND deleted_at IS NULL"
    params = [["US"], ["DE"], ["FR"]]
    single = _rows_read(shop_db, tmp_path, "single", "CREATE INDEX i ON customers (country)",
                        sql, params)
    composite = _rows_read(shop_db, tmp_path, "composite",
                           "CREATE INDEX i ON customers (country, deleted_at)", sql, params)
    # the single index steps through every customer of the country, deleted or not
    assert composite < 0.7 * single, (composite, single)


def test_equality_then_range_over_two_singles(shop_advice, shop_db: Path, tmp_path: Path) -> None:
    got = _advised(shop_advice)
    assert ("products", ("category", "price_cents")) in got
    assert not {("products", ("category",)), ("products", ("price_cents",))} & got
    assert "idx_products_price_cents" in " ".join(shop_advice.summary["pruned"])
    sql = ("SELECT id, name, price_cents FROM products WHERE category = ? "
           "AND price_cents BETWEEN ? AND ? ORDER BY price_cents")
    params = [["cat1", 500, 7000], ["cat5", 1000, 8000], ["cat9", 200, 6500]]
    singles = _rows_read(shop_db, tmp_path, "singles",
                         "CREATE INDEX i1 ON products (category); "
                         "CREATE INDEX i2 ON products (price_cents)", sql, params)
    composite = _rows_read(shop_db, tmp_path, "composite2",
                           "CREATE INDEX i ON products (category, price_cents)", sql, params)
    assert composite < 0.5 * singles, (composite, singles)


def test_no_proposed_index_begins_another(shop_advice) -> None:
    rows = list(shop_advice.indexes.itertuples())
    for a in rows:
        for b in rows:
            if a.name != b.name and a.table == b.table:
                assert list(b.columns[: len(a.columns)]) != list(a.columns), (a.name, b.name)


def test_foreign_key_check_gets_its_index(shop_advice, shop_db: Path, tmp_path: Path) -> None:
    """Retiring a coupon scans every order for its foreign-key check until orders(coupon_id)
    exists, though no template reads orders by coupon.  Eight orders in nine have no coupon,
    so the index holds only the set ones: the check's ``coupon_id = ?`` implies it."""
    rows = shop_advice.indexes[shop_advice.indexes["table"] == "orders"]
    row = rows[[list(c) == ["coupon_id"] for c in rows["columns"]]].iloc[0]
    assert row["where"] == "coupon_id IS NOT NULL"
    assert row["templates"] == ["retire_coupon"] and "foreign-key check" in row["reason"]
    full = shop_advice.indexes["bytes"].max()
    assert row["bytes"] < full / 4
    t = shop_advice.templates.set_index("template").loc["retire_coupon"]
    assert t["rows_read_before"] > 10_000 and t["rows_read_after"] <= 2


def test_merge_prefixes_drops_a_single_beside_a_composite() -> None:
    single = IndexDef("products", (Key("category"),), name="idx_products_category")
    desc = IndexDef("products", (Key("category", desc=True), Key("price_cents", desc=True)),
                    name="idx_products_category_desc")
    other = IndexDef("products", (Key("price_cents"),), name="idx_products_price_cents")
    partial = IndexDef("products", (Key("stock"),), where="stock = 0", name="idx_products_stock")
    wide = IndexDef("products", (Key("stock"), Key("name")), name="idx_products_stock_name")
    added = [single, desc, other, partial, wide]
    sel = Selection(config=list(added), added=list(added), dropped=[])
    merged = merge_prefixes(sel)
    assert [i.name for i, _ in merged] == ["idx_products_category"]
    assert merged[0][1] == "prefix-redundant: idx_products_category_desc begins with the same keys"
    # a partial index is not served by a full one on other keys, nor the reverse
    assert {i.name for i in sel.added} == {"idx_products_category_desc", "idx_products_price_cents",
                                           "idx_products_stock", "idx_products_stock_name"}


@pytest.mark.slow
def test_events_fixture_gets_cheap_partial_indexes(events_db: Path) -> None:
    """On the write-heavy events schema (ingest is the most frequent template), the rare
    severities get partial indexes that an inserted 'info' reading never writes to, where
    .expert would add full (severity, ts) and (device_id, severity) indexes."""
    from schemas import workload_path

    advice = advise(events_db, workload_path("events"))
    got = {(r.table, tuple(r.columns), r.where) for r in advice.indexes.itertuples()}
    assert ("events", ("ts",), "severity IN ('warning', 'error', 'critical')") in got, got
    assert ("events", ("device_id",), "severity = 'error'") in got, got
    assert not any(t == "events" and c[:1] == ("severity",) and w is None for t, c, w in got)
    rows = list(advice.indexes.itertuples())
    for a in rows:  # no proposed index begins another
        for b in rows:
            if a.name != b.name and a.table == b.table and a.where == b.where:
                assert list(b.columns[: len(a.columns)]) != list(a.columns), (a.name, b.name)


RARE = Path(__file__).parent / "fixtures" / "advice_rare"


def test_a_rare_template_gets_the_order_it_needs_beside_a_brute_force_one(tmp_path: Path) -> None:
    """A LIKE no index serves holds nearly all the rows read; a per-category report run
    once in a hundred units groups by the rowid.  Its index is led by the category, like
    the top-scores one, with the rowid spelt after it (``(cat)`` alone would be merged into
    ``(cat, score)``, and the report would sort again), and it is proposed although it saves
    far less than 0.3% of the workload: a good share of what that report costs."""
    from schemas import from_sql

    from d1bench.advisor.select import MIN_GAIN

    db = from_sql(RARE / "schema.sql", tmp_path / "rare.sqlite")
    advice = advise(db, RARE / "workload.toml")
    got = {(r.table, tuple(r.columns)) for r in advice.indexes.itertuples()}
    assert ("items", ("cat", "id")) in got and ("items", ("cat", "score")) in got, got
    assert ("items", ("cat",)) not in got  # never beside composites that start with it
    # the user's reads come first in the plan: their order follows the user, and the
    # join key (the items' side seeks on its own key) has no place between them
    assert ("reads", ("user_id", "at")) in got, got
    t = advice.templates.set_index("template")
    assert "GROUP BY" not in t.loc["cat_reads", "plan_after"]
    # the sort it spares is fewer rows than the report reads with it, once in two hundred
    # units: under MIN_GAIN of the workload, whose scale the LIKE's 20,000 rows a run set
    spared = t.loc["cat_reads", "weight"] * t.loc["cat_reads", "rows_read_after"]
    total = float((t["weight"] * t["rows_read_after"]).sum())
    assert spared < MIN_GAIN * total


def test_an_in_list_before_the_order_goes_into_a_partial_index(saas_db: Path,
                                                               tmp_path: Path) -> None:
    """``tenant_backlog`` asks for a tenant's unfinished tasks, newest first, LIMIT 50:
    ``status IN (...)`` and ``deleted_at IS NULL`` between ``tenant_id`` and ``updated_at``
    would break the index's order, so ``(tenant_id, status, ...)`` (the advisor's old
    choice, and ``.expert``'s) sorts all of the tenant's open tasks.  Those constant
    predicates go into the index's WHERE instead: the plan walks the tenant's open tasks
    newest first and stops at 50, in an index holding half the table."""
    from schemas import workload_path

    advice = advise(saas_db, workload_path("saas"))
    rows = advice.indexes[advice.indexes["table"] == "tasks"]
    row = rows[["tenant_backlog" in t for t in rows["templates"]]].iloc[0]
    assert list(row["columns"]) == ["tenant_id", "updated_at"], row
    assert "status IN ('todo', 'doing', 'review')" in row["where"]
    assert "deleted_at IS NULL" in row["where"]
    t = advice.templates.set_index("template")
    assert "TEMP B-TREE" not in t.loc["tenant_backlog", "plan_after"]

    from d1bench.workload import load_workload

    sql = load_workload(workload_path("saas")).templates["tenant_backlog"].sql
    conn = apsw.Connection(f"file:{saas_db}?mode=ro", flags=apsw.SQLITE_OPEN_READONLY
                           | apsw.SQLITE_OPEN_URI)
    tenants = [r[0] for r in conn.execute(
        "SELECT tenant_id FROM tasks GROUP BY tenant_id ORDER BY count(*) DESC LIMIT 3")]
    conn.close()
    params = [[x] for x in tenants]
    advised = _rows_read(saas_db, tmp_path, "advised", row["sql"].rstrip(";"), sql, params)
    old = _rows_read(saas_db, tmp_path, "old",
                     "CREATE INDEX i ON tasks (tenant_id, status)", sql, params)
    wide = _rows_read(saas_db, tmp_path, "wide",
                      "CREATE INDEX i ON tasks (tenant_id, status, deleted_at)", sql, params)
    assert advised < 0.1 * min(old, wide), (advised, old, wide)
    # and the rows are the same, in the order the ORDER BY fixes (ties at one
    # updated_at may come either way)
    def rows(name: str, ddl: str) -> list[list[tuple]]:
        conn = apsw.Connection(str(_built(saas_db, tmp_path, name, ddl)))
        try:
            return [list(conn.execute(sql, p)) for p in params]
        finally:
            conn.close()

    first = rows("same_a", row["sql"].rstrip(";"))
    got = rows("same_b", "CREATE INDEX i ON tasks (tenant_id, status)")
    assert all(len(r) == 50 for r in first)
    assert [sorted(r) for r in got] == [sorted(r) for r in first]
    assert [[x[-1] for x in r] for r in got] == [[x[-1] for x in r] for r in first]


def test_a_partial_where_is_spelt_unqualified_and_an_anti_join_gives_none(
        saas_db: Path, tmp_path: Path) -> None:
    """The same backlog query spelt with a table alias gets the same partial index (its
    WHERE had kept ``t.status IN (...)``, which CREATE INDEX refuses, and the candidate was
    lost); and an anti-join's ``c.id IS NULL`` (the rowid: about the join, never a row's
    value) proposes no index WHERE id IS NULL."""
    workload = tmp_path / "aliased.toml"
    workload.write_text('''
[workload]
name = "aliased"
format = 1

[templates.backlog]
weight = 5
sql = """
SELECT t.project_id, t.task_no, t.title FROM tasks AS t
WHERE t.tenant_id = ? AND t.status IN ('todo', 'doing', 'review') AND t.deleted_at IS NULL
ORDER BY t.updated_at DESC LIMIT 50
"""
params = [{ sampler = "column", table = "tasks", column = "tenant_id" }]

[templates.silent_tasks]
weight = 1
sql = """
SELECT t.project_id, t.task_no FROM tasks AS t
LEFT JOIN comments AS c ON c.project_id = t.project_id AND c.task_no = t.task_no
WHERE t.project_id = ? AND c.id IS NULL
"""
params = [{ sampler = "id", table = "projects" }]
''', encoding="utf-8")
    advice = advise(saas_db, workload)
    got = {(r.table, tuple(r.columns), r.where) for r in advice.indexes.itertuples()}
    assert ("tasks", ("tenant_id", "updated_at"),
            "status IN ('todo', 'doing', 'review') AND deleted_at IS NULL") in got, got
    assert not any(w and "id IS NULL" in w for _t, _c, w in got), got

    from d1bench.advisor.candidates import generate
    from d1bench.advisor.preparation import prepare
    from d1bench.sql.naming import Namer

    prepared = prepare(saas_db, workload)
    try:
        candidates = generate(prepared.infos, prepared.catalog, prepared.stats,
                              Namer(prepared.catalog.indexes))
    finally:
        prepared.close()
    wheres = {c.index.where for c in candidates.values() if c.index.where}
    assert wheres and not any("t." in w or "c." in w for w in wheres), wheres
    assert not any("id IS NULL" in w for w in wheres), wheres


def test_an_insert_writes_the_partial_indexes_its_own_values_meet(tmp_path: Path) -> None:
    """A job queue: every job is enqueued 'queued' and unlocked, so every insert writes an
    entry into the index of queued jobs, though they are a tenth of the table; none into
    the index of failed jobs.  The prediction had used each index's share of the table's
    rows (0.1 and 0.05) for both."""
    db = tmp_path / "queue.sqlite"
    conn = apsw.Connection(str(db))
    conn.execute("""
        CREATE TABLE jobs (id INTEGER PRIMARY KEY, queue TEXT NOT NULL,
                           state TEXT NOT NULL DEFAULT 'queued', locked_by TEXT,
                           run_at TEXT NOT NULL, finished_at TEXT);
        WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 20000)
        INSERT INTO jobs (queue, state, locked_by, run_at, finished_at)
        SELECT 'q' || (x % 5),
               CASE WHEN x % 10 = 0 THEN 'queued' WHEN x % 20 = 1 THEN 'failed' ELSE 'done' END,
               CASE WHEN x % 10 = 0 THEN NULL ELSE 'w' || (x % 7) END,
               printf('2026-01-%02d %05d', 1 + x % 28, x), printf('2026-02-%05d', x) FROM n;
    """)
    conn.close()
    workload = tmp_path / "queue.toml"
    workload.write_text('''
[workload]
name = "queue"
format = 1

[templates.next_job]
weight = 20
sql = """SELECT id FROM jobs WHERE queue = ? AND state = 'queued' AND locked_by IS NULL
ORDER BY run_at LIMIT 1"""
params = [{ sampler = "choice", values = ["q0", "q1", "q2"] }]

[templates.failed_jobs]
weight = 5
sql = "SELECT id FROM jobs WHERE state = 'failed' ORDER BY finished_at DESC LIMIT 20"
params = []

[templates.enqueue]
weight = 1
sql = "INSERT INTO jobs (queue, run_at) VALUES (?, ?)"
params = [{ sampler = "choice", values = ["q0", "q1"] },
          { sampler = "choice", values = ["2026-03-01 00001", "2026-03-02 00002"] }]
''', encoding="utf-8")
    advice = advise(db, workload, write_weight=0.0)
    wheres = set(advice.indexes["where"])
    assert any(w and w.startswith("state = 'queued'") for w in wheres), wheres
    assert "state = 'failed'" in wheres, wheres
    predicted = advice.templates.set_index("template").loc["enqueue", "rows_written_after"]
    copy = _built(db, tmp_path, "built", advice.migration_sql)
    with open_target(f"sqlite:{copy}") as target:
        measured = target.connect().execute(
            "INSERT INTO jobs (queue, run_at) VALUES (?, ?)", ["q0", "2026-03-03 00003"]
        ).meta.rows_written
    assert measured == 2  # the row and the queued index's entry
    assert predicted == measured, (predicted, advice.indexes[["sql", "where"]])


def test_an_order_on_two_keys_is_grown_in_one_step(tmp_path: Path) -> None:
    """A helpdesk's unassigned queue sorts by two keys.  An index grown by the first alone
    still sorts the org's tickets, so that step saves nothing and Extend, one key at a
    time, stopped at ``(org_id)``; grown by both at once, the plan stops at its LIMIT."""
    db = tmp_path / "desk.sqlite"
    conn = apsw.Connection(str(db))
    conn.execute("""
        CREATE TABLE tickets (id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL,
                              assignee_id INTEGER, status TEXT NOT NULL,
                              priority INTEGER NOT NULL, created_at TEXT NOT NULL);
        WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 30000)
        INSERT INTO tickets (org_id, assignee_id, status, priority, created_at)
        SELECT x % 20, CASE WHEN x % 3 = 0 THEN NULL ELSE x % 50 END,
               CASE WHEN x % 4 = 0 THEN 'open' ELSE 'closed' END, x % 4,
               printf('2026-01-%02d %05d', 1 + x % 28, x) FROM n;
    """)
    conn.close()
    sql = ("SELECT id FROM tickets WHERE org_id = ? AND assignee_id IS NULL AND status = 'open' "
           "ORDER BY priority DESC, created_at LIMIT 20")
    workload = tmp_path / "desk.toml"
    workload.write_text(f'''
[workload]
name = "desk"
format = 1

[templates.unassigned_queue]
weight = 1
sql = "{sql}"
params = [{{ sampler = "int", min = 0, max = 19 }}]
''', encoding="utf-8")
    advice = advise(db, workload)
    (row,) = advice.indexes.itertuples()
    assert list(row.columns) == ["org_id", "priority DESC", "created_at"], row
    params = [[0], [7], [13]]
    grown = _rows_read(db, tmp_path, "grown", row.sql.rstrip(";"), sql, params)
    first = _rows_read(db, tmp_path, "first", f"CREATE INDEX i ON tickets (org_id) WHERE {row.where}",
                       sql, params)
    assert grown < 0.5 * first, (grown, first)
