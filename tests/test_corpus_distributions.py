"""Each realism claim of the corpus generator, checked on one 20,000-paper corpus.

The corpus is built once for the module (a few seconds).  The thresholds are the
claims the generator's documentation makes, with room for sampling noise.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import apsw
import numpy as np
import pytest
from scipy import stats as sps

from d1bench import generate_corpus
from d1bench.corpus import stats
from d1bench.corpus.vocabulary import EVIDENCE_LEVELS, load_vocabulary

PAPERS = 20_000
AS_OF = "2026-11-01"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus20k") / "c.sqlite"
    generate_corpus(path, papers=PAPERS, seed=11, as_of=AS_OF)
    return path


@pytest.fixture(scope="module")
def db(corpus: Path):
    conn = apsw.Connection(str(corpus), flags=apsw.SQLITE_OPEN_READONLY)
    yield lambda sql, *params: conn.execute(sql, params).fetchall()
    conn.close()


def one(db, sql, *params):
    return db(sql, *params)[0][0]


def days_before(n: int) -> str:
    return (dt.date.fromisoformat(AS_OF) - dt.timedelta(days=n)).isoformat()


# --- row counts ---------------------------------------------------------------------

def test_row_ratios(db):
    assert one(db, "SELECT count(*) FROM papers") == PAPERS
    assert one(db, "SELECT count(*) FROM users") == PAPERS // 50
    assert one(db, "SELECT count(*) FROM paper_reviews") == PAPERS // 4
    assert 4.0 <= one(db, "SELECT count(*) FROM citations") / PAPERS <= 7.0
    assert 1.7 <= one(db, "SELECT count(*) FROM reading_history") / PAPERS <= 2.3
    assert 0.02 <= one(db, "SELECT count(*) FROM clinical_trials") / PAPERS <= 0.06


# --- full-text terms ------------------------------------------------------------------

def test_term_frequencies_are_zipf_like(corpus):
    terms = stats.term_frequencies(corpus, column="abstract")
    rank, docs = terms["rank"].to_numpy(), terms["documents"].to_numpy()
    window = (rank >= 10) & (rank <= 1000)
    fit = sps.linregress(np.log(rank[window]), np.log(docs[window]))
    assert -1.3 <= fit.slope <= -0.7
    assert fit.rvalue ** 2 >= 0.95


def test_fts_queries_range_from_very_common_to_very_selective(corpus, db):
    terms = stats.term_frequencies(corpus)
    assert list(terms.columns) == ["rank", "term", "documents", "occurrences"]
    assert terms["documents"].is_monotonic_decreasing
    count = lambda term: one(db, "SELECT count(*) FROM papers_fts WHERE papers_fts MATCH ?",
                             f'"{term}"')
    common = terms.iloc[20]
    middle = terms[(terms["documents"] > 0.005 * PAPERS) & (terms["documents"] < 0.02 * PAPERS)]
    rare = terms[terms["documents"] <= 3]
    assert count(common.term) == common.documents > 0.5 * PAPERS
    assert len(middle) >= 100
    assert len(rare) >= 500
    assert 1 <= count(rare.iloc[0].term) <= 3
    # the limit parameter keeps the most frequent
    assert stats.term_frequencies(corpus, limit=5)["term"].tolist() == terms["term"][:5].tolist()


# --- specialties, dates -----------------------------------------------------------------

def test_specialties_are_skewed(corpus):
    frame = stats.papers_per_specialty(corpus)
    assert set(frame["medical_specialty"]) == set(load_vocabulary().specialties)
    share = frame["share"].to_numpy()
    assert share[0] >= 0.12                       # Oncology, the largest
    assert share[0] >= 5 * np.median(share)
    assert share[:3].sum() >= 0.3
    assert share[-1] <= 0.01
    assert frame["papers"].sum() == PAPERS


def test_publication_dates_span_twenty_years_and_grow(corpus, db):
    first, last = db("SELECT min(publication_date), max(publication_date) FROM papers")[0]
    assert days_before(20 * 366) <= first <= days_before(20 * 365 - 30)
    assert days_before(30) <= last < AS_OF
    early = one(db, "SELECT count(*) FROM papers WHERE publication_date < ?", days_before(15 * 365))
    late = one(db, "SELECT count(*) FROM papers WHERE publication_date >= ?", days_before(5 * 365))
    assert late >= 2 * early
    years = stats.papers_per_year(corpus)
    full = years.iloc[1:-1]                        # the first and last calendar years are partial
    assert sps.spearmanr(full["year"], full["papers"]).statistic >= 0.95
    assert years["papers"].sum() == PAPERS
    # ids follow dates
    assert one(db, "SELECT count(*) FROM papers a JOIN papers b ON b.id = a.id + 1 "
                   "WHERE b.publication_date < a.publication_date") == 0


# --- citations ------------------------------------------------------------------------------

def test_citations_point_to_older_papers(db):
    assert one(db, """
        SELECT count(*) FROM citations c
        JOIN papers citing ON citing.id = c.citing_paper_id
        JOIN papers cited ON cited.id = c.cited_paper_id
        WHERE cited.publication_date >= citing.publication_date""") == 0
    assert one(db, "SELECT count(*) FROM citations WHERE cited_paper_id >= citing_paper_id") == 0


def test_citation_count_matches_the_citations_table(db):
    assert one(db, """
        WITH n AS (SELECT cited_paper_id AS id, count(*) AS k FROM citations GROUP BY 1)
        SELECT count(*) FROM papers p LEFT JOIN n ON n.id = p.id
        WHERE p.citation_count != coalesce(n.k, 0)""") == 0


def test_citations_follow_preferential_attachment(corpus, db):
    counts = np.array([k for (k,) in db("SELECT citation_count FROM papers")])
    top = np.sort(counts)[::-1][: PAPERS // 100]
    assert top.sum() / counts.sum() >= 0.15          # the top 1 % hold >= 15 % of citations
    assert counts.max() >= 50 * counts.mean()
    degree = stats.citation_in_degree(corpus)
    assert degree["papers"].sum() == PAPERS
    assert (degree["in_degree"] * degree["papers"]).sum() == counts.sum()
    assert degree.loc[degree["in_degree"] == 0, "papers"].item() == (counts == 0).sum()
    # heavy tail: papers with k citations fall off like a power of k
    tail = degree[(degree["in_degree"] >= 2) & (degree["in_degree"] <= 30)]
    fit = sps.linregress(np.log(tail["in_degree"]), np.log(tail["papers"]))
    assert fit.slope < -1.0


# --- authors ----------------------------------------------------------------------------------

def test_a_shared_author_pool_with_a_few_prolific_authors(corpus, db):
    authors = stats.author_paper_counts(corpus)
    slots = one(db, "SELECT sum(json_array_length(authors)) FROM papers")
    assert authors["papers"].sum() == slots
    assert len(authors) < 0.6 * slots                 # names recur across papers
    assert authors["papers"].iloc[0] >= 50
    assert authors["papers"].median() <= 2
    assert (authors["papers"] >= 20).sum() <= 0.02 * len(authors)
    first = json.loads(one(db, "SELECT authors FROM papers WHERE id = 77"))
    assert first and set(first[0]) == {"name", "affiliation"}
    # the same person keeps the same affiliation
    assert one(db, """
        SELECT count(*) FROM (
            SELECT json_extract(a.value, '$.name') AS name,
                   count(DISTINCT json_extract(a.value, '$.affiliation')) AS k
            FROM papers, json_each(papers.authors) AS a GROUP BY 1) WHERE k > 1""") \
        <= 0.02 * len(authors)


# --- clinical trials --------------------------------------------------------------------------

def test_about_five_percent_of_papers_report_a_trial(db):
    share = one(db, "SELECT avg(clinical_trial_id IS NOT NULL) FROM papers")
    assert 0.035 <= share <= 0.07
    assert db("PRAGMA foreign_key_check") == []
    assert one(db, "SELECT count(*) FROM clinical_trials WHERE trial_id NOT IN (SELECT "
                   "clinical_trial_id FROM papers WHERE clinical_trial_id IS NOT NULL)") == 0
    phases = {p for (p,) in db("SELECT DISTINCT trial_phase FROM clinical_trials")}
    assert phases == {"Phase 1", "Phase 2", "Phase 3", "Phase 4", "N/A"}
    statuses = {s for (s,) in db("SELECT DISTINCT trial_status FROM clinical_trials")}
    assert {"completed", "recruiting", "terminated"} <= statuses
    # papers of one trial share its conditions; trials start before their papers appear
    assert one(db, "SELECT max(k) FROM (SELECT count(DISTINCT conditions) AS k FROM papers "
                   "WHERE clinical_trial_id IS NOT NULL GROUP BY clinical_trial_id)") == 1
    assert one(db, "SELECT count(*) FROM clinical_trials t JOIN papers p ON "
                   "p.clinical_trial_id = t.trial_id WHERE t.start_date >= p.publication_date") == 0
    trials_from_trials = one(db, "SELECT avg(study_design IN ('randomized controlled trial', "
                                 "'nonrandomized controlled trial')) FROM papers "
                                 "WHERE clinical_trial_id IS NOT NULL")
    assert trials_from_trials >= 0.8
    outcomes = json.loads(one(db, "SELECT primary_outcomes FROM clinical_trials LIMIT 1"))
    assert outcomes and all(isinstance(o, str) for o in outcomes)


# --- users, reading, reviews ---------------------------------------------------------------------

def test_reading_history_is_recent(db):
    oldest, newest = db("SELECT min(last_read_at), max(last_read_at) FROM reading_history")[0]
    assert oldest >= days_before(90) and newest < AS_OF
    assert one(db, "SELECT avg(last_read_at >= ?) FROM reading_history", days_before(30)) >= 0.5
    assert one(db, "SELECT count(*) FROM reading_history r JOIN papers p ON p.id = r.paper_id "
                   "WHERE r.last_read_at < p.publication_date") == 0
    assert one(db, "SELECT count(*) FROM (SELECT 1 FROM reading_history "
                   "GROUP BY user_id, paper_id HAVING count(*) > 1)") == 0
    assert one(db, "SELECT min(read_percentage) >= 0 AND max(read_percentage) = 100 "
                   "FROM reading_history") == 1


def test_reading_concentrates_on_recent_and_popular_papers(db):
    recent = days_before(2 * 365)
    paper_share = one(db, "SELECT avg(publication_date >= ?) FROM papers", recent)
    read_share = one(db, "SELECT avg(p.publication_date >= ?) FROM reading_history r "
                         "JOIN papers p ON p.id = r.paper_id", recent)
    assert read_share >= 2 * paper_share
    top_cited = one(db, """
        WITH top AS (SELECT id FROM papers ORDER BY citation_count DESC LIMIT ?)
        SELECT avg(paper_id IN top) FROM reading_history""", PAPERS // 10)
    assert top_cited >= 0.2                           # 10 % of papers, >= 20 % of reads
    # among papers of the same age, the more cited are read more
    rows = np.array(db("""
        SELECT p.citation_count, count(r.id) FROM papers p LEFT JOIN reading_history r
        ON r.paper_id = p.id WHERE p.publication_date BETWEEN ? AND ? GROUP BY p.id""",
                       days_before(6 * 365), days_before(4 * 365)))
    assert sps.spearmanr(rows[:, 0], rows[:, 1]).statistic >= 0.2


def test_users_and_reviews(db):
    assert one(db, "SELECT count(DISTINCT email) FROM users") == PAPERS // 50
    roles = {r for (r,) in db("SELECT DISTINCT role FROM users")}
    assert roles == {"clinician", "researcher", "student", "librarian"}
    ratings = dict(db("SELECT rating, count(*) FROM paper_reviews GROUP BY rating"))
    assert set(ratings) == {1, 2, 3, 4, 5} and max(ratings, key=ratings.get) in (4, 5)
    assert one(db, "SELECT count(*) FROM paper_reviews r JOIN papers p ON p.id = r.paper_id "
                   "WHERE r.created_at < p.publication_date OR r.created_at >= ?", AS_OF) == 0
    assert one(db, "SELECT min(length(review_text)) FROM paper_reviews") > 10


# --- the rest of a paper ------------------------------------------------------------------

def test_evidence_levels_follow_study_design(db):
    levels = dict(db("SELECT evidence_level, count(*) FROM papers GROUP BY 1"))
    assert set(levels) == set(EVIDENCE_LEVELS)
    high = lambda design: one(db, "SELECT avg(evidence_level = 'high') FROM papers "
                                  "WHERE study_design = ?", design)
    assert high("randomized controlled trial") > 0.3
    assert high("case report") < 0.05


def test_json_columns_and_embeddings(db):
    assert one(db, "SELECT count(*) FROM papers WHERE NOT (json_valid(authors) AND "
                   "json_valid(keywords) AND json_valid(conditions))") == 0
    assert one(db, "SELECT min(json_array_length(keywords)) FROM papers") >= 2
    assert one(db, "SELECT max(json_array_length(conditions)) FROM papers") == 3
    vectors = [json.loads(v) for (v,) in db("SELECT embedding_vector FROM papers "
                                             "WHERE embedding_vector IS NOT NULL LIMIT 500")]
    array = np.array(vectors)
    assert array.shape == (500, 16)
    assert np.allclose(np.linalg.norm(array, axis=1), 1.0, atol=0.002)
    missing = one(db, "SELECT avg(embedding_vector IS NULL) FROM papers")
    assert 0 < missing < 0.1
    assert one(db, "SELECT count(*) FROM papers WHERE doi NOT LIKE '10.%/%'") == 0


def test_table_sizes(corpus, db):
    frame = stats.table_sizes(corpus)
    sizes = frame.set_index("table")
    assert sizes.loc["papers", "rows"] == PAPERS
    assert sizes.loc["papers_fts", "rows"] == PAPERS
    assert sizes.loc["citations", "rows"] == one(db, "SELECT count(*) FROM citations")
    assert (sizes["bytes"] > 0).all()
    assert sizes["bytes"].sum() <= corpus.stat().st_size
    assert sizes["bytes"].sum() >= 0.9 * corpus.stat().st_size
