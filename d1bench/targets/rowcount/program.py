"""A statement's bytecode, read with ``EXPLAIN``, and questions about its shape.

``EXPLAIN <sql>`` lists the program SQLite runs for a statement, followed by one
sub-program per trigger it may fire.  This module parses that listing and
answers structural questions the flow model asks: which jumps are loops, which
op opened a loop, can a loop be left early, where a register's value comes from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Op", "Program", "json_length", "read_program", "register_source", "value_of"]

# OPFLAG bits that SQLite leaves in P2/P5 (sqliteInt.h).
OPFLAG_NCHANGE = 0x01
OPFLAG_SEEKEQ = 0x02
OPFLAG_P2ISREG = 0x10
STMTSTATUS_FULLSCAN_STEP = 1
STMTSTATUS_AUTOINDEX = 3

#: Opcodes that jump to P2 on some executions and fall through on others.
CONDITIONAL_P2 = frozenset(
    ["If", "IfNot", "IsNull", "NotNull", "IsType", "IfNullRow", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "ElseEq", "Once", "IfPos", "IfNotZero", "DecrJumpZero", "SeekLT", "SeekLE", "SeekGE", "SeekGT", "IfNotOpen", "IfNoHope", "NoConflict", "NotFound", "Found", "SeekRowid", "NotExists", "Last", "IfSizeBetween", "SorterSort", "Sort", "Rewind", "IfEmpty", "Next", "Prev", "SorterNext", "IdxLE", "IdxGT", "IdxLT", "IdxGE", "RowSetRead", "RowSetTest", "FkIfZero", "Filter", "VFilter", "VNext", "IncrVacuum", "SequenceTest", "SorterCompare", "Yield", "MustBeInt"]
)
ALWAYS_P2 = frozenset({"Goto", "Init", "Trace"})  #: always jump to P2
TERMINAL = frozenset({"Halt", "EndCoroutine"})  #: control never falls through
LOOP_STEP = frozenset({"Next", "Prev", "SorterNext", "VNext"})  #: jump = "another row"
LOOP_OPEN = frozenset({"Rewind", "Last", "Sort", "SorterSort", "VFilter"})  #: jump = "empty"
SEEKS = frozenset({"SeekLT", "SeekLE", "SeekGE", "SeekGT"})
RANGE_END = frozenset({"IdxLE", "IdxGT", "IdxLT", "IdxGE"})
COMPARES = frozenset({"Eq", "Ne", "Lt", "Le", "Gt", "Ge", "ElseEq", "If", "IfNot", "IsType"})
EPHEMERAL_OPEN = frozenset({"OpenEphemeral", "OpenAutoindex", "SorterOpen", "OpenPseudo"})


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


def value_of(src: tuple[str, Any] | None, params: Sequence[Any] | Mapping[str, Any]) -> Any:
    """The value a :func:`register_source` result stands for, in one execution.

    >>> value_of(("param", 1), ("a", "b")), value_of(("const", 20), ()), value_of(None, ())
    ('b', 20, None)
    """
    if src is None:
        return None
    kind, where = src
    if kind == "const":
        return where
    if isinstance(params, Mapping) or not 0 <= where < len(params):
        return None
    return params[where]


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


# --- loops --------------------------------------------------------------------------


def loop_spans(prog_ops: Sequence[Op]) -> list[tuple[int, int]]:
    """(start address, end address) of every backward jump of one program."""
    spans = []
    for op in prog_ops:
        # (the preamble's closing "Goto 1" jumps back too, but is no loop)
        if op.p2 and op.p2 <= op.addr and (op.opcode in LOOP_STEP
                                           or (op.opcode == "Goto" and op.p2 > 1)):
            spans.append((op.p2, op.addr))
    return spans


def inside(spans: list[tuple[int, int]], addr: int) -> bool:
    return any(lo <= addr <= hi for lo, hi in spans)


def runs_once(program: Program, spans: Mapping[int, list[tuple[int, int]]], opener: Op,
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


def loop_opener(program: Program, step: Op, openers: tuple[str, ...]) -> Op | None:
    """The op that opened ``step``'s loop: the last opener of the same cursor before it."""
    prog = program.program(step.prog)
    for op in reversed(prog[:step.p2]):
        if op.p1 == step.p1 and op.opcode in openers:
            return op
        if op.p1 == step.p1 and op.opcode in LOOP_OPEN | SEEKS:
            return None
    return None


def has_early_exit(program: Program, opener: Op, step: Op) -> bool:
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


def first_filter(program: Program, step: Op, key: tuple[int, int]
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
