-- Full-text index over papers, as seed 000 declares it, minus its
-- `columnsize=64` (FTS5 accepts only 0 or 1 there and refuses the table).
CREATE VIRTUAL TABLE IF NOT EXISTS papers_fts USING fts5(
    title,
    abstract,
    authors,
    keywords,
    medical_specialty,
    key_findings,
    content = 'papers',
    content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 1',
    prefix = '2 3 4'
);
