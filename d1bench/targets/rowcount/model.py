"""The flow model's data: the linear forms, the system, and the state of building it.

Kept apart from :mod:`~d1bench.targets.rowcount.flow` (which writes the flow
equations) and :mod:`~d1bench.targets.rowcount.facts` (which adds facts about
the data) because both fill the same :class:`Builder`: with it here, each
imports this module and neither imports the other.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from d1bench.targets.rowcount.program import Op, Program

__all__ = ["Builder", "FlowModel", "Form"]

Form = dict[int, float]  #: a linear form over the unknowns: {variable: coefficient}


@dataclass
class FlowModel:
    """The linear system of one program (see :mod:`~d1bench.targets.rowcount.flow`).

    ``equations`` are exact (form == constant); ``observables`` map each
    counter to its form; ``facts`` equal a constant or a named per-execution
    input; ``samples`` are softer facts estimated from a sample of the data;
    ``priors`` are soft (form ~= 0, weight).
    """

    program: Program
    nvars: int
    equations: list[tuple[Form, float]] = field(default_factory=list)
    observables: dict[str, Form] = field(default_factory=dict)
    facts: list[tuple[Form, float, str | None]] = field(default_factory=list)
    samples: list[tuple[Form, str]] = field(default_factory=list)
    priors: list[tuple[Form, float]] = field(default_factory=list)
    reads: Form = field(default_factory=dict)
    writes: Form = field(default_factory=dict)
    #: ``Count`` opcodes: (runs form, table name or None, output register);
    #: each run adds the b-tree's entry count to the rows read.
    counts: list[tuple[Form, str | None, int]] = field(default_factory=list)
    #: sorters with LIMIT: (jumps form of IfNotZero, runs form, limit source)
    limits: list[tuple[Form, Form, tuple[str, Any] | None]] = field(default_factory=list)
    #: named per-execution inputs the facts need: name -> (kind, detail)
    inputs: dict[str, tuple[str, Any]] = field(default_factory=dict)
    fts_aux_calls: bool = False  #: an FTS5 auxiliary function (bm25...) runs per row
    #: ``Clear`` empties a table (DELETE without WHERE): D1 bills each row it
    #: removes, which only the statement's change count tells.
    clears: bool = False
    #: parameters whose JSON length shaped a fact: callers key their caches on it
    shape_params: list[int] = field(default_factory=list)
    #: tests of bound values whose outcome shaped a fact (see ``program.compare_outcome``):
    #: callers key their caches on the outcomes too
    shape_tests: list[tuple] = field(default_factory=list)
    #: equality seeks of a fixed value: (op index, table, column number, value source);
    #: whether the value is in the table decides the seek (the caller asks the data)
    presence: list[tuple] = field(default_factory=list)
    op_vars: list[int] = field(default_factory=list)  #: variable of each op's count
    jump_vars: dict[int, int] = field(default_factory=dict)  #: op index -> its jump variable


@dataclass
class Builder:
    """What building one model needs to know, shared with the fact finders."""

    program: Program
    btrees: Mapping[int, tuple]
    table_rows: Mapping[str, int]
    vtabs: Mapping[str, tuple[str, int]]
    params: Sequence[Any] | Mapping[str, Any]
    model: FlowModel = field(init=False)
    nv: int = 0
    t: dict[int, int] = field(default_factory=dict)  #: op index -> its jump variable
    t2: dict[int, int] = field(default_factory=dict)  #: op index -> second jump variable
    ephemeral: set[tuple[int, int]] = field(default_factory=set)
    eq_only: set[tuple[int, int]] = field(default_factory=set)
    btree_of: dict[tuple[int, int], tuple] = field(default_factory=dict)
    vtab_of: dict[tuple[int, int], tuple[str, int]] = field(default_factory=dict)
    co_start: dict[tuple[int, int], int] = field(default_factory=dict)
    co_ends: dict[tuple[int, int], list[int]] = field(default_factory=lambda: defaultdict(list))
    spans: dict[int, list[tuple[int, int]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.model = FlowModel(self.program, 0)
        self.nv = len(self.program.ops)  # variables 0..n-1: op counts; jumps and slacks follow

    def new_var(self) -> int:
        self.nv += 1
        return self.nv - 1

    def at(self, prog: int, addr: int) -> int | None:
        """Index of the op at ``addr`` of program ``prog`` (address 0 is never a target)."""
        starts, n = self.program.starts, len(self.program.ops)
        end = starts[prog + 1] if prog + 1 < len(starts) else n
        i = starts[prog] + addr
        return i if addr > 0 and i < end else None

    def is_producer_yield(self, op: Op) -> bool:
        """A Yield inside its coroutine's body (rather than in the consumer)."""
        key = (op.prog, op.p1)
        return key in self.co_start and bool(self.co_ends.get(key)) and \
            self.co_start[key] <= op.index <= max(self.co_ends[key])
