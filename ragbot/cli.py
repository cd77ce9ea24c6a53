"""The `ragbot` command: build-index, inspect, search, ask, serve, eval and report."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import textwrap
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from functools import partial
from typing import TYPE_CHECKING

from pydantic import ValidationError

from ragbot.config import Settings
from ragbot.errors import RagbotError
from ragbot.models import Answer

if TYPE_CHECKING:
    from ragbot.pipeline import Pipeline, Trace

EXIT_OK = 0
EXIT_ERROR = 1  # ragbot said what went wrong
EXIT_USAGE = 2  # argparse's own code for bad arguments
EXIT_INDEX = 3  # the index is missing, stale, corrupt or mismatched


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings()
        return int(args.func(args, settings))
    except RagbotError as exc:
        from ragbot.errors import IndexError_

        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_INDEX if isinstance(exc, IndexError_) else EXIT_ERROR
    except OSError as exc:  # a folder that cannot be written or read: one line, not a traceback
        where = f" {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_ERROR
    except ValidationError as exc:  # a setting out of range: name the variable and the rule
        first = exc.errors()[0]
        name = "RAGBOT_" + "_".join(str(p) for p in first["loc"]).upper()
        print(f"error: {name}: {first['msg']}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    """The command line of `ragbot`, every subcommand (also what tests parse their arguments with)."""
    parser = argparse.ArgumentParser(prog="ragbot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("build-index", help="build the index from the corpus folder")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("inspect", help="show what the index holds")
    p.add_argument("--chunks", type=int, default=3, help="how many chunks to show")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("search", help="top passages for a query, with scores and offsets")
    p.add_argument("query")
    p.add_argument("-k", type=int, default=5)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("ask", help="answer a question in the terminal")
    p.add_argument("question")
    p.add_argument("--json", action="store_true", help="print the API's JSON instead of text")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("serve", help="run the HTTP service (builds the index if missing or stale)")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument(
        "--no-build", action="store_true", help="fail instead of building a missing index"
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("eval", help="evaluate over a question set")
    p.add_argument(
        "--questions", default=None, help="JSON Lines question set (default: the shipped one)"
    )
    p.add_argument("--url", default=None, help="evaluate a running service instead of in-process")
    p.add_argument("--baseline", action="store_true", help="also measure the naive baselines")
    p.add_argument("--out", default="reports", help="folder for the JSON and Markdown reports")
    p.add_argument("--thresholds", default=None, help="fail (exit 1) when a metric is below these")
    p.add_argument(
        "--split", choices=["all", "tune", "test"], default="all", help="which part of the set"
    )
    p.add_argument(
        "--record",
        action="store_true",
        help="keep each reply as a record (channel eval) in the records store, for `ragbot report`",
    )
    p.add_argument(
        "--all-dialogues",
        action="store_true",
        help="replay every dialogue set, the retired hold-outs too (default: tuning and newest)",
    )
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("report", help="the content report of recorded replies, Markdown and HTML")
    p.add_argument(
        "--since", default=None, help="from this date (2024-05-01) or this long ago (7d, 12h, 2w)"
    )
    p.add_argument("--out", default=None, help="folder for report.md and report.html")
    p.set_defaults(func=cmd_report)
    return parser


def cmd_build(args: argparse.Namespace, settings: Settings) -> int:
    """Build the index and print what it holds."""
    from ragbot.index import build_index, builds_folder
    from ragbot.pipeline import load_embedder

    builds_folder(settings.index_dir)  # an unwritable folder fails before the model loads
    embedder = load_embedder(settings, progress=True, for_build=True)
    report = build_index(settings, embedder, progress=lambda msg: print(msg, file=sys.stderr))
    print(
        f"built {report.path}\n"
        f"  documents {report.documents}  sections {report.sections}  sentences {report.sentences}  "
        f"chunks {report.chunks}  tokens {report.tokens}\n"
        f"  embedded {report.embedded}  reused {report.reused}  seconds {report.seconds:.2f}"
    )
    return EXIT_OK


def cmd_inspect(args: argparse.Namespace, settings: Settings) -> int:
    """Print the manifest summary and a few chunks."""
    from ragbot.index import check_fresh, load_index_files

    current = settings.index_dir / "current"
    if not current.exists():
        from ragbot.errors import IndexMissing

        raise IndexMissing(f"no index in {settings.index_dir}: run `ragbot build-index`")
    index = load_index_files(current)
    if args.json:
        print(json.dumps(index.manifest.to_json(), indent=2, ensure_ascii=False))
        return EXIT_OK
    m = index.manifest
    print(f"index      {index.path.resolve()}")
    print(f"built      {m.built_at} in {m.build_seconds} s  (build {m.build_id})")
    print(f"model      {m.model.name}  dim {m.model.dim}  weights {m.model.fingerprint[:12]}")
    print(f"faiss      {m.index.type}  metric {m.metric}  normalised {m.normalized}")
    print(f"chunker    {json.dumps(asdict(m.chunker))}")
    print(f"counts     {json.dumps(asdict(m.counts))}")
    try:
        check_fresh(m, settings.corpus_dir, settings.index_dir)
        print("corpus     up to date")
    except RagbotError as exc:
        print(f"corpus     STALE: {exc.message}")
    for doc_id, doc in m.documents.items():
        print(f"document   {doc_id}: {doc.title} ({doc.source})")
    for chunk in index.chunks[: args.chunks]:
        section = index.sections[chunk.section_id].heading
        print(
            f"\nchunk {chunk.chunk_id}  [{chunk.start}:{chunk.end}]  {chunk.tokens} tokens  § {section}"
        )
        print(textwrap.indent(textwrap.fill(chunk.text, 96), "  "))
    return EXIT_OK


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    """Print the top passages for a query."""
    from ragbot.pipeline import Pipeline

    pipeline = Pipeline.load(settings)
    vector = pipeline.embed_query(args.query)
    for rank, hit in enumerate(pipeline.retriever.passages(args.query, vector, args.k), start=1):
        section = pipeline.index.sections[hit.section_id].heading
        dense = f"{hit.dense:.3f}" if hit.dense is not None else "-"
        lexical = f"{hit.lexical:.2f}" if hit.lexical is not None else "-"
        print(
            f"{rank}. rrf {hit.score:.4f}  cosine {dense}  bm25 {lexical}  {hit.doc_id}[{hit.start}:{hit.end}]  § {section}"
        )
        print(textwrap.indent(textwrap.fill(hit.text, 96), "   "))
    return EXIT_OK


def format_answer(answer: Answer) -> str:
    """The terminal rendering of a reply: answer, sources, disclaimer."""
    lines = [textwrap.fill(answer.answer, 96), ""]
    for c in answer.citations:
        where = c.url or c.doc_id
        lines.append(f"[{c.id}] {c.section} ({where}, characters {c.start}-{c.end})")
        lines.append(textwrap.indent(textwrap.fill(f"“{c.quote}”", 92), "    "))
    if answer.suggestions:
        lines += ["", "You could also ask:"] + [f"  - {s}" for s in answer.suggestions]
    lines += ["", textwrap.fill(answer.disclaimer, 96)]
    return "\n".join(lines)


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    """Answer one question in the terminal."""
    from ragbot.pipeline import Pipeline

    pipeline = Pipeline.load(settings)
    request_id = uuid.uuid4().hex
    started = time.perf_counter()
    trace = pipeline.ask_traced(args.question)
    latency_ms = (time.perf_counter() - started) * 1000
    if args.json:
        from ragbot.api.schemas import AskResponse

        print(AskResponse.from_answer(trace.answer, request_id).model_dump_json(indent=2))
    else:
        print(format_answer(trace.answer))
    keep_cli_reply(settings, pipeline, trace, request_id, args.question, latency_ms)
    return EXIT_OK


def keep_cli_reply(
    settings: Settings,
    pipeline: Pipeline,
    trace: Trace,
    request_id: str,
    question: str,
    latency_ms: float,
) -> None:
    """Write the reply's record (channel "cli"); a store that cannot be opened is one warning."""
    from ragbot.records import Records
    from ragbot.records.keep import keep_reply, record_of

    try:
        records = Records.open(settings)
    except RagbotError as exc:
        logging.getLogger("ragbot.cli").warning("reply record not written: %s", exc.message)
        return
    try:
        make = partial(
            record_of,
            pipeline,
            trace,
            request_id,
            "cli",
            question,
            latency_ms,
            keep_questions=settings.keep_questions,
        )
        keep_reply(records, make, request_id)
    finally:
        records.close()


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Run the HTTP service with uvicorn (one worker: the model is CPU-bound on two cores)."""
    from ragbot.logs import setup_json_logging

    updates: dict[str, object] = {
        k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None
    }
    if args.no_build:
        updates["auto_build"] = False
    settings = settings.model_copy(update=updates)
    if settings.auto_build:
        from ragbot.api import create_app
        from ragbot.api.server import serve

        # A build may take minutes: bind at once, and load (or build) in the background.
        setup_json_logging()
        serve(create_app(settings), settings)
        return EXIT_OK
    from concurrent.futures import ThreadPoolExecutor

    from ragbot.pipeline import Pipeline

    # The index is built: load it before binding, so that the first /readyz can be 200, and
    # fail fast (exit 3) on a missing, stale or corrupt one. New builds still go live. ONNX
    # Runtime reads its model without the GIL, so the web framework is imported meanwhile.
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="load") as pool:
        loading = pool.submit(Pipeline.load, settings, build_if_needed=False)
        from ragbot.api import create_app
        from ragbot.api.server import serve

        pipeline = loading.result()
    setup_json_logging()
    logging.getLogger("ragbot.api").info(
        "ready", extra={"seconds": round(time.perf_counter() - started, 2)}
    )
    serve(create_app(settings, pipeline, watch=True), settings)
    return EXIT_OK


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    """Run the evaluation (see ragbot/evaluation.py)."""
    from ragbot.evaluation import run_cli

    return run_cli(args, settings)


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    """Write the content report of the records store (see ragbot/reporting/)."""
    from pathlib import Path

    from ragbot.reporting import run_report

    out = Path(args.out) if args.out else settings.report_dir
    for path in run_report(settings, since=args.since, out=out):
        print(f"wrote {path}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
