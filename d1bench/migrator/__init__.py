"""PostgreSQL and MySQL to SQLite or D1: convert, copy, prove, and only then swap in.

The stages live in this package's modules, one job each; :func:`migrate`
(:mod:`.run`) runs them in order.  The package is called ``migrator`` so that
importing one of its modules can never replace the public function
``d1bench.migrate`` with a module of the same name.
"""

from d1bench.migrator.run import Migration, ValidationFailed, aside_path, migrate, parse_maps

__all__ = ["Migration", "ValidationFailed", "aside_path", "migrate", "parse_maps"]
