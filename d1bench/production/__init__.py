"""Production beside local: what a D1 database ran (wrangler insights, GraphQL
analytics, a SQL log) as a workload file, and a replay's figures beside production's."""

from __future__ import annotations

from d1bench.production.compare import COMPARE_COLUMNS, compare_production
from d1bench.production.generate import FromInsights, from_insights, name_shapes
from d1bench.production.insights import Shape, read_insights

__all__ = ["COMPARE_COLUMNS", "FromInsights", "Shape", "compare_production", "from_insights",
           "name_shapes", "read_insights"]
