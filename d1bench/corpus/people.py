"""Users, their reading history and their reviews.

Reading concentrates on recent and popular papers: a paper is read in proportion
to ``(1 + citations) * (0.02 + exp(-age / 1 year))`` (the small constant keeps
much-cited classics in demand), and 60 % of a user's reads stay in the user's own
specialty.  On a 20,000-paper corpus the 10 % most-cited papers get about 30 % of
the reads and papers of the last two years about 40 %.  Reads fall in the 90 days before ``as_of``,
more of them in the last few weeks, and never before the paper appeared.
"""

from __future__ import annotations

import numpy as np

from d1bench.corpus._pieces import AliasTable, Digest
from d1bench.corpus.plan import (
    READ_WINDOW_DAYS,
    READS_PER_PAPER,
    REVIEW_BLOCK,
    USER_BLOCK,
    USER_HISTORY_YEARS,
    CorpusPlan,
)
from d1bench.corpus.texts import GroupedSampler, Texts
from d1bench.corpus.vocabulary import ascii_fold

__all__ = ["PeopleMaker"]

OWN_SPECIALTY_SHARE = 0.6
CITATION_PULL = 1.0          # exponent on (1 + citations)
RECENCY_YEARS = 1.0          # attention fades with age ...
CLASSIC_FLOOR = 0.02         # ... down to this floor
READ_RECENCY_DAYS = 25.0     # reads are exponentially more frequent near as_of
READS_SIGMA = 1.0            # spread of reads per user (log-normal)
MAX_READS_PER_USER = 5_000
FULL_READ_SHARE = 0.35       # reads that reached 100 %
DAY = 86_400


class PeopleMaker:
    """Makes users, reading history and reviews, block by block."""

    def __init__(self, plan: CorpusPlan, texts: Texts, publication_days: np.ndarray) -> None:
        self.plan, self.t = plan, texts
        v = texts.vocab
        self._given = np.array(v.first_names, dtype=object)
        self._family = np.array(v.last_names, dtype=object)
        self._given_ascii = np.array([ascii_fold(x) for x in v.first_names], dtype=object)
        self._family_ascii = np.array([ascii_fold(x) for x in v.last_names], dtype=object)
        self._institutions = np.array(v.institutions, dtype=object)
        self._specialties = np.array(v.specialties, dtype=object)
        roles, rw = v.category("user_role")
        self._roles, self._role = np.array(roles, dtype=object), AliasTable(rw)
        domains, dw = v.category("email_domain")
        self._domains, self._domain = np.array(domains, dtype=object), AliasTable(dw)
        ratings, rtw = v.category("review_rating")
        self._ratings = np.array([int(r) for r in ratings], dtype=np.int64)
        self._rating = AliasTable(rtw)
        self._opener_base = np.zeros(6, dtype=np.int64)
        self._opener_count = np.ones(6, dtype=np.int64)
        for r, base in texts.OPENER.items():
            self._opener_base[r], self._opener_count[r] = base, texts.n_openers[r]
        self._pub_day = publication_days          # days from plan.start, per paper
        self.user_specialty = np.zeros(plan.users, dtype=np.int64)
        self._popular: np.ndarray | None = None

    @property
    def user_blocks(self) -> int:
        return -(-self.plan.users // USER_BLOCK)

    @property
    def review_blocks(self) -> int:
        return -(-self.plan.reviews // REVIEW_BLOCK)

    def _timestamps(self, rng: np.random.Generator, day: np.ndarray, digest: Digest) -> list[str]:
        """``YYYY-MM-DD HH:MM:SS`` at a random second of each day number."""
        t = self.t
        second = rng.integers(0, DAY, len(day))
        return t.pieces.render(np.stack([t.DATE_SP + day, t.HHMM + second // 60,
                                         t.SS_NL + second % 60], axis=1).ravel(), digest)

    # ------------------------------------------------------------------ users
    def users(self, ub: int, digest: Digest) -> list[tuple]:
        plan, t = self.plan, self.t
        lo = ub * USER_BLOCK
        hi = min(plan.users, lo + USER_BLOCK)
        n = hi - lo
        rng = plan.rng("users", ub)
        ids = np.arange(lo + 1, hi + 1)
        given = rng.integers(0, len(self._given), n)
        family = rng.integers(0, len(self._family), n)
        spec = t.specialty.sample(rng, n)
        self.user_specialty[lo:hi] = spec
        institution = t.institution.sample(rng, n)
        role = self._role.sample(rng, n)
        domain = self._domain.sample(rng, n)
        back = (USER_HISTORY_YEARS * 365.25 * rng.random(n) ** 1.5).astype(np.int64)
        created = self._timestamps(rng, plan.as_of_day - 1 - back, digest)
        for a in (given, family, spec, institution, role, domain, back):
            digest.array(a)
        names = self._given[given] + " " + self._family[family]
        emails = (self._given_ascii[given] + "." + self._family_ascii[family]
                  + ids.astype(str).astype(object) + "@" + self._domains[domain])
        return list(zip(ids.tolist(), emails.tolist(), names.tolist(),
                        self._institutions[institution].tolist(), self._roles[role].tolist(),
                        self._specialties[spec].tolist(), created))

    # ---------------------------------------------------------- popularity
    def prepare(self, cited_by: np.ndarray, specialty_of: np.ndarray) -> None:
        """Fix each paper's popularity, once citations are known and before reads are drawn."""
        age_years = (self.plan.span_days - self._pub_day) / 365.25
        attention = CLASSIC_FLOOR + np.exp(-age_years / RECENCY_YEARS)
        weight = (1.0 + cited_by) ** CITATION_PULL * attention
        self._popular = np.cumsum(weight)
        self._by_specialty = GroupedSampler(specialty_of, weight, self.t.n_specialties)

    def _popular_papers(self, rng: np.random.Generator, n: int) -> np.ndarray:
        cum = self._popular
        pos = np.searchsorted(cum, rng.random(n) * cum[-1], side="right")
        return np.minimum(pos, len(cum) - 1)

    # -------------------------------------------------------------- reading
    def reading(self, ub: int, first_id: int, digest: Digest) -> list[tuple]:
        """Reading-history rows of users in block ``ub``; row ids start at ``first_id``."""
        plan = self.plan
        lo = ub * USER_BLOCK
        hi = min(plan.users, lo + USER_BLOCK)
        rng = plan.rng("reading", ub)
        # 10 % more draws than rows wanted: repeated (user, paper) pairs are dropped
        mean = READS_PER_PAPER * plan.papers / plan.users * 1.1
        mu = np.log(mean) - READS_SIGMA ** 2 / 2
        reads = np.exp(mu + READS_SIGMA * rng.standard_normal(hi - lo))
        reads = np.clip(np.rint(reads), 1, min(plan.papers, MAX_READS_PER_USER)).astype(np.int64)
        user = np.repeat(np.arange(lo, hi), reads)
        n = len(user)
        spec = self.user_specialty[user]
        own = (rng.random(n) < OWN_SPECIALTY_SHARE) & self._by_specialty.has_items[spec]
        paper = self._popular_papers(rng, n)
        paper[own] = self._by_specialty.sample(rng, spec[own])
        key = np.unique(user * plan.papers + paper)          # one row per (user, paper)
        user, paper = key // plan.papers, key % plan.papers
        n = len(user)
        # seconds before as_of: truncated exponential over the window, after publication
        window = READ_WINDOW_DAYS * DAY
        u = rng.random(n)
        scale = READ_RECENCY_DAYS * DAY
        ago = -scale * np.log1p(-u * (1 - np.exp(-window / scale)))
        since = (plan.span_days - self._pub_day[paper]).astype(np.float64) * DAY
        ago = np.where(ago >= since, since * rng.random(n), ago).astype(np.int64) + 1
        moment = plan.as_of_day * DAY - ago
        t = self.t
        stamps = t.pieces.render(np.stack([t.DATE_SP + moment // DAY, t.HHMM + moment % DAY // 60,
                                           t.SS_NL + moment % 60], axis=1).ravel(), digest)
        percent = np.where(rng.random(n) < FULL_READ_SHARE, 100.0,
                           np.round(rng.uniform(1.0, 100.0, n), 1))
        for a in (user, paper, percent):
            digest.array(a)
        return list(zip(range(first_id, first_id + n), (user + 1).tolist(), (paper + 1).tolist(),
                        stamps, percent.tolist()))

    # -------------------------------------------------------------- reviews
    def reviews(self, rb: int, digest: Digest) -> list[tuple]:
        plan, t = self.plan, self.t
        lo = rb * REVIEW_BLOCK
        hi = min(plan.reviews, lo + REVIEW_BLOCK)
        n = hi - lo
        rng = plan.rng("reviews", rb)
        paper = self._popular_papers(rng, n)
        user = (plan.users * rng.random(n) ** 1.5).astype(np.int64)  # some users review a lot
        rating = self._ratings[self._rating.sample(rng, n)]
        pick = (rng.random(n) * self._opener_count[rating]).astype(np.int64)
        opener = self._opener_base[rating] + pick
        c1 = np.where(rng.random(n) < 0.7, t.COMMENT_SP + rng.integers(0, t.n_comments, n), t.EMPTY)
        c2 = np.where(rng.random(n) < 0.3, t.COMMENT_SP + rng.integers(0, t.n_comments, n), t.EMPTY)
        text = t.pieces.render(np.stack([opener, c1, c2, np.full(n, t.NL)], axis=1).ravel(), digest)
        pub = self._pub_day[paper] + plan.start_day
        day = pub + ((plan.as_of_day - pub) * rng.random(n) ** 0.6).astype(np.int64)
        created = self._timestamps(rng, day, digest)
        for a in (paper, user, rating):
            digest.array(a)
        return list(zip(range(lo + 1, hi + 1), (paper + 1).tolist(), (user + 1).tolist(),
                        rating.tolist(), text, created))
