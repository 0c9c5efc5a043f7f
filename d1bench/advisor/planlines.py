"""The parts a plan walk (:mod:`~d1bench.advisor.planwalk`) is made of: the loops of
EXPLAIN QUERY PLAN, one line taken apart at a time, and what the walk asks of the cost
model that prices each loop (:class:`Selectivity`, declared here so that the walker
need not import the model that calls it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from d1bench.advisor.query import Pred, Ref
from d1bench.advisor.stats import Stats
from d1bench.sql.catalog import Catalog

__all__ = ["Loop", "Selectivity", "conjuncts", "parse_loop", "stripped"]


@dataclass(frozen=True, slots=True)
class Loop:
    """One SCAN/SEARCH line of a plan, taken apart."""

    kind: str           # scan, search
    alias: str
    access: str         # table, index, covering, rowid, automatic, virtual, subquery
    index: str | None
    constraints: tuple[tuple[str, str], ...]  # (column text, operator)
    virtual_idx: str | None = None


_LOOP = re.compile(
    r"^(?P<kind>SCAN|SEARCH) (?P<alias>\S+)(?: AS \S+)?"
    r"(?: USING (?:"
    r"(?P<cov>COVERING |AUTOMATIC COVERING |AUTOMATIC PARTIAL COVERING |AUTOMATIC PARTIAL |AUTOMATIC )?"
    r"INDEX(?: (?P<index>[^\s(]+))?"
    r"|(?P<pk>INTEGER PRIMARY KEY|PRIMARY KEY)"
    r"))?"
    r"(?: \((?P<cons>.*)\))?")


def parse_loop(detail: str) -> Loop | None:
    """Take an EXPLAIN QUERY PLAN loop line apart (``None`` for other lines).

    >>> parse_loop("SEARCH t USING INDEX t_ab (a=? AND b>?)").constraints
    (('a', '='), ('b', '>'))
    >>> parse_loop("SEARCH u USING COVERING INDEX ix (<expr>=? AND b<?)").constraints
    (('<expr>', '='), ('b', '<'))
    >>> parse_loop("SCAN p USING COVERING INDEX i").access
    'covering'
    >>> parse_loop("SEARCH p USING INTEGER PRIMARY KEY (rowid=?)").access
    'rowid'
    >>> parse_loop("SEARCH e USING INDEX ix (ANY(device_id) AND kind=?)").constraints
    (('device_id', 'any'), ('kind', '='))
    """
    detail = detail.replace(" LEFT-JOIN", "").replace(" RIGHT-JOIN", "")
    if detail.startswith("SCAN ") and " VIRTUAL TABLE INDEX " in detail:
        alias = detail.split(" ")[1]
        return Loop("scan", alias, "virtual", None, (), detail.split(" VIRTUAL TABLE INDEX ", 1)[1])
    m = _LOOP.match(detail)
    if m is None:
        return None
    cov = (m.group("cov") or "").strip()
    if m.group("pk"):
        access = "rowid" if m.group("pk").startswith("INTEGER") else "index"
    elif "AUTOMATIC" in cov:
        access = "automatic"
    elif m.group("index") or cov:
        access = "covering" if cov == "COVERING" else "index"
    else:
        access = "table"
    constraints = []
    for part in (m.group("cons") or "").split(" AND "):
        part = part.strip()
        if not part:
            continue
        if part.startswith("ANY(") and part.endswith(")"):
            constraints.append((part[4:-1], "any"))  # a skip-scan over this key's values
            continue
        expr = part.startswith("<expr>")
        mm = re.match(r"^(.*?)(=|>=|<=|>|<)\?$", part[len("<expr>"):] if expr else part)
        if mm:
            constraints.append(("<expr>" if expr else mm.group(1), mm.group(2)))
    return Loop(m.group("kind").lower(), m.group("alias"), access, m.group("index"),
                tuple(constraints))


class Selectivity(Protocol):
    """What the walk asks of a cost model (:class:`~d1bench.advisor.costmodel.CostModel`)."""

    stats: Stats
    catalog: Catalog

    def fraction(self, ref: Ref, preds: Sequence[Pred], params: Mapping[str, Any]) -> float:
        """Share of ``ref``'s rows that satisfy ``preds``."""

    def rows_per_key(self, table: str, key: str) -> float:
        """Average rows of ``table`` per distinct value of ``key``."""

    def exactable(self, p: Pred) -> bool:
        """Whether ``p`` is counted exactly from the data (equality, IN, IS NULL)."""

    def join_fanout(self, inner: Ref, inner_key: str, inner_preds: Sequence[Pred], outer: Ref,
                    outer_key: str, outer_preds: Sequence[Pred],
                    params: Mapping[str, Any]) -> tuple[float, float, list[Pred]] | None:
        """Rows of ``inner`` meeting ``inner_preds`` per row of ``outer`` joined on the
        keys, the share of outer rows with at least one, and the predicates of
        ``inner_preds`` the count includes (``None``: the data cannot say)."""

    def scan_until(self, ref: Ref, keys: Sequence[str], desc: bool, preds: Sequence[Pred],
                   params: Mapping[str, Any], wanted: float) -> float | None:
        """Rows a scan of ``ref`` in the order of ``keys`` reads until ``wanted`` rows pass
        ``preds`` (``None``: the data cannot say)."""


def stripped(sql: str) -> str:
    """A predicate's text without table qualifiers, lower case (to compare with an
    index's WHERE)."""
    return re.sub(r"\b\w+\.", "", sql).strip().lower()


def conjuncts(where: str) -> set[str]:
    """The AND-ed terms of a partial index's WHERE, lower case."""
    return {part.strip().lower() for part in re.split(r"(?i)\s+AND\s+", where)}

