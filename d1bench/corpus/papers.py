"""Papers and the clinical trials they report, a block of ``plan.BLOCK`` papers at a time."""

from __future__ import annotations

import numpy as np

from d1bench.corpus._pieces import AliasTable, Digest
from d1bench.corpus.plan import CorpusPlan
from d1bench.corpus.texts import EMBEDDING_DIM, EMBEDDING_SCALE, GroupedSampler, Texts
from d1bench.corpus.vocabulary import EVIDENCE_LEVELS

__all__ = ["PaperMaker", "mix64"]

#: Share of papers in general (not specialty) journals.
GENERAL_JOURNAL_SHARE = 0.3
#: Papers per trial: a trial founds the first, later papers reuse it.
NEW_TRIAL_SHARE = 0.75
#: Publication types that carry no abstract, key findings or embedding.
NO_TEXT_TYPES = ("editorial", "letter")
#: Median enrolment per trial phase (log-normal around it).
ENROLLMENT = {"Phase 1": 30, "Phase 2": 120, "Phase 3": 600, "Phase 4": 400}
#: Author pool per paper; the pool is sampled with density ~ 1/sqrt(rank), which
#: gives a few authors on hundreds of papers and most authors on one or two.
AUTHOR_POOL_PER_PAPER = 2.5

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)


def mix64(x: np.ndarray, key: int) -> np.ndarray:
    """A 64-bit hash of each entry of ``x`` (splitmix64's finaliser), keyed.

    >>> int(mix64(np.array([1]), 7)[0]) == int(mix64(np.array([1]), 7)[0])
    True
    """
    z = x.astype(np.uint64) * _M1 + np.uint64(key & 0xFFFFFFFFFFFFFFFF)
    z = (z ^ (z >> np.uint64(30))) * _M2
    z = (z ^ (z >> np.uint64(27))) * _M3
    return z ^ (z >> np.uint64(31))


class PaperMaker:
    """Makes paper rows (and trial rows) block by block."""

    def __init__(self, plan: CorpusPlan, texts: Texts) -> None:
        self.plan, self.t = plan, texts
        vocab = texts.vocab
        d = vocab.designs
        self._specialties = np.array(vocab.specialties, dtype=object)
        self._designs = np.array(d.names, dtype=object)
        self._ptypes = np.array(d.publication_types, dtype=object)
        self._journals = np.array(vocab.journals, dtype=object)
        self._evidence_names = np.array(EVIDENCE_LEVELS, dtype=object)
        self._no_text = np.isin(self._ptypes, NO_TEXT_TYPES)
        n_levels = len(EVIDENCE_LEVELS)
        self._evidence = GroupedSampler(np.repeat(np.arange(len(d.names)), n_levels),
                                        d.evidence.ravel(), len(d.names))
        self._n_levels = n_levels
        self._trial_share = d.trial_share
        phases, weights = vocab.category("trial_phase")
        self._phases = np.array(phases, dtype=object)
        self._phase = AliasTable(weights)
        self._median_enrollment = np.array([ENROLLMENT.get(p, 150) for p in phases], dtype=float)
        closed, cw = vocab.category("trial_status_closed")
        opened, ow = vocab.category("trial_status_open")
        self._closed, self._closed_p = np.array(closed, dtype=object), AliasTable(cw)
        self._open, self._open_p = np.array(opened, dtype=object), AliasTable(ow)
        self._centres = plan.rng("embedding-centres").normal(size=(texts.n_specialties,
                                                                   EMBEDDING_DIM))
        days = np.arange(plan.as_of_day + 1)
        self._year_of_day = np.array([int(s[:4]) for s in texts.dates[days]], dtype=np.int64)
        self.author_pool = max(100, round(AUTHOR_POOL_PER_PAPER * plan.papers))
        self._author_key = int(mix64(np.array([plan.seed]), 0xA07)[0])
        # canonical phrase ids, so that a phrase listed twice (a condition that is
        # also a keyword) is not repeated in one paper's keywords
        phrases = vocab.conditions + vocab.interventions + vocab.outcomes + vocab.keywords
        first: dict[str, int] = {}
        self._canon = np.array([first.setdefault(x, i) for i, x in enumerate(phrases)])
        self.specialty_of = np.zeros(plan.papers, dtype=np.uint8)
        self._kinds_cache: tuple[int, tuple[np.ndarray, np.ndarray]] | None = None

    def kinds(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Specialty and study design indexes of block ``b`` (their own stream, cheap to remake)."""
        if self._kinds_cache is not None and self._kinds_cache[0] == b:
            return self._kinds_cache[1]
        lo, hi = self.plan.block_range(b)
        rng = self.plan.rng("kinds", b)
        result = (self.t.specialty.sample(rng, hi - lo), self.t.design.sample(rng, hi - lo))
        self._kinds_cache = (b, result)
        return result

    # ------------------------------------------------------------------ block
    def block(self, b: int, cited_by: np.ndarray,
              digest: Digest) -> tuple[list[tuple], list[tuple]]:
        """``(trial_rows, paper_rows)`` of block ``b``, given its papers' citation counts."""
        plan, t = self.plan, self.t
        lo, hi = plan.block_range(b)
        n = hi - lo
        ids = np.arange(lo + 1, hi + 1)
        spec, design = self.kinds(b)
        self.specialty_of[lo:hi] = spec
        rng = plan.rng("papers", b)
        pday = plan.publication_days(lo, hi)
        day = pday + plan.start_day
        no_text = self._no_text[design]
        n_spec = t.n_specialties

        general = rng.random(n) < GENERAL_JOURNAL_SHARE
        journal = t.journal.sample(rng, np.where(general, n_spec, spec))
        evidence = self._evidence.sample(rng, design) % self._n_levels
        age = plan.span_days - pday
        stage = np.where(rng.random(n) < 0.03 + 0.07 * (age < 365), 2,
                         np.where((age < 60) & (rng.random(n) < 0.5), 1, 0))

        # conditions: 1-3, the first from the paper's specialty
        u = rng.random(n)
        n_cond = 1 + (u > 0.55) + (u > 0.85)
        cond = np.empty((n, 3), dtype=np.int64)
        cond[:, 0] = t.condition.sample(rng, spec)
        for j in (1, 2):
            own = t.condition.sample(rng, spec)
            cond[:, j] = np.where(rng.random(n) < 0.75, own, t.any_condition.sample(rng, n))
        valid = np.ones((n, 3), dtype=bool)
        valid[:, 1] = (n_cond >= 2) & (cond[:, 1] != cond[:, 0])
        valid[:, 2] = (n_cond >= 3) & (cond[:, 2] != cond[:, 0]) & (cond[:, 2] != cond[:, 1])
        interv = t.intervention.sample(rng, np.where(rng.random(n) < 0.2, n_spec, spec))
        outcome = rng.integers(0, t.n_outcomes, n)

        trial_rows, trial_of, trial_slot = self._trials(b, rng, design, day, cond, valid, interv,
                                                           digest)

        titles = t.pieces.render(self._titles(rng, design, cond[:, 0], interv, outcome), digest)
        abstracts = t.pieces.render(self._abstracts(rng, n, cond[:, 0], interv), digest)
        findings = t.pieces.render(self._findings(rng, n, cond[:, 0], interv, outcome), digest)
        keywords = t.pieces.render(self._keywords(rng, n, cond[:, 0], interv), digest)
        conditions = t.pieces.render(self._conditions(cond, valid), digest)
        authors = t.pieces.render(self._authors(rng, self._ptypes[design]), digest)
        embeddings = t.pieces.render(self._embeddings(rng, spec), digest)
        year = self._year_of_day[day] - t.first_year
        dois = t.pieces.render(np.stack([t.DOI + journal, t.YEAR_DOT + year, t.D4 + ids // 10_000,
                                         t.D4_NL + ids % 10_000], axis=1).ravel(), digest)
        for i in np.flatnonzero(no_text).tolist():
            abstracts[i] = findings[i] = embeddings[i] = None
        for a in (spec, design, journal, evidence, stage, cited_by, trial_slot, no_text):
            digest.array(a)

        stages = np.array(["final", "in-press", "preprint"], dtype=object)[stage]
        papers = list(zip(
            ids.tolist(), dois, titles, abstracts, authors, keywords,
            self._journals[journal].tolist(), t.dates[day].tolist(),
            self._ptypes[design].tolist(), stages.tolist(), self._specialties[spec].tolist(),
            self._designs[design].tolist(), self._evidence_names[evidence].tolist(),
            cited_by.tolist(), trial_of.tolist(), conditions, findings, embeddings,
        ))
        return trial_rows, papers

    # ----------------------------------------------------------------- trials
    def _trials(self, b, rng, design, day, cond, valid, interv, digest):
        """About 5 % of papers report a trial; a trial is reported by 1-3 papers of the block."""
        t, plan = self.t, self.plan
        n = len(design)
        trial_of = np.full(n, None, dtype=object)
        slot = np.full(n, -1, dtype=np.int64)
        members = np.flatnonzero(rng.random(n) < self._trial_share[design])
        if len(members) == 0:
            return [], trial_of, slot
        members = members[rng.permutation(len(members))]
        n_trials = min(999, max(1, int(np.ceil(len(members) * NEW_TRIAL_SHARE))))
        founders = np.sort(members[:n_trials])
        followers = members[n_trials:]
        # a later paper reports the trial of a founder next to it in time (the one
        # just before or just after it)
        pos = np.searchsorted(founders, followers) - rng.integers(0, 2, len(followers))
        lead = founders[np.clip(pos, 0, n_trials - 1)]
        # papers of one trial share its conditions and intervention
        cond[followers], valid[followers], interv[followers] = cond[lead], valid[lead], interv[lead]
        number = 1_000_000 + (b * 1000 + np.arange(n_trials)) * 7 + rng.integers(0, 7, n_trials)
        names = np.array([f"NCT{k:08d}" for k in number.tolist()], dtype=object)
        slot[founders] = np.arange(n_trials)
        slot[followers] = slot[lead]
        trial_of[members] = names[slot[members]]

        f_day = day[founders]
        first_paper = f_day.copy()
        np.minimum.at(first_paper, slot[followers], day[followers])
        start = first_paper - rng.integers(365, 5 * 365, n_trials)
        updated = f_day + (rng.random(n_trials) * (plan.as_of_day - f_day)).astype(np.int64)
        phase = self._phase.sample(rng, n_trials)
        years_running = (plan.as_of_day - start) / 365.25
        is_open = rng.random(n_trials) < np.clip(1 - years_running / 6, 0, 1) * 0.8
        open_pick = self._open_p.sample(rng, n_trials)
        closed_pick = self._closed_p.sample(rng, n_trials)
        status = np.where(is_open, self._open[open_pick], self._closed[closed_pick])
        enrollment = np.maximum(5, np.rint(self._median_enrollment[phase]
                                           * np.exp(0.8 * rng.standard_normal(n_trials))))
        picks = np.argsort(rng.random((n_trials, t.n_outcomes)), axis=1)[:, :6]
        n_primary = 1 + (rng.random(n_trials) < 0.4)
        n_secondary = rng.integers(1, 5, n_trials)
        titles = t.pieces.render(np.stack([t.TRIAL_LEAD + phase, t.PH + t.P_INT + interv[founders],
                                           np.full(n_trials, t.IN),
                                           t.PH_NL + t.P_COND + cond[founders, 0]], axis=1).ravel(),
                                 digest)
        primary = t.pieces.render(self._json_list(t.P_OUT + picks[:, :2], n_primary), digest)
        secondary = t.pieces.render(self._json_list(t.P_OUT + picks[:, 2:6], n_secondary), digest)
        for a in (number, start, updated, phase, is_open, open_pick, closed_pick, enrollment):
            digest.array(a)
        rows = list(zip(names.tolist(), titles, self._phases[phase].tolist(), status.tolist(),
                        enrollment.astype(np.int64).tolist(), primary, secondary,
                        t.dates[start].tolist(), t.dates[updated].tolist()))
        return rows, trial_of, slot

    def _json_list(self, phrase: np.ndarray, count: np.ndarray) -> np.ndarray:
        """Piece ids of JSON arrays of the first ``count[i]`` phrases of each row."""
        t = self.t
        n, width = phrase.shape
        cols = [np.full(n, t.LBR)]
        for j in range(width):
            cols.append(np.where(j < count, (t.Q if j == 0 else t.CQ) + phrase[:, j], t.EMPTY))
        cols.append(np.full(n, t.RBR_NL))
        return np.stack(cols, axis=1).ravel()

    # ------------------------------------------------------------------ texts
    def _titles(self, rng, design, cond, interv, outcome):
        t = self.t
        n = len(design)
        words = t.words(rng, n * 7).reshape(n, 7)
        length = rng.integers(3, 8, n)
        a = np.full((n, 10), t.EMPTY, dtype=np.int64)
        a[:, 0] = t.W0 + t.n_words + words[:, 0]          # capitalised first word
        for j in range(1, 7):
            a[:, j] = np.where(j < length, t.W0 + words[:, j], t.EMPTY)
        a[:, 7] = t.CONNECTOR + t.connector.sample(rng, n)
        a[:, 8] = t.PH + t.P_COND + cond
        a[:, 9] = t.SUFFIX_NL + design
        bb = np.full((n, 10), t.EMPTY, dtype=np.int64)
        bb[:, 0] = t.LEAD + t.lead.sample(rng, n)
        bb[:, 1] = t.PH + t.P_INT + interv
        bb[:, 2] = t.ON
        bb[:, 3] = t.PH + t.P_OUT + outcome
        bb[:, 4] = t.IN
        bb[:, 5] = t.PH + t.P_COND + cond
        bb[:, 6] = t.SUFFIX_NL + design
        return np.where((rng.random(n) < 0.65)[:, None], a, bb).ravel()

    def _abstracts(self, rng, n, cond, interv):
        """Four sections (Background, Methods, Results, Conclusions) of 1-2 sentences each."""
        t = self.t
        extra = rng.random((n, 2)) < 0.5
        per_doc = 4 + extra.sum(axis=1)
        s_total = int(per_doc.sum())
        doc = np.repeat(np.arange(n), per_doc)
        first_sentence = np.cumsum(per_doc) - per_doc
        k = np.arange(s_total) - first_sentence[doc]           # sentence number within its doc
        length = rng.integers(6, 15, s_total)
        first_word = np.cumsum(length) - length
        total = int(length.sum())
        variant = np.zeros(total, dtype=np.int64)
        variant[first_word] = 1                                 # capitalised
        variant[first_word + length - 1] = 2                    # ends the sentence
        last_sentence = first_sentence + per_doc - 1
        variant[first_word[last_sentence] + length[last_sentence] - 1] = 3  # ends the document
        ids = t.W0 + variant * t.n_words + t.words(rng, total)
        section = np.select([k == 0, k == 1, k == 2 + extra[doc, 0], k == per_doc[doc] - 1],
                            [0, 1, 2, 3], -1)
        starts = section >= 0
        at = np.concatenate([first_word[starts], first_word[k == 0] + 3, first_word[k == 1] + 2])
        what = np.concatenate([t.HEADER + section[starts], t.PH_SP + t.P_COND + cond,
                               t.PH_SP + t.P_INT + interv])
        return np.insert(ids, at, what)

    def _findings(self, rng, n, cond, interv, outcome):
        t = self.t
        verb = t.verb.sample(rng, n)
        direction = t.verb_direction[verb]
        value = np.select([direction < 0, direction > 0],
                          [rng.integers(40, 96, n), rng.integers(105, 221, n)],
                          rng.integers(85, 116, n))
        low = value - rng.integers(3, 26, n)
        high = value + rng.integers(3, 26, n)
        high = np.where(direction < 0, np.minimum(high, 99), high)
        low = np.where(direction > 0, np.maximum(low, 101), low)
        low = np.where(direction == 0, np.minimum(low, 97), low)
        high = np.where(direction == 0, np.maximum(high, 103), high)
        cols = [t.PH_CAP + t.P_INT + interv, t.VERB + verb, t.PH + t.P_OUT + outcome,
                np.full(n, t.IN_PATIENTS), t.PH + t.P_COND + cond,
                t.MEASURE + t.measure.sample(rng, n), t.RATIO + value, np.full(n, t.CI),
                t.RATIO + low, np.full(n, t.TO), t.RATIO + high, np.full(n, t.CLOSE_NL)]
        return np.stack(cols, axis=1).ravel()

    def _keywords(self, rng, n, cond, interv):
        """3-6 keywords: the main condition, the intervention, then 1-4 by Zipf rank."""
        t = self.t
        extra = rng.integers(1, 5, n)
        kw = t.P_KW + t.keyword.sample(rng, n * 4).reshape(n, 4)
        canon = self._canon
        seen = [canon[t.P_COND + cond], canon[t.P_INT + interv]]
        cols = [np.full(n, t.LBR), t.Q + t.P_COND + cond, t.CQ + t.P_INT + interv]
        for j in range(4):
            c = canon[kw[:, j]]
            fresh = j < extra
            for s in seen:
                fresh &= c != s
            cols.append(np.where(fresh, t.CQ + kw[:, j], t.EMPTY))
            seen.append(c)
        cols.append(np.full(n, t.RBR_NL))
        return np.stack(cols, axis=1).ravel()

    def _conditions(self, cond, valid):
        t = self.t
        n = len(cond)
        cols = [np.full(n, t.LBR), t.Q + t.P_COND + cond[:, 0],
                np.where(valid[:, 1], t.CQ + t.P_COND + cond[:, 1], t.EMPTY),
                np.where(valid[:, 2], t.CQ + t.P_COND + cond[:, 2], t.EMPTY),
                np.full(n, t.RBR_NL)]
        return np.stack(cols, axis=1).ravel()

    def _authors(self, rng, ptype):
        """Authors from a shared pool of ``author_pool`` people; author *k* is always the
        same name and affiliation, and low *k* are the prolific ones."""
        t = self.t
        n = len(ptype)
        mean = np.where(np.isin(ptype, NO_TEXT_TYPES), 0.4,
                        np.where(ptype == "case-report", 3.0, 4.5))
        count = np.minimum(1 + rng.poisson(mean), 25)
        paper = np.repeat(np.arange(n), count)
        pool = self.author_pool
        # density ~ (x + 1)^-1/2 on [0, pool): inverse of its CDF
        u = rng.random(len(paper))
        x = (1 + u * (np.sqrt(pool + 1.0) - 1)) ** 2 - 1
        author = np.minimum(x.astype(np.int64), pool - 1)
        key = np.unique(paper * pool + author)            # no one twice on a paper
        paper, author = key // pool, key % pool
        order = np.lexsort((rng.random(len(paper)), paper))  # then a random author order
        paper, author = paper[order], author[order]
        first = np.ones(len(paper), dtype=bool)
        first[1:] = paper[1:] != paper[:-1]
        last = np.ones(len(paper), dtype=bool)
        last[:-1] = paper[1:] != paper[:-1]
        h = mix64(author, self._author_key)
        v = t.vocab
        given = (h & np.uint64(0xFFFF)).astype(np.int64) % len(v.first_names)
        family = ((h >> np.uint64(16)) & np.uint64(0xFFFF)).astype(np.int64) % len(v.last_names)
        initial = ((h >> np.uint64(32)) & np.uint64(0xFF)).astype(np.int64) % 36
        aff_u = ((h >> np.uint64(40)).astype(np.float64)) / float(1 << 24)
        affiliation = t.institution.pick(aff_u)
        cols = [np.where(first, t.AUTHOR_OPEN, t.AUTHOR_NEXT), t.FIRST_SP + given,
                np.where(initial < 26, t.INITIAL + np.minimum(initial, 25), t.EMPTY),
                t.LAST + family, np.full(len(paper), t.AFF_KEY), t.AFF + affiliation,
                np.where(last, t.AUTHOR_LAST, t.AUTHOR_CLOSE)]
        return np.stack(cols, axis=1).ravel()

    def _embeddings(self, rng, spec):
        """Unit vectors near their specialty's centre, four decimals."""
        t = self.t
        n = len(spec)
        x = self._centres[spec] + 0.8 * rng.standard_normal((n, EMBEDDING_DIM))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        q = np.clip(np.rint(x * EMBEDDING_SCALE).astype(np.int64), -EMBEDDING_SCALE,
                    EMBEDDING_SCALE) + EMBEDDING_SCALE
        ids = t.EMB_MID + q
        ids[:, 0] = t.EMB_FIRST + q[:, 0]
        ids[:, -1] = t.EMB_LAST + q[:, -1]
        return ids.ravel()
