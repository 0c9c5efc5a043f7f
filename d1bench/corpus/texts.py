"""The piece tables and samplers a corpus's text is assembled from (see ``_pieces``)."""

from __future__ import annotations

import datetime as dt

import numpy as np

from d1bench.corpus._pieces import AliasTable, PieceTable
from d1bench.corpus.plan import CorpusPlan
from d1bench.corpus.vocabulary import Vocabulary

__all__ = ["RARE_SHARE", "ZIPF_EXPONENT", "GroupedSampler", "Texts", "capitalize"]

#: Word frequencies follow rank^-ZIPF_EXPONENT over ``terms.txt``.
ZIPF_EXPONENT = 1.0
#: Share of words drawn from the long tail of rare morpheme-built terms.
RARE_SHARE = 0.01
#: Embedding dimension and the number of decimals kept.
EMBEDDING_DIM = 16
EMBEDDING_SCALE = 10_000


def capitalize(text: str) -> str:
    """Upper-case the first letter unless the word is already mixed case.

    >>> capitalize("metformin"), capitalize("mRNA vaccination"), capitalize("HbA1c")
    ('Metformin', 'mRNA vaccination', 'HbA1c')
    """
    if len(text) > 1 and text[1].isupper():
        return text
    return text[:1].upper() + text[1:]


class GroupedSampler:
    """Draw an item of a given group with probability proportional to its weight.

    All groups live in one sorted cumulative array, group *g* spanning ``(g, g+1]``,
    so one ``searchsorted`` serves a whole block of rows with mixed groups.
    """

    def __init__(self, groups: np.ndarray, weights: np.ndarray, n_groups: int) -> None:
        groups = np.asarray(groups, dtype=np.int64)
        order = np.argsort(groups, kind="stable")
        g = groups[order]
        w = np.asarray(weights, dtype=np.float64)[order]
        totals = np.bincount(g, weights=w, minlength=n_groups)
        self.has_items = totals > 0
        cum = np.cumsum(w)
        before = np.concatenate([[0.0], np.cumsum(totals)])[g]
        self._cum = g + (cum - before) / np.where(totals[g] > 0, totals[g], 1.0)
        ends = np.cumsum(np.bincount(g, minlength=n_groups)) - 1
        self._cum[ends[totals > 0]] = np.arange(n_groups)[totals > 0] + 1.0
        self._order = order
        self._n = len(order)

    def sample(self, rng: np.random.Generator, groups: np.ndarray) -> np.ndarray:
        """One item per entry of ``groups`` (every group asked for must have items)."""
        u = rng.random(len(groups))
        pos = np.searchsorted(self._cum, groups + u, side="right")
        return self._order[np.minimum(pos, self._n - 1)]


class Texts:
    """Every piece group and sampler the row makers need, built once per corpus.

    Attribute names in upper case are group bases: ``self.W0 + term`` is the piece
    "term " and so on; the comments give each group's pattern.
    """

    def __init__(self, vocab: Vocabulary, plan: CorpusPlan) -> None:
        self.vocab = vocab
        p = self.pieces = PieceTable()
        c = p.const
        self.EMPTY = p.EMPTY

        # words: the ranked terms, then the rare tail
        words = list(vocab.terms) + list(vocab.rare_terms)
        self.n_terms = len(vocab.terms)
        self.n_words = len(words)
        self.W0 = p.add([w + " " for w in words])                  # "word "
        p.add([capitalize(w) + " " for w in words])                 # W1 "Word "
        p.add([w + ". " for w in words])                            # W2 "word. "
        p.add([w + ".\n" for w in words])                           # W3 "word.\n"
        head = AliasTable(1.0 / np.arange(1, self.n_terms + 1) ** ZIPF_EXPONENT)
        tail = AliasTable(1.0 / np.arange(1, len(vocab.rare_terms) + 1) ** ZIPF_EXPONENT)
        self._head, self._tail = head, tail

        headers, _ = vocab.category("abstract_header")
        self.HEADER = p.add([h + " " for h in headers])            # "Background: "

        # conditions, interventions, outcomes, keywords share one phrase space
        phrases = (list(vocab.conditions) + list(vocab.interventions) + list(vocab.outcomes)
                   + list(vocab.keywords))
        self.P_COND = 0
        self.P_INT = len(vocab.conditions)
        self.P_OUT = self.P_INT + len(vocab.interventions)
        self.P_KW = self.P_OUT + len(vocab.outcomes)
        self.Q = p.add([f'"{x}"' for x in phrases])                 # '"phrase"'
        self.CQ = p.add([f',"{x}"' for x in phrases])               # ',"phrase"'
        self.PH = p.add(phrases)                                    # 'phrase'
        self.PH_SP = p.add([x + " " for x in phrases])              # 'phrase '
        self.PH_NL = p.add([x + "\n" for x in phrases])             # 'phrase\n'
        self.PH_CAP = p.add([capitalize(x) + " " for x in phrases])  # 'Phrase '
        self.LBR, self.RBR_NL = c("["), c("]\n")
        self.ON, self.IN, self.IN_PATIENTS = c(" on "), c(" in "), c(" in patients with ")

        d = vocab.designs
        self.SUFFIX_NL = p.add([s + "\n" for s in d.title_suffixes])
        connectors, cw = vocab.category("title_connector")
        self.CONNECTOR = p.add([x + " " for x in connectors])
        self.connector = AliasTable(cw)
        leads, lw = vocab.category("title_lead")
        self.LEAD = p.add([x + " " for x in leads])
        self.lead = AliasTable(lw)

        # key findings
        verbs, vw = vocab.category("finding_verb")
        self.VERB = p.add([v + " " for v in verbs])
        self.verb = AliasTable(vw)
        self.verb_direction = np.array([_direction(v) for v in verbs], dtype=np.int64)
        measures, mw = vocab.category("effect_measure")
        self.MEASURE = p.add([f" ({m} " for m in measures])
        self.measure = AliasTable(mw)
        self.RATIO = p.add([f"{k / 100:.2f}" for k in range(401)])  # "0.82"
        self.CI, self.TO, self.CLOSE_NL = c("; 95% CI "), c(" to "), c(").\n")

        # DOIs: "10.5001/abbr." "2019." "0012" "3456\n"
        self.DOI = p.add([f"10.{5001 + j}/{a}." for j, a in enumerate(vocab.journal_abbreviations)])
        self.first_year = plan.origin.year
        self.YEAR_DOT = p.add([f"{y}." for y in range(self.first_year, plan.as_of.year + 1)])
        self.D4 = p.add([f"{k:04d}" for k in range(10_000)])
        self.D4_NL = p.add([f"{k:04d}\n" for k in range(10_000)])

        # embeddings: "[0.1234," "-0.0456," "0.0012]\n"
        scale = EMBEDDING_SCALE
        values = [f"{k / scale:.4f}" for k in range(-scale, scale + 1)]
        self.EMB_FIRST = p.add(["[" + v + "," for v in values])
        self.EMB_MID = p.add([v + "," for v in values])
        self.EMB_LAST = p.add([v + "]\n" for v in values])

        # authors: '[{"name":"' 'Maria ' 'K. ' 'Johansson' '","affiliation":"' 'X, Country' '"}]\n'
        self.AUTHOR_OPEN, self.AUTHOR_NEXT = c('[{"name":"'), c(',{"name":"')
        self.FIRST_SP = p.add([f + " " for f in vocab.first_names])
        self.INITIAL = p.add([chr(ord("A") + k) + ". " for k in range(26)])
        self.LAST = p.add(list(vocab.last_names))
        self.AFF_KEY = c('","affiliation":"')
        self.AFF = p.add([f"{n}, {k}" for n, k in zip(vocab.institutions,
                                                       vocab.institution_countries)])
        self.AUTHOR_CLOSE, self.AUTHOR_LAST = c('"}'), c('"}]\n')
        self.institution = AliasTable(vocab.institution_weights)

        # timestamps: "2026-10-12 " "14:05:" "33\n"
        n_days = plan.as_of_day + 1
        dates = [(plan.origin + dt.timedelta(days=k)).isoformat() for k in range(n_days)]
        self.dates = np.array(dates, dtype=object)                  # gathered, not rendered
        self.DATE_SP = p.add([x + " " for x in dates])
        self.HHMM = p.add([f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60)])
        self.SS_NL = p.add([f"{s:02d}\n" for s in range(60)])

        # reviews
        self.OPENER = {r: p.add(list(v)) for r, v in vocab.review_phrases.items() if r > 0}
        self.n_openers = {r: len(v) for r, v in vocab.review_phrases.items() if r > 0}
        comments = vocab.review_phrases.get(0, ("",))
        self.COMMENT_SP = p.add([" " + x for x in comments])
        self.n_comments = len(comments)
        self.NL = c("\n")

        # trials: "A Phase 3 trial of " + intervention + " in " + condition
        phases, _ = vocab.category("trial_phase")
        self.TRIAL_LEAD = p.add(["A trial of " if ph == "N/A" else f"A {ph} trial of "
                                 for ph in phases])

        # samplers
        n_spec = len(vocab.specialties)
        self.n_specialties = n_spec
        self.specialty = AliasTable(vocab.specialty_weights)
        self.design = AliasTable(d.weights)
        self.journal = GroupedSampler(np.where(vocab.journal_specialty < 0, n_spec,
                                               vocab.journal_specialty),
                                      vocab.journal_weights, n_spec + 1)
        self.condition = GroupedSampler(vocab.condition_specialty, vocab.condition_weights, n_spec)
        self.any_condition = AliasTable(vocab.condition_weights
                                        * vocab.specialty_weights[vocab.condition_specialty])
        self.intervention = GroupedSampler(np.where(vocab.intervention_specialty < 0, n_spec,
                                                    vocab.intervention_specialty),
                                           np.ones(len(vocab.interventions)), n_spec + 1)
        self.keyword = AliasTable(1.0 / np.arange(1, len(vocab.keywords) + 1) ** 0.8)
        self.n_outcomes = len(vocab.outcomes)
        self.evidence = [AliasTable(row) for row in d.evidence]
        p.freeze()

    def words(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` word indexes: Zipf over the ranked terms, a small share from the rare tail."""
        out = self._head.sample(rng, n)
        rare = np.flatnonzero(rng.random(n) < RARE_SHARE)
        out[rare] = self.n_terms + self._tail.sample(rng, len(rare))
        return out


def _direction(verb: str) -> int:
    """-1 for a verb that reports a lower ratio, +1 higher, 0 no difference."""
    if any(w in verb for w in ("not", "no effect", "noninferior")):
        return 0
    if any(w in verb for w in ("increased", "higher")):
        return 1
    return -1
