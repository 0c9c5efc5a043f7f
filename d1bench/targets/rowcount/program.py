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

__all__ = ["Op", "Program", "compare_outcome", "json_length", "read_program", "register_source",
           "static_value", "value_of", "writes_register"]

# OPFLAG bits that SQLite leaves in P2/P5 (sqliteInt.h).
OPFLAG_NCHANGE = 0x01
OPFLAG_SEEKEQ = 0x02
OPFLAG_P2ISREG = 0x10
#: On ``Insert``: write nothing, only call the pre-update hook (a WITHOUT ROWID table's row
#: goes in by the ``IdxInsert`` after it).
OPFLAG_ISNOOP = 0x40
STMTSTATUS_FULLSCAN_STEP = 1
STMTSTATUS_AUTOINDEX = 3

#: Opcodes that jump to P2 on some executions and fall through on others.
CONDITIONAL_P2 = frozenset(
    ["If", "IfNot", "IsNull", "NotNull", "IsType", "IfNullRow", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "ElseEq", "Once", "IfPos", "IfNotZero", "DecrJumpZero", "SeekLT", "SeekLE", "SeekGE", "SeekGT", "IfNotOpen", "IfNoHope", "NoConflict", "NotFound", "Found", "SeekRowid", "NotExists", "Last", "IfSizeBetween", "SorterSort", "Sort", "Rewind", "IfEmpty", "Next", "Prev", "SorterNext", "IdxLE", "IdxGT", "IdxLT", "IdxGE", "RowSetRead", "RowSetTest", "FkIfZero", "Filter", "VFilter", "VNext", "IncrVacuum", "SequenceTest", "SorterCompare", "Yield", "MustBeInt"]
)
#: Always jump to P2.  (``Trace``, which opens each statement of a trigger, is not one:
#: its P1 of 0x7fffffff makes it fall through, and its P2 is its own address.)
ALWAYS_P2 = frozenset({"Goto", "Init"})
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


# --- values known before the statement runs -------------------------------------------

#: Opcodes that write the register in P2 (a range for ``Null``, ``Copy`` and ``Move``).
_OUT_P2 = frozenset({"Integer", "Int64", "String8", "String", "Real", "Variable", "SCopy",
                     "IntCopy", "Rowid", "NewRowid", "Blob", "Null", "Copy", "Move", "Param",
                     "Sequence", "IdxRowid", "Count", "RowData", "BeginSubrtn", "Gosub",
                     "InitCoroutine", "OffsetLimit"})
#: Opcodes that write the register in P3 alone.
_OUT_P3 = frozenset({"MakeRecord", "Column", "Function", "PureFunc", "Add", "Subtract",
                     "Multiply", "Divide", "Remainder", "Concat", "BitAnd", "BitOr",
                     "ShiftLeft", "ShiftRight", "And", "Or", "VColumn", "Offset", "RowSetRead"})
#: Opcodes whose output is a rowid (never NULL).
_ROWIDS = frozenset({"Rowid", "NewRowid", "IdxRowid", "RowSetRead"})
#: Opcodes that read registers and jump, open, close or write b-trees, but set no register.
_NO_OUT = frozenset({"Eq", "Ne", "Lt", "Le", "Gt", "Ge", "IsNull", "NotNull", "If", "IfNot",
                     "Goto", "Halt", "Init", "Transaction", "Insert", "IdxInsert", "OpenRead",
                     "OpenWrite", "Close", "NotExists", "SeekRowid", "NotFound", "Found",
                     "NoConflict", "SeekGE", "SeekGT", "SeekLE", "SeekLT", "IdxGT", "IdxGE",
                     "IdxLT", "IdxLE", "Next", "Prev", "Rewind", "Last", "ResultRow",
                     "FkCounter", "FkIfZero", "Trace", "Delete", "IdxDelete", "ResetCount",
                     "Noop", "Explain", "HaltIfNull", "SoftNull", "DeferredSeek",
                     "FinishSeek", "Once", "VerifyCookie", "TableLock", "ReleaseReg",
                     "Program", "CursorHint", "ColumnsUsed", "Savepoint", "AutoCommit",
                     "Affinity", "MustBeInt", "RealAffinity", "TypeCheck", "Cast", "RowSetAdd",
                     "RowSetTest", "Return",
                     # cursors opened: P2 is a column count or a root page, not a register
                     # (the IN list of a partial index's WHERE is an ephemeral table)
                     "OpenEphemeral", "OpenAutoindex", "OpenDup", "ReopenIdx", "SorterOpen",
                     "OpenPseudo"})
#: Opcodes that change a register's type in place (P1, or P1.. for Affinity).
_IN_PLACE = frozenset({"Affinity", "MustBeInt", "RealAffinity", "TypeCheck", "Cast"})


def writes_register(op: Op, reg: int) -> bool:
    """Might ``op`` set register ``reg``?  Unknown opcodes are assumed to set any register
    they name, so a value is only called known when nothing else can have changed it."""
    name = op.opcode
    if name in ("Null", "Copy", "Move"):
        last = op.p3 if name == "Null" else op.p2 + op.p3 - (1 if name == "Move" else 0)
        return op.p2 <= reg <= max(op.p2, last)
    if name == "SoftNull":
        return op.p1 == reg
    if name in _OUT_P2:
        return op.p2 == reg
    if name in _OUT_P3:
        return op.p3 == reg
    if name in _NO_OUT:
        return False
    return reg in (op.p1, op.p2, op.p3)


def static_value(prog: Sequence[Op], reg: int, _depth: int = 0) -> tuple[str, Any, str] | None:
    """Where a register's value comes from, when nothing but one instruction can set it.

    ``("const", value, conv)`` for ``Integer`` (int), ``Int64`` (int), ``Real`` (float) and
    ``String8`` (str); ``("param", i, conv)`` (0-based) for ``Variable``; ``("null", None,
    conv)`` for ``Null``; ``("rowid", None, conv)`` when only rowids are written to it
    (``Rowid``, ``NewRowid``, ``IdxRowid``, ``RowSetRead``: never NULL);
    copies are followed.  ``conv`` lists the type conversions some instruction may apply
    to the register in place (affinity letters; ``"?"`` for any other): the value is known
    only where none of them would change it (see :func:`compare_outcome`).  ``None`` when
    several instructions may set it: unlike :func:`register_source`, every instruction
    that names the register is considered.
    """
    writers = [op for op in prog if writes_register(op, reg)]
    conv = "".join(_conversion(op, reg) for op in prog if op.opcode in _IN_PLACE)
    if writers and all(op.opcode in _ROWIDS for op in writers):
        return ("rowid", None, conv)
    if len(writers) != 1 or _depth > 5:
        return None
    op = writers[0]
    name = op.opcode
    try:
        if name == "Integer":
            return ("const", int(op.p1), conv)
        if name == "Int64":
            return ("const", int(op.p4), conv)
        if name == "Real":
            return ("const", float(op.p4), conv)
    except (TypeError, ValueError):
        return None
    if name == "String8" and isinstance(op.p4, str):
        return ("const", op.p4, conv)
    if name == "Variable":
        return ("param", op.p1 - 1, conv)
    if name == "Null" and not op.p1:
        return ("null", None, conv)
    if name in ("Copy", "SCopy", "IntCopy") and (name != "Copy" or op.p3 == 0):
        src = static_value(prog, op.p1, _depth + 1)
        return None if src is None else (src[0], src[1], src[2] + conv)
    return None


def _conversion(op: Op, reg: int) -> str:
    """The affinity letter ``op`` applies to ``reg`` in place ('' if none, '?' if unknown)."""
    if op.opcode == "Affinity":
        if not op.p1 <= reg < op.p1 + op.p2:
            return ""
        letters = op.p4 if isinstance(op.p4, str) else ""
        return letters[reg - op.p1] if reg - op.p1 < len(letters) else "?"
    if op.opcode == "TypeCheck":  # a STRICT table's columns P1..P1+P2-1
        return "?" if op.p1 <= reg < op.p1 + op.p2 else ""
    if op.p1 != reg:
        return ""
    return {"MustBeInt": "D", "RealAffinity": "E"}.get(op.opcode, "?")


def _unchanged(value: Any, conv: str) -> bool:
    """Would every conversion in ``conv`` leave ``value`` as it is?"""
    for letter in conv:
        if value is None or letter == "A":
            continue
        if letter == "B":  # TEXT: numbers become text
            if not isinstance(value, str):
                return False
        elif letter in "CDE":  # NUMERIC, INTEGER, REAL: numeric-looking text becomes a number
            if isinstance(value, str) and _numeric_text(value):
                return False
            if letter == "D" and not isinstance(value, int):
                return False  # MustBeInt jumps, or converts
        else:
            return False
    return True


#: Compare flags of P5 (sqliteInt.h): jump when either operand is NULL; NULLs compare equal.
_JUMPIFNULL = 0x10
_NULLEQ = 0x80
_ORDER = {"Eq": lambda c: c == 0, "Ne": lambda c: c != 0, "Lt": lambda c: c < 0,
          "Le": lambda c: c <= 0, "Gt": lambda c: c > 0, "Ge": lambda c: c >= 0}


def _bound(src: tuple[str, Any, str], params: Sequence[Any] | Mapping[str, Any]
           ) -> tuple[bool, Any]:
    kind, where, conv = src
    if kind == "const":
        value = where
    elif kind == "null":
        value = None
    elif kind == "param" and not isinstance(params, Mapping) and 0 <= where < len(params):
        value = params[where]
    else:
        return False, None
    return (True, value) if _unchanged(value, conv) else (False, None)


def _numeric_text(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def compare_outcome(spec: tuple, params: Sequence[Any] | Mapping[str, Any]) -> bool | None:
    """Whether a test on values known before the run jumps, or ``None`` when unsure.

    ``spec`` is ``(opcode, p5, p4, left source, right source)`` for a compare
    (``Eq`` ... ``Ge``: is ``reg(P3) <op> reg(P1)``?, left = P3's source) or
    ``(opcode, 0, None, source, None)`` for ``IsNull``/``NotNull``, with sources
    from :func:`static_value`.  Only cases whose answer cannot depend on
    affinities or collations are answered: text with text (neither looking like
    a number) under BINARY, integer with integer, and NULLs; and only values that
    the register's in-place conversions leave alone.

    >>> compare_outcome(("Ne", 0x52, "BINARY-8", ("param", 0, "B"), ("const", "error", "")),
    ...                 ["info"])
    True
    >>> compare_outcome(("IsNull", 0, None, ("rowid", None, ""), None), [])
    False
    >>> compare_outcome(("Eq", 0x43, "BINARY-8", ("param", 0, ""), ("const", "7", "")), [7]) is None
    True
    >>> compare_outcome(("Eq", 0x43, "BINARY-8", ("param", 0, "B"), ("const", 7, "")), [7]) is None
    True
    """
    opcode, p5, p4, left, right = spec
    if opcode in ("IsNull", "NotNull"):
        if left[0] == "rowid":
            return opcode == "NotNull"
        known, v = _bound(left, params)
        if not known:
            return None
        return (v is None) == (opcode == "IsNull")
    if opcode not in _ORDER or right is None:
        return None
    (k1, a), (k2, b) = _bound(left, params), _bound(right, params)
    if not (k1 and k2):
        return None
    if a is None or b is None:
        if p5 & _NULLEQ and opcode in ("Eq", "Ne"):
            return (a is None and b is None) == (opcode == "Eq")
        return bool(p5 & _JUMPIFNULL)
    if p4 not in (None, "BINARY", "BINARY-8") and not str(p4).startswith("BINARY"):
        return None
    if isinstance(a, str) and isinstance(b, str):
        if _numeric_text(a) or _numeric_text(b):
            return None
        ea, eb = a.encode("utf-8"), b.encode("utf-8")
        return _ORDER[opcode]((ea > eb) - (ea < eb))
    if type(a) is int and type(b) is int:
        return _ORDER[opcode]((a > b) - (a < b))
    return None


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
