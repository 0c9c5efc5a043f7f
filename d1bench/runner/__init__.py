"""Replay a workload against a target and record every request: the scheduler and recorder.

- :mod:`~d1bench.runner.schedule`: arrival times and units, drawn before the clock starts;
- :mod:`~d1bench.runner.engine`: the timed path (worker threads, or asyncio for HTTP targets);
- :mod:`~d1bench.runner.recorder`: rows to trace columns, and the live progress line;
- :mod:`~d1bench.runner.metadata`: what the trace says about the run;
- :mod:`~d1bench.runner.run`: :func:`replay` itself.
"""

from __future__ import annotations

from d1bench.runner.options import ReplayOptions
from d1bench.runner.run import replay

__all__ = ["ReplayOptions", "replay"]
