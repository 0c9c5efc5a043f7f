-- Index set `seed`: the indexes seed 000 shows, its composite and partial ones.
--
-- Seed 000 writes the partial index's predicate as
--   publication_date > date('now', '-1 year')
-- which SQLite refuses ("non-deterministic functions prohibited in partial
-- index WHERE clauses").  We keep its intent with a fixed cutoff one year
-- before the default corpus's as-of date.
CREATE INDEX IF NOT EXISTS idx_papers_recent_cardiology
    ON papers (medical_specialty, publication_date DESC)
    WHERE medical_specialty = 'Cardiology' AND publication_date > '2025-11-01';

CREATE INDEX IF NOT EXISTS idx_papers_search_sort
    ON papers (medical_specialty, publication_type, publication_date DESC);
