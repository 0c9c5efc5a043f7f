"""The advised set's values run on a local D1, which counts the rows it reads itself.

:func:`d1bench.advisor.verify.fidelity` holds the what-if's predictions against
these counts (``on="local-d1"``); the SQLite target's estimate of the same counts
is reported beside them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["run_values_on_d1"]


def run_values_on_d1(db: Path, wl: Any, priced: Mapping[str, Sequence[Sequence[Any]]],
                      folder: Path, failed: dict[str, int]) -> dict[str, float]:
    """Mean of local D1's own rows read per template over the given values, each run once
    on a local D1 (Miniflare, in ``folder``) that ``db`` is uploaded into: reads first,
    then writes, which change only that scratch copy.  Values D1 refused are left out of
    the mean and counted in ``failed`` by template."""
    from d1bench.errors import TargetError
    from d1bench.targets.d1.local import LocalD1
    from d1bench.uploader import upload

    names = [n for n, t in priced.items() if n in wl.templates and t]
    reads = [n for n in names if not wl.templates[n].is_write]
    writes = [n for n in names if wl.templates[n].is_write]
    out: dict[str, float] = {}
    with LocalD1(folder) as local, local.target() as target:
        upload(db, target)
        for group, allow_writes in ((reads, False), (writes, True)):
            if not group:
                continue
            with target.connect(allow_writes=allow_writes) as conn:
                for name in group:
                    counts = []
                    for values in priced[name]:
                        try:
                            read = conn.execute(wl.templates[name].sql, list(values)).meta.rows_read
                        except TargetError:
                            # a constraint a drawn value breaks, or D1's time limit
                            failed[name] = failed.get(name, 0) + 1
                            continue
                        if read is not None:
                            counts.append(float(read))
                    if counts:
                        out[name] = sum(counts) / len(counts)
    return out
