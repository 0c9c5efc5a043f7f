"""The medical vocabulary a corpus is drawn from: small text files under ``data/vocabulary/``.

Every file is UTF-8, one entry a line, ``#`` starts a comment line; ``.tsv`` files
separate fields by tabs.  Line order matters where a file says so (``terms.txt``
is in Zipf rank order).  Entries may not contain a double quote, a backslash or a
control character, because the generator pastes them into JSON text as they are.
The folder's ``README.md`` says what each file holds and where it is used.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from d1bench._paths import vocabulary_dir
from d1bench.errors import UsageError

__all__ = ["EVIDENCE_LEVELS", "Designs", "Vocabulary", "ascii_fold", "load_vocabulary",
           "vocabulary_dir"]

#: Files a vocabulary folder must hold.
FILES = (
    "terms.txt", "morphemes.tsv", "specialties.tsv", "conditions.tsv", "interventions.tsv",
    "outcomes.txt", "keywords.txt", "study_designs.tsv", "journals.tsv", "institutions.tsv",
    "first_names.txt", "last_names.txt", "categories.tsv", "review_phrases.tsv",
)

_EVIDENCE = ("high", "moderate", "low", "very_low")


@dataclass(frozen=True, slots=True)
class Designs:
    """Study designs and what follows from each (one entry per design, same order).

    ``evidence`` holds GRADE level weights in the order of :data:`EVIDENCE_LEVELS`;
    ``references`` is the mean number of older corpus papers a paper of that design cites.
    """

    names: tuple[str, ...]
    weights: np.ndarray
    publication_types: tuple[str, ...]
    trial_share: np.ndarray
    evidence: np.ndarray
    title_suffixes: tuple[str, ...]
    references: np.ndarray


EVIDENCE_LEVELS = _EVIDENCE


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """Everything the generator draws words and categories from.

    Weights are plain positive numbers (normalised by the sampler).  Specialty
    references are indexes into ``specialties``; ``-1`` means "any specialty".
    ``digest`` fingerprints the files, so a corpus digest changes when they do.
    """

    terms: tuple[str, ...]
    rare_terms: tuple[str, ...]
    specialties: tuple[str, ...]
    specialty_weights: np.ndarray
    conditions: tuple[str, ...]
    condition_specialty: np.ndarray
    condition_weights: np.ndarray
    interventions: tuple[str, ...]
    intervention_specialty: np.ndarray
    outcomes: tuple[str, ...]
    keywords: tuple[str, ...]
    designs: Designs
    journals: tuple[str, ...]
    journal_specialty: np.ndarray
    journal_weights: np.ndarray
    journal_abbreviations: tuple[str, ...]
    institutions: tuple[str, ...]
    institution_countries: tuple[str, ...]
    institution_weights: np.ndarray
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    categories: dict[str, tuple[tuple[str, ...], np.ndarray]]
    review_phrases: dict[int, tuple[str, ...]]
    digest: str

    def category(self, name: str) -> tuple[tuple[str, ...], np.ndarray]:
        """The values and weights of one category of ``categories.tsv``."""
        return self.categories[name]


def load_vocabulary(folder: str | Path | None = None) -> Vocabulary:
    """Read and check the vocabulary in ``folder`` (default :func:`vocabulary_dir`).

    Results are cached while the files stay unchanged (same sizes and times).
    """
    folder = Path(folder) if folder is not None else vocabulary_dir()
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        raise UsageError(f"{folder}: vocabulary file(s) missing: {', '.join(missing)}")
    stamp = tuple((st.st_size, st.st_mtime_ns) for st in ((folder / n).stat() for n in FILES))
    return _load(folder, stamp)


@functools.lru_cache(maxsize=4)
def _load(folder: Path, stamp: tuple) -> Vocabulary:
    digest = hashlib.blake2b(digest_size=16)
    for name in FILES:
        digest.update(name.encode() + b"\0" + (folder / name).read_bytes() + b"\0")

    def rows(name: str, fields: int) -> list[tuple[str, list[str]]]:
        return _rows(folder / name, fields)

    terms = _unique([f[0] for _, f in rows("terms.txt", 1)])
    rare = _rare_terms(rows("morphemes.tsv", 2), set(terms), folder / "morphemes.tsv")

    specialty_rows = rows("specialties.tsv", 2)
    specialties = tuple(f[0] for _, f in specialty_rows)
    spec_index = {name: i for i, name in enumerate(specialties)}
    spec_weights = np.array([_weight(folder / "specialties.tsv", n, f[1])
                             for n, f in specialty_rows])

    def specialty_of(path: str, lineno: int, value: str) -> int:
        if value == "*":
            return -1
        if value not in spec_index:
            raise UsageError(f"{folder / path}:{lineno}: unknown specialty {value!r}")
        return spec_index[value]

    cond_rows = rows("conditions.tsv", 3)
    int_rows = rows("interventions.tsv", 2)
    design_rows = rows("study_designs.tsv", 10)
    journal_rows = rows("journals.tsv", 4)
    inst_rows = rows("institutions.tsv", 3)

    categories: dict[str, tuple[list[str], list[float]]] = {}
    for n, (cat, value, weight) in rows("categories.tsv", 3):
        values, weights = categories.setdefault(cat, ([], []))
        values.append(value)
        weights.append(_weight(folder / "categories.tsv", n, weight))
    phrases: dict[int, list[str]] = {}
    for n, (rating, phrase) in rows("review_phrases.tsv", 2):
        if rating not in {"0", "1", "2", "3", "4", "5"}:
            raise UsageError(f"{folder / 'review_phrases.tsv'}:{n}: rating must be 0-5, "
                             f"got {rating!r}")
        phrases.setdefault(int(rating), []).append(phrase)

    designs = Designs(
        names=tuple(f[0] for _, f in design_rows),
        weights=np.array([_weight(folder / "study_designs.tsv", n, f[1]) for n, f in design_rows]),
        publication_types=tuple(f[2] for _, f in design_rows),
        trial_share=np.array([_number(folder / "study_designs.tsv", n, f[3], 0, 1)
                              for n, f in design_rows]),
        evidence=np.array([[_number(folder / "study_designs.tsv", n, v, 0, 1e9) for v in f[4:8]]
                           for n, f in design_rows]),
        title_suffixes=tuple(f[8] for _, f in design_rows),
        references=np.array([_number(folder / "study_designs.tsv", n, f[9], 0, 1000)
                             for n, f in design_rows]),
    )
    if (designs.evidence.sum(axis=1) <= 0).any():
        raise UsageError(f"{folder / 'study_designs.tsv'}: each design needs an evidence weight")

    return Vocabulary(
        terms=terms,
        rare_terms=rare,
        specialties=specialties,
        specialty_weights=spec_weights,
        conditions=tuple(f[0] for _, f in cond_rows),
        condition_specialty=np.array([specialty_of("conditions.tsv", n, f[1])
                                      for n, f in cond_rows], dtype=np.int64),
        condition_weights=np.array([_weight(folder / "conditions.tsv", n, f[2])
                                    for n, f in cond_rows]),
        interventions=tuple(f[0] for _, f in int_rows),
        intervention_specialty=np.array([specialty_of("interventions.tsv", n, f[1])
                                         for n, f in int_rows], dtype=np.int64),
        outcomes=_unique([f[0] for _, f in rows("outcomes.txt", 1)]),
        keywords=_unique([f[0] for _, f in rows("keywords.txt", 1)]),
        designs=designs,
        journals=tuple(f[0] for _, f in journal_rows),
        journal_specialty=np.array([specialty_of("journals.tsv", n, f[1])
                                    for n, f in journal_rows], dtype=np.int64),
        journal_weights=np.array([_weight(folder / "journals.tsv", n, f[2])
                                  for n, f in journal_rows]),
        journal_abbreviations=tuple(f[3] for _, f in journal_rows),
        institutions=tuple(f[0] for _, f in inst_rows),
        institution_countries=tuple(f[1] for _, f in inst_rows),
        institution_weights=np.array([_weight(folder / "institutions.tsv", n, f[2])
                                      for n, f in inst_rows]),
        first_names=_unique([f[0] for _, f in rows("first_names.txt", 1)]),
        last_names=_unique([f[0] for _, f in rows("last_names.txt", 1)]),
        categories={k: (tuple(v), np.array(w)) for k, (v, w) in categories.items()},
        review_phrases={k: tuple(v) for k, v in phrases.items()},
        digest=digest.hexdigest(),
    )


def ascii_fold(text: str) -> str:
    """Drop accents and anything else outside lower-case ASCII letters (for e-mail addresses).

    >>> ascii_fold("Bjørn Sørensen-Müller")
    'bjornsorensenmuller'
    """
    text = text.replace("ø", "o").replace("Ø", "O").replace("ł", "l").replace("Ł", "L")
    text = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in text.lower() if "a" <= ch <= "z")


# --- parsing ---------------------------------------------------------------

def _rows(path: Path, fields: int) -> list[tuple[int, list[str]]]:
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t") if fields > 1 else [line.strip()]
        if len(parts) != fields:
            raise UsageError(f"{path}:{lineno}: expected {fields} tab-separated fields, "
                             f"found {len(parts)}")
        for part in parts:
            if any(ch in part for ch in '"\\') or any(ord(ch) < 32 for ch in part):
                raise UsageError(f"{path}:{lineno}: {part!r} contains a quote, backslash or "
                                 "control character")
        out.append((lineno, parts))
    if not out:
        raise UsageError(f"{path}: no entries")
    return out


def _weight(path: Path, lineno: int, text: str) -> float:
    value = _number(path, lineno, text, 0, 1e12)
    if value <= 0:
        raise UsageError(f"{path}:{lineno}: weight must be positive, got {text!r}")
    return value


def _number(path: Path, lineno: int, text: str, low: float, high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{path}:{lineno}: {text!r} is not a number") from None
    if not low <= value <= high:
        raise UsageError(f"{path}:{lineno}: {text!r} is outside {low}..{high}")
    return value


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _rare_terms(rows: list[tuple[int, list[str]]], taken: set[str], path: Path) -> tuple[str, ...]:
    parts: dict[str, list[str]] = {"prefix": [], "root": [], "suffix": []}
    for lineno, (kind, morpheme) in rows:
        if kind not in parts:
            raise UsageError(f"{path}:{lineno}: part must be prefix, root or suffix, got {kind!r}")
        parts[kind].append(morpheme)
    words = ("".join(p) for p in itertools.product(parts["prefix"], parts["root"], parts["suffix"]))
    unique = [w for w in dict.fromkeys(words) if w not in taken]
    # A fixed shuffle, the same for every seed: rank must not follow alphabetical order,
    # or the rarest terms would all share a prefix.
    order = np.random.default_rng(0x5EED).permutation(len(unique))
    return tuple(unique[i] for i in order)
