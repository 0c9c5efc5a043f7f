"""The order in which a corpus's rows are made: a stream of batches, one table each.

Citations come first because a paper's ``citation_count`` is only known once
every later paper has chosen its references; papers follow with their counts
final, so no row is ever updated.  Within a phase, blocks go in id order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from d1bench import __version__
from d1bench.corpus._pieces import Digest
from d1bench.corpus.citations import CitationGraph
from d1bench.corpus.papers import PaperMaker
from d1bench.corpus.people import PeopleMaker
from d1bench.corpus.plan import GENERATOR_VERSION, USER_BLOCK, CorpusPlan
from d1bench.corpus.texts import Texts
from d1bench.corpus.vocabulary import Vocabulary

__all__ = ["DATA_TABLES", "FTS_UNITS_PER_PAPER", "Batch", "CorpusGenerator"]

#: Tables that hold generated rows, in the order the schema creates them.
DATA_TABLES = ("clinical_trials", "papers", "citations", "users", "reading_history",
               "paper_reviews")
#: Progress units the full-text index build is worth per paper: it takes about as
#: long as everything else together.
FTS_UNITS_PER_PAPER = 3


@dataclass(frozen=True, slots=True)
class Batch:
    """Rows for one table; ``units`` is the progress this batch completes in ``phase``."""

    table: str
    rows: list[tuple]
    phase: str
    units: int


class CorpusGenerator:
    """Yields every row of a corpus as :class:`Batch` objects, and fingerprints them.

    One generator makes one pass: ``batches()`` may be iterated once.  Afterwards
    ``row_counts`` and ``digest`` describe what was made, and ``meta()`` gives the
    ``corpus_meta`` rows.
    """

    def __init__(self, plan: CorpusPlan, vocab: Vocabulary) -> None:
        self.plan, self.vocab = plan, vocab
        self.row_counts = {table: 0 for table in DATA_TABLES}
        self._digest = Digest("d1bench corpus", GENERATOR_VERSION, vocab.digest, plan.papers,
                              plan.seed, plan.as_of.isoformat())
        self._done = False

    @property
    def total_units(self) -> int:
        """Progress units of the whole build, the full-text index included."""
        p = self.plan
        return 2 * p.papers + 2 * p.users + p.reviews + FTS_UNITS_PER_PAPER * p.papers

    def batches(self) -> Iterator[Batch]:
        """Every row of the corpus, a block at a time (see the module docstring for the order)."""
        plan = self.plan
        digest = self._digest
        texts = Texts(self.vocab, plan)
        digest.text(texts.pieces.fingerprint)
        papers = PaperMaker(plan, texts)
        graph = CitationGraph(plan, self.vocab, papers.kinds)
        for b in range(plan.paper_blocks):
            lo, hi = plan.block_range(b)
            yield self._count(Batch("citations", graph.block(b, digest), "citations", hi - lo))
        for b in range(plan.paper_blocks):
            lo, hi = plan.block_range(b)
            trials, rows = papers.block(b, graph.cited_by[lo:hi], digest)
            yield self._count(Batch("clinical_trials", trials, "papers", 0))
            yield self._count(Batch("papers", rows, "papers", hi - lo))
        people = PeopleMaker(plan, texts, graph.days)
        for ub in range(people.user_blocks):
            rows = people.users(ub, digest)
            yield self._count(Batch("users", rows, "users", len(rows)))
        people.prepare(graph.cited_by, papers.specialty_of)
        del graph, papers
        for ub in range(people.user_blocks):
            rows = people.reading(ub, self.row_counts["reading_history"] + 1, digest)
            units = min(plan.users, (ub + 1) * USER_BLOCK) - ub * USER_BLOCK
            yield self._count(Batch("reading_history", rows, "reading history", units))
        for rb in range(people.review_blocks):
            rows = people.reviews(rb, digest)
            yield self._count(Batch("paper_reviews", rows, "reviews", len(rows)))
        self._done = True

    def _count(self, batch: Batch) -> Batch:
        self.row_counts[batch.table] += len(batch.rows)
        return batch

    @property
    def digest(self) -> str:
        """Fingerprint of every generated row (available once ``batches()`` is exhausted)."""
        if not self._done:
            raise RuntimeError("the digest is known once every batch has been made")
        return self._digest.hexdigest()

    def meta(self) -> list[tuple[str, str]]:
        """``corpus_meta`` rows: what made this corpus and what it holds."""
        p = self.plan
        return [
            ("generator", "d1bench"),
            ("generator_version", GENERATOR_VERSION),
            ("d1bench_version", __version__),
            ("numpy_version", np.__version__),
            ("papers", str(p.papers)),
            ("seed", str(p.seed)),
            ("as_of", p.as_of.isoformat()),
            ("vocabulary_digest", self.vocab.digest),
            ("digest", self.digest),
            ("row_counts", json.dumps(self.row_counts, sort_keys=True)),
        ]
