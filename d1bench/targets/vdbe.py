"""SQLite bytecode as a flow network: the raw material of the rows-read estimate.

``EXPLAIN <sql>`` lists the program SQLite runs for a statement, followed by one
sub-program per trigger it may fire.  D1 bills rows by counting executions of a
few opcodes (:mod:`d1bench.targets.rowcount` lists them), so knowing how many
times each opcode ran would give D1's count exactly.  SQLite does not report
that, but the program's control flow constrains it, linearly:

* one unknown per basic block (how many times it ran) and one per conditional
  jump (how many times it jumped; at most the times it ran);
* flow equations: a block runs as often as control flows into it, +1 for the
  entry of the statement;
* structural facts: ``Once`` falls through once per run, error ``Halt``\\ s never
  run in a successful statement, every ``Gosub`` returns, every coroutine run
  ends at the ``Yield`` of its consumer;
* the linear form of each counter SQLite does report (VM steps, full-scan steps,
  sorts, automatic-index steps, Bloom-filter outcomes) and of the rows returned
  and changed;
* facts about the data where they are cheap: a full scan of a table visits all
  its rows; ``json_each(?)`` yields one row per element of the bound array; an
  FTS5 MATCH yields as many rows as ``count(*)`` of the same MATCH;
* a prior per jump (how often a filter rejects a row...) for what the rest
  leaves open.

Nothing here runs the statement; :mod:`~d1bench.targets.rowcount` solves the
system.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Op", "Program", "read_program", "register_source", "FlowModel", "build_flow_model",
           "json_length"]

# OPFLAG bits that SQLite leaves in P2/P5 (sqliteInt.h).
OPFLAG_NCHANGE = 0x01
OPFLAG_SEEKEQ = 0x02
OPFLAG_P2ISREG = 0x10

#: Opcodes that jump to P2 on some executions and fall through on others.
CONDITIONAL_P2 = frozenset(
    """If IfNot IsNull NotNull IsType IfNullRow Eq Ne Lt Le Gt Ge ElseEq Once IfPos
    IfNotZero DecrJumpZero SeekLT SeekLE SeekGE SeekGT IfNotOpen IfNoHope
    NoConflict NotFound Found SeekRowid NotExists Last IfSizeBetween SorterSort Sort
    Rewind IfEmpty Next Prev SorterNext IdxLE IdxGT IdxLT IdxGE RowSetRead RowSetTest
    FkIfZero Filter VFilter VNext IncrVacuum SequenceTest SorterCompare Yield MustBeInt""".split()
)
ALWAYS_P2 = frozenset({"Goto", "Init", "Trace"})  #: always jump to P2
TERMINAL = frozenset({"Halt", "EndCoroutine"})  #: control never falls through
LOOP_STEP = frozenset({"Next", "Prev", "SorterNext", "VNext"})  #: jump = "another row"
LOOP_OPEN = frozenset({"Rewind", "Last", "Sort", "SorterSort", "VFilter"})  #: jump = "empty"
SEEKS = frozenset({"SeekLT", "SeekLE", "SeekGE", "SeekGT"})
RANGE_END = frozenset({"IdxLE", "IdxGT", "IdxLT", "IdxGE"})
COMPARES = frozenset({"Eq", "Ne", "Lt", "Le", "Gt", "Ge", "ElseEq", "If", "IfNot", "IsType"})
EPHEMERAL_OPEN = frozenset({"OpenEphemeral", "OpenAutoindex", "SorterOpen", "OpenPseudo"})
STMTSTATUS_FULLSCAN_STEP = 1
STMTSTATUS_AUTOINDEX = 3

_FTS_AUX = re.compile(r"^(bm25|highlight|snippet)\(", re.I)


@dataclass(frozen=True, slots=True)
class Op:
    """One bytecode instruction, as ``EXPLAIN`` prints it."""

    addr: int
    opcode: str
    p1: int
    p2: int
    p3: int
    p4: Any
    p5: int
    prog: int  #: 0 for the statement itself, 1.. for trigger sub-programs
    index: int  #: position in the concatenation of all programs


@dataclass(frozen=True, slots=True)
class Program:
    """A statement's bytecode: the main program followed by its sub-programs."""

    ops: tuple[Op, ...]
    starts: tuple[int, ...]  #: index of each program's first op in ``ops``

    def program(self, k: int) -> tuple[Op, ...]:
        end = self.starts[k + 1] if k + 1 < len(self.starts) else len(self.ops)
        return self.ops[self.starts[k]:end]


def read_program(conn: Any, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Program:
    """Run ``EXPLAIN sql`` on an APSW connection and parse the listing."""
    ops: list[Op] = []
    starts: list[int] = []
    for addr, opcode, p1, p2, p3, p4, p5, _comment in conn.execute("EXPLAIN " + sql, params):
        if addr == 0:
            starts.append(len(ops))
        ops.append(Op(addr, opcode, p1 or 0, p2 or 0, p3 or 0, p4, p5 or 0,
                      len(starts) - 1, len(ops)))
    return Program(tuple(ops), tuple(starts))


def register_source(prog: Sequence[Op], reg: int, _depth: int = 0) -> tuple[str, Any] | None:
    """Where a register's value comes from, when one instruction alone sets it.

    ``("const", value)`` for ``Integer``/``Int64``/``String8``; ``("param", i)``
    (0-based) for ``Variable``; ``Copy``/``SCopy`` are followed.  Used to read a
    LIMIT or a MATCH expression without running the statement.
    """
    writers = [op for op in prog if op.p2 == reg and op.opcode in
               ("Integer", "Int64", "String8", "Variable", "Copy", "SCopy", "IntCopy")]
    if len(writers) != 1 or _depth > 5:
        return None
    op = writers[0]
    if op.opcode == "Integer":
        return ("const", op.p1)
    if op.opcode in ("Int64", "String8"):
        return ("const", op.p4)
    if op.opcode == "Variable":
        return ("param", op.p1 - 1)
    return register_source(prog, op.p1, _depth + 1)


def json_length(text: Any) -> int | None:
    """How many rows ``json_each(text)`` yields: elements of an array, keys of
    an object, 1 for a scalar; ``None`` when it cannot tell.

    >>> json_length("[0.1, 0.2, 0.3]"), json_length('{"a": 1}'), json_length("7")
    (3, 1, 1)
    """
    if not isinstance(text, (str, bytes)):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return len(value) if isinstance(value, (list, dict)) else 1


Form = dict[int, float]  #: a linear form over the unknowns: {variable: coefficient}


@dataclass
class FlowModel:
    """The linear system of one program (see the module docstring).

    ``equations`` are hard (structure); ``observables`` map each counter SQLite
    reports to its form; ``facts`` are data facts, each a form equal to a
    constant or to a named per-execution value; ``priors`` are soft
    (form ~= 0, weight).
    """

    program: Program
    nvars: int
    equations: list[tuple[Form, float]] = field(default_factory=list)
    observables: dict[str, Form] = field(default_factory=dict)
    facts: list[tuple[Form, float, str | None]] = field(default_factory=list)
    #: softer facts estimated from a sample of the data: (form, named input)
    samples: list[tuple[Form, str]] = field(default_factory=list)
    priors: list[tuple[Form, float]] = field(default_factory=list)
    reads: Form = field(default_factory=dict)
    writes: Form = field(default_factory=dict)
    #: ``Count`` opcodes: (executions form, b-tree name); each adds the entry count.
    counts: list[tuple[Form, str | None, int]] = field(default_factory=list)
    #: sorters with LIMIT: (jump form of IfNotZero, runs form of IfNotZero, limit source)
    limits: list[tuple[Form, Form, tuple[str, Any] | None]] = field(default_factory=list)
    #: named per-execution values the facts need: name -> (kind, detail)
    inputs: dict[str, tuple[str, Any]] = field(default_factory=dict)
    fts_aux_calls: bool = False  #: an FTS5 auxiliary function (bm25...) runs per row
    #: ``Clear`` empties a table (DELETE without WHERE): D1 bills each row it
    #: removes, which only the statement's change count tells.
    clears: bool = False
    #: parameters whose JSON length shaped a fact: callers key their caches on it
    shape_params: list[int] = field(default_factory=list)
    op_vars: list[int] = field(default_factory=list)  #: variable of each op's count
    jump_vars: dict[int, int] = field(default_factory=dict)  #: op index -> its jump variable


def _loops(prog_ops: Sequence[Op]) -> list[tuple[int, int]]:
    """(start address, end address) of every backward jump of one program."""
    spans = []
    for op in prog_ops:
        # (the preamble's closing "Goto 1" jumps back too, but is no loop)
        if op.p2 and op.p2 <= op.addr and (op.opcode in LOOP_STEP
                                           or (op.opcode == "Goto" and op.p2 > 1)):
            spans.append((op.p2, op.addr))
    return spans


def build_flow_model(program: Program, *, btrees: Mapping[int, tuple[str, str, bool]] | None = None,
                     table_rows: Mapping[str, int] | None = None,
                     vtabs: Mapping[str, tuple[str, int]] | None = None,
                     params: Sequence[Any] | Mapping[str, Any] = ()) -> FlowModel:
    """Build the flow system of ``program``.

    ``btrees`` maps root pages of the main schema to (name, table, partial,
    index columns as table column numbers: empty for a table);
    ``table_rows`` gives row counts of tables (for full scans and ``Count``);
    ``vtabs`` maps a ``VOpen`` P4 (``vtab:...``) to (module-or-table name,
    FTS5 column count or 0).  ``params`` are one execution's bindings, used
    only for facts that depend on their *shape* (the length of a JSON array),
    which callers must key their caches on (see :func:`shape_key`).
    """
    ops = program.ops
    n = len(ops)
    btrees = btrees or {}
    table_rows = table_rows or {}
    vtabs = vtabs or {}
    starts = list(program.starts)
    nv = n  # variables 0..n-1 are op execution counts; jumps follow
    t: dict[int, int] = {}
    t2: dict[int, int] = {}

    def new_var() -> int:
        nonlocal nv
        nv += 1
        return nv - 1

    def at(prog: int, addr: int) -> int | None:
        end = starts[prog + 1] if prog + 1 < len(starts) else n
        i = starts[prog] + addr
        return i if addr > 0 and i < end else None  # address 0 (Init) is never a jump target

    # Cursors: ephemeral ones (their inserts are not billed), equality-only ones
    # (a miss is not billed, a hit skips the following IdxGT), what b-tree or
    # virtual table each reads.
    ephemeral: set[tuple[int, int]] = set()
    eq_only: set[tuple[int, int]] = set()
    btree_of: dict[tuple[int, int], tuple[str, str, bool]] = {}
    vtab_of: dict[tuple[int, int], tuple[str, int]] = {}
    for op in ops:
        key = (op.prog, op.p1)
        if op.opcode in EPHEMERAL_OPEN or (op.opcode == "OpenDup" and (op.prog, op.p2) in ephemeral):
            ephemeral.add(key)
        elif op.opcode in ("OpenRead", "OpenWrite", "ReopenIdx"):
            if op.p5 & OPFLAG_SEEKEQ:
                eq_only.add(key)
            if op.p3 == 0 and not (op.p5 & OPFLAG_P2ISREG) and op.p2 in btrees:
                btree_of[key] = btrees[op.p2]
        elif op.opcode == "VOpen" and str(op.p4) in vtabs:
            vtab_of[key] = vtabs[str(op.p4)]

    # Coroutines: InitCoroutine P1=reg P2=skip-to P3=start; the body ends at EndCoroutine P1.
    co_start: dict[tuple[int, int], int] = {}
    co_last_init: dict[tuple[int, int], int] = {}
    co_ends: dict[tuple[int, int], list[int]] = defaultdict(list)
    for op in ops:
        key = (op.prog, op.p1)
        if op.opcode == "InitCoroutine":
            start = at(op.prog, op.p3)
            if start is not None:
                co_start[key] = start
            co_last_init[key] = max(op.index, co_last_init.get(key, -1))
        elif op.opcode == "EndCoroutine":
            co_ends[key].append(op.index)

    def is_producer_yield(op: Op) -> bool:
        key = (op.prog, op.p1)
        return key in co_start and bool(co_ends.get(key)) and \
            co_start[key] <= op.index <= max(co_ends[key])

    # Sub-programs: the k-th Program opcode runs the k-th listed sub-program.
    callers: dict[int, list[int]] = defaultdict(list)
    for k, op in enumerate(o for o in ops if o.opcode == "Program"):
        sub = min(k + 1, len(starts) - 1)
        if sub >= 1:
            callers[sub].append(op.index)

    # Outflows of each op, collected as inflows of their targets.
    inflow: list[list[Form]] = [[] for _ in range(n)]

    def flow(target: int | None, form: Form) -> None:
        if target is not None:
            inflow[target].append(form)

    gosubs: dict[tuple[int, int], list[int]] = defaultdict(list)
    returns: dict[tuple[int, int], list[tuple[int, bool]]] = defaultdict(list)
    for op in ops:
        i, name = op.index, op.opcode
        nxt = at(op.prog, op.addr + 1)
        jump = at(op.prog, op.p2)
        ci = {i: 1.0}
        if name in TERMINAL:
            pass
        elif name in ALWAYS_P2 or (name == "InitCoroutine" and op.p2):
            flow(jump, ci)
        elif name == "Gosub":
            gosubs[(op.prog, op.p1)].append(i)
            flow(jump, ci)
            flow(nxt, ci)  # the subroutine returns here
        elif name == "Return":
            returns[(op.prog, op.p1)].append((i, bool(op.p3)))
            if op.p3:  # an in-line subroutine falls through unless it was called
                t[i] = new_var()
                flow(nxt, {i: 1.0, t[i]: -1.0})
        elif name == "Program":
            flow(nxt, ci)
            for sub, idxs in callers.items():
                if i in idxs:
                    flow(starts[sub], ci)
        elif name in ("Jump", "SeekScan"):
            # Jump: to P1/P2/P3 after a Compare.  SeekScan: steps instead of
            # seeking; it jumps to P2, skips the SeekGE after it, or falls into it.
            t[i], t2[i] = new_var(), new_var()
            if name == "Jump":
                flow(at(op.prog, op.p1), {t[i]: 1.0})
                flow(jump, {t2[i]: 1.0})
                flow(at(op.prog, op.p3), {i: 1.0, t[i]: -1.0, t2[i]: -1.0})
            else:
                flow(jump, {t[i]: 1.0})
                flow(at(op.prog, op.addr + 2), {t2[i]: 1.0})
                flow(nxt, {i: 1.0, t[i]: -1.0, t2[i]: -1.0})
        elif name == "Yield" and is_producer_yield(op):
            flow(nxt, ci)  # the consumer resumes it
        elif name in CONDITIONAL_P2 and jump is not None:
            t[i] = new_var()
            flow(jump, {t[i]: 1.0})
            if name in ("SeekGE", "SeekLE") and (op.prog, op.p1) in eq_only:
                nxt = at(op.prog, op.addr + 2)  # a hit skips the IdxGT/IdxLT that follows
            flow(nxt, {i: 1.0, t[i]: -1.0})
        else:  # plain ops, HaltIfNull, and jumps whose P2 is 0 (no jump)
            flow(nxt, ci)
        if name == "InitCoroutine" and co_last_init.get((op.prog, op.p1)) == i:
            flow(co_start.get((op.prog, op.p1)), ci)  # the first Yield starts the body

    model = FlowModel(program, 0)
    eqs = model.equations
    runs: dict[int, Form] = {0: {}}  # program -> form of its number of runs (main: constant 1)
    for sub, idxs in callers.items():
        runs[sub] = {j: 1.0 for j in idxs}
    for i in range(n):
        form: Form = {i: 1.0}
        for f in inflow[i]:
            for var, coef in f.items():
                form[var] = form.get(var, 0.0) - coef
        eqs.append((form, 1.0 if i == 0 else 0.0))
    for i, tv in t.items():  # a jump is taken at most as often as it runs
        slack = new_var()
        form = {i: 1.0, tv: -1.0, slack: -1.0}
        if i in t2:
            form[t2[i]] = -1.0
        eqs.append((form, 0.0))

    # Structural facts.
    for op in ops:
        i = op.index
        if op.opcode == "Halt" and op.p1 != 0:
            eqs.append(({i: 1.0}, 0.0))  # an error halt never runs in a successful statement
        elif op.opcode == "HaltIfNull":
            pass
        elif op.opcode == "Once" and i in t:
            # Falls through once per run of its program -- if control gets there
            # at all (a subquery materialised on first use may never be): at
            # most once, hard; exactly once, strongly preferred.
            unused = new_var()
            form = {i: 1.0, t[i]: -1.0, unused: 1.0}
            for var, coef in runs.get(op.prog, {}).items():
                form[var] = form.get(var, 0.0) - coef
            eqs.append((form, 1.0 if op.prog == 0 else 0.0))
            model.priors.append(({unused: 1.0}, 30.0))
    for key, calls in gosubs.items():  # every call returns
        form = {}
        for i in calls:
            form[i] = form.get(i, 0.0) - 1.0
        for i, conditional in returns.get(key, []):
            var = t[i] if conditional else i
            form[var] = form.get(var, 0.0) + 1.0
        eqs.append((form, 0.0))
    for key, ends in co_ends.items():  # each coroutine run ends at its consumer's Yield
        consumers = [op.index for op in ops if op.opcode == "Yield" and (op.prog, op.p1) == key
                     and not is_producer_yield(op) and op.index in t]
        if consumers:
            form = {t[i]: 1.0 for i in consumers}
            for i in ends:
                form[i] = form.get(i, 0.0) - 1.0
            eqs.append((form, 0.0))

    # What SQLite reports.
    obs = model.observables
    obs["vm_steps"] = {i: 1.0 for i in range(n)}
    obs["fullscan_steps"] = {t[op.index]: 1.0 for op in ops if op.index in t
                             and op.opcode in ("Next", "Prev") and op.p5 == STMTSTATUS_FULLSCAN_STEP}
    obs["autoindex"] = {t[op.index]: 1.0 for op in ops if op.index in t
                        and op.opcode in ("Next", "Prev") and op.p5 == STMTSTATUS_AUTOINDEX}
    obs["sort"] = {op.index: 1.0 for op in ops if op.opcode in ("Sort", "SorterSort")}
    # SQLite's naming: a Bloom filter "hit" is a row it filtered out (the jump).
    obs["filter_hit"] = {t[op.index]: 1.0 for op in ops if op.opcode == "Filter" and op.index in t}
    miss: Form = {}
    for op in ops:
        if op.opcode == "Filter" and op.index in t:
            miss[op.index] = 1.0
            miss[t[op.index]] = -1.0
    obs["filter_miss"] = miss
    obs["rows"] = {op.index: 1.0 for op in ops if op.opcode == "ResultRow" and op.prog == 0}
    changes: Form = {}
    for op in ops:
        if op.prog == 0 and ((op.opcode == "Insert" and op.p5 & OPFLAG_NCHANGE)
                             or (op.opcode == "Delete" and op.p2 & OPFLAG_NCHANGE)
                             or op.opcode == "VUpdate"):
            changes[op.index] = 1.0
    obs["changes"] = changes

    # Data facts.
    main = program.program(0)
    spans = {k: _loops(program.program(k)) for k in range(len(starts))}
    for op in ops:
        if op.opcode not in ("Next", "Prev") or op.index not in t:
            continue
        key = (op.prog, op.p1)
        opener = _loop_opener(program, op, ("Rewind",) if op.opcode == "Next" else ("Last",))
        tree = btree_of.get(key)
        if opener is None or tree is None or tree[2] or opener.index not in t:
            continue
        rows = table_rows.get(tree[1])
        if rows is None or _has_early_exit(program, opener, op):
            continue
        # A full scan visits every row: rows-1 successful steps per entry, never empty.
        if rows > 0:
            model.facts.append(({t[op.index]: 1.0, opener.index: -(rows - 1.0)}, 0.0, None))
            model.facts.append(({t[opener.index]: 1.0}, 0.0, None))
        else:
            model.facts.append(({opener.index: 1.0, t[opener.index]: -1.0}, 0.0, None))
        if not _inside(spans[op.prog], opener.addr):
            # Entered once: its first WHERE term sees every row of the table, so
            # a sample of the column tells how many it rejects.
            first = _first_filter(program, op, key)
            if first is not None and first[0].index in t:
                cmp_op, colno, col_is_p3, value = first
                name = f"sel{len(model.inputs)}"
                model.inputs[name] = ("sel", (tree[1], (colno, cmp_op.opcode, col_is_p3,
                                                        cmp_op.p5, value)))
                model.samples.append(({t[cmp_op.index]: 1.0}, name))
    # An equality range on the first column of an index, entered once: as many
    # iterations as the table has rows with that value (from a sample).
    for op in ops:
        key = (op.prog, op.p1)
        tree = btree_of.get(key)
        if op.opcode not in ("Next", "Prev") or tree is None or len(tree) < 4 or not tree[3] \
                or tree[2] or op.index not in t:
            continue
        seek = _loop_opener(program, op, tuple(SEEKS))
        prog_ops = program.program(op.prog)
        top = prog_ops[op.p2] if op.p2 < len(prog_ops) else None
        if seek is None or top is None or top.opcode not in RANGE_END or top.p1 != op.p1 \
                or top.p3 != seek.p3 or str(top.p4) != "1" or str(seek.p4) != "1" \
                or _inside(spans[op.prog], seek.addr) or op.p2 + 1 >= len(prog_ops):
            continue
        value = register_source(prog_ops, seek.p3)
        if value is None:
            continue
        name = f"sel{len(model.inputs)}"
        model.inputs[name] = ("sel", (tree[1], (tree[3][0], "Eq", True, 0, value)))
        model.samples.append(({prog_ops[op.p2 + 1].index: 1.0}, name))

    # A temporary b-tree or sorter filled once and read once yields every row put in it.
    put: dict[tuple[int, int], Form] = defaultdict(dict)
    for op in ops:
        key = (op.prog, op.p1)
        if key in ephemeral and op.opcode in ("SorterInsert", "IdxInsert", "Insert"):
            put[key][op.index] = put[key].get(op.index, 0.0) + 1.0
        elif key in ephemeral and op.opcode == "Delete":
            put[key][op.index] = put[key].get(op.index, 0.0) - 1.0
    for op in ops:
        key = (op.prog, op.p1)
        if op.opcode not in ("Next", "SorterNext") or key not in put or op.index not in t:
            continue
        opener = _loop_opener(program, op, ("Rewind", "Sort", "SorterSort"))
        if opener is None or opener.index not in t or not _runs_once(program, spans, opener, op):
            continue
        prog_ops = program.program(op.prog)
        if any(o.opcode == "DecrJumpZero" for o in prog_ops[op.p2:op.addr]):
            continue  # a LIMIT may stop reading early
        form = {opener.index: 1.0, t[opener.index]: -1.0, t[op.index]: 1.0}
        for var, coef in put[key].items():
            form[var] = form.get(var, 0.0) - coef
        model.facts.append((form, 0.0, None))
    for op in ops:
        if op.opcode != "VFilter" or op.index not in t:
            continue
        vt = vtab_of.get((op.prog, op.p1))
        step = next((o for o in ops[op.index:] if o.opcode == "VNext" and o.p1 == op.p1
                     and o.prog == op.prog), None)
        if vt is None or step is None:
            continue
        vname, fts_cols = vt
        prog_ops = program.program(op.prog)
        argc = register_source(prog_ops, op.p3 + 1)
        arg0 = register_source(prog_ops, op.p3 + 2)
        if fts_cols and op.prog == 0 and op.p4 == f"M{fts_cols}" and arg0 is not None \
                and not _inside(spans[0], op.addr) and not _has_early_exit(program, op, step):
            # One full-table MATCH, run once: as many rows as count(*) of the same MATCH.
            name = f"fts{len(model.inputs)}"
            model.inputs[name] = ("fts", (vname, arg0))
            model.facts.append(({step.index: 1.0}, 0.0, name))
            model.inputs[name + "_any"] = ("fts_any", (vname, arg0))
            model.facts.append(({op.index: 1.0, t[op.index]: -1.0}, 0.0, name + "_any"))
        elif vname in ("json_each",) and argc == ("const", 1) and arg0 is not None:
            length = json_length(_value(arg0, params))
            if length is not None and not _has_early_exit(program, op, step):
                if arg0[0] == "param":
                    model.shape_params.append(arg0[1])
                # json_each(?) yields one row per element; VNext runs once per row.
                model.facts.append(({step.index: 1.0, op.index: -float(length)}, 0.0, None))
                if length:
                    model.facts.append(({t[op.index]: 1.0}, 0.0, None))
                else:
                    model.facts.append(({op.index: 1.0, t[op.index]: -1.0}, 0.0, None))

    # Priors on every jump the facts above may leave open.
    for op in ops:
        i = op.index
        if i not in t or op.opcode in ("Once", "Return") or \
           (op.opcode == "Yield" and not is_producer_yield(op)):
            continue
        if i in t2:
            for var in (t[i], t2[i]):
                model.priors.append(({var: 1.0, i: -1.0 / 3}, 0.3))
            continue
        share, weight = _PRIOR[_prior_kind(op, ephemeral)]
        model.priors.append(({t[i]: 1.0, i: -share}, weight))
        if op.opcode in ("Next", "Prev"):
            opener = _loop_opener(program, op, tuple(SEEKS | {"SeekRowid", "NotExists"}))
            body = program.program(op.prog)[op.p2:op.addr]
            if opener is not None and any(o.opcode in RANGE_END and o.p1 == op.p1 for o in body):
                # A range scan usually ends at its range-end check, not at the end of the index.
                model.priors.append(({i: 1.0, t[i]: -1.0}, 1.0))

    # D1's counters (workerd's patch to the VDBE).
    reads, writes = model.reads, model.writes

    def add(form: Form, var: int, coef: float = 1.0) -> None:
        form[var] = form.get(var, 0.0) + coef

    for op in ops:
        i, name, key = op.index, op.opcode, (op.prog, op.p1)
        if name in ("Rewind", "Last", "Sort", "SorterSort", "SeekRowid", "NotExists", "VNext"):
            add(reads, i)
        elif name in SEEKS:
            add(reads, i)
            if key in eq_only and i in t:  # a miss on an equality-only cursor is not billed
                add(reads, t[i], -1.0)
        elif name in ("Next", "Prev", "SorterNext") and i in t:
            add(reads, t[i])
        elif name == "Count" and not op.p3:
            tree = btree_of.get(key)
            model.counts.append(({i: 1.0}, tree[1] if tree and not tree[2] else None, op.p2))
        elif name in ("Insert", "IdxInsert") and key not in ephemeral:
            add(writes, i)
        elif name == "Delete" and op.p2 & OPFLAG_NCHANGE and key not in ephemeral:
            add(writes, i)
        elif name == "VUpdate":
            add(writes, i)
        elif name == "Clear" and op.p3 and op.prog == 0:
            model.clears = True
        elif name == "Function" and isinstance(op.p4, str) and _FTS_AUX.match(op.p4):
            model.fts_aux_calls = True
        elif name == "VColumn" and key in vtab_of and vtab_of[key][1] and op.p2 > vtab_of[key][1]:
            model.fts_aux_calls = True  # reading FTS5's `rank` runs bm25 on each row

    # Sorters with LIMIT: IfNotZero skips "drop the worst row" until the sorter is full.
    for op in main:
        if op.opcode == "IfNotZero" and op.index in t:
            model.limits.append(({t[op.index]: 1.0}, {op.index: 1.0}, register_source(main, op.p1)))

    model.nvars = nv
    _merge_blocks(model, inflow, t)
    return model


def _value(src: tuple[str, Any] | None, params: Sequence[Any] | Mapping[str, Any]) -> Any:
    if src is None:
        return None
    kind, where = src
    if kind == "const":
        return where
    if isinstance(params, Mapping) or not 0 <= where < len(params):
        return None
    return params[where]


def _first_filter(program: Program, step: Op, key: tuple[int, int]
                  ) -> tuple[Op, int, bool, tuple[str, Any] | None] | None:
    """The loop's first jump, if it compares a column of the scanned table with a value.

    Returns (the compare op, column number, whether the column is the
    compare's P3 operand, where the value comes from); ``IsNull``/``NotNull``
    on a column come back with no value.
    """
    prog = program.program(step.prog)
    loaded: dict[int, int] = {}  # register -> column of the scanned cursor
    for op in prog[step.p2:step.addr]:
        if op.opcode == "Column" and (op.prog, op.p1) == key:
            loaded[op.p3] = op.p2
            continue
        if op.opcode in ("Affinity", "RealAffinity", "Once", "Noop"):
            continue
        if op.opcode in ("IsNull", "NotNull") and op.p1 in loaded and op.p2 == step.addr:
            return op, loaded[op.p1], True, None
        if op.opcode in ("Eq", "Ne", "Lt", "Le", "Gt", "Ge") and op.p2 == step.addr:
            if op.p3 in loaded:
                value = register_source(prog, op.p1)
                return (op, loaded[op.p3], True, value) if value is not None else None
            if op.p1 in loaded:
                value = register_source(prog, op.p3)
                return (op, loaded[op.p1], False, value) if value is not None else None
        return None  # any other op first: not a plain column test
    return None


def _inside(spans: list[tuple[int, int]], addr: int) -> bool:
    return any(lo <= addr <= hi for lo, hi in spans)


def _runs_once(program: Program, spans: Mapping[int, list[tuple[int, int]]], opener: Op,
               step: Op) -> bool:
    """Is the loop [opener, step] entered at most once per run of its program?

    True when no other loop encloses it, or when a ``Once`` just before it
    skips the whole loop on later passes (materialising a subquery, building
    an automatic index or a Bloom filter).
    """
    enclosing = [(lo, hi) for lo, hi in spans[opener.prog]
                 if lo <= opener.addr <= hi and (lo, hi) != (step.p2, step.addr)]
    if not enclosing:
        return True
    prog = program.program(opener.prog)
    inner = max(lo for lo, _hi in enclosing)
    return any(op.opcode == "Once" and inner <= op.addr < opener.addr and op.p2 > step.addr
               for op in prog)


def _loop_opener(program: Program, step: Op, openers: tuple[str, ...]) -> Op | None:
    """The op that opened ``step``'s loop: the last opener of the same cursor before it."""
    prog = program.program(step.prog)
    for op in reversed(prog[:step.p2]):
        if op.p1 == step.p1 and op.opcode in openers:
            return op
        if op.p1 == step.p1 and op.opcode in LOOP_OPEN | SEEKS:
            return None
    return None


def _has_early_exit(program: Program, opener: Op, step: Op) -> bool:
    """Can control leave the loop [opener, step] other than by its step failing?"""
    prog = program.program(step.prog)
    for op in prog[opener.addr + 1:step.addr]:
        if op.opcode in ("Gosub", "Yield", "Return", "InitCoroutine", "Program"):
            continue
        if op.opcode in TERMINAL:
            if op.opcode == "Halt" and op.p1 != 0:
                continue  # an error halt
            return True
        target = op.p2 if (op.opcode in CONDITIONAL_P2 or op.opcode in ALWAYS_P2) else 0
        if target and not (opener.addr <= target <= step.addr):
            return True
    return False


_PRIOR = {
    # kind: (share of executions that jump, weight)
    "loop": (0.9, 0.02),      # loop length: weak, the VM-step count decides
    "filter": (0.5, 1.0),     # a range or boolean WHERE term rejects half the rows it sees
    "ne": (0.9, 1.0),         # "skip unless equal": an equality term or join key rarely matches
    "eq": (0.1, 1.0),         # "jump if equal"
    "null": (0.05, 1.0),      # IS NULL checks on keys rarely jump
    "miss": (0.05, 1.0),      # seeks and key lookups usually find their row
    "empty": (0.0, 3.0),      # loops are rarely empty
    "range_end": (0.1, 0.05),
    "rare": (0.0, 3.0),       # type errors, exhausted LIMITs
    "other": (0.5, 0.3),
}


def _prior_kind(op: Op, ephemeral: set[tuple[int, int]]) -> str:
    name = op.opcode
    if name in RANGE_END and (op.prog, op.p1) in ephemeral:
        return "filter"  # a sorter with LIMIT comparing a new row with the worst kept
    if name in LOOP_STEP:
        return "loop"
    if name == "Ne":
        return "ne"
    if name == "Eq":
        return "eq"
    if name in COMPARES:
        return "filter"
    if name in ("IsNull", "NotNull", "IfNullRow"):
        return "null"
    if name in SEEKS or name in ("SeekRowid", "NotExists", "NotFound", "Found", "NoConflict"):
        return "miss"
    if name in LOOP_OPEN or name == "IfEmpty":
        return "empty"
    if name in RANGE_END:
        return "range_end"
    if name in ("MustBeInt", "IfNotOpen", "IfNoHope", "DecrJumpZero", "FkIfZero", "Filter"):
        return "rare"
    return "other"


def _merge_blocks(model: FlowModel, inflow: list[list[Form]], jumps: Mapping[int, int]) -> None:
    """Give straight-line runs of ops one variable (a basic block) and renumber.

    An op whose only way in is falling through from the op before it runs
    exactly as often; merging them shrinks the system about fourfold.
    """
    n = len(model.program.ops)
    alias = list(range(model.nvars))
    for i in range(1, n):
        if len(inflow[i]) == 1 and inflow[i][0] == {i - 1: 1.0}:
            alias[i] = alias[i - 1]
    used = sorted({alias[v] for v in range(model.nvars)})
    new = {v: k for k, v in enumerate(used)}
    remap = [new[alias[v]] for v in range(model.nvars)]

    def rf(form: Form) -> Form:
        out: Form = {}
        for var, coef in form.items():
            key = remap[var]
            out[key] = out.get(key, 0.0) + coef
        return {k: v for k, v in out.items() if abs(v) > 1e-12}

    eqs = []
    for form, const in model.equations:
        f = rf(form)
        if f or const:
            eqs.append((f, const))
    model.equations = eqs
    model.observables = {k: rf(f) for k, f in model.observables.items()}
    model.facts = [(rf(f), c, name) for f, c, name in model.facts]
    model.samples = [(rf(f), name) for f, name in model.samples]
    model.priors = [(rf(f), w) for f, w in model.priors]
    model.reads = rf(model.reads)
    model.writes = rf(model.writes)
    model.counts = [(rf(f), tree, reg) for f, tree, reg in model.counts]
    model.limits = [(rf(a), rf(b), src) for a, b, src in model.limits]
    model.nvars = len(used)
    model.op_vars = remap[:n]
    model.jump_vars = {i: remap[v] for i, v in jumps.items()}
