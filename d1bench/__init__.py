"""d1bench: how fast is this query on D1, what does it cost, and which index fixes it."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
