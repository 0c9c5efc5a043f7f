"""SQLite bytecode as a flow network: the linear system the estimate solves.

Unknowns: how many times each op ran (one per basic block once merged), how
many times each conditional jump was taken, and slacks for inequalities.
Every quantity of interest -- D1's counts, SQLite's counters, rows returned
and changed -- is a linear form over them.  :func:`build_flow_model` writes:

* flow equations: an op runs as often as control flows into it, +1 for the
  statement's entry; a jump is taken at most as often as its op runs;
* structural facts: error ``Halt``\\ s never run in a successful statement,
  ``Once`` falls through at most once per run (and preferably exactly once),
  every ``Gosub`` returns, every coroutine run ends at its consumer's
  ``Yield``, a flag tested by ``IfPos`` was set at least as often as it jumps;
* the forms of what SQLite reports (:attr:`FlowModel.observables`) and of
  what D1 bills (:attr:`FlowModel.reads`, :attr:`FlowModel.writes`);
* facts about the data and priors, added by :mod:`~d1bench.targets.rowcount.facts`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from d1bench.targets.rowcount.facts import add_data_facts, add_priors
from d1bench.targets.rowcount.model import Builder, FlowModel, Form
from d1bench.targets.rowcount.program import (
    ALWAYS_P2,
    CONDITIONAL_P2,
    EPHEMERAL_OPEN,
    OPFLAG_NCHANGE,
    OPFLAG_P2ISREG,
    OPFLAG_SEEKEQ,
    SEEKS,
    STMTSTATUS_AUTOINDEX,
    STMTSTATUS_FULLSCAN_STEP,
    TERMINAL,
    Program,
    loop_spans,
    register_source,
)

__all__ = ["build_flow_model"]

_FTS_AUX = re.compile(r"^(bm25|highlight|snippet)\(", re.IGNORECASE)


def build_flow_model(program: Program, *, btrees: Mapping[int, tuple] | None = None,
                     table_rows: Mapping[str, int] | None = None,
                     vtabs: Mapping[str, tuple[str, int]] | None = None,
                     params: Sequence[Any] | Mapping[str, Any] = ()) -> FlowModel:
    """Build the flow system of ``program``.

    ``btrees`` maps root pages of the main schema to (name, table, partial,
    index columns as table column numbers -- empty for a table);
    ``table_rows`` gives tables' row counts (for full scans); ``vtabs`` maps
    a ``VOpen`` P4 (``vtab:...``) to (table or module name, FTS5 column count
    or 0).  ``params`` are one execution's bindings, used only for facts that
    depend on their shape (the length of a JSON array): see
    :attr:`FlowModel.shape_params`.
    """
    b = Builder(program, btrees or {}, table_rows or {}, vtabs or {}, params)
    _cursors(b)
    inflow, runs, gosubs, returns = _flows(b)
    _equations(b, inflow, runs, gosubs, returns)
    _observables(b)
    b.spans = {k: loop_spans(program.program(k)) for k in range(len(program.starts))}
    add_data_facts(b)
    add_priors(b)
    _billing(b)
    b.model.nvars = b.nv
    _merge_blocks(b.model, inflow, b.t)
    return b.model


def _cursors(b: Builder) -> None:
    """Ephemeral cursors (inserts not billed), equality-only ones (a miss not
    billed, a hit skips the next IdxGT), the b-tree or virtual table each reads,
    and where each coroutine starts and ends."""
    for op in b.program.ops:
        key = (op.prog, op.p1)
        name = op.opcode
        if name in EPHEMERAL_OPEN or (name == "OpenDup" and (op.prog, op.p2) in b.ephemeral):
            b.ephemeral.add(key)
        elif name in ("OpenRead", "OpenWrite", "ReopenIdx"):
            if op.p5 & OPFLAG_SEEKEQ:
                b.eq_only.add(key)
            if op.p3 == 0 and not (op.p5 & OPFLAG_P2ISREG) and op.p2 in b.btrees:
                b.btree_of[key] = b.btrees[op.p2]
        elif name == "VOpen" and str(op.p4) in b.vtabs:
            b.vtab_of[key] = b.vtabs[str(op.p4)]
        elif name == "InitCoroutine":  # P1=reg P2=skip-to P3=start
            start = b.at(op.prog, op.p3)
            if start is not None:
                b.co_start[key] = start
        elif name == "EndCoroutine":
            b.co_ends[key].append(op.index)


def _flows(b: Builder) -> tuple[list[list[Form]], dict[int, Form], dict, dict]:
    """Every op's outflows, collected as the inflows of their targets."""
    ops, t, t2 = b.program.ops, b.t, b.t2
    starts = b.program.starts
    last_init: dict[tuple[int, int], int] = {}
    for op in ops:
        if op.opcode == "InitCoroutine":
            last_init[(op.prog, op.p1)] = op.index
    # Sub-programs: the k-th Program opcode runs the k-th listed sub-program.
    callers: dict[int, list[int]] = defaultdict(list)
    for k, op in enumerate(o for o in ops if o.opcode == "Program"):
        sub = min(k + 1, len(starts) - 1)
        if sub >= 1:
            callers[sub].append(op.index)
    inflow: list[list[Form]] = [[] for _ in ops]

    def flow(target: int | None, form: Form) -> None:
        if target is not None:
            inflow[target].append(form)

    gosubs: dict[tuple[int, int], list[int]] = defaultdict(list)
    returns: dict[tuple[int, int], list[tuple[int, bool]]] = defaultdict(list)
    for op in ops:
        i, name = op.index, op.opcode
        nxt, jump = b.at(op.prog, op.addr + 1), b.at(op.prog, op.p2)
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
                t[i] = b.new_var()
                flow(nxt, {i: 1.0, t[i]: -1.0})
        elif name == "Program":
            flow(nxt, ci)
            for sub, idxs in callers.items():
                if i in idxs:
                    flow(starts[sub], ci)
        elif name in ("Jump", "SeekScan"):
            # Jump: to P1/P2/P3 after a Compare.  SeekScan: steps instead of
            # seeking; it jumps to P2, skips the SeekGE after it, or falls into it.
            t[i], t2[i] = b.new_var(), b.new_var()
            rest = {i: 1.0, t[i]: -1.0, t2[i]: -1.0}
            if name == "Jump":
                flow(b.at(op.prog, op.p1), {t[i]: 1.0})
                flow(jump, {t2[i]: 1.0})
                flow(b.at(op.prog, op.p3), rest)
            else:
                flow(jump, {t[i]: 1.0})
                flow(b.at(op.prog, op.addr + 2), {t2[i]: 1.0})
                flow(nxt, rest)
        elif name == "Yield" and b.is_producer_yield(op):
            flow(nxt, ci)  # the consumer resumes it
        elif name in CONDITIONAL_P2 and jump is not None:
            t[i] = b.new_var()
            flow(jump, {t[i]: 1.0})
            if name in ("SeekGE", "SeekLE") and (op.prog, op.p1) in b.eq_only:
                nxt = b.at(op.prog, op.addr + 2)  # a hit skips the IdxGT/IdxLT that follows
            flow(nxt, {i: 1.0, t[i]: -1.0})
        else:  # plain ops, HaltIfNull, and jumps whose P2 is 0 (no jump)
            flow(nxt, ci)
        if name == "InitCoroutine" and last_init.get((op.prog, op.p1)) == i:
            flow(b.co_start.get((op.prog, op.p1)), ci)  # the first Yield starts the body
    runs: dict[int, Form] = {0: {}}  # program -> its number of runs (main: the constant 1)
    for sub, idxs in callers.items():
        runs[sub] = {j: 1.0 for j in idxs}
    return inflow, runs, gosubs, returns


def _equations(b: Builder, inflow: list[list[Form]], runs: dict[int, Form],
               gosubs: dict, returns: dict) -> None:
    ops, t, t2 = b.program.ops, b.t, b.t2
    eqs, model = b.model.equations, b.model
    for i in range(len(ops)):
        form: Form = {i: 1.0}
        for f in inflow[i]:
            for var, coef in f.items():
                form[var] = form.get(var, 0.0) - coef
        eqs.append((form, 1.0 if i == 0 else 0.0))
    for i, tv in list(t.items()):  # a jump is taken at most as often as it runs
        form = {i: 1.0, tv: -1.0, b.new_var(): -1.0}
        if i in t2:
            form[t2[i]] = -1.0
        eqs.append((form, 0.0))
    # A statement ends with an error while its foreign-key counter is not zero, so in a
    # successful one the immediate counter's increments and decrements cancel: the probe
    # that finds a child of a deleted parent (or misses a new child's parent) never ran.
    fk = {op.index: float(op.p2) for op in ops if op.opcode == "FkCounter" and op.p1 == 0}
    if fk:
        eqs.append((fk, 0.0))
    for op in ops:
        i = op.index
        if op.opcode == "Halt" and op.p1 != 0:
            eqs.append(({i: 1.0}, 0.0))  # an error halt never runs in a successful statement
        elif op.opcode == "Once" and i in t:
            # Falls through once per run of its program -- if control gets there
            # at all (a subquery materialised on first use may never be): at
            # most once, exactly; exactly once, strongly preferred.
            unused = b.new_var()
            form = {i: 1.0, t[i]: -1.0, unused: 1.0}
            for var, coef in runs.get(op.prog, {}).items():
                form[var] = form.get(var, 0.0) - coef
            eqs.append((form, 1.0 if op.prog == 0 else 0.0))
            model.priors.append(({unused: 1.0}, 30.0))
        elif op.opcode == "IfPos" and not op.p3 and i in t:
            # "IfPos R" without a decrement tests a flag (a LEFT JOIN's "matched",
            # a GROUP BY's "row seen"): it jumps at most as often as R was set.
            setters = [o.index for o in b.program.program(op.prog)
                       if o.opcode == "Integer" and o.p2 == op.p1 and o.p1 > 0]
            if setters:
                form = {j: 1.0 for j in setters}
                form[t[i]] = form.get(t[i], 0.0) - 1.0
                form[b.new_var()] = -1.0
                eqs.append((form, 0.0))
    for key, calls in gosubs.items():  # every call returns
        form = {}
        for i in calls:
            form[i] = form.get(i, 0.0) - 1.0
        for i, conditional in returns.get(key, []):
            var = t[i] if conditional else i
            form[var] = form.get(var, 0.0) + 1.0
        eqs.append((form, 0.0))
    for key, ends in b.co_ends.items():  # each coroutine run ends at its consumer's Yield
        consumers = [op.index for op in ops if op.opcode == "Yield" and (op.prog, op.p1) == key
                     and not b.is_producer_yield(op) and op.index in t]
        if consumers:
            form = {t[i]: 1.0 for i in consumers}
            for i in ends:
                form[i] = form.get(i, 0.0) - 1.0
            eqs.append((form, 0.0))


def _observables(b: Builder) -> None:
    """The forms of what SQLite reports for a statement."""
    ops, t, obs = b.program.ops, b.t, b.model.observables

    def steps(p5: int) -> Form:
        return {t[op.index]: 1.0 for op in ops
                if op.index in t and op.opcode in ("Next", "Prev") and op.p5 == p5}

    obs["vm_steps"] = {i: 1.0 for i in range(len(ops))}
    obs["fullscan_steps"] = steps(STMTSTATUS_FULLSCAN_STEP)
    obs["autoindex"] = steps(STMTSTATUS_AUTOINDEX)
    obs["sort"] = {op.index: 1.0 for op in ops if op.opcode in ("Sort", "SorterSort")}
    # SQLite's naming: a Bloom filter "hit" is a row it filtered out (the jump).
    filters = [op.index for op in ops if op.opcode == "Filter" and op.index in t]
    obs["filter_hit"] = {t[i]: 1.0 for i in filters}
    miss: Form = {}
    for i in filters:
        miss[i], miss[t[i]] = 1.0, -1.0
    obs["filter_miss"] = miss
    obs["rows"] = {op.index: 1.0 for op in ops if op.opcode == "ResultRow" and op.prog == 0}
    obs["changes"] = {op.index: 1.0 for op in ops if op.prog == 0 and (
        (op.opcode == "Insert" and op.p5 & OPFLAG_NCHANGE)
        or (op.opcode == "Delete" and op.p2 & OPFLAG_NCHANGE) or op.opcode == "VUpdate")}


def _billing(b: Builder) -> None:
    """The forms of D1's counters (workerd's patch to the VDBE)."""
    model, t = b.model, b.t
    reads, writes = model.reads, model.writes

    def add(form: Form, var: int, coef: float = 1.0) -> None:
        form[var] = form.get(var, 0.0) + coef

    for op in b.program.ops:
        i, name, key = op.index, op.opcode, (op.prog, op.p1)
        if name in ("Rewind", "Last", "Sort", "SorterSort", "SeekRowid", "NotExists", "VNext"):
            add(reads, i)
        elif name in SEEKS:
            add(reads, i)
            if key in b.eq_only and i in t:  # a miss on an equality-only cursor is not billed
                add(reads, t[i], -1.0)
        elif name in ("Next", "Prev", "SorterNext") and i in t:
            add(reads, t[i])
        elif name == "Count" and not op.p3:
            tree = b.btree_of.get(key)
            model.counts.append(({i: 1.0}, tree[1] if tree and not tree[2] else None, op.p2))
        elif name in ("Insert", "IdxInsert") and key not in b.ephemeral or name == "Delete" and op.p2 & OPFLAG_NCHANGE and key not in b.ephemeral or name == "VUpdate":
            add(writes, i)
        elif name == "Clear" and op.p3 and op.prog == 0:
            model.clears = True
        elif name == "Function" and isinstance(op.p4, str) and _FTS_AUX.match(op.p4):
            model.fts_aux_calls = True
        elif name == "VColumn" and key in b.vtab_of and b.vtab_of[key][1] \
                and op.p2 > b.vtab_of[key][1]:
            model.fts_aux_calls = True  # reading FTS5's `rank` runs bm25 on each row
    # Sorters with LIMIT: IfNotZero skips "drop the worst row" until the sorter is full.
    main = b.program.program(0)
    for op in main:
        if op.opcode == "IfNotZero" and op.index in t:
            model.limits.append(({t[op.index]: 1.0}, {op.index: 1.0},
                                 register_source(main, op.p1)))


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

    model.equations = [(f, c) for f, c in ((rf(f), c) for f, c in model.equations) if f or c]
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
