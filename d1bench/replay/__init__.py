"""Replay a workload against a target and record every request: the scheduler and recorder.

- :mod:`~d1bench.replay.schedule`: arrival times and units, drawn before the clock starts;
- :mod:`~d1bench.replay.engine`: the timed path (worker threads, or asyncio for HTTP targets);
- :mod:`~d1bench.replay.recorder`: rows to trace columns, and the live progress line;
- :mod:`~d1bench.replay.metadata`: what the trace says about the run;
- :mod:`~d1bench.replay.run`: :func:`replay` itself.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from d1bench.replay.run import replay

__all__ = ["replay"]


class _CallablePackage(types.ModuleType):
    """``d1bench.replay`` is both this package and the public function.

    Importing a submodule (``d1bench.replay.schedule``) makes Python set the
    attribute ``d1bench.replay`` to this package, hiding the function that
    ``d1bench/__init__.py`` exports under the same name.  Calling the package
    calls the function, so ``d1bench.replay(...)`` works whichever one a
    caller ends up holding.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return replay(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
