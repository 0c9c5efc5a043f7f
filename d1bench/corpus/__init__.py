"""Deterministic synthetic corpora of medical papers, at any scale.

``generate_corpus(out, papers, seed)`` writes a SQLite file with the platform's
schema (:mod:`d1bench.schema`) filled with papers, citations, clinical trials,
users, reading history and reviews; ``describe_corpus(path)`` identifies a corpus
file; :mod:`d1bench.corpus.stats` summarises one as DataFrames.
"""

from __future__ import annotations

from d1bench.corpus.build import CorpusInfo, generate_corpus
from d1bench.corpus.describe import describe_corpus
from d1bench.corpus.plan import GENERATOR_VERSION

__all__ = ["GENERATOR_VERSION", "CorpusInfo", "describe_corpus", "generate_corpus"]
