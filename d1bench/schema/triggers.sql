-- Keep the external-content FTS index in step with papers.  Created after a
-- bulk load (which rebuilds the index once instead of row by row).
CREATE TRIGGER IF NOT EXISTS papers_fts_after_insert AFTER INSERT ON papers BEGIN
    INSERT INTO papers_fts (rowid, title, abstract, authors, keywords, medical_specialty, key_findings)
    VALUES (new.id, new.title, new.abstract, new.authors, new.keywords, new.medical_specialty,
            new.key_findings);
END;

CREATE TRIGGER IF NOT EXISTS papers_fts_after_delete AFTER DELETE ON papers BEGIN
    INSERT INTO papers_fts (papers_fts, rowid, title, abstract, authors, keywords,
                            medical_specialty, key_findings)
    VALUES ('delete', old.id, old.title, old.abstract, old.authors, old.keywords,
            old.medical_specialty, old.key_findings);
END;

CREATE TRIGGER IF NOT EXISTS papers_fts_after_update
AFTER UPDATE OF title, abstract, authors, keywords, medical_specialty, key_findings ON papers BEGIN
    INSERT INTO papers_fts (papers_fts, rowid, title, abstract, authors, keywords,
                            medical_specialty, key_findings)
    VALUES ('delete', old.id, old.title, old.abstract, old.authors, old.keywords,
            old.medical_specialty, old.key_findings);
    INSERT INTO papers_fts (rowid, title, abstract, authors, keywords, medical_specialty, key_findings)
    VALUES (new.id, new.title, new.abstract, new.authors, new.keywords, new.medical_specialty,
            new.key_findings);
END;
