"""Answer composition: verbatim sentences, numbered citations, coherence, honest no-answers."""

from __future__ import annotations

import re

import pytest

from ragbot.answer import AnswerPolicy, compose, leans_on_previous, split_question
from ragbot.guardrails import DISCLAIMER, NO_ANSWER_MESSAGE
from ragbot.index import build_index, load_index
from ragbot.retrieval import Retriever


@pytest.mark.parametrize(
    ("sentence", "leans"),
    [
        ("It primarily acts on the NMDA receptors.", True),
        ("This dual action is thought to underlie its effects.", True),
        ("However, the metabolites can remain for fourteen days.", True),
        ("For example, over 2/3rds of all clients report relief.", True),
        ("“It works,” she said.", True),
        ("Ketamine is metabolized quickly in the body.", False),
        ("Items in the list are separate.", False),  # "It" only as a whole word
        ("By blocking these receptors, ketamine produces an anesthetic effect.", True),
        ("Upon administration, ketamine is rapidly absorbed.", False),
    ],
)
def test_sentences_that_lean_on_their_neighbour_are_recognised(sentence: str, leans: bool) -> None:
    assert leans_on_previous(sentence) is leans


@pytest.fixture
def setup(settings, hashing_embedder):  # type: ignore[no-untyped-def]
    s = settings()
    build_index(s, hashing_embedder)
    index = load_index(s, hashing_embedder)
    return index, Retriever(index), hashing_embedder


def answer_for(setup, question: str, policy: AnswerPolicy | None = None):  # type: ignore[no-untyped-def]
    index, retriever, embedder = setup
    retrieval = retriever.retrieve(question, embedder.embed([question])[0])
    return compose(retrieval, index, policy or AnswerPolicy(min_relevance=-1.0)), index


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
        setup,
        "ketamine brain effects",
        AnswerPolicy(min_relevance=-1.0, max_sentences=1, extra_ratio=0.01),
    )
    assert len(answer.citations) == 1


def test_a_leaning_sentence_brings_its_neighbour_first(setup) -> None:  # type: ignore[no-untyped-def]
    answer, _ = answer_for(
        setup, "primarily acts NMDA N-methyl-D-aspartate mood regulation thought processes"
    )
    quotes = [c.quote for c in answer.citations]
    lean = next(i for i, q in enumerate(quotes) if q.startswith("It primarily acts"))
    assert (
        lean > 0 and quotes[lean - 1] == "Ketamine’s effects on the brain are considerably unique."
    )


def test_below_the_threshold_the_reply_is_no_answer_without_citations(setup) -> None:  # type: ignore[no-untyped-def]
    answer, _ = answer_for(setup, "banana bread recipe", AnswerPolicy(min_relevance=0.99))
    assert answer.status == "no_answer"
    assert answer.answer == NO_ANSWER_MESSAGE
    assert answer.citations == ()
    assert answer.suggestions and all(s.endswith("?") for s in answer.suggestions)


def test_a_question_about_another_drug_is_not_answered(setup) -> None:  # type: ignore[no-untyped-def]
    answer, _ = answer_for(
        setup, "How does psilocybin affect the brain?", AnswerPolicy(min_relevance=0.0)
    )
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
    question = (
        "what are the metabolites fourteen days; and what about bladder issues with chronic use"
    )
    parts = split_question(question)
    assert len(parts) == 2
    vectors = embedder.embed([question, *parts])
    retrieval = retriever.retrieve(question, vectors[0])
    part_retrievals = [retriever.retrieve(p, v) for p, v in zip(parts, vectors[1:], strict=True)]
    answer = compose(retrieval, index, AnswerPolicy(min_relevance=-1.0), parts=part_retrievals)
    assert "fourteen days" in answer.answer and "bladder issues" in answer.answer
