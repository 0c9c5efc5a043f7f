-- Seed 000's analytics view, as written there (its window is relative to the
-- wall clock, so on a corpus with a fixed as-of date it may return no rows;
-- the workload's own trend query takes the window as a parameter instead).
CREATE VIEW IF NOT EXISTS recent_trends AS
SELECT
    DATE(rh.last_read_at)        AS date,
    p.medical_specialty,
    COUNT(DISTINCT rh.user_id)   AS unique_readers,
    COUNT(DISTINCT rh.paper_id)  AS papers_read,
    AVG(rh.read_percentage)      AS avg_completion
FROM reading_history rh
JOIN papers p ON rh.paper_id = p.id
WHERE rh.last_read_at > date('now', '-30 days')
GROUP BY DATE(rh.last_read_at), p.medical_specialty
ORDER BY date DESC, unique_readers DESC;
