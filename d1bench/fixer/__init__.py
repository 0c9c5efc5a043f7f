"""Fix plans beyond indexes: rewrites and summary tables, each proven equivalent and measured.

:func:`fix` starts from the advisor's indexes, tries every stage of
:mod:`d1bench.fixer.kinds` (one module per rewrite kind) on every template,
checks each proposal on scratch copies (:mod:`d1bench.fixer.check`), and orders
what holds by dollars a month saved (:mod:`d1bench.fixer.plan`).
"""

from __future__ import annotations

from d1bench.fixer.model import Rewrite, Skip, Trial
from d1bench.fixer.plan import FixPlan, fix

__all__ = ["FixPlan", "Rewrite", "Skip", "Trial", "fix"]
