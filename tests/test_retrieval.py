"""Retrieval: query normalisation, typo correction, RRF, and the hybrid ranking on a fake model."""

from __future__ import annotations

import pytest

from ragbot.index import build_index, load_index
from ragbot.retrieval import Retriever, normalize, rrf, words


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
    return Retriever(load_index(s, hashing_embedder)), hashing_embedder


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
    assert r.correct([typed]) == [meant]


def test_words_the_corpus_lacks_are_left_alone(retriever) -> None:  # type: ignore[no-untyped-def]
    r, _ = retriever
    assert r.correct(["medicare", "lsd", "zebra"]) == ["medicare", "lsd", "zebra"]


def test_a_keyword_question_finds_its_section(retriever) -> None:  # type: ignore[no-untyped-def]
    r, embedder = retriever
    question = "metabolites fourteen days"
    result = r.retrieve(question, embedder.embed([question])[0])
    best = r.index.sections[result.sections[0][0]]
    assert best.heading == "How Long Does Ketamine Stay in the Body?"
    assert "fourteen days" in result.sentences[0].text


def test_topic_words_the_corpus_never_uses_are_reported(retriever) -> None:  # type: ignore[no-untyped-def]
    r, embedder = retriever
    question = "Is ketamine FDA approved?"
    result = r.retrieve(question, embedder.embed([question])[0])
    assert set(result.unknown_terms) == {"fda", "approved"}
    assert result.foreign_terms == ("fda",)
