-- The medical-literature platform of seed 000, written to run unchanged on D1:
-- no PRAGMA, no TEMP object, no ATTACH, no BEGIN.  Only keys and UNIQUE
-- constraints live here; secondary indexes are named index sets, applied apart
-- (see d1bench/schema/indexes/).  Parents come before children because D1
-- enforces foreign keys by default.

CREATE TABLE IF NOT EXISTS clinical_trials (
    trial_id           TEXT PRIMARY KEY,          -- registry id, e.g. NCT01234567
    title              TEXT NOT NULL,
    trial_phase        TEXT NOT NULL,             -- 'Phase 1' .. 'Phase 4', 'N/A'
    trial_status       TEXT NOT NULL,             -- recruiting, completed, terminated, ...
    enrollment_count   INTEGER NOT NULL,
    primary_outcomes   TEXT NOT NULL,             -- JSON array of strings
    secondary_outcomes TEXT NOT NULL,             -- JSON array of strings
    start_date         TEXT NOT NULL,
    last_updated       TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS papers (
    id                 INTEGER PRIMARY KEY,
    doi                TEXT NOT NULL UNIQUE,
    title              TEXT NOT NULL,
    abstract           TEXT,
    authors            TEXT NOT NULL,             -- JSON array of {"name", "affiliation"}
    keywords           TEXT NOT NULL,             -- JSON array of strings
    journal            TEXT NOT NULL,
    publication_date   TEXT NOT NULL,             -- ISO 8601 date
    publication_type   TEXT NOT NULL,             -- research-article, review, ...
    publication_stage  TEXT NOT NULL,             -- final, in-press, preprint
    medical_specialty  TEXT NOT NULL,
    study_design       TEXT NOT NULL,
    evidence_level     TEXT NOT NULL
        CHECK (evidence_level IN ('high', 'moderate', 'low', 'very_low')),  -- GRADE
    citation_count     INTEGER NOT NULL DEFAULT 0,
    clinical_trial_id  TEXT REFERENCES clinical_trials (trial_id),
    conditions         TEXT NOT NULL,             -- JSON array of condition names
    key_findings       TEXT,
    embedding_vector   TEXT                       -- JSON array of floats (small dimension)
);

CREATE TABLE IF NOT EXISTS citations (
    id                 INTEGER PRIMARY KEY,
    citing_paper_id    INTEGER NOT NULL REFERENCES papers (id),
    cited_paper_id     INTEGER NOT NULL REFERENCES papers (id),
    context            TEXT,                      -- introduction, methods, discussion
    UNIQUE (citing_paper_id, cited_paper_id)
);

CREATE TABLE IF NOT EXISTS users (
    id                 INTEGER PRIMARY KEY,
    email              TEXT NOT NULL UNIQUE,
    name               TEXT NOT NULL,
    institution        TEXT NOT NULL,
    role               TEXT NOT NULL,             -- clinician, researcher, student, librarian
    medical_specialty  TEXT NOT NULL,
    created_at         TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS reading_history (
    id                 INTEGER PRIMARY KEY,
    user_id            INTEGER NOT NULL REFERENCES users (id),
    paper_id           INTEGER NOT NULL REFERENCES papers (id),
    last_read_at       TEXT NOT NULL,             -- ISO 8601 timestamp
    read_percentage    REAL NOT NULL CHECK (read_percentage BETWEEN 0 AND 100)
);

CREATE TABLE IF NOT EXISTS paper_reviews (
    id                 INTEGER PRIMARY KEY,
    paper_id           INTEGER NOT NULL REFERENCES papers (id),
    user_id            INTEGER NOT NULL REFERENCES users (id),
    rating             INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
    review_text        TEXT NOT NULL,
    created_at         TEXT NOT NULL
);

-- Facts about the corpus itself (generator version, seed, scale, as-of date),
-- so a trace can name the corpus it ran on.
CREATE TABLE IF NOT EXISTS corpus_meta (
    key                TEXT PRIMARY KEY,
    value              TEXT NOT NULL
);
