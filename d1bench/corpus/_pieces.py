"""Vectorised building blocks: weighted sampling and text assembled from pieces.

Generating a million abstracts one Python string at a time would cost more than
inserting them.  Instead every text column is described as a stream of integer
piece ids (numpy arrays, built for a whole block of rows at once), and rendered
with one ``"".join`` over the block followed by one ``str.split``: each document
ends with a piece that carries a newline, and no piece contains one elsewhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

__all__ = ["AliasTable", "Digest", "PieceTable"]


class AliasTable:
    """Draw indexes ``0..n-1`` with probability proportional to ``weights`` in O(1) each.

    Walker's alias method: one uniform draw picks a column and decides between the
    column and its alias, so a million draws cost a few vectorised numpy operations.

    >>> table = AliasTable([1.0, 0.0, 3.0])
    >>> draws = table.sample(np.random.default_rng(1), 40_000)
    >>> sorted(set(draws.tolist()))
    [0, 2]
    >>> round(float((draws == 2).mean()), 1)
    0.8
    """

    __slots__ = ("_alias", "_prob", "n")

    def __init__(self, weights: Sequence[float] | np.ndarray) -> None:
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 1 or len(w) == 0 or (w < 0).any() or w.sum() <= 0:
            raise ValueError("weights must be a non-empty 1-d array of non-negative numbers")
        n = len(w)
        scaled = w * (n / w.sum())
        prob = np.ones(n)
        alias = np.arange(n, dtype=np.int64)
        small = [i for i in range(n) if scaled[i] < 1.0]
        large = [i for i in range(n) if scaled[i] >= 1.0]
        while small and large:
            s, g = small.pop(), large.pop()
            prob[s] = scaled[s]
            alias[s] = g
            scaled[g] -= 1.0 - scaled[s]
            (small if scaled[g] < 1.0 else large).append(g)
        self.n = n
        self._prob = prob
        self._alias = alias

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` draws as an int64 array."""
        return self.pick(rng.random(size))

    def pick(self, u: np.ndarray) -> np.ndarray:
        """The draws that uniform numbers ``u`` in [0, 1) stand for."""
        u = np.asarray(u, dtype=np.float64) * self.n
        column = u.astype(np.int64)
        np.minimum(column, self.n - 1, out=column)
        return np.where(u - column < self._prob[column], column, self._alias[column])


class PieceTable:
    """Numbered text pieces, grouped so that ``base + index`` names a piece of a group.

    Groups are added once (``add``); ``render`` turns an array of piece ids into
    documents: the ids of all documents concatenated, each document's last piece
    ending in ``"\\n"``.
    """

    def __init__(self) -> None:
        self._pieces: list[str] = []
        self._consts: dict[str, int] = {}
        self._array: np.ndarray | None = None
        self.EMPTY = self.const("")

    def add(self, strings: Sequence[str]) -> int:
        """Append a group of pieces; returns the id of its first piece."""
        if self._array is not None:
            raise RuntimeError("piece table is frozen")
        base = len(self._pieces)
        self._pieces.extend(strings)
        return base

    def const(self, text: str) -> int:
        """The id of a single fixed piece (added once)."""
        if text not in self._consts:
            self._consts[text] = self.add([text])
        return self._consts[text]

    def freeze(self) -> None:
        self._array = np.array(self._pieces, dtype=object)

    @property
    def fingerprint(self) -> str:
        """A hash of every piece: with the ids rendered, it pins the text down exactly."""
        return hashlib.sha256("\x00".join(self._pieces).encode("utf-8")).hexdigest()

    def render(self, ids: np.ndarray, digest: Digest | None = None) -> list[str]:
        """The documents spelt by ``ids`` (see the class docstring), in order.

        ``digest`` is fed the ids, which together with :attr:`fingerprint` identify
        the text (and hash in a third of the time the text would).
        """
        if self._array is None:
            self.freeze()
        assert self._array is not None  # freeze() made it
        text = "".join(self._array[ids].tolist())
        if digest is not None:
            digest.array(ids.astype(np.int32))
        docs = text.split("\n")
        docs.pop()  # the empty string after the last newline
        return docs


class Digest:
    """A running fingerprint of everything generated, fed as it is produced.

    Hashing what the rows are made from (piece ids, numbers, category indexes) costs
    far less than reading the rows back from SQLite, and identifies them as well.
    """

    def __init__(self, *header: object) -> None:
        self._h = hashlib.sha256()  # hardware-accelerated on current CPUs: faster than blake2b
        self.text("\x1f".join(map(str, header)))

    def text(self, text: str) -> None:
        self._h.update(text.encode("utf-8"))
        self._h.update(b"\x1e")

    def array(self, array: np.ndarray) -> None:
        if array.dtype == object:  # its bytes would be pointers
            raise TypeError("digest numeric arrays only")
        self._h.update(np.ascontiguousarray(array).tobytes())
        self._h.update(str(array.dtype).encode() + b"\x1e")

    def hexdigest(self) -> str:
        return self._h.hexdigest()[:32]
