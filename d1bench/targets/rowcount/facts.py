"""Facts about the data, and priors, that pin down what SQLite's counters leave open.

Facts are near certain and cheap: a full scan visits every row of its table;
``json_each(?)`` yields one row per element of the bound array; an FTS5 MATCH
yields ``count(*)`` of the same MATCH; a temporary b-tree read once yields what
was put in it.  *Samples* are softer: how many rows the first WHERE term of a
full scan rejects, and how long an equality range on an index's first column
is, both read from a sorted sample of the column.  *Priors* settle the rest
(how often a filter rejects, a seek misses, a loop is empty).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from d1bench.targets.rowcount.model import Builder, Form
from d1bench.targets.rowcount.program import (
    COMPARES,
    CONDITIONAL_P2,
    LOOP_OPEN,
    LOOP_STEP,
    RANGE_END,
    SEEKS,
    Op,
    compare_outcome,
    first_filter,
    has_early_exit,
    inside,
    json_length,
    loop_opener,
    register_source,
    runs_once,
    static_value,
    value_of,
    writes_register,
)

__all__ = ["PRIORS", "add_data_facts", "add_priors"]

#: kind of jump -> (share of its executions that jump, weight)
PRIORS = {
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


def add_data_facts(b: Builder) -> None:
    _static_tests(b)
    _null_or_record(b)
    _seek_hits(b)
    _full_scans(b)
    _index_ranges(b)
    _temporary_btrees(b)
    _virtual_tables(b)


def _static_tests(b: Builder) -> None:
    """A test of values fixed before the run (constants, bound parameters, a new rowid)
    jumps every time or never: an INSERT's partial-index WHERE on the values it inserts,
    an IS NULL on a bound key.  Nothing SQLite counts tells these branches apart (one
    VM-step count for all of them), yet they decide which index entries get written."""
    model, t = b.model, b.t
    for op in b.program.ops:
        if op.index not in t or op.opcode not in _STATIC_TESTS:
            continue
        prog = b.program.program(op.prog)
        spec: tuple[Any, ...]
        if op.opcode in ("IsNull", "NotNull"):
            spec = (op.opcode, 0, None, static_value(prog, op.p1), None)
        else:
            spec = (op.opcode, op.p5, op.p4, static_value(prog, op.p3), static_value(prog, op.p1))
        if spec[3] is None or (spec[0] not in ("IsNull", "NotNull") and spec[4] is None):
            continue
        outcome = compare_outcome(spec, b.params)
        if outcome is None:
            continue
        model.facts.append(({t[op.index]: 1.0, op.index: -1.0 if outcome else 0.0}, 0.0, None))
        if any(src is not None and src[0] == "param" for src in spec[3:]):
            model.shape_tests.append(spec)  # the model holds for these outcomes only


def _null_or_record(b: Builder) -> None:
    """``Null R`` then, on some paths, ``MakeRecord`` into R, then ``IsNull R``: how a
    write decides whether the new row goes into a partial index.  In a stretch of code
    entered only at the ``Null`` and left only through the test, with no loop inside,
    the test finds R NULL exactly when the record was not made."""
    t = b.t
    for op in b.program.ops:
        if op.opcode not in ("IsNull", "NotNull") or op.index not in t:
            continue
        prog = b.program.program(op.prog)
        writers = [o for o in prog if writes_register(o, op.p1)]
        if len(writers) != 2 or writers[0].opcode != "Null" or writers[0].p1 \
                or writers[1].opcode != "MakeRecord" or not writers[1].addr < op.addr:
            continue
        if not _closed(prog, writers[0].addr, op.addr):
            continue
        made = writers[1].index
        form = {t[op.index]: 1.0, made: 1.0, op.index: -1.0} if op.opcode == "IsNull" \
            else {t[op.index]: 1.0, made: -1.0}
        b.model.facts.append((form, 0.0, None))


def _closed(prog: tuple[Op, ...], start: int, end: int) -> bool:
    """Is [start, end] entered only at ``start``, left only from ``end``, loop-free?"""
    for o in prog:
        target = o.p2 if (o.opcode in CONDITIONAL_P2 or o.opcode in ("Goto", "Jump")) else None
        inside = start <= o.addr < end
        if inside and (o.opcode in ("Gosub", "Return", "Yield", "Program", "Jump", "Halt",
                                    "InitCoroutine", "EndCoroutine") and
                       not (o.opcode == "Halt" and o.p1 != 0)):
            return False
        if target is None or not target:
            continue
        if inside and not start < target <= end:
            return False  # leaves early, or jumps back
        if not inside and o.addr != end and start < target <= end:
            return False  # enters past the Null
    return True


def _seek_hits(b: Builder) -> None:
    """An equality seek of a value fixed before the run (``email = ?`` on a UNIQUE
    index) hits exactly when the table holds the value: D1 bills the hit and not the
    miss, and when a later filter rejects the row the VM steps alone cannot say which
    happened.  Whether the value is there is asked of the database, per execution
    (:meth:`~d1bench.targets.rowcount.estimator.RowEstimator` adds the fact)."""
    for op in b.program.ops:
        key = (op.prog, op.p1)
        tree = b.btree_of.get(key)
        if op.opcode not in ("SeekGE", "SeekLE") or key not in b.eq_only or op.index not in b.t \
                or tree is None or len(tree) < 4 or not tree[3] or tree[2] or str(op.p4) != "1":
            continue
        src = static_value(b.program.program(op.prog), op.p3)
        if src is not None and src[0] in ("param", "const"):  # `col = ?` converts as the seek does
            b.model.presence.append((op.index, tree[1], tree[3][0], src[:2]))


_STATIC_TESTS = frozenset({"Eq", "Ne", "Lt", "Le", "Gt", "Ge", "IsNull", "NotNull"})


def _full_scans(b: Builder) -> None:
    model, t = b.model, b.t
    for op in b.program.ops:
        if op.opcode not in ("Next", "Prev") or op.index not in t:
            continue
        key = (op.prog, op.p1)
        opener = loop_opener(b.program, op, ("Rewind",) if op.opcode == "Next" else ("Last",))
        tree = b.btree_of.get(key)
        if opener is None or tree is None or tree[2] or opener.index not in t:
            continue
        rows = b.table_rows.get(tree[1])
        if rows is None or has_early_exit(b.program, opener, op):
            continue
        # A full scan visits every row: rows-1 successful steps per entry, never empty.
        if rows > 0:
            model.facts.append(({t[op.index]: 1.0, opener.index: -(rows - 1.0)}, 0.0, None))
            model.facts.append(({t[opener.index]: 1.0}, 0.0, None))
        else:
            model.facts.append(({opener.index: 1.0, t[opener.index]: -1.0}, 0.0, None))
        if not inside(b.spans[op.prog], opener.addr):
            # Entered once: its first WHERE term sees every row of the table, so
            # a sample of the column tells how many it rejects.
            first = first_filter(b.program, op, key)
            if first is not None and first[0].index in t:
                cmp_op, colno, col_is_p3, value = first
                name = f"sel{len(model.inputs)}"
                model.inputs[name] = ("sel", (tree[1], (colno, cmp_op.opcode, col_is_p3,
                                                        cmp_op.p5, value)))
                model.samples.append(({t[cmp_op.index]: 1.0}, name))


def _index_ranges(b: Builder) -> None:
    """An equality range on an index's first column, entered once: as many
    iterations as the table has rows with that value."""
    model = b.model
    for op in b.program.ops:
        tree = b.btree_of.get((op.prog, op.p1))
        if op.opcode not in ("Next", "Prev") or tree is None or len(tree) < 4 or not tree[3] \
                or tree[2] or op.index not in b.t:
            continue
        seek = loop_opener(b.program, op, tuple(SEEKS))
        prog_ops = b.program.program(op.prog)
        top = prog_ops[op.p2] if op.p2 + 1 < len(prog_ops) else None
        if seek is None or top is None or top.opcode not in RANGE_END or top.p1 != op.p1 \
                or top.p3 != seek.p3 or str(top.p4) != "1" or str(seek.p4) != "1" \
                or inside(b.spans[op.prog], seek.addr) or _skips_offset(prog_ops, seek, op):
            continue
        value = register_source(prog_ops, seek.p3)
        if value is None:
            continue
        name = f"sel{len(model.inputs)}"
        model.inputs[name] = ("sel", (tree[1], (tree[3][0], "Eq", True, 0, value)))
        model.samples.append(({prog_ops[op.p2 + 1].index: 1.0}, name))


def _skips_offset(prog_ops: tuple[Op, ...], opener: Op, step: Op) -> bool:
    """Does the loop count down an OFFSET (``IfPos`` with a decrement)?  Then it stops
    after OFFSET + LIMIT entries, not at the end of the range: the range's length says
    nothing about the entries read (a page of a device's events by OFFSET read 21% too many).
    """
    return any(o.opcode == "IfPos" and o.p3 > 0 for o in prog_ops[opener.addr:step.addr])


def _temporary_btrees(b: Builder) -> None:
    """A temporary b-tree or sorter filled once and read once yields every row put in it."""
    put: dict[tuple[int, int], Form] = defaultdict(dict)
    for op in b.program.ops:
        key = (op.prog, op.p1)
        if key in b.ephemeral and op.opcode in ("SorterInsert", "IdxInsert", "Insert"):
            put[key][op.index] = put[key].get(op.index, 0.0) + 1.0
        elif key in b.ephemeral and op.opcode == "Delete":
            put[key][op.index] = put[key].get(op.index, 0.0) - 1.0
    t = b.t
    for op in b.program.ops:
        key = (op.prog, op.p1)
        if op.opcode not in ("Next", "SorterNext") or key not in put or op.index not in t:
            continue
        opener = loop_opener(b.program, op, ("Rewind", "Sort", "SorterSort"))
        if opener is None or opener.index not in t or not runs_once(b.program, b.spans, opener, op):
            continue
        if any(o.opcode == "DecrJumpZero" for o in b.program.program(op.prog)[op.p2:op.addr]):
            continue  # a LIMIT may stop reading early
        form = {opener.index: 1.0, t[opener.index]: -1.0, t[op.index]: 1.0}
        for var, coef in put[key].items():
            form[var] = form.get(var, 0.0) - coef
        b.model.facts.append((form, 0.0, None))


def _virtual_tables(b: Builder) -> None:
    model, t, ops = b.model, b.t, b.program.ops
    for op in ops:
        if op.opcode != "VFilter" or op.index not in t:
            continue
        vt = b.vtab_of.get((op.prog, op.p1))
        step = next((o for o in ops[op.index:] if o.opcode == "VNext" and o.p1 == op.p1
                     and o.prog == op.prog), None)
        if vt is None or step is None:
            continue
        vname, fts_cols = vt
        prog_ops = b.program.program(op.prog)
        argc = register_source(prog_ops, op.p3 + 1)
        arg0 = register_source(prog_ops, op.p3 + 2)
        if fts_cols and op.prog == 0 and op.p4 == f"M{fts_cols}" and arg0 is not None \
                and not inside(b.spans[0], op.addr) and not has_early_exit(b.program, op, step):
            # One full-table MATCH, run once: as many rows as count(*) of the same MATCH.
            name = f"fts{len(model.inputs)}"
            model.inputs[name] = ("fts", (vname, arg0))
            model.facts.append(({step.index: 1.0}, 0.0, name))
            model.inputs[name + "_any"] = ("fts_any", (vname, arg0))
            model.facts.append(({op.index: 1.0, t[op.index]: -1.0}, 0.0, name + "_any"))
        elif vname == "json_each" and argc == ("const", 1) and arg0 is not None:
            length = json_length(value_of(arg0, b.params))
            if length is None or has_early_exit(b.program, op, step):
                continue
            if arg0[0] == "param":
                model.shape_params.append(arg0[1])
            # json_each(?) yields one row per element; VNext runs once per row.
            model.facts.append(({step.index: 1.0, op.index: -float(length)}, 0.0, None))
            if length:
                model.facts.append(({t[op.index]: 1.0}, 0.0, None))
            else:
                model.facts.append(({op.index: 1.0, t[op.index]: -1.0}, 0.0, None))


def add_priors(b: Builder) -> None:
    """A prior on every jump the structure and facts may leave open."""
    model, t = b.model, b.t
    for op in b.program.ops:
        i = op.index
        if i not in t or op.opcode in ("Once", "Return") or \
           (op.opcode == "Yield" and not b.is_producer_yield(op)):
            continue
        if i in b.t2:
            for var in (t[i], b.t2[i]):
                model.priors.append(({var: 1.0, i: -1.0 / 3}, 0.3))
            continue
        share, weight = PRIORS[_kind(op, b.ephemeral)]
        model.priors.append(({t[i]: 1.0, i: -share}, weight))
        if op.opcode in ("Next", "Prev"):
            opener = loop_opener(b.program, op, tuple(SEEKS | {"SeekRowid", "NotExists"}))
            body = b.program.program(op.prog)[op.p2:op.addr]
            if opener is not None and any(o.opcode in RANGE_END and o.p1 == op.p1 for o in body):
                # A range scan usually ends at its range-end check, not at the end of the index.
                model.priors.append(({i: 1.0, t[i]: -1.0}, 1.0))


def _kind(op: Op, ephemeral: set[tuple[int, int]]) -> str:
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
