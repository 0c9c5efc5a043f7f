"""The citation graph: preferential attachment, always from newer papers to older ones.

Papers are taken in id (= date) order, in steps of :data:`STEP`.  Each reference
of a citing paper either copies the target of a random earlier citation (with
probability :data:`COPY_SHARE`: a paper is picked in proportion to the citations
it already has, Price's preferential attachment) or picks a paper published a
random, exponentially distributed time earlier (recent work is cited most).
A paper may only cite papers published on an earlier day.

Memory stays bounded: earlier citations are remembered through a fixed-size
uniform sample (a reservoir), and per paper we keep only 4-byte counters.
"""

from __future__ import annotations

import numpy as np

from d1bench.corpus._pieces import AliasTable, Digest
from d1bench.corpus.plan import CorpusPlan
from d1bench.corpus.vocabulary import Vocabulary

__all__ = ["COPY_SHARE", "STEP", "CitationGraph"]

#: Citing papers handled together; the references they draw see citations made
#: by earlier steps only.
STEP = 250
#: Share of references drawn by preferential attachment.
COPY_SHARE = 0.65
#: Mean age, in days, of a reference drawn by recency.
RECENCY_DAYS = 4 * 365
#: Reservoir of earlier citation targets (4 bytes each).
RESERVOIR = 1 << 21
#: At most this many references per paper.
MAX_REFERENCES = 80


class CitationGraph:
    """Makes the citations table block by block and counts each paper's citations.

    After every block has been made, ``cited_by[i]`` is the number of citations
    of paper ``i + 1``; it becomes ``papers.citation_count``.
    """

    def __init__(self, plan: CorpusPlan, vocab: Vocabulary, kinds) -> None:
        self.plan = plan
        self._kinds = kinds
        self._refs = vocab.designs.references
        contexts, weights = vocab.category("citation_context")
        self._contexts = np.array(contexts, dtype=object)
        self._context = AliasTable(weights)
        n = plan.papers
        days = np.concatenate([plan.publication_days(*plan.block_range(b))
                               for b in range(plan.paper_blocks)]).astype(np.int32)
        # first_of_day[d]: index of the first paper published on day d or later
        self._first_of_day = np.searchsorted(days, np.arange(plan.span_days + 1)).astype(np.int64)
        #: publication day (from plan.start) of every paper
        self.days = days
        self.cited_by = np.zeros(n, dtype=np.int32)
        self._reservoir = np.empty(RESERVOIR, dtype=np.int32)
        self._edges = 0  # citations made so far

    def block(self, b: int, digest: Digest) -> list[tuple]:
        """Rows ``(id, citing_paper_id, cited_paper_id, context)`` citing from block ``b``."""
        plan = self.plan
        rng = plan.rng("citations", b)
        lo, hi = plan.block_range(b)
        design = self._kinds(b)[1]
        older = self._first_of_day[self.days[lo:hi]]  # papers strictly older than each
        mean = self._refs[design]
        # negative binomial (shape 2): most papers cite a few, some cite many
        k = rng.negative_binomial(2, 2.0 / (2.0 + mean))
        k = np.minimum(np.minimum(k, MAX_REFERENCES), older)
        citing_parts, cited_parts = [], []
        for s in range(lo, hi, STEP):
            e = min(hi, s + STEP)
            counts = k[s - lo:e - lo]
            total = int(counts.sum())
            if total == 0:
                continue
            citing = np.repeat(np.arange(s, e, dtype=np.int64), counts)
            cited = self._draw(rng, citing, older[citing - lo])
            key = np.unique(citing * plan.papers + cited)  # one citation per pair, sorted
            citing, cited = key // plan.papers, key % plan.papers
            self._remember(rng, cited)
            citing_parts.append(citing)
            cited_parts.append(cited)
        if not citing_parts:
            return []
        citing = np.concatenate(citing_parts)
        cited = np.concatenate(cited_parts)
        np.add.at(self.cited_by, cited, 1)
        context = self._context.sample(rng, len(cited))
        for a in (citing, cited, context):
            digest.array(a)
        first = self._edges - len(cited) + 1
        return list(zip(range(first, first + len(cited)), (citing + 1).tolist(),
                        (cited + 1).tolist(), self._contexts[context].tolist()))

    def _draw(self, rng: np.random.Generator, citing: np.ndarray, older: np.ndarray) -> np.ndarray:
        n = len(citing)
        cited = np.empty(n, dtype=np.int64)
        known = min(self._edges, RESERVOIR)
        copy = rng.random(n) < COPY_SHARE if known else np.zeros(n, dtype=bool)
        n_copy = int(copy.sum())
        if n_copy:
            cited[copy] = self._reservoir[rng.integers(0, known, n_copy)]
        fresh = ~copy
        n_fresh = n - n_copy
        age = 1 + rng.exponential(RECENCY_DAYS, n_fresh).astype(np.int64)
        day = self.days[citing[fresh]] - age
        u = rng.random(n_fresh)
        first = self._first_of_day[np.maximum(day, 0)]
        last = self._first_of_day[np.maximum(day, 0) + 1]
        pick = first + (u * (last - first)).astype(np.int64)
        # too far back: any older paper; an empty day: the next paper, kept older
        pick = np.where(day < 0, (u * older[fresh]).astype(np.int64), pick)
        cited[fresh] = np.minimum(pick, older[fresh] - 1)
        return cited

    def _remember(self, rng: np.random.Generator, cited: np.ndarray) -> None:
        n = len(cited)
        index = np.arange(self._edges, self._edges + n)
        room = index < RESERVOIR
        self._reservoir[index[room]] = cited[room]
        if not room.all():
            # reservoir sampling: the i-th citation replaces a random slot with chance R/(i+1)
            late = index[~room]
            keep = rng.random(len(late)) < RESERVOIR / (late + 1.0)
            slots = rng.integers(0, RESERVOIR, int(keep.sum()))
            self._reservoir[slots] = cited[~room][keep]
        self._edges += n
