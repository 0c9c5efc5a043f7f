"""One module per rewrite kind, each a stage ``propose(name, ctx) -> Rewrite | Skip | None``.

``None`` means the kind does not apply to the template at all; a :class:`Skip`
means it applies but is not proposed, and says why.
"""

from __future__ import annotations

from d1bench.fixer.kinds import (
    counter,
    fts_match,
    json_column,
    keyset,
    n_plus_one,
    rollup,
    trigger_of,
    vector,
)

#: Stages over templates, in the order they are tried (every one is tried on every template).
TEMPLATE_STAGES = (vector, rollup, fts_match, json_column, keyset, counter)
#: Stages over sessions and over the schema's triggers.
SESSION_STAGES = (n_plus_one,)
SCHEMA_STAGES = (trigger_of,)

__all__ = ["SCHEMA_STAGES", "SESSION_STAGES", "TEMPLATE_STAGES"]
