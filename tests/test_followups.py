"""The follow-up ranker: fitted weights shipped as reviewed data, read back exactly, and never fit
on the newest dialogue hold-out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ragbot.errors import BuildError, IndexCorrupt
from ragbot.evaluation.dialogues import HOLDOUTS, TUNES
from ragbot.followups import (
    FEATURES,
    FollowupExample,
    FollowupPool,
    FollowupRanker,
    fit,
    followup_examples,
    sets_hash,
    training_sets,
)
from ragbot.turns import RETIRED_DIALOGUES


def test_the_shipped_ranker_was_fit_on_the_training_dialogues_as_they_are_now() -> None:
    ranker = FollowupRanker.load()
    assert ranker.weights.shape == (len(FEATURES),)
    sets = ranker.meta["sets"]
    assert HOLDOUTS[-1] not in sets
    assert sets == [*TUNES, *RETIRED_DIALOGUES]
    # Retiring a set or editing a training dialogue means refitting (scripts/fit_followups.py).
    assert ranker.meta["sets_sha256"] == sets_hash(training_sets())
    figures = ranker.meta["held_out_by_set"]
    # Each set held out in turn, the fit ranks a gold sentence in its top three more often than
    # the follow-up read alone does.
    assert figures["top3"] > figures["alone_top3"]


def test_a_ranker_file_for_other_features_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    data = FollowupRanker.load().to_json()
    data["features"] = [*data["features"][:-1], "something_else"]
    path = tmp_path / "ranker.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(BuildError, match="features"):
        FollowupRanker.load(path)


def test_weights_survive_a_round_trip_through_the_file(tmp_path: Path) -> None:
    ranker = FollowupRanker.load()
    path = tmp_path / "ranker.json"
    path.write_text(json.dumps(ranker.to_json()), encoding="utf-8")
    again = FollowupRanker.load(path)
    assert np.allclose(again.weights, ranker.weights)
    assert np.allclose(again.scale, ranker.scale)


def test_the_fit_learns_which_signal_points_at_the_gold_sentence() -> None:
    # Synthetic turns of 12 sentences: the gold sentence is the one in the section of the last
    # reply; every other feature is noise.
    rng = np.random.default_rng(0)
    column = FEATURES.index("same_section")
    turns = []
    for _ in range(200):
        x = rng.normal(size=(12, len(FEATURES)))
        x[:, column] = 0.0
        gold = np.zeros(12, bool)
        gold[rng.integers(12)] = True
        x[gold, column] = 1.0
        turns.append((x, gold))
    ranker = fit(turns)
    assert ranker.weights[column] == max(ranker.weights)
    x, gold = turns[0]
    logits = ((x - ranker.mean) / ranker.scale) @ ranker.weights
    assert gold[int(np.argmax(logits))]


def test_the_labelled_follow_ups_come_from_the_training_dialogues_only() -> None:
    examples = followup_examples()
    assert examples
    groups = {ex.group for ex in examples}
    assert groups <= {name.removesuffix(".jsonl") for name in training_sets()}
    assert HOLDOUTS[-1].removesuffix(".jsonl") not in groups
    # Read as the pipeline reads a follow-up: with the question it follows, and alone.
    assert all(ex.context.endswith(ex.own) and ex.gold for ex in examples)


SENTENCES = ["Sleep restores the brain.", "Naps help a little.", "Food gives energy.", "Water too."]
IDS = ["s0", "s1", "s2", "s3"]


def test_a_pool_votes_for_the_answers_of_the_nearest_follow_ups_unless_their_set_is_left_out(
    tmp_path: Path,
) -> None:
    texts = SENTENCES
    examples = [
        FollowupExample("sleep and naps?", "naps?", (texts[1],), "set_a"),
        FollowupExample("food and water?", "water?", (texts[3],), "set_b"),
        FollowupExample("unknown", "unknown", ("not a sentence of this index",), "set_b"),
    ]
    vectors = np.eye(3, 8, dtype=np.float32)
    pool = FollowupPool.of(examples, vectors, vectors, texts)
    assert len(pool.context.answers) == 2  # the third answers nothing in this index
    context_votes, own_votes = pool.votes(vectors[0], vectors[0], len(texts))
    assert int(np.argmax(context_votes)) == 1 and int(np.argmax(own_votes)) == 1
    left_out, _ = pool.votes(vectors[0], vectors[0], len(texts), exclude="set_a")
    assert left_out[1] == 0.0

    again = FollowupPool.load(pool.save(tmp_path, IDS).parent, IDS)
    assert again.context.answers == pool.context.answers
    assert np.allclose(again.own.vectors, pool.own.vectors)


def test_a_pool_of_another_index_is_refused(tmp_path: Path) -> None:
    vectors = np.ones((1, 4), np.float32)
    pool = FollowupPool.of(
        [FollowupExample("a b", "b", (SENTENCES[0],), "set_a")], vectors, vectors, SENTENCES
    )
    pool.save(tmp_path, IDS)
    with pytest.raises(IndexCorrupt, match="does not match this index"):
        FollowupPool.load(tmp_path, ["other-ids"])


@pytest.mark.model
def test_asking_for_something_else_scores_what_is_left_on_its_own_scale(real_pipeline) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from ragbot.conversation import Turn

    question = "how does ketamine work in the brain"
    first = real_pipeline.ask(question)
    history = [Turn(question, tuple(c.quote for c in first.citations))]
    signals = real_pipeline.ask_traced("what else does it do?", history).followup
    assert signals is not None and signals.asks_other
    # A ranker that puts nearly all its probability on what was shown: the rest must still be
    # scored as likely as its readings say, or "what else?" would find nothing left to quote.
    weights = np.zeros(len(FEATURES))
    weights[FEATURES.index("shown")] = 50.0
    ranker = FollowupRanker(weights, np.zeros(len(FEATURES)), np.ones(len(FEATURES)), {})
    ranked = ranker.rank(
        real_pipeline.index, replace(signals, asks_other=True), real_pipeline.followup_pool
    )
    assert ranked.sentences and not {h.ref for h in ranked.sentences} & signals.shown
    left = {h.ref: h.score for h in (*signals.own.sentences, *signals.context.sentences)}
    best_left = max(
        max(h.score for h in (*signals.own.sentences, *signals.context.sentences) if h.ref == ref)
        for ref in left
        if ref not in signals.shown
    )
    assert ranked.best == pytest.approx(best_left)
