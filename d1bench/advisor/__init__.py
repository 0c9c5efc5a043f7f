"""Index advice for a whole workload, in D1's currency, with a reason for everything.

:func:`prepare` (:mod:`~d1bench.advisor.preparation`) makes a workload ready on
a corpus, the same way for the advisor, the lint and the benchmarks; then
:func:`advise` runs the stages of this package in order, each with one job:

1. :mod:`~d1bench.advisor.query` reads every template with sqlglot (with
   :mod:`~d1bench.advisor.builder` and :mod:`~d1bench.advisor.predicates`
   resolving its columns and classifying its conjuncts), against the
   corpus's shape from :mod:`~d1bench.sql.catalog`;
2. :mod:`~d1bench.advisor.candidates` lists the indexes they ask for;
3. :mod:`~d1bench.advisor.whatif` plans each template as if some of them
   existed, on a schema-only copy carrying the corpus's statistics, which
   :mod:`~d1bench.advisor.stats` computes exactly as ANALYZE writes them;
4. :mod:`~d1bench.advisor.costmodel` (with :mod:`~d1bench.advisor.planwalk`) prices
   each plan in D1's rows read and written, and :mod:`~d1bench.advisor.evaluate`
   caches the price per template and configuration;
5. :mod:`~d1bench.advisor.select` grows the set greedily (Extend), weighting
   each template by its frequency, and proposes drops;
6. :mod:`~d1bench.sql.naming` and :mod:`~d1bench.advisor.migration` write
   it down as a wrangler migration, :mod:`~d1bench.advisor.report` as frames
   with a reason for every template;
7. :mod:`~d1bench.advisor.verify` builds it on a copy and replays the workload
   again, so the saving is measured, not predicted.

:mod:`~d1bench.advisor.expert` runs SQLite's own ``.expert`` for comparison.
"""

from __future__ import annotations

from d1bench.advisor.advise import Advice, advise
from d1bench.advisor.preparation import DEFAULT_SAMPLES, Prepared, prepare

__all__ = ["DEFAULT_SAMPLES", "Advice", "Prepared", "advise", "prepare"]
