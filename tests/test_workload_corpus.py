"""Workloads against a real corpus: binding samplers, drawing, sessions, and the checker.

Every test runs real SQLite through a small APSW adapter speaking the target
Connection protocol (the same protocol the SQLite target implements).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import apsw
import pytest

from d1bench.cli import main
from d1bench.errors import TargetError, UsageError
from d1bench.targets.base import Connection, Meta, PlanStep, Result
from d1bench.workload import check_workload, load_workload


class ApswConnection(Connection):
    """A Connection over APSW that counts the statements it runs."""

    def __init__(self, path: Path, readonly: bool = True) -> None:
        flags = apsw.SQLITE_OPEN_READONLY if readonly else apsw.SQLITE_OPEN_READWRITE
        self.db = apsw.Connection(str(path), flags=flags)
        self.statements: list[str] = []

    def execute(self, sql: str, params: Any = ()) -> Result:
        self.statements.append(sql)
        cursor = self.db.cursor()
        try:
            cursor.execute(sql, tuple(params))
            try:
                columns = tuple(d[0] for d in cursor.getdescription())
            except apsw.ExecutionCompleteError:
                columns = ()
            rows = [tuple(r) for r in cursor]
        except apsw.Error as exc:
            raise TargetError(str(exc), error_class="syntax") from None
        return Result(columns, rows, Meta(changes=self.db.changes()))

    def explain(self, sql: str, params: Any = ()) -> list[PlanStep]:
        rows = self.execute("EXPLAIN QUERY PLAN " + sql, params).rows
        return [PlanStep(r[0], r[1], r[3]) for r in rows]

    def close(self) -> None:
        self.db.close()


@pytest.fixture
def conn(small_corpus: Path):
    c = ApswConnection(small_corpus)
    yield c
    c.close()


def one(conn: ApswConnection, sql: str, *params: Any) -> Any:
    return conn.db.execute(sql, params).fetchall()[0][0]


def run_unit(conn: Connection, unit: Any) -> list[tuple[Any, Result]]:
    """Drive a unit's steps as a replay does; return (call, result) pairs."""
    done = []
    steps = unit.steps()
    call = next(steps)
    while True:
        result = conn.execute(call.template.sql, call.params)
        done.append((call, result))
        try:
            call = steps.send(result)
        except StopIteration:
            return done


# --- binding ------------------------------------------------------------------------


def test_medical_binds_and_every_read_template_runs(conn: ApswConnection) -> None:
    w = load_workload("medical")
    bound = w.bind(conn, seed=1)
    rng = random.Random(5)
    returned = {}
    for name, template in w.templates.items():
        if template.is_write:
            continue
        rows = 0
        for _ in range(2 if name == "semantic_search" else 8):  # it is slow on purpose
            params = bound.draw_params(name, rng)
            assert len(params) == len(template.params)
            rows += len(conn.execute(template.sql, params).rows)
        returned[name] = rows
    # lookups by sampled keys always find their row
    assert returned["paper_by_id"] == 8 and returned["paper_by_doi"] == 8
    assert returned["top_cited_in_specialty"] >= 8
    # the view follows the wall clock; every other family finds rows on this corpus
    assert all(rows > 0 for name, rows in returned.items() if name != "recent_trends_view"), returned


def test_sampled_values_come_from_the_corpus(conn: ApswConnection) -> None:
    w = load_workload("medical")
    bound = w.bind(conn, seed=2)
    rng = random.Random(0)
    as_of = dt.date.fromisoformat(one(conn, "SELECT value FROM corpus_meta WHERE key = 'as_of'")[:10])
    assert bound.as_of == as_of
    for _ in range(20):
        (pid,) = bound.draw_params("paper_by_id", rng)
        assert one(conn, "SELECT count(*) FROM papers WHERE id = ?", pid) == 1
        (doi,) = bound.draw_params("paper_by_doi", rng)
        assert one(conn, "SELECT count(*) FROM papers WHERE doi = ?", doi) == 1
        (cited,) = bound.draw_params("citation_network", rng)[:1]
        assert one(conn, "SELECT count(*) FROM citations WHERE cited_paper_id = ?", cited) >= 1
        term, specialty, since = bound.draw_params("search_papers", rng)
        assert one(conn, "SELECT count(*) FROM papers_fts WHERE papers_fts MATCH ?", term) > 0
        assert one(conn, "SELECT count(*) FROM papers WHERE medical_specialty = ?", specialty) > 0
        assert as_of - dt.timedelta(days=3650) <= dt.date.fromisoformat(since) \
            <= as_of - dt.timedelta(days=365)
        pattern, phase, phase_again = bound.draw_params("trials_by_condition", rng)
        assert pattern.startswith("%") and pattern.endswith("%") and phase == phase_again
        assert bound.draw_params("recent_trends", rng) == ((as_of - dt.timedelta(days=30)).isoformat(),)
        vector, limit = bound.draw_params("semantic_search", rng)
        dim = one(conn, "SELECT json_array_length(embedding_vector) FROM papers "
                        "WHERE embedding_vector IS NOT NULL LIMIT 1")
        assert one(conn, "SELECT json_array_length(?)", vector) == dim and limit == 20
    frame = bound.samplers()
    assert set(frame["template"]) == {n for n, t in w.templates.items() if t.params}
    assert frame.loc[frame["sampler"] == "id(papers)", "pool_size"].min() > 100


def test_common_terms_are_more_frequent_than_rare_ones(conn: ApswConnection, tmp_path: Path) -> None:
    path = tmp_path / "terms.toml"
    path.write_text('''
[templates.common]
sql = "SELECT count(*) FROM papers_fts WHERE papers_fts MATCH ?"
params = [{ sampler = "term", band = "common" }]
[templates.rare]
sql = "SELECT count(*) FROM papers_fts WHERE papers_fts MATCH ?"
params = [{ sampler = "term", band = "rare" }]
''')
    w = load_workload(path)
    bound = w.bind(conn, seed=3)
    rng = random.Random(1)

    def mean_hits(name: str) -> float:
        hits = [conn.execute(w.templates[name].sql, bound.draw_params(name, rng)).rows[0][0]
                for _ in range(30)]
        return sum(hits) / len(hits)

    common, rare = mean_hits("common"), mean_hits("rare")
    assert common > 5 * rare, (common, rare)


def test_term_sources(corpus_copy: Path, tmp_path: Path) -> None:
    from d1bench._paths import inputs_dir

    path = tmp_path / "terms.toml"
    path.write_text('''
[templates.vocabulary]
sql = "SELECT ?"
params = [{ sampler = "term", band = "common", source = "vocabulary" }]
[templates.auto]
sql = "SELECT ?"
params = [{ sampler = "term" }]
''')
    w = load_workload(path)
    rank = [ln.strip() for ln in (inputs_dir() / "vocabulary" / "terms.txt").read_text().splitlines()
            if ln.strip() and not ln.startswith("#")]
    c = ApswConnection(corpus_copy, readonly=False)
    try:
        bound = w.bind(c, seed=0)
        frame = bound.samplers().set_index("template")
        assert frame.loc["vocabulary", "source"].startswith("Zipf ranks of vocabulary terms.txt")
        assert frame.loc["auto", "source"].startswith("document frequencies in ")
        rng = random.Random(0)
        drawn = {bound.draw_params("vocabulary", rng)[0] for _ in range(200)}
        assert drawn and all(rank.index(t) < len(rank) * 0.1 for t in drawn)
        # with an fts5vocab table, its exact document frequencies are used
        c.execute("CREATE VIRTUAL TABLE papers_vocab USING fts5vocab(papers_fts, 'row')")
        bound = w.bind(c, seed=0)
        source = bound.samplers().set_index("template").loc["auto", "source"]
        assert source.startswith("document frequencies from fts5vocab table papers_vocab")
        term = bound.draw_params("auto", rng)[0]
        assert one(c, "SELECT doc FROM papers_vocab WHERE term = ?", term) > 0
    finally:
        c.close()


def test_draws_are_deterministic_for_a_seed(small_corpus: Path) -> None:
    w = load_workload("medical")

    def sequence(bind_seed: int, draw_seed: int) -> list[tuple[str, Any]]:
        c = ApswConnection(small_corpus)
        try:
            bound = w.bind(c, seed=bind_seed)
        finally:
            c.close()
        rng = random.Random(draw_seed)
        units = [bound.draw(rng) for _ in range(300)]
        return [(u.name, u.params if u.kind == "query" else u.seed) for u in units]

    first = sequence(11, 4)
    assert first == sequence(11, 4)
    assert first != sequence(12, 4)
    assert first != sequence(11, 5)


def test_drawing_runs_no_sql_and_follows_the_weights(conn: ApswConnection) -> None:
    w = load_workload("medical")
    bound = w.bind(conn, seed=0)
    before = len(conn.statements)
    assert before > 0
    rng = random.Random(9)
    units = [bound.draw(rng) for _ in range(20_000)]
    for unit in units[:200]:
        next(unit.steps())  # the first call of every unit is ready without a query
    assert len(conn.statements) == before
    counts: dict[str, int] = {}
    for unit in units:
        counts[unit.name] = counts.get(unit.name, 0) + 1
    shares = w.shares()
    for name, share in shares.items():
        assert abs(counts.get(name, 0) / len(units) - share) < 0.015, name
    writes = sum(counts.get(n, 0) for n, t in w.templates.items() if t.is_write)
    assert abs(writes / len(units) - 0.05) < 0.01


# --- sessions -----------------------------------------------------------------------


def draw_kind(bound: Any, kind: str, name: str | None = None, seed: int = 0) -> Any:
    rng = random.Random(seed)
    for _ in range(10_000):
        unit = bound.draw(rng)
        if unit.kind == kind and (name is None or unit.name == name):
            return unit
    raise AssertionError(f"no {kind} drawn")


def test_n_plus_1_session_fetches_each_rows_reviews(conn: ApswConnection) -> None:
    w = load_workload("medical")
    bound = w.bind(conn, seed=0)
    unit = draw_kind(bound, "session", "specialty_reviews_n_plus_1")
    done = run_unit(conn, unit)
    (first, listing), rest = done[0], done[1:]
    assert first.template.name == "list_specialty_papers" and first.step == 0
    n = len(listing.rows)
    assert 0 < n <= 20
    assert n == one(conn, "SELECT min(20, count(*)) FROM papers WHERE medical_specialty = ?",
                    *first.params)
    ids = [row[listing.columns.index("id")] for row in listing.rows]
    assert [call.template.name for call, _ in rest] == ["paper_reviews"] * n
    assert [call.params for call, _ in rest] == [(i,) for i in ids]
    assert [call.row for call, _ in rest] == list(range(n))
    assert all(call.step == 1 for call, _ in rest)
    # each step really ran: its reviews are the paper's
    for call, result in rest:
        expected = one(conn, "SELECT count(*) FROM paper_reviews WHERE paper_id = ?", call.params[0])
        assert len(result.rows) == expected
    # a session replays identically from its unit
    assert [c.params for c, _ in run_unit(conn, unit)] == [c.params for c, _ in done]


def test_session_rows_feed_later_steps(conn: ApswConnection, tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('''
[templates.top]
weight = 0
sql = "SELECT id, doi FROM papers WHERE medical_specialty = ? ORDER BY citation_count DESC LIMIT 10"
params = [{ sampler = "column", table = "papers", column = "medical_specialty" }]
[templates.nothing]
weight = 0
sql = "SELECT id, doi FROM papers WHERE id < 0 AND medical_specialty = ?"
params = [{ sampler = "column", table = "papers", column = "medical_specialty" }]
[templates.by_doi]
weight = 0
sql = "SELECT id, title FROM papers WHERE doi = ?"
params = [{ sampler = "column", table = "papers", column = "doi" }]
[templates.title_like]
weight = 0
sql = "SELECT count(*) FROM papers WHERE title LIKE ?"
params = [{ sampler = "fixed", value = "x" }]
[sessions.open_top_hit]
steps = [
    { template = "top" },
    { template = "by_doi", params = [{ sampler = "from_row", column = "doi" }] },
    { template = "title_like", params = [{ sampler = "from_row", column = "title", format = "{}%" }] },
]
[sessions.capped]
steps = [
    { template = "top" },
    { template = "by_doi", for_each_row = true, max_rows = 3, params = [{ sampler = "from_row", column = "doi" }] },
]
[sessions.empty_first]
steps = [
    { template = "nothing" },
    { template = "by_doi", params = [{ sampler = "from_row", column = "doi" }] },
    { template = "by_doi", for_each_row = true, params = [{ sampler = "from_row", column = "doi" }] },
]
''')
    bound = load_workload(path).bind(conn, seed=0)
    done = run_unit(conn, draw_kind(bound, "session", "open_top_hit"))
    (_, top), (opened, page), (like, count) = done
    assert opened.params == (top.rows[0][1],) and opened.row == 0
    assert page.rows[0][0] == top.rows[0][0]
    assert like.params == (page.rows[0][1] + "%",) and count.rows[0][0] >= 1
    done = run_unit(conn, draw_kind(bound, "session", "capped"))
    assert [c.params for c, _ in done[1:]] == [(row[1],) for row in done[0][1].rows[:3]]
    # no rows: a step that needs one is skipped, and so is a loop over none
    done = run_unit(conn, draw_kind(bound, "session", "empty_first"))
    assert [c.template.name for c, _ in done] == ["nothing"]


def test_a_failed_step_ends_the_session(conn: ApswConnection) -> None:
    bound = load_workload("medical").bind(conn, seed=0)
    steps = draw_kind(bound, "session").steps()
    call = next(steps)
    assert call.template.name == "list_specialty_papers"
    with pytest.raises(StopIteration):
        steps.send(None)


def test_a_query_unit_yields_once(conn: ApswConnection) -> None:
    bound = load_workload("medical").bind(conn, seed=0)
    unit = draw_kind(bound, "query", "paper_by_id")
    steps = unit.steps()
    call = next(steps)
    assert call.template.name == "paper_by_id" and call.params == unit.params
    with pytest.raises(StopIteration):
        steps.send(conn.execute(call.template.sql, call.params))


def test_write_templates_write(corpus_copy: Path) -> None:
    c = ApswConnection(corpus_copy, readonly=False)
    try:
        w = load_workload("medical")
        bound = w.bind(c, seed=0)
        before = one(c, "SELECT count(*) FROM reading_history")
        rng = random.Random(3)
        for _ in range(5):
            params = bound.draw_params("record_reading", rng)
            assert c.execute(w.templates["record_reading"].sql, params).meta.changes == 1
        assert one(c, "SELECT count(*) FROM reading_history") == before + 5
        (pid,) = bound.draw_params("bump_citation_count", rng)
        cited = one(c, "SELECT citation_count FROM papers WHERE id = ?", pid)
        c.execute(w.templates["bump_citation_count"].sql, (pid,))
        assert one(c, "SELECT citation_count FROM papers WHERE id = ?", pid) == cited + 1
    finally:
        c.close()


def test_bind_error_names_file_template_and_line(conn: ApswConnection, tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text('[templates.ok]\nsql = "SELECT 1"\n\n'
                    '[templates.ghost]\nsql = "SELECT ?"\n'
                    'params = [{ sampler = "id", table = "ghosts" }]\n')
    # the params line, not the template's header
    with pytest.raises(UsageError, match=rf"^{path}:6: template 'ghost': param 1 \(id\(ghosts\)\): "
                                         r"no table ghosts in the database"):
        load_workload(path).bind(conn)


# --- check_workload -------------------------------------------------------------------


def test_check_passes_medical_on_a_real_corpus(small_corpus: Path) -> None:
    problems = check_workload("medical", small_corpus)
    assert list(problems.columns) == ["file", "line", "kind", "template", "problem", "severity"]
    assert problems.empty, problems.to_string()


BROKEN = '''\
[workload]
name = "broken"

[templates.listing]
sql = "SELECT id FROM papers WHERE medical_specialty = ? LIMIT 5"
params = [{ sampler = "column", table = "papers", column = "medical_specialty" }]

[templates.ghost_table]
sql = "SELECT * FROM ghosts WHERE id = ?"
params = [{ sampler = "int", min = 1, max = 5 }]

[templates.wrong_count]
sql = "SELECT * FROM papers WHERE id = ? AND doi = ?"
params = [{ sampler = "id", table = "papers" }]

[templates.bad_sampler]
sql = "SELECT * FROM papers WHERE id = ?"
params = [{ sampler = "column", table = "papers", column = "no_such_column" }]

[templates.reviews]
weight = 0
sql = "SELECT * FROM paper_reviews WHERE paper_id = ?"
params = [{ sampler = "id", table = "papers" }]

[sessions.lost]
steps = [{ template = "listing" }, { template = "vanished" }]

[sessions.wrong_column]
steps = [
    { template = "listing" },
    { template = "reviews", for_each_row = true, params = [{ sampler = "from_row", column = "paper_id" }] },
]
'''


def test_check_reports_every_problem_with_its_line(small_corpus: Path, tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(BROKEN)
    problems = check_workload(path, small_corpus)
    lines = BROKEN.splitlines()

    def line(needle: str) -> int:
        return next(n for n, text in enumerate(lines, 1) if needle in text)

    found = {(r.kind, r.template, r.line): r.problem for r in problems.itertuples()}
    assert set(problems["file"]) == {str(path)}
    assert (problems["severity"] == "error").all()
    assert "no such table: ghosts" in found[("template", "ghost_table", line("[templates.ghost_table]"))]
    assert "2 placeholder(s) but 1 param(s)" in found[("template", "wrong_count", line("params = [{ sampler = \"id\", table = \"papers\" }]"))]
    # the column the user wrote, named with its table, on the params line (not the alias t.)
    bad = found[("template", "bad_sampler", line('column = "no_such_column"'))]
    assert "no column papers.no_such_column (it has id, " in bad and "t." not in bad
    assert "unknown template 'vanished'" in found[("session", "lost", line('"vanished"'))]
    assert "takes column 'paper_id' from step 1 (listing), which returns id" in \
        found[("session", "wrong_column", line('column = "paper_id"'))]
    assert len(problems) == 5, problems.to_string()
    assert list(problems["line"]) == sorted(problems["line"])


def test_check_catches_a_wrong_write_flag(small_corpus: Path) -> None:
    w = load_workload("medical")
    t = w.templates["paper_by_id"]
    lying = replace(w, templates=MappingProxyType({**w.templates, t.name: replace(t, is_write=True)}))
    problems = check_workload(lying, small_corpus)
    assert list(problems["template"]) == ["paper_by_id"]
    assert "sqlglot classifies it as a write but SQLite says it is read-only" in problems["problem"][0]


# --- CLI ---------------------------------------------------------------------------


def test_cli_check_exit_status_and_output(small_corpus: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["workload", "check", "medical", "--db", str(small_corpus)]) == 0
    assert "no problems" in capsys.readouterr().out
    path = tmp_path / "broken.toml"
    path.write_text(BROKEN)
    assert main(["workload", "check", str(path), "--db", str(small_corpus)]) == 2
    out = capsys.readouterr().out
    assert f"{path}:8: error: template 'ghost_table': does not prepare on this database" in out
    assert "5 error(s), 0 warning(s)" in out
    assert main(["workload", "check", str(path), "--db", str(tmp_path / "none.sqlite")]) == 2
    assert "no such database file" in capsys.readouterr().err
    # warnings alone (D1 would refuse it; SQLite runs it) do not fail a check
    local = tmp_path / "local.toml"
    local.write_text('[templates.mode]\nsql = "PRAGMA journal_mode"\n')
    assert main(["workload", "check", str(local), "--db", str(small_corpus)]) == 0
    out = capsys.readouterr().out
    assert f"{local}:1: warning: template 'mode': D1 would refuse it" in out
    assert "0 error(s), 1 warning(s)" in out


def test_cli_show_lists_templates(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["workload", "show", "medical", "--sql"]) == 0
    out = capsys.readouterr().out
    w = load_workload("medical")
    for name in [*w.templates, *w.sessions]:
        assert name in out
    assert "list_specialty_papers -> paper_reviews (each row)" in out
    assert "WITH RECURSIVE citation_network AS" in out
    assert main(["workload", "show", "nosuch"]) == 2


def test_binding_leaves_the_corpus_unchanged(small_corpus: Path) -> None:
    before = small_corpus.read_bytes()
    c = ApswConnection(small_corpus)
    load_workload("medical").bind(c, seed=0)
    c.close()
    assert small_corpus.read_bytes() == before
