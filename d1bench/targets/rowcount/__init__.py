"""Estimate D1's rows read and rows written for a statement run on plain SQLite.

What D1 counts
--------------
workerd bills rows with a patch to SQLite's VDBE (from libSQL; workerd's
``patches/sqlite/0001-row-counts-plain.patch``).  Per statement:

* rows read: +1 per cursor positioning (``SeekGE/GT/LE/LT`` -- except a miss
  on an equality-only index seek --, ``SeekRowid``/``NotExists`` hit or miss,
  ``Rewind``, ``Last``, ``Sort``/``SorterSort``), +1 per *successful*
  ``Next``/``Prev``/``SorterNext``, +1 per ``VNext`` call (FTS5, json_each),
  and ``Count`` adds the whole b-tree's entry count.  Temporary b-trees and
  sorters count like tables.  Fetching a table row through an index
  (``DeferredSeek``), ``Found``/``NoConflict`` probes, ``IdxGT`` range checks
  and FTS5's reads of its own shadow tables (separate statements) do not.
* rows written: +1 per ``Insert`` and ``IdxInsert`` on a real (not
  temporary) b-tree -- so each index adds one per inserted row; a WITHOUT
  ROWID row is its ``IdxInsert``, the no-op ``Insert`` before it is not
  billed --, +1 per
  ``Delete`` that counts as a change (index entries removed are not billed),
  +1 per ``VUpdate`` (an FTS5 write).

Hand-checked on a local D1: a primary-key lookup reads 1, hit or miss; a full
scan of N rows reads N; an indexed range of k rows reads k + 1; an insert into
a table with one secondary index writes 2.

Why it must be estimated
------------------------
SQLite here has no such counter and no ``SQLITE_ENABLE_STMT_SCANSTATUS``; what
it does report per statement (``sqlite3_stmt_status`` through APSW's profile
trace) is the number of VM instructions run, of full-scan and
automatic-index ``Next`` steps, of sorts, and of Bloom-filter outcomes.

The method
----------
1. :mod:`~.flow` turns the statement's bytecode (``EXPLAIN``, parsed by :mod:`~.program`,
   triggers' sub-programs included) into a flow network: one unknown per
   basic block (how often it ran) and per conditional jump (how often it
   jumped), with the flow equations and structural facts as exact
   constraints.  Every quantity above -- D1's counts, SQLite's counters,
   rows returned and changed -- is a linear form of those unknowns.
2. Each execution contributes what it observed: the counters (soft, heavily
   weighted), rows returned and changed, and cheap facts about the data:
   a full scan visits every row of its table (row counts cached per target);
   ``json_each(?)`` yields one row per element of the bound array; an FTS5
   MATCH yields ``count(*)`` of the same MATCH (run once per distinct
   expression, cached); a temporary b-tree read once yields what was put in
   it (:mod:`~.facts`, with :mod:`~.data` caching what it asks the
   database).  A sorted sample of a column (at most 20,000 values, read once)
   estimates how many rows the first WHERE term of a full scan rejects and
   how long an equality range on an index's first column is.  What remains
   open is settled by weak priors (a range filter passes half its rows, an
   equality one a tenth, seeks usually hit, loops are rarely empty).
3. The problem (:mod:`~.solve`) -- least squares on the soft rows, subject to the structure
   and to every count being >= 0 -- is solved once per active set (which
   unknowns sit at zero), found by NNLS and refined by a few active-set
   steps.  Within an active set the solution is linear in the observations,
   so each set met is kept as a small matrix: an execution then costs one
   matrix-vector product and a sign check proving the set still optimal
   (5-10 µs in Python), and D1's counts are dot products of the solution.
4. A statement whose counts follow from its structure alone (a primary-key
   lookup, a one-row insert) gets a constant and costs nothing per call
   (:class:`~.estimator.RowEstimator` holds a statement's systems).
5. Collecting counters costs APSW's profile callback (~2 µs, inside the
   statement's timing).  So a statement's counters are collected only while
   they change the answer: once the count-free estimate agreed with the
   counted one 8 times in a row, collection stops (and resumes one execution
   in 64 to check).  FTS5's bm25 runs a nested statement per row and each
   reports through the same callback: after an execution that ran more than
   64 nested statements, collection pauses for the next 8.
6. None of this runs while a replay times a request: the replay's
   connections record each execution's observations and work the estimates
   out after the run, replaying these counting decisions in execution order
   (``SQLiteConnection.defer_estimates``), and a statement's analysis is made
   before the clock starts and kept across runs (:mod:`~.store`).

Accuracy measured against a local D1's exact counts (workload ``medical``,
2,000-paper corpus, index sets ``none`` and ``seed``, six draws per
template): every template within 5%, most within 1%.

Where it diverges (known error cases)
-------------------------------------
* Branch outcomes no counter separates: two successive filters on joined
  rows, which rows replace the worst in a ``LIMIT`` sorter, nested loops of
  unknown length (``json_each`` over a column inside another loop).  VM steps
  give one equation; priors split the rest.  Typically a few percent.
* Off by one on a range that ends at the last entry of its index (the final
  ``Next`` fails instead of stepping past the range), and on a few similar
  once-per-entry events.
* Statements counted without counters (after calibration, or for bm25 with
  many rows) rely on data facts and priors; a materialised subquery built
  only when some row gets that far (all or nothing) can be badly off for one
  execution.
* Data facts are cached per target: heavy writes during a run make table
  sizes, column samples and FTS counts drift (``forget_data_facts``).  A
  ``MATCH`` restricted to columns, or several MATCH terms, get no FTS fact.
* The estimate follows the local plan.  D1 runs another SQLite version with
  its own statistics; if its planner chooses differently (different
  ``sqlite_stat1``, or a STAT4 re-prepare on other bound values), so do the
  counts.
* ``Count`` (``SELECT count(*) FROM t``) uses the returned count when the
  statement returns it, else the cached table size (partial indexes ignored);
  a ``DELETE`` without WHERE (``Clear``) is billed as the rows it changed.
"""

from d1bench.targets.rowcount.data import DataFacts
from d1bench.targets.rowcount.estimator import TRACE_COUNTERS, Estimate, RowEstimator
from d1bench.targets.rowcount.program import Program, read_program

__all__ = ["TRACE_COUNTERS", "DataFacts", "Estimate", "Program", "RowEstimator", "read_program"]
