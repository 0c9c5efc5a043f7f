"""Replay a workload against a target and record every request: the scheduler and recorder.

- :mod:`~d1bench.replay.schedule`: arrival times and units, drawn before the clock starts;
- :mod:`~d1bench.replay.engine`: the timed path (worker threads, or asyncio for HTTP targets);
- :mod:`~d1bench.replay.recorder`: rows to trace columns, and the live progress line;
- :mod:`~d1bench.replay.metadata`: what the trace says about the run;
- :mod:`~d1bench.replay.run`: :func:`replay` itself.
"""

from __future__ import annotations

from d1bench.replay.run import replay

__all__ = ["replay"]
