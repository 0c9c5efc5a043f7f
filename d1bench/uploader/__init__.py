"""Loading any SQLite database into D1: see :mod:`d1bench.uploader.run`."""

from __future__ import annotations

from d1bench.uploader.packing import MAX_PARAMS, MAX_STATEMENT_BYTES, MAX_VALUE_BYTES
from d1bench.uploader.run import UploadError, upload

__all__ = ["MAX_PARAMS", "MAX_STATEMENT_BYTES", "MAX_VALUE_BYTES", "UploadError", "upload"]
