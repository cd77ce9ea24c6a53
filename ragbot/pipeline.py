"""Pipeline.load(settings) and Pipeline.ask(question): the one entry point of every surface."""

from __future__ import annotations

import logging
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ragbot import metrics
from ragbot.answer import AnswerPolicy, compose, default_suggestions, quote, split_question
from ragbot.batching import BatchingEmbedder
from ragbot.config import Settings
from ragbot.conversation import Turn, last_section, last_shown, shown_sentences
from ragbot.embeddings import Embedder, SentenceTransformerEmbedder, Vectors
from ragbot.errors import IndexCorrupt, InvalidQuestion
from ragbot.followups import FollowupPool, FollowupRanker, FollowupSignals, asks_for_other
from ragbot.guardrails import (
    CRISIS_MESSAGE,
    DISCLAIMER,
    NOTHING_MORE_MESSAGE,
    REFUSAL_MESSAGE,
    ScreenPolicy,
    screen,
)
from ragbot.index import Index, build_index, check_model, load_index, load_manifest
from ragbot.models import Answer
from ragbot.query import clauses, expand, words
from ragbot.retrieval import Retrieval, RetrievalPolicy, Retriever
from ragbot.router import Route, Router
from ragbot.turns import Kind, TurnClassifier

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


MORE_SENTENCES = 2  # "tell me more": the next two sentences of the section, as a reader would

STAGES = ("analyse", "embed", "route", "retrieve", "compose")


class StageClock:
    """Laps of ask(), reported to a hook when one is set (and nothing more when not)."""

    def __init__(self, hook: Callable[[str, float], None] | None) -> None:
        self.hook = hook
        self.started = self.last = time.perf_counter()

    def lap(self, stage: str) -> None:
        """The time since the previous lap, reported as `stage`."""
        now = time.perf_counter()
        if self.hook is not None:
            self.hook(stage, now - self.last)
        self.last = now

    def total(self) -> float:
        """Seconds since the clock started."""
        return time.perf_counter() - self.started


@dataclass(frozen=True)
class Trace:
    """A reply and what decided it."""

    answer: Answer
    route: Route
    reason: str  # what screened it: a pattern, or the router
    retrieval: Retrieval | None  # None when the question was screened out
    turn: Kind = "new"  # how the message stood to the conversation before it
    # The heading of the best retrieved section: where an unanswered question came closest.
    nearest_section: str | None = None
    followup: FollowupSignals | None = None  # what a follow-up's ranking was read from


@dataclass
class Pipeline:
    """Everything loaded once: the model, the index, the router and the retriever."""

    settings: Settings
    embedder: Embedder
    index: Index
    router: Router
    turns: TurnClassifier
    retriever: Retriever
    followups: FollowupRanker
    followup_pool: FollowupPool  # the labelled follow-ups that vote (followups.npz in the build)
    screen_policy: ScreenPolicy
    policy: AnswerPolicy
    encoder: BatchingEmbedder  # the embedder, its calls from many threads merged
    # Called with (stage, seconds) after each stage of ask(): the benchmark's hook.
    on_stage: Callable[[str, float], None] | None = None

    @classmethod
    def load(
        cls,
        settings: Settings | None = None,
        *,
        embedder: Embedder | None = None,
        build_if_needed: bool = False,
    ) -> Pipeline:
        """Load the index and the query encoder (building the index first when asked and it is
        missing or stale). Serving with the ONNX encoder imports neither torch nor
        sentence-transformers unless a build is needed."""
        settings = settings or Settings()
        index = ensure_index(settings, embedder) if build_if_needed else None
        if embedder is None:
            if index is None and settings.encoder != "torch":
                # A missing index or other weights say so before the encoder is looked for.
                check_model(load_manifest(settings.index_dir), settings, settings.index_dir)
            embedder = serving_embedder(settings)
        if index is None:
            index = load_index(settings, embedder)
        pipeline = cls.from_index(settings, embedder, index)
        limit_blas_threads(settings.blas_threads)
        pipeline.warm_up()
        return pipeline

    @classmethod
    def from_index(cls, settings: Settings, embedder: Embedder, index: Index) -> Pipeline:
        """A pipeline around an index already in memory."""
        if index.router is None or index.ranker is None or index.turns is None:
            raise IndexCorrupt(
                f"{index.path} lacks its router, ranker or turn classifier: "
                "run `ragbot build-index`"
            )
        return cls(
            settings=settings,
            embedder=embedder,
            index=index,
            router=index.router,
            turns=index.turns,
            retriever=Retriever(index, index.ranker, RetrievalPolicy.from_settings(settings)),
            followups=FollowupRanker.load(),
            followup_pool=FollowupPool.load(index.path, [s.sentence_id for s in index.sentences]),
            screen_policy=ScreenPolicy(
                advice_threshold=settings.advice_threshold,
                advice_pattern_threshold=settings.advice_pattern_threshold,
            ),
            policy=AnswerPolicy.from_settings(settings),
            encoder=BatchingEmbedder(
                embedder, max_texts=settings.batch_max, wait_s=settings.batch_wait_ms / 1000
            ),
        )

    def warm_up(self) -> None:
        """One question through every stage, so that lazy imports and first-call set-up are
        paid while loading, not by the first person to ask."""
        text = "how does ketamine work in the brain"
        vector = self.embed_query(text)
        self.router.route(text, vector, [text], vector[None, :])
        self.retriever.retrieve(text, vector)

    def close(self) -> None:
        """Stop the encoder thread (a newer build took over); calls still in flight finish."""
        self.encoder.close()

    def ask(self, question: str, history: Sequence[Turn] = ()) -> Answer:
        """Screen, retrieve and compose: the reply every surface shows."""
        return self.ask_traced(question, history).answer

    def ask_traced(self, question: str, history: Sequence[Turn] = ()) -> Trace:
        """ask(), with the route and retrieval behind the reply (for evaluation and debugging).
        `history`: the conversation's earlier turns, oldest first; the last few are used."""
        clock = StageClock(self.on_stage)
        text = validate_question(question, self.settings.max_question_chars)
        turns = list(history)[-self.settings.history_turns :] if self.settings.history_turns else []
        query = expand(text)  # street names spelt out: what the model and keyword index know
        said = clauses(text)
        # Until the message's kind is known (it needs the vector), both readings are embedded:
        # its parts, as a new question, and the context, as a follow-up ("why?" alone is about
        # nothing, so it is read with the question it follows).
        parts = split_question(query)
        context = expand(f"{turns[-1].question} {text}") if turns else None
        earlier = [expand(t.question) for t in turns]
        clock.lap("analyse")
        # One model call: the question, its parts, its clauses, the context, the earlier turns.
        texts = [query, *parts, *(expand(c) for c in said)]
        texts += ([context] if context else []) + earlier
        vectors = self.embed_queries(texts)
        vector = vectors[0]
        n_parts = len(parts)
        n_said = 1 + n_parts + len(said)
        said_vectors = vectors[1 + n_parts : n_said]
        earlier_vectors = vectors[n_said + (1 if context else 0) :]
        kind = self.turns.kind(text, vector[None, :], bool(turns))
        # A follow-up is also routed as read with the question it follows.
        in_context = (
            self.router.route(context, vectors[n_said])
            if kind == "followup" and context is not None
            else None
        )
        if kind != "new":
            parts = []  # a follow-up's "and" joins it to the answer before, not two questions
        clock.lap("embed")
        # Each message is screened on its own: history never makes advice acceptable.
        route = self.router.route(text, vector, said, said_vectors)
        # "forever" after "does it rewire your brain" reads as crisis alone but not with the
        # question it follows: it gets a follow-up's reply, with the resources first. A crisis
        # pattern still decides alone (screen() below), and "ok. i took all of them" is a crisis
        # either way.
        if in_context is not None and route.crisis and not in_context.crisis:
            route = replace(route, crisis=False, distress=True)
        resources_before = any(
            self._had_resources(t.question, v) for t, v in zip(turns, earlier_vectors, strict=True)
        )
        # Once the resources were given, a message that says what was done about it and asks
        # the article something ("ok i texted 988. does it help right away?") gets its answer,
        # the resources still first. Read alone, "i texted 988" is a crisis to the router;
        # a crisis pattern still decides alone (screen() below).
        asked = (
            self.router.article_clause(said, said_vectors)
            if route.crisis and resources_before
            else None
        )
        if asked is not None:
            route = replace(route, crisis=False, distress=True)
        screening = screen(text, route, self.screen_policy)
        clock.lap("route")
        retrieval: Retrieval | None = None
        signals: FollowupSignals | None = None
        shown = shown_sentences(self.index, turns)
        if screening.verdict == "crisis":
            answer = Answer("crisis", CRISIS_MESSAGE, (), DISCLAIMER, (), CRISIS_MESSAGE)
        elif screening.verdict == "refused":
            answer = Answer("refused", REFUSAL_MESSAGE, (), DISCLAIMER, self._suggestions())
        elif kind == "more":
            before = earlier_vectors[-1]
            retrieval = self.retriever.retrieve(earlier[-1], before)
            clock.lap("retrieve")
            answer = self._more(retrieval, shown, last_section(self.index, turns))
        else:
            article = route.p("article")
            if asked is not None:
                # What was asked is that clause: retrieve for it, and judge it as the article's.
                clause, article = asked
                query, vector = expand(said[clause]), said_vectors[clause]
                parts = []
            retrieval = self.retriever.retrieve(query, vector)
            if context is not None and in_context is not None:
                signals = FollowupSignals(
                    own=retrieval,
                    context=self.retriever.retrieve(context, vectors[n_said]),
                    previous=self.retriever.retrieve(earlier[-1], earlier_vectors[-1]),
                    shown=frozenset(shown),
                    last=frozenset(last_shown(self.index, turns)),
                    asks_other=asks_for_other(text),
                    context_vector=vectors[n_said],
                    own_vector=vector,
                )
                retrieval = self.followups.rank(self.index, signals, self.followup_pool)
                if not self.retriever.vocabulary.new_subjects(words(text)):
                    # "why?", "good ones?" are about nothing alone: whether they are about the
                    # article is read with the question they follow. A follow-up that brings a
                    # subject of its own ("what about migraines?") is judged alone.
                    article = max(article, in_context.p("article"))
            part_retrievals = [
                self.retriever.retrieve(p, v)
                for p, v in zip(parts, vectors[1 : 1 + len(parts)], strict=True)
            ]
            clock.lap("retrieve")
            answer = compose(
                retrieval,
                self.index,
                self.policy.for_followup() if in_context is not None else self.policy,
                self.settings.suggestions,
                part_retrievals,
                article=article,
            )
        if answer.status == "answered":
            answer = replace(answer, more=self._has_more(answer, shown))
        if (route.distress or screening.resources or resources_before) and answer.resources is None:
            # Distress now, a crisis pattern, or either earlier in the conversation: the
            # resources come first.
            answer = replace(answer, resources=CRISIS_MESSAGE)
        clock.lap("compose")
        event: dict[str, object] = {
            "status": answer.status,
            "intent": route.intent,
            "citations": len(answer.citations),
            "resources": answer.resources is not None,
            "ms": round(clock.total() * 1000, 1),
            "screen": screening.verdict,
            "turn": kind,
        }
        if self.settings.log_questions:  # off by default: health questions are personal
            event.update(question=text, screen_reason=screening.reason)
        log.info("ask", extra=event)
        metrics.REPLIES.labels(status=answer.status, intent=route.intent).inc()
        nearest = (
            self.index.sections[retrieval.sections[0][0]].heading
            if retrieval is not None and retrieval.sections
            else None
        )
        return Trace(answer, route, screening.reason, retrieval, kind, nearest, signals)

    def _had_resources(self, question: str, vector: Vectors) -> bool:
        """Whether an earlier message of the conversation got the resources first: a crisis, or
        a crisis pattern the router read no distress in (as before stop 24, when that message
        was a crisis reply, the resources stay on the conversation's later replies)."""
        route = self.router.route(question, vector, clauses(question))
        screening = screen(question, route, self.screen_policy)
        return screening.verdict == "crisis" or screening.resources

    def _more(self, retrieval: Retrieval, shown: set[str], section: str | None) -> Answer:
        """The best sentences of the section shown last that were not shown yet."""
        if section is None and retrieval.sentences:
            section = retrieval.sentences[0].section_id
        fresh = [h for h in retrieval.sentences if h.section_id == section and h.ref not in shown]
        if not fresh:
            return Answer("no_answer", NOTHING_MORE_MESSAGE, (), DISCLAIMER, self._suggestions())
        chosen = [(self.index.sentence_by_id[h.ref], h.score) for h in fresh[:MORE_SENTENCES]]
        chosen.sort(key=lambda pair: (pair[0].doc_id, pair[0].start))
        return quote(chosen, self.index, self._suggestions())

    def _has_more(self, answer: Answer, shown: set[str]) -> bool:
        """Whether the section of the answer's first quote holds sentences not yet shown."""
        seen = shown | {c.ref for c in answer.citations}
        section = self.index.sentence_by_id[answer.citations[0].ref].section_id
        return any(s.sentence_id not in seen for s in self.index.section_sentences[section])

    def embed_queries(self, texts: list[str]) -> Vectors:
        """One model call for several texts (a question, its parts and clauses), shared with
        other questions asked at the same moment. A text that recurs is encoded once: a long
        message's parts are often its clauses too (7% of the texts of the tuning set and v3)."""
        unique = list(dict.fromkeys(texts))
        vectors = self.encoder.embed(unique)
        if len(unique) == len(texts):
            return vectors
        row = {text: i for i, text in enumerate(unique)}
        return vectors[[row[text] for text in texts]]

    def embed_query(self, text: str) -> Vectors:
        """The vector of one text."""
        vector: Vectors = self.encoder.embed([text])[0]
        return vector

    def _suggestions(self) -> tuple[str, ...]:
        return tuple(default_suggestions(self.index, self.settings.suggestions))


def limit_blas_threads(threads: int) -> None:
    """Cap the threads of the BLAS numpy loaded (OpenBLAS). Its products here are small (a
    question against 2,000 example vectors), and its pool's threads spin against the request
    threads and ONNX Runtime's: capped at 1, the server used a third less CPU an answer
    (README: Benchmarks). Libraries loaded later (torch, for a build) are not affected."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")


def serving_embedder(settings: Settings) -> Embedder:
    """The query encoder the settings ask for: the build's ONNX export (no torch), or torch."""
    if settings.encoder == "torch":
        return load_embedder(settings)
    from ragbot.onnx_embedder import OnnxEmbedder

    return OnnxEmbedder(
        settings.index_dir / "current",
        threads=settings.onnx_threads,
        quantised=settings.encoder == "onnx-int8",
    )


def ensure_index(settings: Settings, embedder: Embedder | None = None) -> Index | None:
    """The current index when it is fresh and matches; otherwise build one and return None.
    Without an embedder, the model (torch) is loaded only when a build is needed. When the
    corpus changed and the rebuild fails, the previous index is served, marked stale: degrade,
    never die (a different model or chunker is never served)."""
    from ragbot.errors import BuildError, IndexError_, IndexMismatch, IndexStale

    try:
        index = load_index(settings, embedder)
        if embedder is None:
            check_model(index.manifest, settings, settings.index_dir)
            if settings.encoder != "torch":
                from ragbot.onnx_embedder import EXPORT_VERSION

                encoder = index.manifest.encoder
                if encoder is None or encoder.export_version != EXPORT_VERSION:
                    raise IndexMismatch(f"{settings.index_dir} has no current ONNX encoder")
        return index
    except IndexError_ as exc:
        reason = exc
        log.warning("building the index: %s", exc.message)
    try:
        build_index(settings, embedder or load_embedder(settings, for_build=True))
    except BuildError as failed:
        if not isinstance(reason, IndexStale):
            raise
        previous = load_index(settings, embedder, check_corpus=False)
        previous.stale = f"{reason.message}; the rebuild failed: {failed.message}"
        log.error("serving the previous index, stale", extra={"error": previous.stale})
        return previous
    return None
