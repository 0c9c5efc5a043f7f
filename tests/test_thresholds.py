"""Thresholds and ``compare --fail-on``: CI gates, on real replays of saas and medical.

The regression is real: the same workload replayed on a database with an
index that serves one template, and again after the index is dropped (and, for
writes, after an index is added on a column an UPDATE sets).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import apsw
import pytest

from d1bench import load_trace
from d1bench.analysis import ALL, compare, regressions, summarize
from d1bench.cli import main
from d1bench.errors import UsageError
from d1bench.thresholds import SEED_ALERTS, check_thresholds, parse_threshold

#: Serves saas's tenant_activity (audit_log WHERE tenant_id = ? ORDER BY at DESC LIMIT 20).
AUDIT_INDEX = "CREATE INDEX audit_tenant_at ON audit_log (tenant_id, at)"
#: Makes saas's move_task (UPDATE tasks SET status = ...) write an index entry too.
STATUS_INDEX = "CREATE INDEX tasks_status ON tasks (status)"

# The replays behind the module's fixtures take about 15 s together.
pytestmark = pytest.mark.slow


def _run(argv: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _flags(thresholds: list[str]) -> list[str]:
    return [arg for t in thresholds for arg in ("--threshold", t)]


def _with(db: Path, dest: Path, *ddl: str) -> Path:
    shutil.copyfile(db, dest)
    conn = apsw.Connection(str(dest))
    for statement in ddl:
        conn.execute(statement)
    conn.execute("ANALYZE")
    conn.close()
    return dest


def _replay(db: Path, workload: object, trace: Path, *extra: object) -> Path:
    argv = ["replay", "--target", f"sqlite:{db}", "--workload", workload, "--trace", trace,
            "--concurrency", "1", "--seed", "3", "--no-progress", *extra]
    assert main([str(a) for a in argv]) == 0
    return trace


@pytest.fixture(scope="module")
def saas_traces(saas_db: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from schemas import workload_path

    tmp = tmp_path_factory.mktemp("saas-gates")
    workload = workload_path("saas")
    good = _with(saas_db, tmp / "indexed.sqlite", AUDIT_INDEX)
    worse = _with(saas_db, tmp / "plain.sqlite")
    writes = _with(saas_db, tmp / "status.sqlite", AUDIT_INDEX, STATUS_INDEX)
    return {
        "before": _replay(good, workload, tmp / "before.parquet", "--requests", "200",
                          "--reads-only"),
        "again": _replay(good, workload, tmp / "again.parquet", "--requests", "200",
                         "--reads-only"),
        "after": _replay(worse, workload, tmp / "after.parquet", "--requests", "200",
                         "--reads-only"),
        # Writes change the database: these two run on copies of their own.
        "writes_before": _replay(_with(good, tmp / "w1.sqlite"), workload,
                                 tmp / "writes_before.parquet", "--requests", "150"),
        "writes_after": _replay(writes, workload, tmp / "writes_after.parquet",
                                "--requests", "150"),
    }


@pytest.fixture(scope="module")
def medical_trace(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("medical-gates")
    db = tmp / "medical.sqlite"
    shutil.copyfile(small_corpus, db)
    return _replay(db, "medical", tmp / "medical.parquet", "--requests", "150", "--reads-only")


# --- the grammar -------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "metric", "op", "limit", "template"), [
    ("p99<200ms", "p99", "<", 200.0, None),
    ("p99 < 0.2s", "p99", "<", 200.0, None),
    ("p99.9<=1s", "p99.9", "<=", 1000.0, None),
    ("search_papers:p95<60ms", "p95", "<", 60.0, "search_papers"),
    ("*:mean<5", "mean", "<", 5.0, "*"),
    ("error_rate<0.05", "error_rate", "<", 0.05, None),
    ("retry_rate<10%", "retry_rate", "<", 0.1, None),
    ("rows_read_per_exec<10000", "rows_read_per_exec", "<", 10000.0, None),
    ("dollars_per_month<$50", "dollars_per_month", "<", 50.0, None),
    ("rate>=100", "rate", ">=", 100.0, None),
])
def test_thresholds_parse(text, metric, op, limit, template) -> None:
    th = parse_threshold(text)
    assert (th.metric, th.op, th.template) == (metric, op, template)
    assert th.limit == pytest.approx(limit)


@pytest.mark.parametrize(("text", "words"), [
    ("p99", "expected [TEMPLATE:]METRIC OP VALUE"),
    ("p98<200ms", "unknown metric 'p98'"),
    ("p99<200", None),  # fine: ms by default
    ("p99<200kg", "unit 'kg'"),
    ("error_rate<5ms", "unit 'ms'"),
    ("error_rate<1.5", "fraction from 0 to 1"),
    ("p99=200ms", "expected"),
    ("p99<$5", "'$' is for dollars_per_month"),
])
def test_malformed_thresholds_are_named(text, words) -> None:
    if words is None:
        assert parse_threshold(text).limit == 200.0
        return
    with pytest.raises(UsageError, match=re.escape(words)) as info:
        parse_threshold(text)
    assert repr(text) in str(info.value)


# --- analyze --threshold on real traces ----------------------------------------------------------

def test_summary_separates_errors_drops_and_retries(saas_traces) -> None:
    s = summarize(load_trace(saas_traces["before"])).set_index("template")
    row = s.loc[ALL]
    assert row["count"] == row["errors"] + row["dropped"] + (row["count"] - row["errors"]
                                                              - row["dropped"])
    assert row["attempts"] >= row["count"] - row["dropped"]
    assert row["retry_rate"] == row["retried"] / (row["count"] - row["dropped"])
    # Reads only, priced: the bill is the sum of the templates' shares.
    assert row["usd_per_month"] == pytest.approx(s.drop(index=ALL)["usd_per_month"].sum())
    doubled = summarize(load_trace(saas_traces["before"]),
                        at_rate=2 * summarize(load_trace(saas_traces["before"])).attrs[
                            "units_per_s"]).set_index("template")
    assert doubled.loc[ALL, "usd_per_month"] >= row["usd_per_month"]


@pytest.mark.parametrize("schema", ["saas", "medical"])
def test_analyze_exit_status_follows_the_thresholds(schema, saas_traces, medical_trace,
                                                    capsys) -> None:
    trace = saas_traces["before"] if schema == "saas" else medical_trace
    s = summarize(load_trace(trace)).set_index("template")
    p99, reads = s.loc[ALL, "p99_ms"], s.loc[ALL, "rows_read_per_exec"]
    template = s.drop(index=ALL)["p95_ms"].idxmax()

    held = [f"p99<{p99 * 2 + 1:.3f}ms", "error_rate<0.05", f"rows_read_per_exec<{reads * 2 + 1:.0f}",
            f"{template}:p95<{s.loc[template, 'p95_ms'] * 2 + 1:.3f}ms", "retry_rate<0.1"]
    code, out, err = _run(["analyze", trace, *_flags(held)], capsys)
    assert code == 0, err
    assert f"{len(held)} held, 0 crossed" in out and "CROSSED" not in out

    crossed = [f"p99<{p99 / 2:.4f}ms", f"{template}:p95<{s.loc[template, 'p95_ms'] / 2:.4f}ms"]
    code, out, err = _run(["analyze", trace, *_flags(held + crossed)], capsys)
    assert code == 1, err
    assert f"{len(held)} held, 2 crossed" in out
    crossed_lines = [line for line in out.splitlines() if line.lstrip().startswith("CROSSED")]
    assert len(crossed_lines) == 2 and any(template in line for line in crossed_lines)


def test_check_thresholds_says_by_how_much(saas_traces) -> None:
    s = summarize(load_trace(saas_traces["after"]))
    p99 = float(s.set_index("template").loc[ALL, "p99_ms"])
    table = check_thresholds(s, [f"p99<{p99 / 4}ms", "*:max<100s"])
    first = table.iloc[0]
    assert first["crossed"] and first["by"] == pytest.approx(p99 * 3 / 4)
    assert first["by_ratio"] == pytest.approx(4.0)
    each = table[table["threshold"] == "*:max<100s"]
    assert len(each) == len(s) - 1 and not each["crossed"].any()


def test_bad_thresholds_exit_2_naming_them(saas_traces, capsys) -> None:
    code, out, err = _run(["analyze", saas_traces["before"], "--threshold", "p99<20zz"], capsys)
    assert code == 2 and "p99<20zz" in err and err.count("\n") == 1 and out == ""
    code, out, err = _run(["analyze", saas_traces["before"], "--threshold",
                           "no_such_template:p95<60ms"], capsys)
    assert code == 2 and "no_such_template" in err and "task_by_key" in err


def test_seed_alerts_flag_the_scans_of_an_unindexed_corpus(medical_trace, capsys) -> None:
    s = summarize(load_trace(medical_trace))
    table = check_thresholds(s, SEED_ALERTS)
    scan = table[table["metric"] == "scan_rate"].iloc[0]
    assert scan["value"] > 0.3 and scan["crossed"]  # index set `none`: most reads scan
    code, out, _ = _run(["analyze", medical_trace, "--seed-alerts"], capsys)
    assert code == 1 and "scan_rate<0.3" in out and "*:p99<60ms" in out


# --- compare --fail-on --------------------------------------------------------------------------

def test_compare_fail_on_catches_a_dropped_index(saas_traces, capsys) -> None:
    table = compare(load_trace(saas_traces["before"]), load_trace(saas_traces["after"]))
    row = table.set_index("template").loc["tenant_activity"]
    assert row["rows_read_change"] == "more" and row["change"] == "slower"
    assert row["rows_read_after"] > 10 * row["rows_read_before"]

    code, out, err = _run(["compare", saas_traces["before"], saas_traces["after"],
                           "--fail-on", "slower,more-rows"], capsys)
    assert code == 1, err
    assert "REGRESSION more-rows: tenant_activity" in out
    assert "REGRESSION slower: tenant_activity" in out
    assert "e+" not in out  # plain numbers, never 3.8e+04


def test_compare_fail_on_passes_the_same_database(saas_traces, capsys) -> None:
    code, out, err = _run(["compare", saas_traces["before"], saas_traces["again"],
                           "--fail-on", "more-rows,more-writes"], capsys)
    assert code == 0, err
    assert "no regression" in out


def test_compare_fail_on_more_writes(saas_traces, capsys) -> None:
    a, b = load_trace(saas_traces["writes_before"]), load_trace(saas_traces["writes_after"])
    table = compare(a, b, force=True)
    row = table.set_index("template").loc["move_task"]
    assert row["rows_written_after"] > row["rows_written_before"]
    assert row["rows_written_change"] == "more"
    assert "move_task" in set(regressions(table, ["more-writes"])["template"])
    code, out, err = _run(["compare", saas_traces["writes_before"], saas_traces["writes_after"],
                           "--fail-on", "more-writes", "--force"], capsys)
    assert code == 1 and "REGRESSION more-writes: move_task" in out, out + err


def test_fail_on_names_an_unknown_regression(saas_traces, capsys) -> None:
    code, out, err = _run(["compare", saas_traces["before"], saas_traces["again"],
                           "--fail-on", "slower,bigger"], capsys)
    assert code == 2 and "bigger" in err and "more-writes" in err and out == ""


def test_advise_prices_its_advice_in_dollars(saas_db, capsys) -> None:
    from schemas import workload_path

    code, out, err = _run(["advise", "--db", saas_db, "--workload", workload_path("saas"),
                           "--at-rate", "2000", "--no-progress"], capsys)
    assert code == 0, err
    line = next(x for x in out.splitlines() if x.startswith("D1 bill at 2,000 units/s"))
    before, after = (float(v.strip(" $a-zmonth").replace(",", "")) for v in
                     line.split(": ", 1)[1].split("->"))
    assert before > after > 0  # saas at 2,000 units/s pays for scans the advice removes
    assert "\r" not in err
    code, out, err = _run(["advise", "--db", saas_db, "--workload", workload_path("saas"),
                           "--at-rate", "-1"], capsys)
    assert code == 2 and "--at-rate -1" in err and out == ""


def test_the_report_front_page_flags_crossed_thresholds(saas_traces) -> None:
    from d1bench.report.headlines import threshold_headline
    from d1bench.report.index import index_page

    s = summarize(load_trace(saas_traces["after"]))
    p95 = float(s.set_index("template").loc["tenant_activity", "p95_ms"])
    checked = check_thresholds(s, [f"tenant_activity:p95<{p95 / 3}ms", "error_rate<0.05"])

    def page(frame) -> str:
        sidecar = {"notebook": "02_latency", "title": "Latency", "html": "02_latency.html",
                   "status": "ok", "headlines": [threshold_headline(frame).payload()]}
        return index_page([sidecar], generator="test")

    html = page(checked)
    assert "Thresholds crossed: 1" in html and "1 held, 1 crossed" in html
    flag = html[html.index('id="thresholds"'):html.index("</section>", html.index('id="thresholds"'))]
    assert "tenant_activity:p95&lt;" in flag and "&#9873;" in flag
    assert "error_rate" not in flag.split("</h2>", 1)[1].split("</p>", 1)[1]  # held: no flag
    assert "Thresholds: all held" in page(checked[~checked["crossed"]])
    plain = index_page([{"notebook": "01_corpus", "title": "Corpus", "html": "01.html",
                         "status": "ok", "headlines": []}], generator="test")
    assert 'id="thresholds"' not in plain


def test_retries_and_errors_are_counted_apart_on_a_faulty_d1(saas_db, tmp_path, capsys) -> None:
    """saas served as D1's REST API behind a proxy that drops and refuses requests at random."""
    from faultproxy import FaultProxy, SQLiteD1Server
    from schemas import workload_path

    from d1bench import load_workload, replay
    from d1bench.targets.d1 import D1Target

    db = tmp_path / "saas.sqlite"
    shutil.copyfile(saas_db, db)
    workload = load_workload(workload_path("saas")).reads_only()
    with SQLiteD1Server(str(db)) as server, \
            FaultProxy(server.base_url, seed=7, drop=0.08, retryable_message=0.08, rate_limit=0,
                       server_error=0, slow=0, retry_after=0) as proxy:
        target = D1Target(proxy.base_url, server.account_id, server.database_id, server.token,
                          backoff_base=0.001, max_attempts=2, seed=1)
        # Samplers are bound to the corpus directly, not through the faults.
        direct = D1Target(server.base_url, server.account_id, server.database_id, server.token)
        try:
            trace = replay(workload, target, concurrency=2, requests=120, seed=5,
                           progress=False, trace_path=tmp_path / "faulty.parquet",
                           bind_conn=direct.connect())
        finally:
            target.close()
            direct.close()
    r = trace.requests
    row = summarize(trace).set_index("template").loc[ALL]
    retried = int((r["attempts"] > 1).sum())
    failed = int((r["error_class"].notna() & (r["error_class"] != "dropped")).sum())
    assert retried > 0 and failed > 0  # with two attempts, some faults are retried, some fail twice
    assert (row["retried"], row["errors"], row["attempts"]) == (retried, failed,
                                                               int(r["attempts"].sum()))
    assert row["retry_rate"] == pytest.approx(retried / len(r))
    assert row["error_rate"] == pytest.approx(failed / len(r))

    code, out, _ = _run(["analyze", tmp_path / "faulty.parquet", "--threshold",
                         f"retry_rate<{row['retry_rate'] / 2:.4f}", "--threshold",
                         f"error_rate<{min(1.0, row['error_rate'] * 2):.4f}"], capsys)
    assert code == 1 and "1 held, 1 crossed" in out
    assert "retry rate" in out.splitlines()[1] and "attempts" in out.splitlines()[1]
