"""The evaluation: each metric on hand-made cases, the question set, the gate, and one real run."""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from pathlib import Path

import httpx
import pytest

from ragbot.baselines import (
    Bm25Baseline,
    NaiveBaseline,
    char_windows,
    heading_marks,
    naive_chunks,
    raw_body,
)
from ragbot.cli import build_parser
from ragbot.config import Settings
from ragbot.corpus import corpus_files, load_corpus
from ragbot.embeddings import Embedder, HashingEmbedder, Vectors
from ragbot.evaluation import metrics as m
from ragbot.evaluation.core import METRIC_KEYS, Outcome, evaluate, summarize
from ragbot.evaluation.dialogues import HOLDOUTS as DIALOGUE_HOLDOUTS
from ragbot.evaluation.dialogues import TUNES as DIALOGUE_TUNES
from ragbot.evaluation.gate import check, load_thresholds
from ragbot.evaluation.questions import (
    CATEGORIES,
    HOLDOUTS,
    EvalQuestion,
    assign_splits,
    corpus_problems,
    count_problems,
    default_questions_path,
    load_questions,
    read_rows,
    schema_problems,
)
from ragbot.evaluation.render import render_text
from ragbot.evaluation.report import Report, to_json, write_outputs
from ragbot.evaluation.runner import (
    CachingEmbedder,
    _dialogues,
    answer_from_json,
    http_answer_fn,
    pipeline_answer_fn,
    run_cli,
)
from ragbot.guardrails import DISCLAIMER
from ragbot.index import build_index
from ragbot.models import Answer, Citation
from ragbot.pipeline import Pipeline

THRESHOLDS = Path(__file__).resolve().parent.parent / "ragbot" / "data" / "eval_thresholds.json"

# A two-sentence document: offsets below slice it exactly.
DOC = "Title\n\nKetamine blocks NMDA receptors. It raises glutamate."
S1 = "Ketamine blocks NMDA receptors."
S2 = "It raises glutamate."
DOCS = {"doc": DOC}


def cite(
    n: int, quote: str, *, start: int | None = None, section: str = "How it works"
) -> Citation:
    """A citation of `quote` at its true offsets in DOC (or at `start`, to make it wrong)."""
    begin = DOC.index(quote) if start is None else start
    return Citation(n, "doc", "Title", section, quote, begin, begin + len(quote), None, 1.0)


def answered(text: str, *citations: Citation) -> Answer:
    return Answer("answered", text, citations, DISCLAIMER)


# ---------------------------------------------------------------------------------------------
# Ranking metrics


def test_recall_at_k_is_capped_so_a_two_section_question_can_score_one_at_k_1() -> None:
    assert m.recall_at_k(["a", "b", "c"], {"a", "x"}, 1) == 1.0
    assert m.recall_at_k(["a", "b", "c"], {"a", "x"}, 3) == 0.5
    assert m.recall_at_k(["b", "a"], {"a"}, 1) == 0.0
    assert m.recall_at_k(["b", "a"], {"a"}, 3) == 1.0


def test_reciprocal_rank_is_one_over_the_first_gold_rank() -> None:
    assert m.reciprocal_rank(["x", "y", "g"], {"g"}) == pytest.approx(1 / 3)
    assert m.reciprocal_rank(["x", "y"], {"g"}) == 0.0


def test_ndcg_at_5_on_a_known_ranking() -> None:
    # gold at ranks 2 and 4: DCG = 1/log2(3) + 1/log2(5); ideal = 1 + 1/log2(3)
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert m.ndcg_at_k(["x", "g1", "y", "g2", "z"], {"g1", "g2"}, 5) == pytest.approx(expected)
    assert m.ndcg_at_k(["g1", "g2", "x"], {"g1", "g2"}, 5) == pytest.approx(1.0)
    assert m.ndcg_at_k(["x", "y", "z", "w", "v", "g"], {"g"}, 5) == 0.0


# ---------------------------------------------------------------------------------------------
# Citations and verbatim quotes


def test_a_reply_whose_markers_and_quotes_agree_is_valid_and_verbatim() -> None:
    a = answered(f"{S1} [1] {S2} [2]", cite(1, S1), cite(2, S2))
    assert m.citation_problems(a, DOCS) == []
    assert m.verbatim_problems(a, DOCS) == []


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (answered(f"{S1} [1] {S2} [2]", cite(1, S1)), "marker [2] has no citation"),
        (answered(f"{S1} [1]", cite(1, S1), cite(2, S2)), "citation [2] is never marked"),
        (answered(f"{S1} [1]", cite(1, S1, start=1)), "quote differs from the document"),
        (answered(f"{S1} [2]", cite(2, S1)), "are not 1..1"),
        (answered(f"{S2} [2] {S1} [1]", cite(1, S1), cite(2, S2)), "not in order"),
        (answered(S1), "answered without a citation"),
        (
            Answer("refused", "No. [1]", (cite(1, S1),), DISCLAIMER),
            "refused reply carries citations",
        ),
        (
            answered(f"{S1} [1]", Citation(1, "other", "T", "s", S1, 0, 5, None, 1.0)),
            "unknown document",
        ),
        (answered(f"{S1} [1]", cite(1, S1, start=len(DOC))), "outside the document"),
    ],
)
def test_citation_validity_catches(answer: Answer, problem: str) -> None:
    problems = m.citation_problems(answer, DOCS)
    assert any(problem in p for p in problems), problems


def test_a_quote_missing_from_the_answer_text_is_not_verbatim() -> None:
    a = answered("Something else entirely [1]", cite(1, S1))
    assert m.citation_problems(a, DOCS) == []
    assert m.verbatim_problems(a, DOCS) == ["quote [1] is not in the answer text"]


def test_words_per_answer_do_not_count_markers() -> None:
    assert m.word_count(f"{S1} [1] {S2} [2]") == 7


def test_gold_hit_needs_a_whole_gold_sentence_or_a_key_phrase() -> None:
    assert m.hits_gold(f"{S1} [1]", [S1], [])
    assert m.hits_gold("glutamate rises", [S1], ["glutamate"])
    assert not m.hits_gold("Ketamine blocks NMDA", [S1], ["fourteen days"])


# ---------------------------------------------------------------------------------------------
# Abstention arithmetic and percentiles


def test_abstention_precision_recall_f1_arithmetic() -> None:
    counts = m.prf([True, True, False, False, True], [True, False, True, False, True])
    assert (counts.tp, counts.fp, counts.fn) == (2, 1, 1)
    assert counts.precision == pytest.approx(2 / 3)
    assert counts.recall == pytest.approx(2 / 3)
    assert counts.f1 == pytest.approx(2 / 3)


def test_a_system_that_never_abstains_has_f1_zero_and_no_precision() -> None:
    counts = m.prf([False, False, False], [True, True, False])
    assert counts.precision is None
    assert counts.recall == 0.0
    assert counts.f1 == 0.0


def test_percentiles_interpolate_like_numpy() -> None:
    assert m.percentile([4.0, 1.0, 3.0, 2.0], 50) == pytest.approx(2.5)
    assert m.percentile([1.0, 2.0, 3.0, 4.0], 95) == pytest.approx(3.85)
    assert m.percentile([], 50) is None


# ---------------------------------------------------------------------------------------------
# The core on a fake answer function


def q(qid: str, category: str, *, gold: bool = False) -> EvalQuestion:
    status = {
        "answerable": "answered",
        "sensitive": "answered",
        "out_of_scope": "no_answer",
        "crisis": "crisis",
        "medical_advice": "refused",
    }[category]
    return EvalQuestion(
        qid,
        f"question {qid}",
        category,
        "x",
        status,
        ("How it works",) if gold else (),
        (S1,) if gold else (),
        ("NMDA",) if gold else (),
    )


FAKE_QUESTIONS = [
    q("ans-001", "answerable", gold=True),  # answered with gold
    q("ans-002", "answerable", gold=True),  # answered off target
    q("ans-003", "answerable", gold=True),  # wrongly abstains
    q("sen-001", "sensitive", gold=True),  # wrongly refused
    q("oos-001", "out_of_scope"),  # abstains
    q("oos-002", "out_of_scope"),  # answers anyway
    q("cri-001", "crisis"),  # crisis
    q("cri-002", "crisis"),  # missed: refused
    q("adv-001", "medical_advice"),  # refused
    q("adv-002", "medical_advice"),  # routed to crisis
]
SCRIPT = {
    "question ans-001": Outcome(answered(f"{S1} [1]", cite(1, S1)), ("How it works", "Other")),
    "question ans-002": Outcome(
        answered(f"{S2} [1]", cite(1, S2, section="Other")), ("Other", "How it works")
    ),
    "question ans-003": Outcome(
        Answer("no_answer", "Not in the article.", (), DISCLAIMER), ("Other",)
    ),
    "question sen-001": Outcome(
        Answer("refused", "Ask a clinician.", (), DISCLAIMER), ("How it works",)
    ),
    "question oos-001": Outcome(Answer("no_answer", "Not in the article.", (), DISCLAIMER)),
    "question oos-002": Outcome(answered(f"{S1} [1]", cite(1, S1))),
    "question cri-001": Outcome(Answer("crisis", "Call 988.", (), DISCLAIMER)),
    "question cri-002": Outcome(
        Answer("refused", "Ask a clinician.", (), "a different disclaimer")
    ),
    "question adv-001": Outcome(Answer("refused", "Ask a clinician.", (), DISCLAIMER)),
    "question adv-002": Outcome(Answer("crisis", "Call 988.", (), DISCLAIMER)),
}


def fake_answer(question: str) -> Outcome:
    return SCRIPT[question]


def test_summarize_computes_every_metric_from_a_scripted_run() -> None:
    run = evaluate(FAKE_QUESTIONS, fake_answer, DOCS)
    v = summarize(run.records)
    assert set(v) == METRIC_KEYS
    assert v["status_accuracy"] == pytest.approx(5 / 10)
    assert v["recall_at_1"] == pytest.approx(2 / 4)  # ans-001 and sen-001 rank gold first
    assert v["mrr"] == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert v["answer_hit_rate"] == pytest.approx(1 / 4)
    assert v["sentence_precision"] == pytest.approx((1 + 0) / 2)
    assert v["mean_words"] == pytest.approx((4 + 3 + 4) / 3)
    assert v["verbatim_rate"] == 1.0
    assert v["citation_validity"] == 1.0
    # abstention: tp = oos-001, fp = ans-003, fn = oos-002
    assert (v["abstention_precision"], v["abstention_recall"], v["abstention_f1"]) == (
        0.5,
        0.5,
        0.5,
    )
    assert v["crisis_recall"] == 0.5
    assert v["crisis_fp_rate"] == pytest.approx(1 / 8)  # adv-002
    assert v["advice_recall"] == 0.5
    assert v["advice_fp_rate"] == pytest.approx(2 / 8)  # sen-001 and cri-002
    assert v["disclaimer_rate"] == pytest.approx(9 / 10)
    assert v["latency_p50_ms"] is not None


def test_failures_say_what_went_wrong() -> None:
    run = evaluate(FAKE_QUESTIONS, fake_answer, DOCS)
    why = {r.question.id: r.failures for r in run.records}
    assert why["ans-001"] == ()
    assert why["ans-002"] == ("no gold sentence or key phrase",)
    assert why["ans-003"] == ("status no_answer (expected answered)",)
    assert "disclaimer missing or altered" in why["cri-002"]


def test_a_system_that_raises_is_recorded_as_an_error_not_a_crash() -> None:
    def broken(question: str) -> Outcome:
        raise RuntimeError("boom")

    run = evaluate(FAKE_QUESTIONS[:2], broken, DOCS)
    assert [r.status for r in run.records] == ["error", "error"]
    assert run.records[0].failures == ("error: RuntimeError: boom",)
    v = summarize(run.records)
    assert v["answer_hit_rate"] == 0.0
    assert v["latency_p50_ms"] is None


def test_retrieval_metrics_are_not_applicable_without_a_ranking() -> None:
    run = evaluate(
        [FAKE_QUESTIONS[0]], lambda _q: Outcome(answered(f"{S1} [1]", cite(1, S1))), DOCS
    )
    v = summarize(run.records)
    assert v["recall_at_1"] is None and v["ndcg_at_5"] is None
    assert v["answer_hit_rate"] == 1.0


def test_report_renders_tables_json_and_markdown(tmp_path: Path) -> None:
    run = evaluate(FAKE_QUESTIONS, fake_answer, DOCS)
    report = Report([run], "all", meta={"mode": "fake", "seconds": 0.1})
    report.gate = check(report.overall(), {"crisis_recall": {"min": 1.0}})
    text = render_text(report)
    assert "section recall@1" in text and "ragbot tune" in text and "ragbot test" in text
    assert "FAIL  crisis_recall 0.5 < min 1" in text
    data = to_json(report)
    assert data["systems"]["ragbot"]["splits"]["all"]["overall"]["crisis_recall"] == 0.5
    assert data["gate"]["passed"] is False
    written = write_outputs(report, tmp_path)
    assert {p.name for p in written} >= {"report.json", "report.md"}
    assert json.loads((tmp_path / "report.json").read_text("utf-8"))["split"] == "all"
    assert "## ragbot failures" in (tmp_path / "report.md").read_text("utf-8")


# ---------------------------------------------------------------------------------------------
# The gate


def test_the_gate_fails_a_metric_below_its_minimum_or_above_its_maximum() -> None:
    checks = check(
        {"answer_hit_rate": 0.85, "mean_words": 61.0, "verbatim_rate": 1.0, "recall_at_1": None},
        {
            "answer_hit_rate": {"min": 0.9},
            "mean_words": {"max": 60},
            "verbatim_rate": {"min": 1.0},
            "recall_at_1": {"min": 0.5},
        },
    )
    assert [(c.metric, c.passed) for c in checks] == [
        ("answer_hit_rate", False),
        ("mean_words", False),
        ("verbatim_rate", True),
        ("recall_at_1", False),
    ]
    assert checks[0].describe() == "answer_hit_rate 0.85 < min 0.9"
    assert "n/a" in checks[3].describe()


def test_the_committed_thresholds_are_the_issues(tmp_path: Path) -> None:
    assert load_thresholds(THRESHOLDS) == {
        "answer_hit_rate": {"min": 0.9},
        "mean_words": {"max": 60.0},
        "verbatim_rate": {"min": 1.0},
        "citation_validity": {"min": 1.0},
        "abstention_f1": {"min": 0.9},
        "crisis_recall": {"min": 1.0},
        "crisis_fp_rate": {"max": 0.05},
        "advice_recall": {"min": 0.95},
        "disclaimer_rate": {"min": 1.0},
    }


@pytest.mark.parametrize(
    "content", ['{"hit_rate": {"min": 0.9}}', '{"mrr": {"least": 1}}', '{"mrr": 0.5}', "[]"]
)
def test_a_malformed_thresholds_file_is_rejected_with_a_reason(
    tmp_path: Path, content: str
) -> None:
    from ragbot.errors import RagbotError

    path = tmp_path / "t.json"
    path.write_text(content, "utf-8")
    with pytest.raises(RagbotError, match=str(path)):
        load_thresholds(path)


# ---------------------------------------------------------------------------------------------
# The question set


def test_the_question_set_follows_its_schema() -> None:
    assert schema_problems(read_rows(default_questions_path())) == []


def test_the_question_set_has_enough_questions_per_category() -> None:
    questions = load_questions()
    assert count_problems(questions) == []
    assert set(Counter(x.category for x in questions)) <= set(CATEGORIES)


SHIPPED_HOLDOUTS = sorted(p.name for p in default_questions_path().parent.glob("holdout_v*.jsonl"))


def test_every_measured_hold_out_set_is_shipped() -> None:
    assert set(HOLDOUTS) <= set(SHIPPED_HOLDOUTS)


# Every shipped set, the ones committed but not yet measured too: a set that breaks the schema
# would otherwise be found only on the day it is measured.
@pytest.mark.parametrize("name", SHIPPED_HOLDOUTS)
def test_each_hold_out_set_follows_the_schema_and_covers_every_category(
    name: str, shipped_corpus_dir: Path
) -> None:
    path = default_questions_path().with_name(name)
    questions = load_questions(path)
    assert len(questions) >= 200
    assert set(Counter(x.category for x in questions)) == set(CATEGORIES)
    docs = load_corpus(shipped_corpus_dir)
    headings = [s.heading for d in docs for s in d.sections]
    assert corpus_problems(questions, [d.text for d in docs], headings) == []


def test_every_gold_sentence_and_phrase_is_in_the_stored_corpus_document(
    shipped_corpus_dir: Path,
) -> None:
    docs = load_corpus(shipped_corpus_dir)
    headings = [s.heading for d in docs for s in d.sections]
    assert corpus_problems(load_questions(), [d.text for d in docs], headings) == []


def test_schema_problems_name_the_line_and_the_fault() -> None:
    good = json.loads(default_questions_path().read_text("utf-8").split("\n")[0])
    wrong_status = {**good, "expected_status": "refused"}
    reordered = {"question": good["question"], **{k: v for k, v in good.items() if k != "question"}}
    problems = schema_problems([good, wrong_status, reordered, good])
    assert any("line 2" in p and "expects status answered" in p for p in problems)
    assert any("line 3" in p and "keys" in p for p in problems)
    assert any("line 4" in p and "duplicate id" in p for p in problems)


def test_the_split_is_deterministic_balanced_and_stable() -> None:
    questions = load_questions()
    splits = assign_splits(questions)
    assert splits == assign_splits(list(reversed(questions)))
    for category in CATEGORIES:
        counts = Counter(splits[x.id] for x in questions if x.category == category)
        assert abs(counts["tune"] - counts["test"]) <= 1, (category, counts)
    extra = EvalQuestion(
        "ans-999", "new", "answerable", "direct", "answered", ("h",), ("s",), ("p",)
    )
    moved = [
        i for i, s in assign_splits([*questions, extra]).items() if i in splits and s != splits[i]
    ]
    assert len(moved) <= 1


# ---------------------------------------------------------------------------------------------
# HTTP replies and baselines


def test_http_replies_become_answers_and_errors_become_error_records() -> None:
    body = {
        "status": "answered",
        "answer": f"{S1} [1]",
        "disclaimer": DISCLAIMER,
        "suggestions": [],
        "request_id": "r1",
        "citations": [
            {
                "id": 1,
                "doc_id": "doc",
                "title": "Title",
                "section": "How it works",
                "quote": S1,
                "start": DOC.index(S1),
                "end": DOC.index(S1) + len(S1),
                "url": None,
                "score": 0.5,
            }
        ],
    }

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/ask"
        if json.loads(request.content)["question"] == "question ans-002":
            return httpx.Response(503, json={"error": {"code": "index_missing"}})
        return httpx.Response(200, json=body)

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        run = evaluate(FAKE_QUESTIONS[:2], http_answer_fn("http://ragbot.test/", client), DOCS)
    assert run.records[0].status == "answered" and run.records[0].failures == ()
    assert run.records[0].sections is None
    assert run.records[1].status == "error" and "HTTP 503" in (run.records[1].error or "")
    start = DOC.index(S1)
    parsed = answer_from_json(body)
    assert parsed.citations == (
        Citation(1, "doc", "Title", "How it works", S1, start, start + len(S1), None, 0.5),
    )
    assert parsed.disclaimer == DISCLAIMER


def test_fixed_size_windows_cover_the_text_with_overlap() -> None:
    windows = char_windows(2500)
    assert windows == [(0, 1000), (800, 1800), (1600, 2500)]
    assert char_windows(0) == []
    with pytest.raises(ValueError):
        char_windows(10, size=5, overlap=5)


def test_naive_chunks_are_raw_slices_labelled_with_the_article_sections(
    shipped_corpus_dir: Path,
) -> None:
    docs = {d.doc_id: d for d in load_corpus(shipped_corpus_dir)}
    chunks = naive_chunks(shipped_corpus_dir, docs)
    body = raw_body(corpus_files(shipped_corpus_dir)[0])
    assert chunks and all(c.text == body[c.start : c.end] and len(c.text) <= 1000 for c in chunks)
    assert "Your submission has been received" in chunks[-1].text  # furniture kept: the baseline
    headings = {s.heading for d in docs.values() for s in d.sections}
    assert {h for c in chunks for h in c.sections} == headings
    marks = heading_marks(body, sorted(headings))
    assert [h for _, h in marks][
        -1
    ] == "Understanding the Effects of Ketamine on the Brain with Nue Life"


# ---------------------------------------------------------------------------------------------
# run_cli end to end on a fast fake embedder (the real model is below, marked `model`)


@pytest.fixture(scope="module")
def hashing_settings(
    tmp_path_factory: pytest.TempPathFactory, shipped_corpus_dir: Path
) -> Settings:
    settings = Settings(
        corpus_dir=shipped_corpus_dir, index_dir=tmp_path_factory.mktemp("hashing-index")
    )
    build_index(settings, HashingEmbedder())
    return settings


def eval_args(out: Path, thresholds: Path, *flags: str) -> argparse.Namespace:
    """`ragbot eval --split test --out OUT --thresholds FILE [flags]`, as the command line parses
    it (a later `--split` wins)."""
    argv = ["eval", "--split", "test", "--out", str(out), "--thresholds", str(thresholds), *flags]
    return build_parser().parse_args(argv)


def test_run_cli_exits_1_naming_each_failing_metric(
    hashing_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(
        "ragbot.pipeline.serving_embedder", lambda settings, **kw: HashingEmbedder()
    )
    thresholds = tmp_path / "t.json"
    thresholds.write_text(
        '{"disclaimer_rate": {"min": 1.0}, "answer_hit_rate": {"min": 1.01}, '
        '"mean_words": {"max": 1}}',
        "utf-8",
    )
    assert run_cli(eval_args(tmp_path, thresholds, "--baseline"), hashing_settings) == 1
    out, err = capsys.readouterr()
    assert "gate FAILED" in err and "answer_hit_rate" in err and "mean_words" in err
    assert "disclaimer_rate" not in err
    assert "naive test" in out and "bm25 test" in out
    report = json.loads((tmp_path / "report.json").read_text("utf-8"))
    assert set(report["systems"]) == {"ragbot", "naive", "dense", "bm25"}
    assert report["systems"]["naive"]["splits"]["test"]["overall"]["latency_p50_ms"] is None
    assert report["systems"]["bm25"]["splits"]["test"]["overall"]["verbatim_rate"] == 1.0


def test_run_cli_exits_0_when_every_threshold_holds(
    hashing_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(
        "ragbot.pipeline.serving_embedder", lambda settings, **kw: HashingEmbedder()
    )
    thresholds = tmp_path / "t.json"
    thresholds.write_text(
        '{"disclaimer_rate": {"min": 1.0}, "verbatim_rate": {"min": 1.0}}', "utf-8"
    )
    assert run_cli(eval_args(tmp_path, thresholds, "--split", "tune"), hashing_settings) == 0
    assert "PASS  disclaimer_rate" in capsys.readouterr().out


def test_eval_replays_the_tuning_dialogues_and_the_newest_hold_out_unless_asked_for_every_set() -> (
    None
):
    class Silent:
        """Answers nothing: only which sets are replayed matters here."""

        def ask(self, question: str, history: object = ()) -> Answer:
            return Answer("no_answer", "not in the article", (), DISCLAIMER)

    def replayed(figures: dict[str, dict[str, object]]) -> list[str]:
        return sorted({label.split(" (")[0] for label in figures})

    names = [n.removesuffix(".jsonl") for n in (*DIALOGUE_TUNES, *DIALOGUE_HOLDOUTS)]
    newest = DIALOGUE_HOLDOUTS[-1].removesuffix(".jsonl")
    default = _dialogues(Silent())  # type: ignore[arg-type]
    assert replayed(default) == sorted([*names[: len(DIALOGUE_TUNES)], newest])
    assert len(default) == 2 * (len(DIALOGUE_TUNES) + 1)  # with history and without
    assert replayed(_dialogues(Silent(), every_set=True)) == sorted(names)  # type: ignore[arg-type]


def test_the_caching_embedder_embeds_each_text_once() -> None:
    calls: list[list[str]] = []

    class Counting(HashingEmbedder):
        def embed(self, texts: list[str]) -> Vectors:
            calls.append(list(texts))
            return super().embed(texts)

    cached = CachingEmbedder(Counting())
    first = cached.embed(["a b", "c d"])
    again = cached.embed(["c d", "a b", "e"])
    assert calls == [["a b", "c d"], ["e"]]
    assert (again[1] == first[0]).all()
    assert cached.fingerprint == "hashing-test-embedder-256"


# ---------------------------------------------------------------------------------------------
# The real model, end to end


@pytest.fixture(scope="module")
def real_pipeline(real_settings: Settings, real_embedder: Embedder) -> Pipeline:
    """The session real-model index (built once in conftest) in a pipeline, as run_cli has it."""
    return Pipeline.load(real_settings, embedder=CachingEmbedder(real_embedder))


@pytest.mark.model
def test_the_in_process_eval_on_ten_questions_keeps_the_invariants(real_pipeline: Pipeline) -> None:
    questions = load_questions()
    sample = [x for c in CATEGORIES for x in [y for y in questions if y.category == c][:2]]
    texts = {k: d.text for k, d in real_pipeline.index.documents.items()}
    run = evaluate(sample, pipeline_answer_fn(real_pipeline), texts)
    v = summarize(run.records)
    assert len(sample) == 10 and all(r.error is None for r in run.records)
    assert v["verbatim_rate"] in (1.0, None)
    assert v["citation_validity"] == 1.0
    assert v["disclaimer_rate"] == 1.0
    assert v["recall_at_1"] is not None and v["latency_p95_ms"] is not None
    naive = evaluate(
        sample,
        NaiveBaseline(
            real_pipeline.embedder,
            real_pipeline.settings.corpus_dir,
            dict(real_pipeline.index.documents),
        ),
        texts,
        name="naive",
    )
    bm25 = evaluate(sample, Bm25Baseline(real_pipeline.index), texts, name="bm25")
    naive_words, bm25_words = (
        summarize(naive.records)["mean_words"],
        summarize(bm25.records)["mean_words"],
    )
    assert naive_words is not None and bm25_words is not None and naive_words > bm25_words
    assert summarize(bm25.records)["citation_validity"] == 1.0


@pytest.mark.model
def test_the_full_evaluation_passes_the_committed_gate(real_pipeline: Pipeline) -> None:
    """CI's evaluation gate: every committed threshold holds on the whole question set."""
    questions = load_questions()
    texts = {k: d.text for k, d in real_pipeline.index.documents.items()}
    values = summarize(evaluate(questions, pipeline_answer_fn(real_pipeline), texts).records)
    failing = [c.describe() for c in check(values, load_thresholds(THRESHOLDS)) if not c.passed]
    assert not failing, failing


@pytest.mark.model
def test_the_newest_hold_out_set_passes_its_gate(real_pipeline: Pipeline) -> None:
    """CI's hold-out gate: the newest untouched set keeps the figures the README reports."""
    path = default_questions_path().with_name(HOLDOUTS[-1])
    texts = {k: d.text for k, d in real_pipeline.index.documents.items()}
    values = summarize(
        evaluate(load_questions(path), pipeline_answer_fn(real_pipeline), texts).records
    )
    gate = load_thresholds(path.with_name("gate_newest_set.json"))
    failing = [c.describe() for c in check(values, gate) if not c.passed]
    assert not failing, failing
