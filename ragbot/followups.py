"""Ranking for a follow-up: which sentence answers "why?", "and after that?", "is that permanent?".

A follow-up is read three ways: alone, with the question it follows, and that question alone.
Each reading ranks every sentence; what the last reply quoted, the sentence after it and its
section say more. And follow-ups people asked before vote: the labelled follow-ups of the
training dialogues, read with the question each followed and alone (`FollowupPool`, built into
the index as `followups.npz`), give their gold sentences to a new follow-up that reads like
them, as the sentence ranker's example pool does for single questions. A conditional logit (one
softmax over the sentences of a turn, the gold sentences its target) weighs those signals. It
is fit by `scripts/fit_followups.py` on the dialogue tuning and retired hold-out sets replayed
through the service, and shipped as reviewed data (`ragbot/data/followup_ranker.json`, with the
sets and figures it was fit on). It replaced three hand-set weights (README: Conversations):
each training set held out in turn, the gold sentence was in the top three 0.78 of the time
with them, 0.94 with the fit and its votes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ragbot.embeddings import Vectors
from ragbot.errors import BuildError, IndexCorrupt
from ragbot.fusion import ExamplePool, answers_as_ids, answers_from_ids
from ragbot.index import Index
from ragbot.models import Hit
from ragbot.query import expand, normalize
from ragbot.retrieval import Retrieval

ArrayF = npt.NDArray[np.float64]
RANKER_FILE = "followup_ranker.json"
POOL_FILE = "followups.npz"  # in each build: the labelled follow-ups that vote

FEATURES = (
    "own",  # the ranker's probability for the follow-up alone
    "context",  # ... read with the question it follows
    "previous",  # ... for the question it follows, alone
    "own_rank",  # 1 / (1 + rank) of each of those
    "context_rank",
    "previous_rank",
    "shown",  # an earlier reply quoted it
    "shown_last",  # the last reply quoted it
    "next",  # the sentence after one the last reply quoted, in its section
    "before",  # the sentence before one
    "same_section",  # in the section of a sentence the last reply quoted
    "log_own",
    "log_context",
    "log_previous",
    "context_vote",  # the gold sentences of the nearest labelled follow-ups, read in context
    "own_vote",  # ... read alone
)

# "what else can it damage?", "any other risks?", "besides that?": the asker has read what was
# shown and wants something else, so nothing shown is quoted again (a rule, not a weight: too
# few turns ask it for the fit to learn it).
_ASKS_FOR_OTHER = re.compile(r"\b(?:else|other|others|besides)\b")


def asks_for_other(question: str) -> bool:
    """Whether the follow-up asks for something besides what was shown."""
    return bool(_ASKS_FOR_OTHER.search(normalize(question)))


@dataclass(frozen=True)
class FollowupSignals:
    """What a follow-up's ranking is read from: the three rankings and what was shown."""

    own: Retrieval
    context: Retrieval
    previous: Retrieval
    shown: frozenset[str]  # sentence ids every earlier reply quoted
    last: frozenset[str]  # sentence ids the last reply quoted
    asks_other: bool  # nothing shown is quoted again
    context_vector: Vectors  # the follow-up read with the question it follows: it votes
    own_vector: Vectors  # ... alone


def _scores(retrieval: Retrieval, position: dict[str, int]) -> ArrayF:
    out = np.zeros(len(position))
    for hit in retrieval.sentences:
        out[position[hit.ref]] = hit.score
    return out


def _reciprocal_rank(scores: ArrayF) -> ArrayF:
    ranks = np.empty(len(scores))
    ranks[np.argsort(-scores, kind="stable")] = np.arange(len(scores))
    return 1.0 / (1.0 + ranks)


def features(
    index: Index, signals: FollowupSignals, pool: FollowupPool, exclude: str | None = None
) -> ArrayF:
    """One row of FEATURES per sentence of the index, in the index's order; the votes of the
    pool's follow-ups but those of the set `exclude` (fitting on that set)."""
    context_votes, own_votes = pool.votes(
        signals.context_vector, signals.own_vector, len(index.sentences), exclude
    )
    position = {s.sentence_id: i for i, s in enumerate(index.sentences)}
    n = len(position)
    own, context, previous = (
        _scores(r, position) for r in (signals.own, signals.context, signals.previous)
    )
    shown = np.zeros(n)
    shown[[position[s] for s in signals.shown if s in position]] = 1.0
    last = np.zeros(n)
    last[[position[s] for s in signals.last if s in position]] = 1.0
    after, before, same = np.zeros(n), np.zeros(n), np.zeros(n)
    for sid in signals.last:
        sentence = index.sentence_by_id[sid]
        for other in index.section_sentences[sentence.section_id]:
            same[position[other.sentence_id]] = 1.0
            if other.sentence_id in signals.last:
                continue
            if other.ordinal == sentence.ordinal + 1:
                after[position[other.sentence_id]] = 1.0
            elif other.ordinal == sentence.ordinal - 1:
                before[position[other.sentence_id]] = 1.0
    columns = [
        own,
        context,
        previous,
        _reciprocal_rank(own),
        _reciprocal_rank(context),
        _reciprocal_rank(previous),
        shown,
        last,
        after,
        before,
        same,
        np.log(own + 1e-4),
        np.log(context + 1e-4),
        np.log(previous + 1e-4),
        context_votes,
        own_votes,
    ]
    return np.stack(columns, axis=1)


@dataclass(frozen=True)
class FollowupRanker:
    """The fitted weights over standardised FEATURES, and what they were fit on."""

    weights: ArrayF
    mean: ArrayF
    scale: ArrayF
    meta: dict[str, Any]

    def probabilities(self, index: Index, signals: FollowupSignals, pool: FollowupPool) -> ArrayF:
        """Each sentence's probability of being the one the follow-up asks for."""
        logits = ((features(index, signals, pool) - self.mean) / self.scale) @ self.weights
        exp = np.exp(logits - logits.max())
        return np.asarray(exp / exp.sum(), np.float64)

    def rank(self, index: Index, signals: FollowupSignals, pool: FollowupPool) -> Retrieval:
        """The sentences in the fitted order, scored on the scale of the ranker's probabilities:
        the best gets the better of the follow-up's two readings (alone, with its context) over
        the sentences it may quote, which decides whether to answer at all; runners-up keep
        their share of the best. One that asks for something else may quote nothing shown."""
        probs = self.probabilities(index, signals, pool)
        readings: dict[str, Hit] = {}
        for hit in (*signals.context.sentences, *signals.own.sentences):
            if hit.ref not in readings or hit.score > readings[hit.ref].score:
                readings[hit.ref] = hit
        kept = [
            (readings[s.sentence_id], float(p))
            for s, p in zip(index.sentences, probs, strict=True)
            if s.sentence_id in readings
            and not (signals.asks_other and s.sentence_id in signals.shown)
        ]
        if not kept:
            return Retrieval([], [])
        best = max(hit.score for hit, _ in kept)
        top = max(p for _, p in kept) or 1.0
        return Retrieval.from_ranked(
            sorted((replace(hit, score=best * p / top) for hit, p in kept), key=lambda h: -h.score)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "features": list(FEATURES),
            "weights": self.weights.round(6).tolist(),
            "mean": self.mean.round(6).tolist(),
            "scale": self.scale.round(6).tolist(),
            "meta": self.meta,
        }

    @classmethod
    def load(cls, path: Path | None = None) -> FollowupRanker:
        """The shipped weights (or those at `path`)."""
        if path is None:
            path = Path(str(resources.files("ragbot.data").joinpath(RANKER_FILE)))
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if tuple(data["features"]) != FEATURES:
                raise ValueError("its features are not this version's")
            arrays = [np.asarray(data[k], np.float64) for k in ("weights", "mean", "scale")]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BuildError(f"the follow-up ranker {path.name} cannot be read: {exc}") from exc
        if any(a.shape != (len(FEATURES),) for a in arrays):
            raise BuildError(f"the follow-up ranker {path.name} has the wrong number of weights")
        weights, mean, scale = arrays
        return cls(weights, mean, scale, dict(data.get("meta", {})))


@dataclass(frozen=True)
class FollowupExample:
    """A labelled follow-up of a training dialogue: how the pipeline reads it, and its answer."""

    context: str  # the question it follows and the follow-up, expanded
    own: str  # the follow-up alone, expanded
    gold: tuple[str, ...]  # the sentences that answer it
    group: str  # its dialogue set: in fitting, votes come from the other sets


def followup_examples(names: Sequence[str] | None = None) -> list[FollowupExample]:
    """The follow-up turns with gold sentences of the training dialogue sets."""
    from ragbot.evaluation.dialogues import dialogue_path, load_dialogues

    out = []
    for name in training_sets() if names is None else names:
        for dialogue in load_dialogues(dialogue_path(name)):
            for before, turn in zip(dialogue.turns, dialogue.turns[1:], strict=False):
                if turn.kind == "followup" and turn.gold_sentences:
                    out.append(
                        FollowupExample(
                            expand(f"{before.question} {turn.question}"),
                            expand(turn.question),
                            turn.gold_sentences,
                            name.removesuffix(".jsonl"),
                        )
                    )
    return out


@dataclass(frozen=True)
class FollowupPool:
    """Labelled follow-ups as voters, read in context and alone (one ExamplePool each)."""

    context: ExamplePool
    own: ExamplePool

    @classmethod
    def of(
        cls,
        examples: Sequence[FollowupExample],
        context_vectors: Vectors,
        own_vectors: Vectors,
        sentences: Sequence[str],
    ) -> FollowupPool:
        """The pool of the examples whose answers are among `sentences` (an index's, in order)."""
        row_of = {text: i for i, text in enumerate(sentences)}
        members = [i for i, ex in enumerate(examples) if any(g in row_of for g in ex.gold)]
        answers = tuple(tuple(row_of[g] for g in examples[i].gold if g in row_of) for i in members)
        groups = tuple(examples[i].group for i in members)
        return cls(
            ExamplePool(context_vectors[members], answers, groups),
            ExamplePool(own_vectors[members], answers, groups),
        )

    def votes(
        self,
        context_vector: Vectors,
        own_vector: Vectors,
        sentences: int,
        exclude: str | None = None,
    ) -> tuple[ArrayF, ArrayF]:
        """Each sentence's votes from the nearest follow-ups, in context and alone (`exclude`:
        a dialogue set whose follow-ups do not vote, when fitting on it)."""
        return (
            self.context.votes(context_vector, sentences, exclude),
            self.own.votes(own_vector, sentences, exclude),
        )

    def save(self, folder: Path, sentence_ids: Sequence[str]) -> Path:
        """Write followups.npz; answers as sentence ids, stable across builds."""
        path = folder / POOL_FILE
        with path.open("wb") as fh:
            np.savez(
                fh,
                context=self.context.vectors.astype(np.float32),
                own=self.own.vectors.astype(np.float32),
                **answers_as_ids(self.context.answers, sentence_ids),
                groups=np.array(self.context.groups, dtype=str),
            )
        return path

    @classmethod
    def load(cls, folder: Path, sentence_ids: Sequence[str]) -> FollowupPool:
        """Read followups.npz, mapping its sentence ids back to this index's rows."""
        path = folder / POOL_FILE
        try:
            with np.load(path, allow_pickle=False) as data:
                context = np.ascontiguousarray(data["context"], dtype=np.float32)
                own = np.ascontiguousarray(data["own"], dtype=np.float32)
                flat = [str(x) for x in data["answer_ids"]]
                counts = [int(c) for c in data["answer_counts"]]
                groups = tuple(str(g) for g in data["groups"])
        except (OSError, KeyError, ValueError) as exc:
            raise IndexCorrupt(
                f"{folder.name}/{POOL_FILE} cannot be read ({exc}): run `ragbot build-index`"
            ) from exc
        answers = answers_from_ids(flat, counts, sentence_ids)
        if answers is None or not (len(context) == len(own) == len(counts) == len(groups)):
            raise IndexCorrupt(
                f"{folder.name}/{POOL_FILE} does not match this index: run `ragbot build-index`"
            )
        return cls(ExamplePool(context, answers, groups), ExamplePool(own, answers, groups))


def training_sets() -> list[str]:
    """The dialogue sets the ranker is fit on: the tuning sets and the retired hold-outs."""
    from ragbot.evaluation.dialogues import TUNES
    from ragbot.turns import RETIRED_DIALOGUES

    return [*TUNES, *RETIRED_DIALOGUES]


def sets_hash(names: Sequence[str]) -> str:
    """SHA-256 of the dialogue sets' files, in order: the shipped weights record it, so that a
    change to the training dialogues shows until the ranker is refit."""
    from ragbot.evaluation.dialogues import dialogue_path

    digest = hashlib.sha256()
    for name in names:
        digest.update(dialogue_path(name).read_bytes())
    return digest.hexdigest()


# Weight decay of the fit, chosen by holding out each dialogue set in turn (0.001 and 0.01
# tied; 0.1 lost 1.5 points of top-three hits).
L2 = 0.01


def fit(turns: Sequence[tuple[ArrayF, npt.NDArray[np.bool_]]], l2: float = L2) -> FollowupRanker:
    """Fit on (features, gold mask) per follow-up turn: the gold sentences' share of one softmax
    over the turn's sentences, maximised (a conditional logit), standardised features."""
    from scipy.optimize import minimize

    stacked = np.concatenate([x for x, _ in turns])
    mean, scale = stacked.mean(axis=0), stacked.std(axis=0) + 1e-9
    groups = [((x - mean) / scale, gold) for x, gold in turns if gold.any()]

    def loss(w: ArrayF) -> tuple[float, ArrayF]:
        total, grad = 0.0, np.zeros_like(w)
        for x, gold in groups:
            z = x @ w
            p = np.exp(z - z.max())
            p /= p.sum()
            p_gold = p[gold].sum()
            total -= np.log(p_gold + 1e-12)
            grad -= (p[gold] @ x[gold]) / (p_gold + 1e-12) - p @ x
        n = len(groups)
        return total / n + l2 * float(w @ w), grad / n + 2 * l2 * w

    result = minimize(loss, np.zeros(len(FEATURES)), jac=True, method="L-BFGS-B")
    return FollowupRanker(np.asarray(result.x, np.float64), mean, scale, {"l2": l2})
