"""The ground floor: what every layer needs to know about SQL, without a database.

* :mod:`~d1bench.sql.limits`: D1's per-statement limits, one table of facts;
* :mod:`~d1bench.sql.text`: placeholders counted as SQLite numbers them, and
  whether a statement reads or writes;
* :mod:`~d1bench.sql.parsing`: sqlglot trees, canonical keys and predicates;
* :mod:`~d1bench.sql.catalog`: a database's tables, keys and indexes;
* :mod:`~d1bench.sql.naming`: index names in the seed's convention;
* :mod:`~d1bench.sql.session`: the least a database session is (execute,
  explain) and the values it returns.

Workload, targets, plans, lint and the advisor import these modules; nothing
here imports any other layer of d1bench.
"""
