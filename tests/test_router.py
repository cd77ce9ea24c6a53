"""The router's pure parts: n-gram hashing that needs no scikit-learn, thresholds, examples."""

from __future__ import annotations

import numpy as np
import pytest

from ragbot.router import (
    HASH_FEATURES,
    INTENTS,
    NGRAM_RANGE,
    RETIRED_HOLDOUTS,
    WORD_NGRAMS,
    WORD_TOKEN,
    Router,
    batch_folds,
    crisis_score,
    hashed_ngrams,
    hashed_words,
    lexical_text,
    load_examples,
    recall_threshold,
)

# Each hashed view of a message, and the HashingVectorizer settings that make the same buckets.
VIEWS = {
    "character n-grams": (hashed_ngrams, {"analyzer": "char_wb", "ngram_range": NGRAM_RANGE}),
    "words and word pairs": (
        hashed_words,
        {"analyzer": "word", "token_pattern": WORD_TOKEN, "ngram_range": WORD_NGRAMS},
    ),
}


@pytest.mark.parametrize("view", VIEWS)
def test_serving_hashes_each_view_exactly_as_scikit_learn_does_at_build(view: str) -> None:
    from sklearn.feature_extraction.text import HashingVectorizer

    ours_of, settings = VIEWS[view]
    hasher = HashingVectorizer(
        n_features=HASH_FEATURES, alternate_sign=False, norm="l2", **settings
    )
    texts = [ex.text for ex in load_examples()[::7]]
    texts += ["", "k", "xx", "i won't", "💊 od'd??", "a  b\tc", "a a a"]
    matrix = hasher.transform([lexical_text(t) for t in texts])
    for row, text in enumerate(texts):
        ours = ours_of(text)
        theirs = dict(zip(matrix[row].indices.tolist(), matrix[row].data.tolist(), strict=True))
        assert ours.keys() == theirs.keys(), text
        assert all(abs(ours[k] - theirs[k]) < 1e-9 for k in theirs), text


def test_the_training_batches_hold_every_intent_and_two_thousand_questions() -> None:
    examples = load_examples()
    assert len(examples) >= 2000
    assert {ex.intent for ex in examples} == set(INTENTS)
    assert len({ex.batch for ex in examples}) >= 5
    # A follow-up ("and after that?") has no answer of its own: only it may lack gold sentences.
    assert all(
        ex.gold_sentences for ex in examples if ex.intent == "article" and ex.batch != "followups"
    )
    assert any(ex.batch == "followups" for ex in examples)


def test_retired_hold_out_sets_train_the_router_with_intents_from_their_labels() -> None:
    from ragbot.evaluation.questions import default_questions_path, load_questions

    examples = load_examples()
    by_batch = {ex.batch for ex in examples}
    for name in RETIRED_HOLDOUTS:
        questions = load_questions(default_questions_path().with_name(name))
        batch = [ex for ex in examples if ex.batch == name.removesuffix(".jsonl")]
        assert [ex.text for ex in batch] == [q.question for q in questions]
        for ex, q in zip(batch, questions, strict=True):
            assert ex.intent == {"crisis": "crisis", "medical_advice": "advice"}.get(
                q.category, "article" if q.expected_status == "answered" else "other"
            )
            assert ex.gold_sentences == (q.gold_sentences if ex.intent == "article" else ())
    assert by_batch >= {name.removesuffix(".jsonl") for name in RETIRED_HOLDOUTS}


def test_the_newest_hold_out_set_is_never_trained_on() -> None:
    from ragbot.evaluation.questions import HOLDOUTS, default_questions_path, load_questions

    assert HOLDOUTS[-1] not in RETIRED_HOLDOUTS
    assert set(RETIRED_HOLDOUTS) < set(HOLDOUTS)
    newest = load_questions(default_questions_path().with_name(HOLDOUTS[-1]))
    assert not {q.question for q in newest} & {ex.text for ex in load_examples()}


@pytest.mark.parametrize(
    ("crisis", "advice", "score"),
    [(0.6, 0.1, 0.6), (0.3, 0.3, 0.3), (0.2, 0.5, 0.0)],
)
def test_crisis_counts_only_where_it_is_at_least_as_likely_as_advice(
    crisis: float, advice: float, score: float
) -> None:
    probs = np.array([[crisis, advice, 0.0, 1.0 - crisis - advice]])
    assert crisis_score(probs)[0] == pytest.approx(score)


def test_the_recall_threshold_catches_the_asked_share_counting_the_pattern_floor() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.1, 0.05])
    caught = np.array([False, False, False, False, True])  # the pattern table has the last one
    assert recall_threshold(scores, caught, 1.0) == pytest.approx(0.1)
    assert recall_threshold(scores, caught, 0.8) == pytest.approx(0.7)  # one of five may be missed


def test_a_router_routes_from_its_weights_and_marks_crisis_and_distress() -> None:
    dim = 4
    coef = np.zeros((len(INTENTS), dim + 2 * HASH_FEATURES))
    coef[0, 0] = 10.0  # the first embedding dimension means crisis
    router = Router(coef, np.zeros(len(INTENTS)), 0.5, 0.3, 0.9, {})
    calm = router.route("hello", np.array([0.0, 1.0, 0.0, 0.0], dtype=np.float32))
    alarm = router.route("hello", np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32))
    assert not calm.crisis and not calm.distress and calm.p("crisis") == pytest.approx(0.25)
    assert alarm.crisis and alarm.distress and alarm.intent == "crisis"


def test_folds_hold_out_whole_batches_each_once_in_groups_of_about_equal_size() -> None:
    batches = [ex.batch for ex in load_examples()]
    folds = batch_folds(batches, 5)
    column = np.array(batches)
    assert len(folds) == 5
    assert (np.sum(folds, axis=0) == 1).all(), "every example is held out by exactly one fold"
    for test in folds:
        held = set(column[test])
        assert not held & set(column[~test]), "a batch is held out whole or not at all"
    sizes = [int(t.sum()) for t in folds]
    largest_batch = max(batches.count(b) for b in set(batches))
    assert max(sizes) - min(sizes) <= largest_batch


def test_a_single_batch_has_no_folds_and_few_batches_give_one_fold_each() -> None:
    assert batch_folds(["a", "a", "a"]) == []
    folds = batch_folds(["a", "b", "b"], 5)
    assert [t.tolist() for t in folds] == [[False, True, True], [True, False, False]]
