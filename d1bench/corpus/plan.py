"""The shape of a corpus: how many rows of each kind, when things happen, which random stream.

Everything a corpus contains follows from ``(papers, seed, as_of)`` and the
vocabulary.  Random numbers come from numpy ``Generator`` objects seeded per
``(seed, stream, block)``, so each block of rows can be made on its own, and
publication dates are a pure function of the paper id.

Rows per paper, at any scale:

===============  =============================================================
clinical_trials  about 0.04: 5 % of papers report a trial, a trial has 1-3 papers
citations        about 5.7: by study design (meta-analyses 16, letters 1), fewer
                 for the oldest papers, which have little older work to cite
users            exactly 1/50 (at least one)
reading_history  about 1.9: a user reads ~100 papers (log-normal, up to 5,000)
paper_reviews    exactly 1/4
===============  =============================================================
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass

import numpy as np

from d1bench.errors import UsageError

__all__ = [
    "BLOCK",
    "GENERATOR_VERSION",
    "CorpusPlan",
    "make_plan",
    "parse_as_of",
]

#: Bump when the same (papers, seed, as_of) would give different rows.
GENERATOR_VERSION = "1"

#: Papers per random-stream block.  Part of the generator's definition: changing
#: it changes the rows, so it is a constant and not an option.
BLOCK = 10_000
#: Users per reading-history block; reviews per review block.
USER_BLOCK = 2_000
REVIEW_BLOCK = 10_000

YEARS = 20                 # publication dates span this many years before as_of
GROWTH_PER_YEAR = 0.07     # papers per year grow by ~7 % a year (3.9x over 20 years)
USERS_PER_PAPER = 1 / 50
READS_PER_PAPER = 2.0
REVIEWS_PER_PAPER = 0.25
READ_WINDOW_DAYS = 90      # reading history falls in the 90 days before as_of
USER_HISTORY_YEARS = 8     # accounts were created in the 8 years before as_of
#: Date strings are tabulated from this many days before the first publication
#: date (trials start up to five years before their paper is published).
DATE_MARGIN_DAYS = 3_000
#: Largest corpus: DOIs and trial ids carry the paper id in eight digits.
MAX_PAPERS = 99_999_999


@dataclass(frozen=True, slots=True)
class CorpusPlan:
    """Sizes and calendar of one corpus.

    ``start`` is the first publication date and ``as_of`` the corpus's "today":
    papers are dated ``start <= date < as_of``.  Day numbers count from
    ``origin`` (``DATE_MARGIN_DAYS`` before ``start``).
    """

    papers: int
    seed: int
    as_of: dt.date
    start: dt.date
    origin: dt.date
    users: int
    reviews: int

    @property
    def span_days(self) -> int:
        """Days from ``start`` to ``as_of``: publication days are ``0 .. span_days - 1``."""
        return (self.as_of - self.start).days

    @property
    def start_day(self) -> int:
        """``start`` as a day number."""
        return (self.start - self.origin).days

    @property
    def as_of_day(self) -> int:
        """``as_of`` as a day number."""
        return (self.as_of - self.origin).days

    @property
    def paper_blocks(self) -> int:
        return -(-self.papers // BLOCK)

    def block_range(self, block: int) -> tuple[int, int]:
        """Zero-based paper indexes ``[lo, hi)`` of a block (paper id = index + 1)."""
        lo = block * BLOCK
        return lo, min(self.papers, lo + BLOCK)

    def rng(self, stream: str, block: int = 0) -> np.random.Generator:
        """The random stream ``stream`` of ``block``: independent of every other pair."""
        key = zlib.crc32(stream.encode())
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, key, block])))

    def publication_days(self, lo: int, hi: int) -> np.ndarray:
        """Publication day (counted from ``start``) of papers ``lo..hi-1``, non-decreasing.

        Paper *i* sits at the ``(i + 0.5) / papers`` quantile of an exponential growth
        curve over the span: ids follow dates, so "cites an older paper" is "cites a
        smaller id", and any block's dates are known without generating the others.
        """
        g = GROWTH_PER_YEAR / 365.25
        q = (np.arange(lo, hi, dtype=np.float64) + 0.5) / self.papers
        t = np.log1p(q * np.expm1(g * self.span_days)) / g
        return np.minimum(t.astype(np.int64), self.span_days - 1)


def parse_as_of(value: str | dt.date) -> dt.date:
    """An ``as_of`` date from a date or ``YYYY-MM-DD``.

    >>> parse_as_of("2026-11-01")
    datetime.date(2026, 11, 1)
    """
    if isinstance(value, dt.datetime):
        value = value.date()
    if not isinstance(value, dt.date):
        try:
            value = dt.date.fromisoformat(str(value))
        except ValueError:
            raise UsageError(f"as_of {value!r}: expected a date as YYYY-MM-DD") from None
    if not 1950 <= value.year <= 9000:
        raise UsageError(f"as_of {value.isoformat()}: the year must be between 1950 and 9000")
    return value


def make_plan(papers: int, seed: int, as_of: str | dt.date) -> CorpusPlan:
    """Check the arguments and derive the corpus's sizes."""
    if isinstance(papers, bool) or not isinstance(papers, (int, np.integer)):
        raise UsageError(f"papers {papers!r}: expected a whole number")
    if not 1 <= papers <= MAX_PAPERS:
        raise UsageError(f"papers {papers}: must be between 1 and {MAX_PAPERS:,}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"seed {seed!r}: expected a whole number >= 0")
    day = parse_as_of(as_of)
    try:
        start = day.replace(year=day.year - YEARS)
    except ValueError:  # 29 February
        start = day.replace(year=day.year - YEARS, day=28)
    return CorpusPlan(
        papers=int(papers),
        seed=int(seed),
        as_of=day,
        start=start,
        origin=start - dt.timedelta(days=DATE_MARGIN_DAYS),
        users=max(1, round(papers * USERS_PER_PAPER)),
        reviews=round(papers * REVIEWS_PER_PAPER),
    )
