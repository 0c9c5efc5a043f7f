"""Workload files: loading, the errors bad files give, write classification, weights.

No database here: these are the checks a file passes before it meets a corpus.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from d1bench.errors import UsageError
from d1bench.sql.text import classify_write, scan_placeholders
from d1bench.workload import load_workload, parse_workload

GOOD = '''\
# a comment
[workload]
name = "tiny"
format = 1

[templates.by_id]
family = "retrieval"
weight = 3
sql = "SELECT * FROM papers WHERE id = ?"
params = [{ sampler = "id", table = "papers" }]

[templates.listing]
weight = 1
sql = """
SELECT id FROM papers
WHERE medical_specialty = ?
LIMIT 20"""
params = [{ sampler = "choice", values = ["Cardiology", "Oncology"] }]

[templates.reviews]
weight = 0
sql = "SELECT * FROM paper_reviews WHERE paper_id = ?"
params = [{ sampler = "id", table = "papers" }]

[templates.touch]
weight = 1
sql = "UPDATE papers SET citation_count = citation_count + 1 WHERE id = ?"
params = [{ sampler = "id", table = "papers" }]

[sessions.n_plus_1]
weight = 2
steps = [
    { template = "listing" },
    { template = "reviews", for_each_row = true, params = [{ sampler = "from_row", column = "id" }] },
]
'''


def write(tmp_path: Path, text: str, name: str = "w.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing ``needle``."""
    for n, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return n
    raise AssertionError(f"{needle!r} not in text")


# --- loading ---------------------------------------------------------------------


def test_load_good_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    w = load_workload(path)
    assert w.name == "tiny"
    assert w.source == str(path)
    assert list(w.templates) == ["by_id", "listing", "reviews", "touch"]
    t = w.templates["listing"]
    assert t.sql.startswith("SELECT id FROM papers") and t.sql.endswith("LIMIT 20")
    assert t.line == line_of(GOOD, "[templates.listing]")
    assert t.family == "other" and w.templates["touch"].family == "write"
    assert [p.kind for p in w.templates["by_id"].params] == ["id"]
    s = w.sessions["n_plus_1"]
    assert [step.template for step in s.steps] == ["listing", "reviews"]
    assert s.steps[1].for_each_row and s.steps[1].params[0].kind == "from_row"
    assert s.line == line_of(GOOD, "[sessions.n_plus_1]")


def test_shares_follow_weights_and_write_weight(tmp_path: Path) -> None:
    w = load_workload(write(tmp_path, GOOD))
    # no write_weight declared: every unit by its own weight (3 + 1 + 1 + 2 = 7)
    assert w.shares() == pytest.approx({"by_id": 3 / 7, "listing": 1 / 7, "touch": 1 / 7,
                                        "n_plus_1": 2 / 7})
    assert w.write_weight == pytest.approx(1 / 7)
    heavy = w.with_write_weight(0.5)
    assert heavy.shares()["touch"] == pytest.approx(0.5)
    assert heavy.shares()["by_id"] == pytest.approx(0.5 * 3 / 6)
    assert heavy.digest != w.digest and w.write_weight == pytest.approx(1 / 7)
    declared = load_workload(write(tmp_path, GOOD.replace("format = 1", "format = 1\nwrite_weight = 0.2"),
                                   "d.toml"))
    assert declared.shares()["touch"] == pytest.approx(0.2)
    assert sum(declared.shares().values()) == pytest.approx(1.0)
    # the session's reviews run once per listed row: 20 rows assumed
    freq = w.template_frequencies(rows_per_loop=20)
    assert freq["reviews"] == pytest.approx(2 / 7 * 20)
    assert freq["listing"] == pytest.approx(1 / 7 + 2 / 7)


def test_digest_ignores_comments_and_layout(tmp_path: Path) -> None:
    a = load_workload(write(tmp_path, GOOD, "a.toml"))
    relaid = GOOD.replace("# a comment", "# another comment\n\n").replace(
        'sql = "SELECT * FROM papers WHERE id = ?"', 'sql = "SELECT *  FROM papers\\n WHERE id = ?"')
    b = load_workload(write(tmp_path, relaid, "b.toml"))
    c = load_workload(write(tmp_path, GOOD.replace("weight = 3", "weight = 4"), "c.toml"))
    assert a.digest == b.digest
    assert a.digest != c.digest


def test_medical_ships_and_is_sound() -> None:
    w = load_workload("medical")
    assert w.name == "medical"
    families = {t.family for t in w.templates.values()}
    assert {"search", "retrieval", "citations", "analytics", "trials", "reviews", "semantic",
            "write"} <= families
    writes = {n for n, t in w.templates.items() if t.is_write}
    assert writes == {"record_reading", "bump_citation_count"}
    assert w.write_weight == pytest.approx(0.05)
    shares = w.shares()
    assert sum(shares.values()) == pytest.approx(1.0)
    assert sum(shares[n] for n in writes) == pytest.approx(0.05)
    assert all(re.search(r"[:@$][A-Za-z]", t.sql) is None for t in w.templates.values())
    assert all(len(t.params) <= 100 for t in w.templates.values())
    # the lint and advisor stages read every template with sqlglot
    assert all(t.parse_error is None and t.expression() is not None for t in w.templates.values())
    session = w.sessions["specialty_reviews_n_plus_1"]
    assert session.steps[1].for_each_row
    # the seed's flaws are kept: recursive CTE on cited_paper_id, LIKE over JSON, POW over json_each
    assert "WITH RECURSIVE" in w.templates["citation_network"].sql
    assert "json_extract(p.conditions, '$') LIKE ?" in w.templates["trials_by_condition"].sql
    assert "(ct.trial_phase = ? OR ? IS NULL)" in w.templates["trials_by_condition"].sql
    assert "POW(ev1.value - ev2.value, 2)" in w.templates["semantic_search"].sql
    assert "date('now'" not in " ".join(t.sql for t in w.templates.values())
    assert w.templates["recent_trends_view"].sql == "SELECT * FROM recent_trends"


def test_unknown_workload_name() -> None:
    with pytest.raises(UsageError, match=r"'nosuch': not one of the shipped workloads \(medical\)"):
        load_workload("nosuch")


# --- bad input: each names the file, the template (or session) and the line --------------

TEMPLATE_HEAD = "[templates.bad]"


def _bad_template(body: str) -> str:
    return GOOD + "\n" + TEMPLATE_HEAD + "\n" + textwrap.dedent(body)


BAD_TEMPLATES = [
    # (case, template body, expected message fragment, text on the expected line)
    ("param count", ('sql = "SELECT * FROM papers WHERE id = ? AND doi = ?"\n'
     'params = [{ sampler = "id", table = "papers" }]\n'),
     "has 2 placeholder(s) but 1 param(s)", "params = "),
    ("unknown sampler", ('sql = "SELECT * FROM papers WHERE id = ?"\n'
     'params = [{ sampler = "dice", table = "papers" }]\n'),
     "param 1: unknown sampler 'dice'", "dice"),
    ("missing option", ('sql = "SELECT * FROM papers WHERE id = ?"\nparams = [\n'
     '  { sampler = "int", min = 1, max = 9 },\n  { sampler = "column", table = "papers" },\n]\n'),
     "param 2: sampler 'column' needs 'column'", 'sampler = "column"'),
    ("unknown option", ('sql = "SELECT * FROM papers WHERE id = ?"\n'
     'params = [{ sampler = "id", tabel = "papers" }]\n'),
     "sampler 'id' has no option 'tabel'", "tabel"),
    ("bad option value", ('sql = "SELECT ?"\n'
     'params = [{ sampler = "int", min = 5, max = 1 }]\n'),
     "min (5) is greater than max (1)", "min = 5"),
    ("choice weights", ('sql = "SELECT ?"\n'
     'params = [{ sampler = "choice", values = [1, 2], weights = [1] }]\n'),
     "weights must be a list as long as values", "weights"),
    ("term band", 'sql = "SELECT ?"\nparams = [{ sampler = "term", band = "medium" }]\n',
     "band must be one of", "medium"),
    ("named placeholder", 'sql = "SELECT * FROM papers WHERE id = :id"\nparams = []\n',
     "named placeholder(s) :id: D1 allows only ? and ?NNN", "sql = "),
    ("two statements", 'sql = "SELECT 1; DELETE FROM papers"\nparams = []\n',
     "holds more than one statement", "sql = "),
    ("too many params", f'sql = "SELECT {", ".join(["?"] * 101)}"\nparams = []\n',
     "has 101 parameters; D1 allows at most 100", "sql = "),
    ("no sql", 'weight = 1\n', "needs sql = '''...'''", TEMPLATE_HEAD),
    ("unknown key", 'sql = "SELECT 1"\nwieght = 2\n', "unknown key 'wieght'", "wieght"),
    ("negative weight", 'sql = "SELECT 1"\nweight = -1\n', "weight must be a number >= 0",
     "weight = -1"),
    ("from_row outside a session", ('sql = "SELECT ?"\n'
     'params = [{ sampler = "from_row", column = "id" }]\n'),
     "from_row takes a value from a previous step's row", "params = "),
    ("same copies a later param", ('sql = "SELECT ?, ?"\n'
     'params = [{ sampler = "same", param = 2 }, { sampler = "int", min = 1, max = 2 }]\n'),
     "same must copy an earlier parameter", "same"),
]


@pytest.mark.parametrize("case,body,fragment,on_line", BAD_TEMPLATES,
                         ids=[c[0] for c in BAD_TEMPLATES])
def test_bad_template_names_file_template_and_line(tmp_path: Path, case: str, body: str,
                                                   fragment: str, on_line: str) -> None:
    text = _bad_template(body)
    path = write(tmp_path, text)
    expected_line = max(line_of(text[len(GOOD):], on_line) + GOOD.count("\n"),
                        line_of(text, TEMPLATE_HEAD))
    with pytest.raises(UsageError) as info:
        load_workload(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{expected_line}: template 'bad': "), message
    assert fragment in message


BAD_SESSIONS = [
    ("unknown template", '{ template = "listing" },\n    { template = "nope" },',
     "step 2: unknown template 'nope'", '"nope"'),
    ("for_each_row first", '{ template = "listing", for_each_row = true },',
     "step 1: for_each_row needs a previous step", "for_each_row = true"),
    ("from_row in first step", ('{ template = "reviews", params = [{ sampler = "from_row", '
     'column = "id" }] },'), "the first step of a session has no previous row", "from_row"),
    ("param count", '{ template = "listing" },\n    { template = "reviews", params = [] },',
     "template 'reviews' has 1 placeholder(s) but the step gives 0 param(s)", "params = []"),
]


@pytest.mark.parametrize("case,steps,fragment,on_line", BAD_SESSIONS,
                         ids=[c[0] for c in BAD_SESSIONS])
def test_bad_session_names_file_session_and_line(tmp_path: Path, case: str, steps: str,
                                                 fragment: str, on_line: str) -> None:
    text = GOOD + f"\n[sessions.broken]\nweight = 1\nsteps = [\n    {steps}\n]\n"
    path = write(tmp_path, text)
    expected_line = GOOD.count("\n") + line_of(text[len(GOOD):], on_line)
    with pytest.raises(UsageError) as info:
        load_workload(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{expected_line}: session 'broken': "), message
    assert fragment in message


def test_invalid_toml_names_its_line(tmp_path: Path) -> None:
    text = GOOD + '\n[templates.oops]\nsql = "SELECT 1\n'
    path = write(tmp_path, text)
    with pytest.raises(UsageError, match=rf"^{re.escape(str(path))}:{text.count(chr(10))}: "
                                         r"not valid TOML"):
        load_workload(path)


def test_duplicate_template_is_a_toml_error(tmp_path: Path) -> None:
    text = GOOD + '\n[templates.by_id]\nsql = "SELECT 1"\n'
    path = write(tmp_path, text)
    header = text.count("\n") - 1  # the second [templates.by_id]
    with pytest.raises(UsageError, match=rf"^{re.escape(str(path))}:{header}: not valid TOML: "
                                         r"Cannot declare \('templates', 'by_id'\) twice"):
        load_workload(path)


def test_workload_level_errors(tmp_path: Path) -> None:
    bad_ww = GOOD.replace("format = 1", "format = 1\nwrite_weight = 2")
    with pytest.raises(UsageError, match=r":5: write_weight must be a number in \[0, 1\]"):
        load_workload(write(tmp_path, bad_ww, "a.toml"))
    no_writes = "[workload]\nwrite_weight = 0.1\n[templates.a]\nsql = \"SELECT 1\"\n"
    with pytest.raises(UsageError, match=r":2: write_weight is 0.1 but no write template"):
        load_workload(write(tmp_path, no_writes, "b.toml"))
    with pytest.raises(UsageError, match=r":4: format 2 is not one this version reads"):
        load_workload(write(tmp_path, GOOD.replace("format = 1", "format = 2"), "c.toml"))
    with pytest.raises(UsageError, match=r":1: unknown top-level key 'title'"):
        load_workload(write(tmp_path, 'title = "x"\n' + GOOD, "d.toml"))


def test_all_problems_are_collected(tmp_path: Path) -> None:
    text = _bad_template('sql = "SELECT ?"\nparams = []\n') + (
        '\n[templates.worse]\nsql = "SELECT :x"\n\n[sessions.s2]\nsteps = [{ template = "gone" }]\n')
    workload, problems = parse_workload(text, "mem.toml")
    assert workload is None
    found = {(p.kind, p.name, p.line) for p in problems}
    assert ("template", "bad", line_of(text, "params = []")) in found
    assert ("template", "worse", line_of(text, 'sql = "SELECT :x"')) in found
    assert ("session", "s2", line_of(text, '"gone"')) in found
    with pytest.raises(UsageError, match=r"and 2 more problem"):
        load_workload(write(tmp_path, text))


# --- SQL text ----------------------------------------------------------------------------

@pytest.mark.parametrize("sql,is_write", [
    ("SELECT * FROM papers WHERE id = ?", False),
    ("WITH r AS (SELECT 1 AS x) SELECT x FROM r", False),
    ("WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < ?) SELECT n FROM c",
     False),
    ("SELECT 1 UNION ALL SELECT 2", False),
    ("VALUES (1), (2)", False),
    ("PRAGMA table_info(papers)", False),
    ("PRAGMA user_version", False),
    ("PRAGMA user_version = 3", True),
    ("PRAGMA journal_mode", True),
    ("SELECT * FROM papers p JOIN papers_fts ON p.id = papers_fts.rowid WHERE papers_fts MATCH ?",
     False),
    ("INSERT INTO reading_history (user_id) VALUES (?)", True),
    ("INSERT OR REPLACE INTO users (id) VALUES (?)", True),
    ("REPLACE INTO users (id) VALUES (?)", True),
    ("UPDATE papers SET citation_count = citation_count + 1 WHERE id = ?1", True),
    ("DELETE FROM citations WHERE id = ?", True),
    ("WITH old AS (SELECT id FROM papers) DELETE FROM citations WHERE citing_paper_id IN old", True),
    ("CREATE INDEX idx_papers_doi ON papers (doi)", True),
    ("DROP INDEX idx_papers_doi", True),
    ("ALTER TABLE papers ADD COLUMN x TEXT", True),
    ("ANALYZE", True),
])
def test_classify_write(sql: str, is_write: bool, tmp_path: Path) -> None:
    import apsw
    import apsw.ext

    from d1bench.schema import create_schema

    assert classify_write(sql)[0] is is_write
    # and SQLite agrees, on a database with the schema
    db = apsw.Connection(str(tmp_path / "schema.sqlite"))
    create_schema(db)
    if "idx_papers_doi" in sql and sql.startswith("DROP"):
        db.execute("CREATE INDEX idx_papers_doi ON papers (doi)")
    assert apsw.ext.query_info(db, sql).is_readonly is not is_write


def test_placeholders_follow_sqlite_numbering() -> None:
    assert scan_placeholders("SELECT ?, ?5, ?").count == 6
    assert scan_placeholders("SELECT '?', \"?\", [?], `?` /* ? */ -- ?\n").count == 0
    assert scan_placeholders("SELECT 'it''s ?', ?").count == 1
    assert scan_placeholders("SELECT @a, $b, :c").named == ("@a", "$b", ":c")
    assert scan_placeholders("SELECT 1; -- done\n").trailing == ""


# --- the documentation's example and table are true ---------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "workloads.md"


def test_docs_example_loads(tmp_path: Path) -> None:
    text = DOCS.read_text(encoding="utf-8")
    example = re.search(r"```toml\n(.*?)```", text, re.DOTALL)
    assert example is not None
    w = load_workload(write(tmp_path, example.group(1), "my.toml"))
    assert w.name == "example" and w.write_weight == pytest.approx(0.1)
    assert w.sessions["reviews_n_plus_1"].steps[1].for_each_row


def test_docs_table_gives_the_medical_shares() -> None:
    text = DOCS.read_text(encoding="utf-8")
    rows = re.findall(r"^\| (?:session )?`(\w+)` \|[^|]*\| (\d+)% \|", text, re.MULTILINE)
    shares = load_workload("medical").shares()
    assert {name for name, _ in rows} == set(shares)
    for name, percent in rows:
        assert shares[name] == pytest.approx(int(percent) / 100), name
