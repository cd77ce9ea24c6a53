"""The question router: crisis, advice, article or other, learned from labelled questions.

A multinomial logistic regression over three views of a question: the sentence embedding the
pipeline already computes (meaning, paraphrase), hashed character n-grams (slang, typos, street
names the model has never seen) and hashed words and word pairs ("not wake", "for real").
scikit-learn fits it at build; serving only needs numpy and MurmurHash (mmh3). It is trained by
`ragbot build-index` from the reviewed question batches in `ragbot/data/router/`,
deterministically, and saved in the build beside the index (`router.npz`, hashed in the
manifest), so serving only multiplies a vector by a matrix.

The crisis threshold is calibrated for recall on questions the model was not trained on (folds
that hold out a whole batch, one persona at a time), and a lower "distress" threshold attaches
the crisis resources to any other reply (README: the router).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import mmh3
import numpy as np
import numpy.typing as npt

from ragbot.embeddings import Vectors
from ragbot.errors import BuildError, IndexCorrupt

T = TypeVar("T")
Intent = Literal["crisis", "advice", "article", "other"]
INTENTS: tuple[Intent, ...] = ("crisis", "advice", "article", "other")
ROUTER_FILE = "router.npz"
DATA_FOLDER = "router"  # in ragbot/data: one JSON Lines file per batch (persona)
# Hold-out question sets retired into training (ragbot/data/README.md). Each was measured once,
# untouched, while it was the newest; once a newer set exists to measure on, its questions (as
# real visitors type, with gold sentences) teach the router and the ranker more than they can
# still tell us as a test. Retiring v1-v12 took v13's hit rate from 0.885 to 0.927 (README:
# Evaluation). The newest set is never retired: it is the one CI gates on.
RETIRED_HOLDOUTS = tuple(f"holdout_v{n}.jsonl" for n in range(1, 26))

SEED = 0
# Inverse regularisation, chosen by batch-held-out cross-validation (README: the router).
C = 16.0
# Character n-grams catch "ket", "k-hole", "od'd" and typos; 2**16 buckets collide rarely here.
NGRAM_RANGE = (2, 5)
HASH_FEATURES = 2**16
# The embedding view's weight against the n-grams (both unit length): 0.5 was chosen on folds
# that hold out one batch, where it cut crisis false alarms at 95% recall from 6.2% to 4.7% at
# the same accuracy (README: the router).
EMBEDDING_WEIGHT = 0.5
# Words and word pairs, in their own block of buckets after the character n-grams, at this weight
# (both unit length). On folds that hold out one batch, weight 1 took accuracy from 0.936 to
# 0.943, and cut crisis false alarms at 95% recall from 3.2% to 2.6% (README: the router).
WORD_WEIGHT = 1.0
WORD_NGRAMS = (1, 2)
WORD_TOKEN = r"[a-z0-9']+"
_WORD = re.compile(WORD_TOKEN)
# Thresholds are calibrated on batch-held-out folds, the pattern floor counted: the crisis reply
# reaches this share of held-out crisis messages, and the resources (beside whatever else the
# reply holds) this larger share. A false alarm costs a referral; a miss costs far more.
CRISIS_RECALL = 0.95
DISTRESS_RECALL = 0.98
# Held-out folds: the batches are dealt into this many groups, and each fold holds out one
# group, so no example is scored by a model that saw its batch. One fold a batch meant 26 fits
# of the router and 37 of the turn classifier at every build (two minutes of a CI run's builds);
# five groups keep the calibration batch-held-out at a fifth of the fits.
FOLDS = 5
# A message's clauses are screened too ("how does it work? ... i won't be around next week");
# their threshold is the lowest that adds at most this share of held-out false alarms.
CLAUSE_FALSE_ALARM_BUDGET = 0.01
ArrayF = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Example:
    """One labelled question of a training batch."""

    text: str
    intent: Intent
    batch: str  # the file (persona) it came from: folds hold out whole batches
    gold_sentences: tuple[str, ...] = ()


@dataclass(frozen=True)
class Route:
    """The router's verdict on one question: probabilities and the thresholds they crossed."""

    probabilities: dict[str, float]
    crisis: bool  # the message, or one of its clauses, at or above its crisis threshold
    distress: bool  # the message at or above the distress floor (crisis included)

    @property
    def intent(self) -> Intent:
        """The most probable intent."""
        return max(INTENTS, key=lambda i: self.probabilities[i])

    def p(self, intent: Intent) -> float:
        """Probability of one intent."""
        return self.probabilities[intent]


def intent_of(category: str, expected_status: str) -> Intent:
    """The intent a question of an evaluation set should be routed to."""
    if category == "crisis":
        return "crisis"
    if category == "medical_advice":
        return "advice"
    return "article" if expected_status == "answered" else "other"


def load_examples(folder: Path | None = None) -> list[Example]:
    """Every labelled question of the training batches (ragbot/data/router/*.jsonl) and, by
    default, of the retired hold-out sets; one batch per file."""
    if folder is None:
        root = resources.files("ragbot.data").joinpath(DATA_FOLDER)
        files = sorted((Path(str(root)) / name for name in _names(root)), key=lambda p: p.name)
        retired = [Path(str(resources.files("ragbot.data"))) / name for name in RETIRED_HOLDOUTS]
    else:
        files, retired = sorted(folder.glob("*.jsonl")), []
    return [*_router_batches(files), *(ex for path in retired for ex in _question_set(path))]


def _question_set(path: Path) -> list[Example]:
    """A question set's rows as router examples: intent from category and status, the gold
    sentences of answered rows kept for the ranker."""
    out: list[Example] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            row = json.loads(line)
            intent = intent_of(row["category"], row["expected_status"])
            gold = tuple(row["gold_sentences"]) if intent == "article" else ()
            out.append(Example(row["question"], intent, path.stem, gold))
        except (ValueError, KeyError, TypeError) as exc:
            raise BuildError(f"{path.name}:{number} is not a question-set row: {exc}") from exc
    return out


def _router_batches(files: Iterable[Path]) -> list[Example]:
    out: list[Example] = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                intent = row["intent"]
                if intent not in INTENTS:
                    raise ValueError(f"unknown intent {intent!r}")
                out.append(
                    Example(row["text"], intent, path.stem, tuple(row.get("gold_sentences", ())))
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise BuildError(f"{path.name}:{number} is not a router example: {exc}") from exc
    return out


def _names(root: Any) -> list[str]:
    return [p.name for p in root.iterdir() if p.name.endswith(".jsonl")]


def examples_hash(examples: Iterable[Example]) -> str:
    """SHA-256 of the training data, for the manifest."""
    digest = hashlib.sha256()
    for ex in examples:
        digest.update(f"{ex.batch}\t{ex.intent}\t{ex.text}\n".encode())
    return digest.hexdigest()


def lexical_text(text: str) -> str:
    """What the n-gram view reads: lower case, straight quotes, single spaces."""
    text = text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    return " ".join(text.lower().split())


def hashed_ngrams(text: str) -> dict[int, float]:
    """The n-gram view of one text: hashed character n-grams within words ("char_wb", as
    scikit-learn's HashingVectorizer makes them, without importing it at serve time), counted
    and scaled to unit length."""
    counts: dict[int, float] = {}
    low, high = NGRAM_RANGE
    for word in lexical_text(text).split():
        padded = f" {word} "
        for n in range(low, high + 1):
            # Every n-gram of the padded word; a word shorter than n counts once, whole.
            for start in range(max(1, len(padded) - n + 1)):
                key = _bucket(padded[start : start + n])
                counts[key] = counts.get(key, 0.0) + 1.0
            if len(padded) <= n:
                break
    return _unit(counts)


def hashed_words(text: str) -> dict[int, float]:
    """The word view of one text: hashed words and word pairs (as scikit-learn's
    HashingVectorizer makes them with `WORD_TOKEN`), counted and scaled to unit length."""
    counts: dict[int, float] = {}
    tokens = _WORD.findall(lexical_text(text))
    low, high = WORD_NGRAMS
    for n in range(low, high + 1):
        for start in range(len(tokens) - n + 1):
            key = _bucket(" ".join(tokens[start : start + n]))
            counts[key] = counts.get(key, 0.0) + 1.0
    return _unit(counts)


def _unit(counts: dict[int, float]) -> dict[int, float]:
    """Counts scaled to unit length (l2), as HashingVectorizer's norm="l2" does."""
    norm = float(np.sqrt(sum(v * v for v in counts.values())))
    return {k: v / norm for k, v in counts.items()} if norm else counts


def _bucket(gram: str) -> int:
    h = int(mmh3.hash(gram.encode("utf-8"), 0, signed=True))  # MurmurHash3, seed 0
    return abs(h) % HASH_FEATURES if h != -(2**31) else (2**31 - HASH_FEATURES) % HASH_FEATURES


# The build hashes most texts twice (the router's examples are the turn classifier's "new"
# messages too): the n-grams of a text are kept for the next call. Training only; serving
# hashes each message once in linear_probabilities.
_build_ngrams = functools.lru_cache(maxsize=2**15)(hashed_ngrams)
_build_words = functools.lru_cache(maxsize=2**15)(hashed_words)
# What a linear model over `features()` was fit with: a saved model must match it to be read.
FEATURE_META: dict[str, Any] = {
    "embedding_weight": EMBEDDING_WEIGHT,
    "ngram_range": list(NGRAM_RANGE),
    "hash_features": HASH_FEATURES,
    "word_weight": WORD_WEIGHT,
    "word_ngrams": list(WORD_NGRAMS),
}


def features(texts: Sequence[str], vectors: Vectors) -> Any:
    """The sparse feature matrix for training: the embedding, the character n-grams and the
    words side by side."""
    from scipy import sparse

    rows, cols, values = [], [], []
    for row, text in enumerate(texts):
        for col, value in _build_ngrams(text).items():
            rows.append(row)
            cols.append(col)
            values.append(value)
        for col, value in _build_words(text).items():
            rows.append(row)
            cols.append(HASH_FEATURES + col)
            values.append(WORD_WEIGHT * value)
    grams = sparse.csr_matrix((values, (rows, cols)), shape=(len(texts), 2 * HASH_FEATURES))
    dense = sparse.csr_matrix(np.asarray(vectors, dtype=np.float64) * EMBEDDING_WEIGHT)
    return sparse.hstack([dense, grams], format="csr")


def linear_probabilities(
    coef: ArrayF, intercept: ArrayF, texts: Sequence[str], vectors: Vectors
) -> ArrayF:
    """Softmax of a linear model over the three views of `features()`, one row per text,
    without building the sparse matrix: the dense view as a small matrix product, the n-grams
    and words as sums over the few weight columns a text touches."""
    dense = np.asarray(vectors, dtype=np.float64).reshape(len(texts), -1)
    dim = dense.shape[1]
    logits = EMBEDDING_WEIGHT * dense @ coef[:, :dim].T + intercept
    for row, text in enumerate(texts):
        for offset, weight, grams in (
            (dim, 1.0, hashed_ngrams(text)),
            (dim + HASH_FEATURES, WORD_WEIGHT, hashed_words(text)),
        ):
            if grams:
                cols = offset + np.fromiter(grams, dtype=np.int64, count=len(grams))
                values = np.fromiter(grams.values(), dtype=np.float64, count=len(grams))
                logits[row] += weight * (coef[:, cols] @ values)
    return _normalise(logits)


def fit_each(fit: Callable[[Any, Any], T], x: Any, labels: Any, trains: Sequence[Any]) -> list[T]:
    """`fit(x[train], labels[train])` for each training mask: in parallel processes when there
    are several, since the folds are independent and one fit keeps one core busy."""
    jobs = min(len(trains), os.cpu_count() or 1)
    if jobs < 2:
        return [fit(x[t], labels[t]) for t in trains]
    from joblib import Parallel, delayed

    done: list[T] = Parallel(n_jobs=jobs, backend="loky")(
        delayed(fit)(x[t], labels[t]) for t in trains
    )
    return done


def _fit(x: Any, y: Sequence[str]) -> Any:
    from sklearn.linear_model import LogisticRegression

    # newton-cg converges in a handful of steps here (seconds, not tens), deterministically.
    model = LogisticRegression(C=C, solver="newton-cg", tol=1e-3, max_iter=200, random_state=SEED)
    model.fit(x, list(y))
    return model


@dataclass(frozen=True)
class Router:
    """A trained router: one weight row per intent, and its calibrated thresholds."""

    coef: ArrayF  # (intents, features)
    intercept: ArrayF  # (intents,)
    crisis_threshold: float
    distress_threshold: float
    clause_threshold: float
    meta: dict[str, Any]

    def probabilities(self, texts: Sequence[str], vectors: Vectors) -> ArrayF:
        """Softmax probabilities, one row per text, columns in INTENTS order."""
        return linear_probabilities(self.coef, self.intercept, texts, vectors)

    def route(
        self,
        text: str,
        vector: Vectors,
        clauses: Sequence[str] = (),
        clause_vectors: Vectors | None = None,
    ) -> Route:
        """The verdict on one message, from its text and the vector the pipeline computed, and
        from its clauses when it holds several (query.clauses)."""
        row = self.probabilities([text], vector)[0]
        probs: dict[str, float] = {i: float(p) for i, p in zip(INTENTS, row, strict=True)}
        crisis = float(crisis_score(row[None, :])[0]) >= self.crisis_threshold
        if clauses and clause_vectors is not None and not crisis:
            scores = crisis_score(self.probabilities(clauses, clause_vectors))
            crisis = float(scores.max()) >= self.clause_threshold
        return Route(probs, crisis=crisis, distress=probs["crisis"] >= self.distress_threshold)

    def article_clause(
        self, clauses: Sequence[str], clause_vectors: Vectors
    ) -> tuple[int, float] | None:
        """The clause of a message that is a plain article question, and its article
        probability: routed to the article, with less crisis in it than the distress floor
        ("ok i texted 988. | does it help right away or does it take weeks"). None if none is."""
        if not clauses:
            return None
        probs = self.probabilities(clauses, clause_vectors)
        article = probs[:, INTENTS.index("article")]
        calm = (probs.argmax(axis=1) == INTENTS.index("article")) & (
            probs[:, INTENTS.index("crisis")] < self.distress_threshold
        )
        if not calm.any():
            return None
        best = int(np.argmax(np.where(calm, article, -1.0)))
        return best, float(article[best])

    def save(self, folder: Path) -> Path:
        """Write router.npz into a build folder."""
        thresholds = [self.crisis_threshold, self.distress_threshold, self.clause_threshold]
        return save_linear(
            folder / ROUTER_FILE,
            self.coef,
            self.intercept,
            self.meta,
            thresholds=np.array(thresholds),
        )

    @classmethod
    def load(cls, folder: Path) -> Router:
        """Read router.npz from a build folder."""
        path = folder / ROUTER_FILE
        coef, intercept, meta, (thresholds,) = load_linear(path, len(INTENTS), "thresholds")
        if thresholds.shape != (3,):
            raise IndexCorrupt(f"{path} has the wrong shape: run `ragbot build-index`")
        crisis, distress, clause = (float(v) for v in thresholds)
        return cls(coef, intercept, crisis, distress, clause, meta)


def save_linear(
    path: Path, coef: ArrayF, intercept: ArrayF, meta: dict[str, Any], **arrays: Any
) -> Path:
    """Write a linear model over `features()` (the router's, the turn classifier's) as .npz,
    with its meta as JSON and any further arrays."""
    with path.open("wb") as fh:
        np.savez(
            fh,
            coef=coef.astype(np.float32),
            intercept=intercept,
            meta=np.array(json.dumps(meta, sort_keys=True)),
            **arrays,
        )
    return path


def load_linear(
    path: Path, rows: int, *arrays: str
) -> tuple[ArrayF, ArrayF, dict[str, Any], list[npt.NDArray[Any]]]:
    """What `save_linear` wrote: weights, meta and the named arrays. IndexCorrupt when the file
    is unreadable, has the wrong shape, or was fit on other features than serving computes
    (`FEATURE_META`: such weights would misread)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            coef = data["coef"].astype(np.float64)
            intercept = data["intercept"].astype(np.float64)
            meta = json.loads(str(data["meta"]))
            extra = [np.asarray(data[name]) for name in arrays]
    except (OSError, KeyError, ValueError) as exc:
        raise IndexCorrupt(f"{path} cannot be read ({exc}): run `ragbot build-index`") from exc
    if any(meta.get(k) != v for k, v in FEATURE_META.items()):
        raise IndexCorrupt(f"{path} was trained on other features: run `ragbot build-index`")
    if coef.ndim != 2 or coef.shape[0] != rows or intercept.shape != (rows,):
        raise IndexCorrupt(f"{path} has the wrong shape: run `ragbot build-index`")
    return coef, intercept, meta, extra


def _ordered(model: Any) -> tuple[ArrayF, ArrayF]:
    """The model's weights with rows in INTENTS order."""
    rows = [list(model.classes_).index(i) for i in INTENTS]
    return np.asarray(model.coef_[rows], np.float64), np.asarray(model.intercept_[rows], np.float64)


def _softmax(x: Any, coef: ArrayF, intercept: ArrayF) -> ArrayF:
    return _normalise(np.asarray(x @ coef.T) + intercept)


def _normalise(logits: ArrayF) -> ArrayF:
    logits = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    out: ArrayF = e / e.sum(axis=1, keepdims=True)
    return out


def held_out_probabilities(
    examples: Sequence[Example], x: Any, clause_x: Any = None, clause_of: Sequence[int] = ()
) -> tuple[ArrayF, ArrayF]:
    """Probabilities of each example, and the best clause crisis score of each, from a model
    trained without the example's batch (`batch_folds`)."""
    out = np.zeros((len(examples), len(INTENTS)))
    clause_best = np.zeros(len(examples))
    owner = np.array(clause_of, dtype=np.int64)
    labels = np.array([ex.intent for ex in examples])
    tests = batch_folds([ex.batch for ex in examples])
    for test, model in zip(tests, fit_each(_fit, x, labels, [~t for t in tests]), strict=True):
        coef, intercept = _ordered(model)
        out[test] = _softmax(x[test], coef, intercept)
        rows = np.where(test[owner])[0] if len(owner) else owner
        if len(rows):
            scores = crisis_score(_softmax(clause_x[rows], coef, intercept))
            np.maximum.at(clause_best, owner[rows], scores)
    return out, clause_best


def batch_folds(batches: Sequence[str], folds: int = FOLDS) -> list[npt.NDArray[np.bool_]]:
    """Test masks of the held-out folds: whole batches dealt into `folds` groups of about equal
    size (largest batch first, each to the smallest group; ties by name, so deterministic).
    A single batch has nothing to be held out against: no folds."""
    sizes = Counter(batches)
    if len(sizes) < 2:
        return []
    groups: list[list[str]] = [[] for _ in range(min(folds, len(sizes)))]
    totals = [0] * len(groups)
    for batch in sorted(sizes, key=lambda b: (-sizes[b], b)):
        smallest = totals.index(min(totals))
        groups[smallest].append(batch)
        totals[smallest] += sizes[batch]
    column = np.array(batches)
    return [np.isin(column, group) for group in groups]


def crisis_score(probabilities: ArrayF) -> ArrayF:
    """The crisis probability where crisis is at least as likely as personal advice, else 0:
    "how many mg can I take at home" is a question about a dose, not an overdose."""
    p_crisis = probabilities[:, INTENTS.index("crisis")]
    p_advice = probabilities[:, INTENTS.index("advice")]
    out: ArrayF = np.where(p_crisis >= p_advice, p_crisis, 0.0)
    return out


def recall_threshold(probabilities: ArrayF, caught: npt.NDArray[np.bool_], recall: float) -> float:
    """The highest threshold at which `recall` of the positives are caught, by the threshold or
    by the pattern floor (`caught`)."""
    missed = np.sort(probabilities[~caught])[::-1]
    allowed = int(np.floor((1.0 - recall) * len(probabilities) + 1e-9))  # positives we may miss
    if len(missed) <= allowed:
        return 1.0
    return float(missed[len(missed) - allowed - 1])


def clause_threshold(
    clause_best: ArrayF, flagged: npt.NDArray[np.bool_], negative: npt.NDArray[np.bool_]
) -> float:
    """The lowest clause threshold that flags at most the budgeted share of the negatives that
    the whole-message verdict left alone."""
    candidates = np.sort(clause_best[negative & ~flagged])[::-1]
    allowed = int(np.floor(CLAUSE_FALSE_ALARM_BUDGET * int(negative.sum()) + 1e-9))
    if len(candidates) <= allowed:
        return 0.0
    return float(np.nextafter(candidates[allowed], 1.0))


def train_router(
    examples: Sequence[Example],
    vectors: Vectors,
    floor: Sequence[bool] | None = None,
    clauses: Sequence[tuple[int, str]] = (),
    clause_vectors: Vectors | None = None,
) -> Router:
    """Fit the router on every example, with thresholds calibrated on batch-held-out folds;
    `floor` marks the examples the pattern table already flags as crisis, and `clauses` are
    (example, clause) pairs of the messages that hold several."""
    if {ex.intent for ex in examples} != set(INTENTS):
        raise BuildError("the router needs examples of every intent: " + ", ".join(INTENTS))
    x = features([ex.text for ex in examples], vectors)
    clause_x = (
        features([c for _, c in clauses], clause_vectors)
        if clauses and clause_vectors is not None
        else None
    )
    held_out, clause_best = held_out_probabilities(examples, x, clause_x, [i for i, _ in clauses])
    crisis = np.array([ex.intent == "crisis" for ex in examples])
    caught = np.array(floor if floor is not None else [False] * len(examples), dtype=bool)
    p_crisis = held_out[:, INTENTS.index("crisis")]
    scores = crisis_score(held_out)
    distress_threshold = recall_threshold(p_crisis[crisis], caught[crisis], DISTRESS_RECALL)
    # The pattern floor gives the crisis reply only where the router reads distress
    # (guardrails.screen); below that it gives the resources, which the distress recall counts.
    caught = caught & (p_crisis >= distress_threshold)
    crisis_threshold = recall_threshold(scores[crisis], caught[crisis], CRISIS_RECALL)
    model = _fit(x, [ex.intent for ex in examples])
    coef, intercept = _ordered(model)
    predicted = [INTENTS[i] for i in held_out.argmax(axis=1)]
    flagged = (scores >= crisis_threshold) | caught
    by_clause = clause_threshold(clause_best, flagged, ~crisis)
    flagged |= clause_best >= by_clause
    meta = {
        "examples": len(examples),
        "data_sha256": examples_hash(examples),
        "batches": sorted({ex.batch for ex in examples}),
        "held_out_accuracy": round(
            float(np.mean([p == ex.intent for p, ex in zip(predicted, examples, strict=True)])), 4
        ),
        "held_out_crisis_recall": round(float(flagged[crisis].mean()), 4),
        "held_out_crisis_false_alarms": round(float(flagged[~crisis].mean()), 4),
        "C": C,
        **FEATURE_META,
        "seed": SEED,
    }
    return Router(
        coef,
        intercept,
        crisis_threshold,
        min(distress_threshold, crisis_threshold),
        by_clause,
        meta,
    )
