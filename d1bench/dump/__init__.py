"""SQL dumps in and out: ``import`` a ``wrangler d1 export`` (or ``sqlite3 .dump``)
into SQLite, ``export`` a D1 database through the REST API, and write a SQLite
file as D1's own dump."""

from __future__ import annotations

from d1bench.dump.export import ExportInfo, export_dump
from d1bench.dump.load import ImportInfo, import_dump
from d1bench.dump.write import dump_lines, quote_value, write_dump

__all__ = ["ExportInfo", "ImportInfo", "dump_lines", "export_dump", "import_dump", "quote_value",
           "write_dump"]
