"""Pipeline.load(settings) and Pipeline.ask(question): the one entry point of every surface."""

from __future__ import annotations

import logging
import threading
import time
import unicodedata
from dataclasses import dataclass, field

from ragbot.answer import AnswerPolicy, compose, default_suggestions, split_question
from ragbot.config import Settings
from ragbot.embeddings import Embedder, SentenceTransformerEmbedder, Vectors
from ragbot.errors import InvalidQuestion
from ragbot.guardrails import CRISIS_MESSAGE, DISCLAIMER, REFUSAL_MESSAGE, Guard
from ragbot.index import Index, build_index, load_index
from ragbot.models import Answer
from ragbot.retrieval import Retrieval, Retriever

log = logging.getLogger("ragbot.pipeline")


def load_embedder(
    settings: Settings, *, progress: bool = False, for_build: bool = False
) -> Embedder:
    """The configured sentence-transformers model, from local files only."""
    return SentenceTransformerEmbedder(
        settings.resolved_model_path,
        settings.model_name,
        batch_size=settings.embed_batch_size,
        progress=progress,
        threads=0 if for_build else settings.torch_threads,
    )


def validate_question(question: object, max_chars: int) -> str:
    """The trimmed question, or InvalidQuestion saying what is wrong with it."""
    if not isinstance(question, str):
        raise InvalidQuestion("question must be a string")
    text = unicodedata.normalize("NFC", question).strip()
    if not text:
        raise InvalidQuestion("question is empty")
    if len(text) > max_chars:
        raise InvalidQuestion(f"question is {len(text)} characters; the limit is {max_chars}")
    # Tabs and newlines are ordinary typing; other control characters are not a question.
    if any(unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\t\n\r" for ch in text):
        raise InvalidQuestion("question contains control characters")
    return text


@dataclass
class Pipeline:
    """Everything loaded once: the model, the index, the retrievers and the guard."""

    settings: Settings
    embedder: Embedder
    index: Index
    retriever: Retriever
    guard: Guard
    policy: AnswerPolicy
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(
        cls,
        settings: Settings | None = None,
        *,
        embedder: Embedder | None = None,
        build_if_needed: bool = False,
    ) -> Pipeline:
        """Load model and index (building the index first when asked and it is missing or stale)."""
        settings = settings or Settings()
        embedder = embedder or load_embedder(settings)
        if build_if_needed:
            ensure_index(settings, embedder)
        index = load_index(settings, embedder)
        return cls.from_index(settings, embedder, index)

    @classmethod
    def from_index(cls, settings: Settings, embedder: Embedder, index: Index) -> Pipeline:
        """A pipeline around an index already in memory."""
        policy = AnswerPolicy(
            max_sentences=settings.max_sentences,
            min_relevance=settings.min_relevance,
            unknown_penalty=settings.unknown_penalty,
            extra_ratio=settings.extra_sentence_ratio,
        )
        return cls(
            settings=settings,
            embedder=embedder,
            index=index,
            retriever=Retriever(index, candidates=settings.candidates, rrf_k=settings.rrf_k),
            guard=Guard(embedder),
            policy=policy,
        )

    def ask(self, question: str) -> Answer:
        """Screen, retrieve and compose: the reply every surface shows."""
        answer, _ = self.ask_traced(question)
        return answer

    def ask_traced(self, question: str) -> tuple[Answer, Retrieval | None]:
        """ask(), also returning the retrieval behind the reply (for evaluation and debugging)."""
        text = validate_question(question, self.settings.max_question_chars)
        started = time.perf_counter()
        parts = split_question(text)
        vectors = self.embed_queries([text, *parts])  # one model call, parts included
        vector = vectors[0]
        screening = self.guard.screen(text, vector)
        retrieval: Retrieval | None = None
        if screening.verdict == "crisis":
            answer = Answer("crisis", CRISIS_MESSAGE, (), DISCLAIMER, ())
        elif screening.verdict == "refused":
            answer = Answer("refused", REFUSAL_MESSAGE, (), DISCLAIMER, self._suggestions())
        else:
            retrieval = self.retriever.retrieve(text, vector)
            part_retrievals = [
                self.retriever.retrieve(p, v) for p, v in zip(parts, vectors[1:], strict=True)
            ]
            answer = compose(
                retrieval, self.index, self.policy, self.settings.suggestions, part_retrievals
            )
        event: dict[str, object] = {
            "status": answer.status,
            "citations": len(answer.citations),
            "ms": round((time.perf_counter() - started) * 1000, 1),
            "screen": screening.verdict,
        }
        if self.settings.log_questions:  # off by default: health questions are personal
            event.update(question=text, screen_reason=screening.reason)
        log.info("ask", extra=event)
        return answer, retrieval

    def embed_queries(self, texts: list[str]) -> Vectors:
        """One model call for several texts (a question and its parts)."""
        with self._lock:
            vectors: Vectors = self.embedder.embed(texts)
        return vectors

    def embed_query(self, text: str) -> Vectors:
        """One model call per question; calls take turns, as more threads only contend for two cores."""
        with self._lock:
            vector: Vectors = self.embedder.embed([text])[0]
        return vector

    def _suggestions(self) -> tuple[str, ...]:
        return tuple(default_suggestions(self.index, self.settings.suggestions))


def ensure_index(settings: Settings, embedder: Embedder) -> bool:
    """Build the index if it is missing, stale or mismatched; True when a build ran."""
    from ragbot.errors import IndexError_

    try:
        load_index(settings, embedder)
        return False
    except IndexError_ as exc:
        log.warning("building the index: %s", exc.message)
    build_index(settings, embedder)
    return True
