"""Samplers on a schema that is not d1bench's own: no corpus_meta, no papers,
a WITHOUT ROWID table with a composite key, text keys, epoch timestamps."""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
from pathlib import Path

import pytest

from d1bench.errors import UsageError
from d1bench.targets.sqlite import SQLiteTarget
from d1bench.workload import check_workload, load_workload

BLOG = """
CREATE TABLE users (id INTEGER PRIMARY KEY, handle TEXT NOT NULL, created_at TEXT NOT NULL,
                    deleted_at TEXT);
CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id),
                    title TEXT NOT NULL, published_at INTEGER NOT NULL);
CREATE TABLE tags (post_id INTEGER NOT NULL, tag TEXT NOT NULL,
                   PRIMARY KEY (post_id, tag)) WITHOUT ROWID;
CREATE TABLE slugs (slug TEXT PRIMARY KEY, post_id INTEGER NOT NULL) WITHOUT ROWID;
"""


@pytest.fixture(scope="module")
def blog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("blog") / "blog.sqlite"
    rng = random.Random(3)
    conn = sqlite3.connect(path)
    conn.executescript(BLOG)
    base = dt.datetime(2025, 6, 30, 12, 0, 0)
    conn.executemany("INSERT INTO users VALUES (?, ?, ?, ?)",
                     [(i, f"user{i:03d}", (base - dt.timedelta(days=i)).isoformat(sep=" "),
                       None if i % 4 else "2025-01-01") for i in range(1, 201)])
    conn.executemany("INSERT INTO posts VALUES (?, ?, ?, ?)",
                     [(i, 1 + i % 200, f"{rng.choice(['Alpha', 'Beta', 'Gamma'])} post {i}",
                       int(base.timestamp()) - i * 3600) for i in range(1, 1001)])
    conn.executemany("INSERT INTO tags VALUES (?, ?)",
                     [(p, t) for p in range(1, 1001) for t in ("news", "tech")[: 1 + p % 2]])
    conn.executemany("INSERT INTO slugs VALUES (?, ?)", [(f"post-{p}", p) for p in range(1, 301)])
    conn.commit()
    conn.close()
    return path


def _bind(blog: Path, tmp_path: Path, params: str, sql: str = "SELECT ?"):
    path = tmp_path / "w.toml"
    path.write_text(f'[templates.t]\nsql = "{sql}"\nparams = [\n    {params},\n]\n')
    target = SQLiteTarget(blog)
    conn = target.connect()
    try:
        bound = load_workload(path).bind(conn, seed=1)
        rng = random.Random(0)
        return [bound.draw_params("t", rng)[0] for _ in range(40)], path
    finally:
        conn.close()
        target.close()


def test_date_without_corpus_meta_names_the_anchors(blog: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r":4: template 't': param 1 .*anchor = \"now\""):
        _bind(blog, tmp_path, '{ sampler = "date", from_days = -7, to_days = 0 }')


def test_date_anchored_on_max_column_and_absolute(blog: Path, tmp_path: Path) -> None:
    drawn, _ = _bind(blog, tmp_path, '{ sampler = "date", from_days = -7, to_days = 0, '
                                     'anchor = "max(users.created_at)" }')
    assert all("2025-06-22" <= d <= "2025-06-29" and len(d) == 10 for d in drawn)
    assert len(set(drawn)) > 3
    drawn, _ = _bind(blog, tmp_path, '{ sampler = "date", from = "2024-02-01", to = "2024-02-03", '
                                     'datetime = true }')
    assert all("2024-02-01 00:00:00" <= d <= "2024-02-03 23:59:59" for d in drawn)
    assert any(d[11:] != "00:00:00" for d in drawn)
    # TOML's own dates work too, and epoch output for an INTEGER timestamp column
    drawn, _ = _bind(blog, tmp_path, '{ sampler = "date", from = 2025-06-01, to = 2025-06-02, '
                                     'datetime = true, output = "unixepoch" }')
    lo = dt.datetime(2025, 6, 1, tzinfo=dt.UTC).timestamp()
    assert all(isinstance(d, int) and lo <= d < lo + 2 * 86400 for d in drawn)
    drawn, _ = _bind(blog, tmp_path, '{ sampler = "date", from_days = -1, to_days = 0, '
                                     'anchor = "max(posts.published_at)", datetime = true }')
    assert all(d.startswith(("2025-06-29", "2025-06-30")) for d in drawn)


def test_date_now_anchor(blog: Path, tmp_path: Path) -> None:
    drawn, _ = _bind(blog, tmp_path, '{ sampler = "date", from_days = 0, to_days = 0, anchor = "now" }')
    assert set(drawn) == {dt.datetime.now(dt.UTC).date().isoformat()}


def test_prefix_and_format_spec(blog: Path, tmp_path: Path) -> None:
    drawn, _ = _bind(blog, tmp_path, '{ sampler = "prefix", table = "posts", column = "title", '
                                     'length = [2, 4], format = "{}%" }')
    assert all(d.endswith("%") and 2 <= len(d) - 1 <= 4 for d in drawn)
    assert {d[:2] for d in drawn} <= {"Al", "Be", "Ga"}
    drawn, _ = _bind(blog, tmp_path, '{ sampler = "column", table = "users", column = "handle", '
                                     'format = "{:.5}" }')
    assert {"user0", "user1"} <= set(drawn) <= {"user0", "user1", "user2"}


def test_without_rowid_composite_and_text_keys(blog: Path, tmp_path: Path) -> None:
    drawn, _ = _bind(blog, tmp_path, '{ sampler = "column", table = "tags", column = "tag" }')
    assert set(drawn) == {"news", "tech"}
    drawn, _ = _bind(blog, tmp_path, '{ sampler = "column", table = "slugs", column = "slug" }')
    assert all(d.startswith("post-") for d in drawn) and len(set(drawn)) > 5
    drawn, _ = _bind(blog, tmp_path, '{ sampler = "column", table = "tags", column = "post_id", '
                                     'where = "tags.tag = \'tech\'" }')
    assert all(p % 2 == 1 for p in drawn)


def test_where_on_column_sampler_and_weighted_choice(blog: Path, tmp_path: Path) -> None:
    drawn, _ = _bind(blog, tmp_path, '{ sampler = "column", table = "users", column = "id", '
                                     'where = "users.deleted_at IS NULL" }')
    assert drawn and all(i % 4 for i in drawn)
    drawn, _ = _bind(blog, tmp_path, '{ sampler = "choice", values = { draft = 0, live = 1 } }')
    assert set(drawn) == {"live"}
    drawn, _ = _bind(blog, tmp_path, '{ sampler = "choice", values = [1, 2], weights = [0, 5] }')
    assert set(drawn) == {2}


def test_unknown_column_names_table_column_on_params_line(blog: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        _bind(blog, tmp_path, '{ sampler = "column", table = "users", column = "handel" }')
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'w.toml'}:4: template 't': param 1")
    assert "no column users.handel (it has id, handle, created_at, deleted_at)" in message
    assert "t." not in message.split("template 't'")[1]
    problems = check_workload(tmp_path / "w.toml", blog)
    assert list(problems["line"]) == [4]


@pytest.mark.parametrize("params, message", [
    ('{ sampler = "date", from_days = -1, to_days = 0, from = "2024-01-01", to = "2024-01-02" }',
     "not both"),
    ('{ sampler = "date", from = "2024-02-01", to = "2024-01-01" }', "is after to"),
    ('{ sampler = "date", from = "yesterday", to = "2024-01-01" }', "not an ISO date"),
    ('{ sampler = "date", from_days = -1, to_days = 0, anchor = "min(users.id)" }', "anchor must be"),
    ('{ sampler = "int", min = 1, max = 2, format = "{} {}" }', "one replacement field"),
    ('{ sampler = "prefix", table = "posts", column = "title", length = 0 }', "length must be"),
])
def test_bad_sampler_options(blog: Path, tmp_path: Path, params: str, message: str) -> None:
    with pytest.raises(UsageError, match=rf":4: template 't': param 1: .*{message}"):
        _bind(blog, tmp_path, params)
