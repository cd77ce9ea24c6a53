"""Answer composition: verbatim sentences, numbered citations, coherence, honest no-answers."""

from __future__ import annotations

import re

import pytest

from ragbot.answer import AnswerPolicy, compose, split_question
from ragbot.guardrails import DISCLAIMER, NO_ANSWER_MESSAGE
from ragbot.index import build_index, load_index
from ragbot.retrieval import RetrievalPolicy, Retriever


def policy(**overrides: float) -> AnswerPolicy:
    """A policy that answers whatever the scores (unless told otherwise)."""
    values: dict[str, float] = {
        "max_sentences": 3,
        "min_answer_score": 0.0,
        "min_article": 0.0,
        "extra_ratio": 0.15,
        "followup_extra_ratio": 0.15,
    }
    values.update(overrides)
    return AnswerPolicy(**values)  # type: ignore[arg-type]


@pytest.fixture
def setup(settings, hashing_embedder):  # type: ignore[no-untyped-def]
    s = settings()
    build_index(s, hashing_embedder)
    index = load_index(s, hashing_embedder)
    assert index.ranker is not None
    return index, Retriever(index, index.ranker, RetrievalPolicy(30, 60)), hashing_embedder


def answer_for(setup, question: str, chosen: AnswerPolicy | None = None, article: float = 1.0):  # type: ignore[no-untyped-def]
    index, retriever, embedder = setup
    retrieval = retriever.retrieve(question, embedder.embed([question])[0])
    return compose(retrieval, index, chosen or policy(), article=article), index


QUESTIONS = [
    "metabolites fourteen days",
    "NMDA receptors",
    "bladder issues chronic use",
    "glutamate neuroplasticity window",
    "2/3rds of clients reduction in symptoms",
]


@pytest.mark.parametrize("question", QUESTIONS)
def test_answers_are_verbatim_numbered_in_order_and_every_marker_resolves(
    setup, question: str
) -> None:  # type: ignore[no-untyped-def]
    answer, index = answer_for(setup, question)
    assert answer.status == "answered"
    assert 1 <= len(answer.citations) <= 3
    assert [c.id for c in answer.citations] == list(range(1, len(answer.citations) + 1))
    assert [int(n) for n in re.findall(r"\[(\d+)\]", answer.answer)] == [
        c.id for c in answer.citations
    ]
    rebuilt = " ".join(f"{c.quote} [{c.id}]" for c in answer.citations)
    assert answer.answer == rebuilt  # nothing but quotes and markers
    starts = [c.start for c in answer.citations]
    assert starts == sorted(starts) and len(set(starts)) == len(
        starts
    )  # document order, no repeats
    for c in answer.citations:
        assert index.documents[c.doc_id].text[c.start : c.end] == c.quote
    assert answer.disclaimer == DISCLAIMER


def test_max_sentences_is_respected(setup) -> None:  # type: ignore[no-untyped-def]
    answer, _ = answer_for(
        setup, "ketamine brain effects", policy(max_sentences=1, extra_ratio=0.01)
    )
    assert len(answer.citations) == 1


def test_further_sentences_join_only_when_nearly_as_likely_to_answer(setup) -> None:  # type: ignore[no-untyped-def]
    # A ratio above 1 admits nothing beside the best sentence.
    answer, _ = answer_for(setup, "metabolites fourteen days", policy(extra_ratio=1.01))
    assert len(answer.citations) == 1 and "fourteen days" in answer.answer


def test_a_sentence_that_leans_on_its_neighbour_is_quoted_alone(setup) -> None:  # type: ignore[no-untyped-def]
    answer, _ = answer_for(
        setup,
        "primarily acts NMDA N-methyl-D-aspartate mood regulation thought processes",
        policy(extra_ratio=1.01),
    )
    assert [c.quote[:17] for c in answer.citations] == ["It primarily acts"]


def test_without_a_likely_sentence_the_reply_is_no_answer_without_citations(setup) -> None:  # type: ignore[no-untyped-def]
    answer, _ = answer_for(setup, "banana bread recipe", policy(min_answer_score=0.999))
    assert answer.status == "no_answer"
    assert answer.answer == NO_ANSWER_MESSAGE
    assert answer.citations == ()
    assert answer.suggestions and all(s.endswith("?") for s in answer.suggestions)


def test_a_question_the_router_reads_as_off_topic_is_not_answered(setup) -> None:  # type: ignore[no-untyped-def]
    answer, _ = answer_for(setup, "metabolites fourteen days", policy(min_article=0.5), article=0.2)
    assert answer.status == "no_answer"


@pytest.mark.parametrize(
    ("question", "parts"),
    [
        (
            "How does ketamine work, and how fast does it help?",
            ["How does ketamine work", "how fast does it help"],
        ),
        ("What is ketamine? How long does it last?", ["What is ketamine", "How long does it last"]),
        ("How does ketamine work in the brain?", []),
        ("ketamine and neuroplasticity", []),  # "and" joining topics is not a second question
        ("What is NMDA and why?", []),  # a part needs words of its own
    ],
)
def test_multi_part_questions_are_split_into_their_questions(
    question: str, parts: list[str]
) -> None:
    assert split_question(question) == parts


def test_each_part_of_a_two_part_question_gets_its_own_quote(setup) -> None:  # type: ignore[no-untyped-def]
    index, retriever, embedder = setup
    question = "metabolites remain in the system fourteen days; bladder issues with chronic use"
    parts = split_question(question)
    assert len(parts) == 2
    vectors = embedder.embed([question, *parts])
    retrieval = retriever.retrieve(question, vectors[0])
    part_retrievals = [retriever.retrieve(p, v) for p, v in zip(parts, vectors[1:], strict=True)]
    answer = compose(retrieval, index, policy(), parts=part_retrievals)
    assert "fourteen days" in answer.answer and "bladder issues" in answer.answer
