"""Retrieval: query normalisation, typo correction, RRF, and the hybrid ranking on a fake model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from ragbot.fusion import rrf
from ragbot.index import build_index, load_index
from ragbot.query import common_words, expand, normalize, words
from ragbot.retrieval import RetrievalPolicy, Retriever, defined_terms


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("  How   LONG does\tketamine   stay? ", "how long does ketamine stay?"),
        ("ketamine’s “effects”", 'ketamine\'s "effects"'),
        ("N-methyl–D-aspartate", "n-methyl-d-aspartate"),
        ("Ｋｅｔａｍｉｎｅ", "ketamine"),  # full-width letters
    ],
)
def test_queries_are_normalised(raw: str, normalised: str) -> None:
    assert normalize(raw) == normalised


def test_content_words_drop_stop_words_and_possessives() -> None:
    assert words("Are ketamine’s effects on the brain lasting?") == [
        "ketamine",
        "effects",
        "brain",
        "lasting",
    ]


def test_rrf_sums_weighted_reciprocal_ranks() -> None:
    fused = rrf({"a": ["x", "y"], "b": ["y"]}, {"a": 1.0, "b": 0.5}, k=60)
    assert fused["x"] == pytest.approx(1 / 61)
    assert fused["y"] == pytest.approx(1 / 62 + 0.5 / 61)


def test_rrf_prefers_agreement_over_a_single_first_place() -> None:
    fused = rrf({"dense": ["a", "b"], "bm25": ["c", "b"]}, {}, k=60)
    assert max(fused, key=fused.__getitem__) == "b"


@pytest.fixture
def retriever(settings, hashing_embedder):  # type: ignore[no-untyped-def]
    s = settings()
    build_index(s, hashing_embedder)
    index = load_index(s, hashing_embedder)
    assert index.ranker is not None
    return Retriever(index, index.ranker, RetrievalPolicy(30, 60)), hashing_embedder


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("ketamin", "ketamine"),
        ("neuroplastisity", "neuroplasticity"),
        ("glutamete", "glutamate"),
        ("recepters", "receptors"),
    ],
)
def test_misspellings_are_corrected_against_the_corpus_vocabulary(
    retriever, typed: str, meant: str
) -> None:  # type: ignore[no-untyped-def]
    r, _ = retriever
    assert r.vocabulary.correct([typed]) == [meant]


def test_words_the_corpus_lacks_are_left_alone(retriever) -> None:  # type: ignore[no-untyped-def]
    r, _ = retriever
    assert r.vocabulary.correct(["lsd", "zebra", "pizza"]) == ["lsd", "zebra", "pizza"]


@pytest.mark.parametrize(
    ("message", "subjects"),
    [
        ("good ones?", []),
        ("how do u stop that from happening", []),
        ("is that permanent??", []),
        ("what about the neuroplastisity part", []),  # a typo of the article's own word
        ("what about migraines?", ["migraines"]),
        ("psilocybin tho?", ["psilocybin"]),
    ],
)
def test_a_new_subject_is_a_word_neither_the_article_nor_everyday_english_uses(
    retriever, message: str, subjects: list[str]
) -> None:  # type: ignore[no-untyped-def]
    r, _ = retriever
    assert r.vocabulary.new_subjects(words(message)) == subjects


def test_the_everyday_word_list_is_what_wordfreq_gives() -> None:
    # Regenerate with scripts/common_words.py after changing its threshold or wordfreq.
    script = Path(__file__).resolve().parents[1] / "scripts" / "common_words.py"
    spec = importlib.util.spec_from_file_location("common_words", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.OUT.read_text(encoding="utf-8") == module.render()
    assert common_words() >= {"good", "happening", "prevent", "dont"}
    assert not common_words() & {"migraines", "psilocybin", "serotonin"}


def test_a_keyword_question_finds_its_section(retriever) -> None:  # type: ignore[no-untyped-def]
    r, embedder = retriever
    question = "metabolites fourteen days"
    result = r.retrieve(question, embedder.embed([question])[0])
    best = r.index.sections[result.sections[0][0]]
    assert best.heading == "How Long Does Ketamine Stay in the Body?"
    assert "fourteen days" in result.sentences[0].text


def test_sentences_come_ranked_by_the_probability_that_they_answer(retriever) -> None:  # type: ignore[no-untyped-def]
    r, embedder = retriever
    question = "bladder issues chronic use"
    result = r.retrieve(question, embedder.embed([question])[0])
    scores = [h.score for h in result.sentences]
    assert len(scores) == len(r.index.sentences)
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert "bladder" in result.sentences[0].text and result.best == scores[0]


@pytest.mark.parametrize(
    ("typed", "expanded"),
    [
        ("how long does ket last", "how long does ketamine last"),
        ("is special k bad for ur brain", "is ketamine bad for ur brain"),
        ("k and glutamate?", "ketamine and glutamate?"),
        ("k", "k"),  # alone, it means okay
        ("ok thanks", "ok thanks"),
        ("skip my session", "skip my session"),  # only whole words
    ],
)
def test_street_names_are_spelt_out(typed: str, expanded: str) -> None:
    assert expand(typed) == expanded


@pytest.mark.parametrize(
    ("sentence", "terms"),
    [
        ("It raises glutamate, a neurotransmitter.", {"glutam"}),
        ("a window of neuroplasticity – the brain's ability to form connections", {"neuroplast"}),
        ("It acts on the NMDA (N-methyl-D-aspartate) receptors.", {"nmda"}),
        ("Ketamine is metabolized quickly in the body.", set()),
    ],
)
def test_a_sentence_that_glosses_a_word_defines_it(sentence: str, terms: set[str]) -> None:
    assert defined_terms(sentence) == terms


def test_a_corpus_without_labelled_answers_is_ranked_by_similarity_and_keywords() -> None:
    import numpy as np

    from ragbot.fusion import SIGNALS, ExamplePool, Signal, untrained_ranker

    pool = ExamplePool(np.zeros((0, 4), np.float32), (), ())
    ranker = untrained_ranker(pool)
    features = np.zeros((3, len(SIGNALS)))
    features[:, SIGNALS.index(Signal.COSINE)] = [0.2, 0.5, 0.8]
    probs = ranker.probabilities(features)
    assert probs[0] < probs[1] < probs[2] and probs[1] == pytest.approx(0.5)
    assert ranker.meta["fallback"] is True
