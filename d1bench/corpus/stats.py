"""What a corpus looks like, as DataFrames: sizes, distributions, term frequencies.

Every function opens the file read-only, runs a few aggregate queries and
returns a pandas DataFrame; notebook 01 draws them and the tests check them.
They work on any database with the platform's schema, not only d1bench's own.
"""

from __future__ import annotations

import os

import pandas as pd

from d1bench import schema
from d1bench.corpus.describe import open_readonly

__all__ = [
    "author_paper_counts",
    "citation_in_degree",
    "papers_per_specialty",
    "papers_per_year",
    "table_sizes",
    "term_frequencies",
]

PathLike = str | os.PathLike[str]


def _frame(path: PathLike, sql: str, columns: list[str], params: tuple = ()) -> pd.DataFrame:
    conn = open_readonly(path)
    try:
        rows = conn.execute(sql, params).fetchall()
    finally:
        conn.close()
    return pd.DataFrame(rows, columns=columns)


def table_sizes(path: PathLike) -> pd.DataFrame:
    """Rows and bytes per table (a table's bytes include its indexes; ``papers_fts``
    is the full-text index, all its shadow tables together).

    Columns: ``table``, ``rows``, ``bytes``, ``bytes_per_row``.
    """
    conn = open_readonly(path)
    try:
        owner = {str(name): str(table) for name, table in conn.execute(
            "SELECT name, tbl_name FROM sqlite_schema WHERE type IN ('table', 'index')")}
        pages: dict[str, int] = {}
        for name, size in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
            table = "papers_fts" if name.startswith("papers_fts_") else owner.get(name, name)
            pages[table] = pages.get(table, 0) + size
        present = {n for (n,) in conn.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
        rows = []
        for table in (*schema.TABLES, "papers_fts"):
            if table not in present:
                continue
            counted = "papers_fts_docsize" if table == "papers_fts" else table
            count = conn.execute(f"SELECT count(*) FROM {counted}").fetchall()[0][0]
            rows.append((table, count, pages.get(table, 0)))
    finally:
        conn.close()
    frame = pd.DataFrame(rows, columns=["table", "rows", "bytes"])
    frame["bytes_per_row"] = frame["bytes"] / frame["rows"].where(frame["rows"] > 0)
    return frame


def citation_in_degree(path: PathLike) -> pd.DataFrame:
    """How many papers have each number of citations (from the citations table).

    Columns: ``in_degree``, ``papers``; papers never cited are the ``in_degree == 0`` row.
    """
    return _frame(path, """
        WITH degree AS (
            SELECT p.id, count(c.cited_paper_id) AS n
            FROM papers p LEFT JOIN (SELECT cited_paper_id FROM citations ORDER BY cited_paper_id) c
                 ON c.cited_paper_id = p.id
            GROUP BY p.id)
        SELECT n, count(*) FROM degree GROUP BY n ORDER BY n""", ["in_degree", "papers"])


def papers_per_year(path: PathLike) -> pd.DataFrame:
    """Columns: ``year`` (int), ``papers``."""
    frame = _frame(path, "SELECT CAST(substr(publication_date, 1, 4) AS INTEGER) AS y, count(*) "
                         "FROM papers GROUP BY y ORDER BY y", ["year", "papers"])
    return frame


def papers_per_specialty(path: PathLike) -> pd.DataFrame:
    """Columns: ``medical_specialty``, ``papers``, ``share``; largest first."""
    frame = _frame(path, "SELECT medical_specialty, count(*) AS n FROM papers "
                         "GROUP BY medical_specialty ORDER BY n DESC, medical_specialty",
                   ["medical_specialty", "papers"])
    frame["share"] = frame["papers"] / frame["papers"].sum()
    return frame


def term_frequencies(path: PathLike, limit: int | None = None,
                     column: str | None = None) -> pd.DataFrame:
    """Full-text terms by document frequency, most frequent first.

    Read from an ``fts5vocab`` table created in the temp schema of a private
    connection (the corpus file is not changed).  ``column`` limits the count to
    one indexed column (e.g. ``"abstract"``).  Terms are Porter stems.

    Columns: ``rank`` (1 = most frequent), ``term``, ``documents`` (papers containing
    it), ``occurrences``.
    """
    conn = open_readonly(path)
    try:
        params: tuple[str, ...]
        if column is None:
            conn.execute("CREATE VIRTUAL TABLE temp.terms USING fts5vocab(main, papers_fts, row)")
            sql, params = "SELECT term, doc, cnt FROM temp.terms", ()
        else:
            conn.execute("CREATE VIRTUAL TABLE temp.terms USING fts5vocab(main, papers_fts, col)")
            sql, params = "SELECT term, doc, cnt FROM temp.terms WHERE col = ?", (column,)
        sql += " ORDER BY doc DESC, cnt DESC, term"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = conn.execute(sql, params).fetchall()
    finally:
        conn.close()
    frame = pd.DataFrame(rows, columns=["term", "documents", "occurrences"])
    frame.insert(0, "rank", range(1, len(frame) + 1))
    return frame


def author_paper_counts(path: PathLike) -> pd.DataFrame:
    """Papers per author name, most prolific first.  Columns: ``author``, ``papers``."""
    return _frame(path, """
        SELECT json_extract(a.value, '$.name') AS author, count(*) AS n
        FROM papers, json_each(papers.authors) AS a
        GROUP BY author ORDER BY n DESC, author""", ["author", "papers"])
