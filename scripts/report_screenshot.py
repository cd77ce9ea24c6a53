"""The README's picture of the content report: artifacts/report.png.

Seeds a throwaway records store from the evaluation (the shipped question set and the hold-outs,
in-process, question text kept), rates each answered reply as the evaluation judged it (helpful
when it passed every check, not helpful otherwise), writes the report and photographs the HTML
in Debian's Chromium. Needs a built index (`ragbot build-index`) and the [report] and [test] extras.

    python scripts/report_screenshot.py [--out artifacts/report.png]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ragbot.config import Settings
from ragbot.evaluation.core import evaluate
from ragbot.evaluation.questions import HOLDOUTS, assign_splits, load_questions
from ragbot.evaluation.recording import eval_reply_records
from ragbot.evaluation.runner import pipeline_answer_fn
from ragbot.pipeline import Pipeline
from ragbot.records import Records
from ragbot.reporting import read_report, write_report

CHROMIUM = "/usr/bin/chromium"
WIDTH = 1100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="artifacts/report.png")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ragbot-report-"))
    settings = Settings(database_url=f"sqlite:///{folder / 'records.sqlite3'}", keep_questions=True)
    pipeline = Pipeline.load(settings)
    texts = {k: d.text for k, d in pipeline.index.documents.items()}
    store = Records.open(settings)
    data = Path(__file__).resolve().parent.parent / "ragbot" / "data"
    for path in (None, *(data / name for name in HOLDOUTS)):
        questions = load_questions(path)
        run = evaluate(
            questions, pipeline_answer_fn(pipeline), texts, splits=assign_splits(questions)
        )
        kept = eval_reply_records(
            run.records, build_id=pipeline.index.manifest.build_id, keep_questions=True
        )
        for record, result in zip(kept, [r for r in run.records if r.error is None], strict=True):
            store.add_reply(record)
            if result.answered:
                store.add_feedback(record.request_id, "down" if result.failures else "up")
    store.close()
    written = write_report(read_report(settings, embedder=pipeline.embedder), folder)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": WIDTH, "height": 900})
        page.goto(written[1].resolve().as_uri())
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=args.out, full_page=True)
        browser.close()
    print(f"wrote {args.out} from {written[1]}")


if __name__ == "__main__":
    main()
