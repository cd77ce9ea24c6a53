"""`ragbot eval`: the systems to ask (in-process, over HTTP, baselines), the report and the gate."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ragbot.config import Settings
from ragbot.embeddings import Embedder, Vectors
from ragbot.errors import RagbotError
from ragbot.evaluation.core import AnswerFn, Outcome, SystemRun, evaluate
from ragbot.evaluation.gate import check, load_thresholds
from ragbot.evaluation.questions import (
    EvalQuestion,
    assign_splits,
    corpus_problems,
    count_problems,
    default_questions_path,
    load_questions,
)
from ragbot.evaluation.render import render_text
from ragbot.evaluation.report import Report, write_outputs
from ragbot.models import Answer, Citation, Document

if TYPE_CHECKING:
    import httpx

    from ragbot.pipeline import Pipeline

EXIT_OK = 0
EXIT_FAILED = 1  # the gate failed, or no question got a reply
HTTP_TIMEOUT_SECONDS = 30.0
TERMINAL_FAILURES = 60  # failure rows printed; report.md lists them all


class CachingEmbedder:
    """An embedder that remembers each text's vector, so the evaluation embeds every question once.

    The first embedding of a question happens inside the timed reply, as in production; the
    section ranking of screened questions and the naive baseline reuse it.
    """

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self._cache: dict[str, Vectors] = {}

    def embed(self, texts: list[str]) -> Vectors:
        """Vectors of the texts, computing only those not seen before."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            for text, vector in zip(missing, self.inner.embed(missing), strict=True):
                self._cache[text] = vector
        if not texts:
            return self.inner.embed([])
        return np.stack([self._cache[t] for t in texts])

    def __getattr__(self, attr: str) -> Any:
        # fingerprint, fits, max_tokens: whatever the index checks ask of the real model.
        return getattr(self.inner, attr)


def pipeline_answer_fn(pipeline: Pipeline) -> AnswerFn:
    """Ask in-process; rank sections even for questions the guard stopped, timing only the reply.

    Retrieval metrics measure the retriever: a sensitive question wrongly refused still has its
    sections ranked, and the refusal is counted by the guardrail metrics.
    """
    from ragbot.pipeline import validate_question
    from ragbot.query import expand

    sections = pipeline.index.sections

    def ask(question: str) -> Outcome:
        started = time.perf_counter()
        trace = pipeline.ask_traced(question)
        seconds = time.perf_counter() - started
        retrieval = trace.retrieval
        if retrieval is None:
            text = expand(validate_question(question, pipeline.settings.max_question_chars))
            retrieval = pipeline.retriever.retrieve(text, pipeline.embed_query(text))
        return Outcome(
            trace.answer,
            tuple(sections[sid].heading for sid, _ in retrieval.sections),
            seconds,
            trace.route.intent,
            trace.reason.split(":")[0] if trace.answer.status in ("crisis", "refused") else None,
        )

    return ask


def answer_from_json(data: dict[str, Any]) -> Answer:
    """The pipeline Answer of a /v1/ask response body."""
    citations = tuple(
        Citation(
            id=int(c["id"]),
            doc_id=str(c["doc_id"]),
            title=str(c["title"]),
            section=str(c["section"]),
            quote=str(c["quote"]),
            start=int(c["start"]),
            end=int(c["end"]),
            url=c.get("url"),
            score=float(c["score"]),
        )
        for c in data["citations"]
    )
    return Answer(
        data["status"],
        str(data["answer"]),
        citations,
        str(data["disclaimer"]),
        tuple(str(s) for s in data.get("suggestions", ())),
    )


def http_answer_fn(url: str, client: httpx.Client) -> AnswerFn:
    """POST each question to `{url}/v1/ask`; ranked sections are not exposed over HTTP."""
    endpoint = url.rstrip("/") + "/v1/ask"

    def ask(question: str) -> Outcome:
        response = client.post(endpoint, json={"question": question})
        if response.status_code != 200:
            raise RagbotError(f"HTTP {response.status_code} from {endpoint}: {response.text[:200]}")
        return Outcome(answer_from_json(response.json()))

    return ask


def _dialogues(pipeline: Pipeline, every_set: bool = False) -> dict[str, dict[str, object]]:
    """The dialogue sets replayed with history and, as the baseline, without: the tuning sets and
    the newest hold-out, or every set. The retired hold-outs are training data now: run again,
    they measure what was learned from them, and replaying all of them took most of a run."""
    from ragbot.evaluation.dialogues import HOLDOUTS, TUNES, dialogue_path, load_dialogues, replay
    from ragbot.evaluation.dialogues import summarize as summarize_dialogues

    out: dict[str, dict[str, object]] = {}
    for name in (*TUNES, *(HOLDOUTS if every_set else HOLDOUTS[-1:])):
        dialogues = load_dialogues(dialogue_path(name))
        for with_history in (True, False):
            label = f"{name.removesuffix('.jsonl')} ({'history' if with_history else 'no history'})"
            results = replay(dialogues, pipeline.ask, with_history=with_history)
            out[label] = summarize_dialogues(results)
    return out


def render_dialogues(figures: dict[str, dict[str, object]]) -> str:
    """The dialogue figures as a text table, one column per set and mode."""
    from ragbot.evaluation.render import text_table

    keys = list(next(iter(figures.values())))
    rows = [[k, *(str(f.get(k)) for f in figures.values())] for k in keys]
    return "dialogues (follow-ups; 'no history' is the baseline):\n" + text_table(
        ["metric", *figures], rows
    )


def run_cli(args: argparse.Namespace, settings: Settings) -> int:
    """Run the evaluation as `ragbot eval` asks; 1 when the gate fails, else 0."""
    started = time.perf_counter()
    path = Path(args.questions) if args.questions else default_questions_path()
    questions = load_questions(path)
    thresholds = load_thresholds(Path(args.thresholds)) if args.thresholds else None
    splits = assign_splits(
        questions
    )  # over the whole set, so a question's split never depends on --split
    chosen = [q for q in questions if args.split == "all" or splits[q.id] == args.split]
    record = bool(getattr(args, "record", False))
    if record and args.url is not None:
        raise RagbotError(
            "--record keeps in-process replies; a service asked with --url records its own"
        )

    pipeline: Pipeline | None = None
    if args.url is None or args.baseline:
        from ragbot.pipeline import Pipeline, serving_embedder

        pipeline = Pipeline.load(settings, embedder=CachingEmbedder(serving_embedder(settings)))
    if pipeline is not None:
        documents: dict[str, Document] = dict(pipeline.index.documents)
    else:
        from ragbot.corpus import load_corpus

        documents = {d.doc_id: d for d in load_corpus(settings.corpus_dir)}
    _check_questions(questions, documents, path)
    texts = {doc_id: d.text for doc_id, d in documents.items()}

    runs: list[SystemRun] = []
    if args.url is not None:
        import httpx

        with httpx.Client(timeout=HTTP_TIMEOUT_SECONDS) as client:
            run = evaluate(chosen, http_answer_fn(args.url, client), texts, splits=splits)
        run.notes.append("over HTTP: ranked sections are not exposed, so retrieval metrics are n/a")
        mode = f"HTTP {args.url}"
    else:
        assert pipeline is not None
        run = evaluate(chosen, pipeline_answer_fn(pipeline), texts, splits=splits)
        mode = "in-process"
    runs.append(run)
    if all(r.error for r in run.records):
        print(
            f"error: no question got a reply; first error: {run.records[0].error}", file=sys.stderr
        )
        return EXIT_FAILED
    if record:
        from ragbot.evaluation.recording import record_run

        assert pipeline is not None
        kept, where = record_run(run.records, settings, pipeline.index.manifest.build_id)
        print(f"recorded {kept} replies (channel eval) in {where}", file=sys.stderr)
    if args.baseline:
        assert pipeline is not None
        runs += _baselines(pipeline, chosen, texts, splits)

    report = Report(runs, args.split, meta=_meta(mode, path, chosen, pipeline, started))
    if args.url is None and pipeline is not None:
        report.meta["dialogues"] = _dialogues(pipeline, args.all_dialogues)
    if thresholds is not None:
        report.gate = check(report.overall(), thresholds)
    report.meta["seconds"] = round(time.perf_counter() - started, 1)
    print(render_text(report, max_failures=TERMINAL_FAILURES))
    if "dialogues" in report.meta:
        print("\n" + render_dialogues(report.meta["dialogues"]))
    written = write_outputs(report, Path(args.out))
    print("\nwrote " + ", ".join(str(p) for p in written))
    if report.gate is not None and not all(c.passed for c in report.gate):
        failed = [c.describe() for c in report.gate if not c.passed]
        print(f"gate FAILED ({args.thresholds}): " + "; ".join(failed), file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _check_questions(
    questions: list[EvalQuestion], documents: dict[str, Document], path: Path
) -> None:
    headings = [s.heading for d in documents.values() for s in d.sections]
    problems = corpus_problems(questions, (d.text for d in documents.values()), headings)
    if problems:
        shown = "\n  ".join(problems[:20])
        raise RagbotError(
            f"{path} does not match the corpus (wrong article, or it changed):\n  {shown}"
        )
    for problem in count_problems(questions):  # a rate over a handful of questions says little
        print(f"warning: {problem}", file=sys.stderr)


def _baselines(
    pipeline: Pipeline, questions: list[EvalQuestion], texts: dict[str, str], splits: dict[str, Any]
) -> list[SystemRun]:
    from ragbot.baselines import Bm25Baseline, DenseBaseline, NaiveBaseline

    naive = NaiveBaseline(
        pipeline.embedder, pipeline.settings.corpus_dir, dict(pipeline.index.documents)
    )
    bm25 = Bm25Baseline(pipeline.index, pipeline.settings.max_sentences)
    dense = DenseBaseline(pipeline.index, pipeline.embedder, pipeline.settings.max_sentences)
    # The naive and dense baselines reuse ragbot's question vectors (same model): their latency
    # would lie.
    runs = [
        evaluate(questions, naive, texts, name="naive", splits=splits, timed=False),
        evaluate(questions, dense, texts, name="dense", splits=splits, timed=False),
        evaluate(questions, bm25, texts, name="bm25", splits=splits),
    ]
    runs[0].notes.append(
        f"{len(naive.chunks)} raw chunks of 1,000 characters (200 overlap), furniture included; "
        "verbatim counts an answer only if the chunk is a slice of the stored cleaned text; "
        "no [n] markers, no disclaimer, no abstention, no guardrails; "
        "not timed (it reuses ragbot's question vectors)"
    )
    runs[1].notes.append(
        "the three sentences most similar to the question (heading in front), dense only; "
        "no keywords, no fusion, no abstention, no guardrails, no disclaimer; not timed"
    )
    runs[2].notes.append(
        "BM25 only over ragbot's sentences, top sentences cited; no abstention, no guardrails, "
        "no disclaimer"
    )
    return runs


def _meta(
    mode: str, path: Path, questions: list[EvalQuestion], pipeline: Pipeline | None, started: float
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": mode,
        "questions_file": str(path),
        "questions": len(questions),
    }
    if pipeline is not None:
        manifest = pipeline.index.manifest
        meta["index_build"] = manifest.build_id
        meta["model"] = manifest.model.name
    return meta
