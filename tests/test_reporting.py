"""The content report (`ragbot report`) and the evaluation that feeds it (`ragbot eval --record`).

Store tests run on the default SQLite file and on a real PostgreSQL cluster
(tests/postgres_server.py), as tests/test_records.py does.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from ragbot.api.app import create_app
from ragbot.cli import build_parser, main
from ragbot.config import Settings
from ragbot.embeddings import Embedder, HashingEmbedder
from ragbot.errors import RagbotError
from ragbot.evaluation import load_questions, run_cli
from ragbot.index import build_index
from ragbot.pipeline import Pipeline
from ragbot.records import Records, ReplyRecord, metadata, reply_record
from ragbot.reporting import read_report, write_report
from ragbot.reporting.gather import gather, parse_since
from ragbot.reporting.grouping import group_questions
from ragbot.reporting.render import render_html, render_markdown

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# --since


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", NOW - timedelta(days=7)),
        ("12h", NOW - timedelta(hours=12)),
        ("2w", NOW - timedelta(weeks=2)),
        ("2025-03-01", datetime(2025, 3, 1, tzinfo=UTC)),
        ("2025-03-01T08:30:00+01:00", datetime(2025, 3, 1, 7, 30, tzinfo=UTC)),
    ],
)
def test_since_reads_a_duration_back_from_now_or_an_iso_date(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["last week", "7 days", "-3d", "2025-13-01"])
def test_since_refuses_what_is_neither_a_duration_nor_a_date(text: str) -> None:
    with pytest.raises(RagbotError, match="neither a duration"):
        parse_since(text, NOW)


# ---------------------------------------------------------------------------------------------
# Stores and a fast pipeline


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh SQLite file, or an emptied PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'records.sqlite3'}"
    url: str = request.getfixturevalue("postgres_server").url
    engine = sa.create_engine(url)
    metadata.drop_all(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def hashing_settings(
    tmp_path_factory: pytest.TempPathFactory, shipped_corpus_dir: Path
) -> Settings:
    """An index of the shipped corpus built with the hashing embedder: no model, fast."""
    settings = Settings(
        corpus_dir=shipped_corpus_dir,
        index_dir=tmp_path_factory.mktemp("report-index") / "index",
        rate_limit="",
    )
    build_index(settings, HashingEmbedder())
    return settings


@pytest.fixture(scope="module")
def pipeline(hashing_settings: Settings) -> Pipeline:
    return Pipeline.load(hashing_settings, embedder=HashingEmbedder())


@pytest.fixture
def records(store_url: str, tmp_path: Path) -> Iterator[Records]:
    store = Records.open(Settings(index_dir=tmp_path / "index", database_url=store_url))
    yield store
    store.close()


def seed(store: Records, rows: list[dict[str, Any]]) -> None:
    for i, row in enumerate(rows):
        values: dict[str, Any] = {
            "request_id": f"r{i}",
            "channel": "api",
            "status": "answered",
            "intent": "article",
            "turn": "new",
            "sections": ["Effects"],
            "build_id": "b1",
            "latency_ms": 10.0,
            "question": f"question {i}",
            "crisis": False,
            "keep_questions": False,
            "at": NOW,
        }
        values.update(row)
        store.add_reply(reply_record(**values))


# ---------------------------------------------------------------------------------------------
# The evaluation feeds the report


def eval_args(out: Path) -> argparse.Namespace:
    """`ragbot eval --split test --record --out OUT`, as the command line parses it."""
    return build_parser().parse_args(["eval", "--split", "test", "--record", "--out", str(out)])


def test_a_recorded_evaluation_gives_the_report_the_evaluations_own_counts(
    hashing_settings: Settings, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ragbot.pipeline.serving_embedder", lambda settings: HashingEmbedder())
    settings = hashing_settings.model_copy(update={"database_url": store_url})
    assert run_cli(eval_args(tmp_path / "eval"), settings) == 0
    evaluated = json.loads((tmp_path / "eval" / "report.json").read_text("utf-8"))
    counts = evaluated["systems"]["ragbot"]["splits"]["test"]["status_counts"]
    assert counts["error"] == 0

    report = read_report(settings, embedder=HashingEmbedder())
    assert report.channels == {"eval": sum(counts.values())}
    assert {s: report.statuses.get(s, 0) for s in counts if s != "error"} == {
        s: n for s, n in counts.items() if s != "error"
    }
    assert (report.crisis, report.refused, report.unanswered) == (
        counts["crisis"],
        counts["refused"],
        counts["no_answer"],
    )
    assert report.crisis > 0 and report.refused > 0 and report.unanswered > 0
    assert sum(d.counts["answered"] for d in report.by_day) == counts["answered"]
    # Without kept text, the unanswered are counted by intent and the section they came nearest.
    assert report.groups == []
    assert sum(t.replies for t in report.topics) == counts["no_answer"]
    assert all(t.nearest_section for t in report.topics)
    assert report.suggestions

    written = write_report(report, tmp_path / "content")
    pages = "".join(p.read_text("utf-8") for p in written)
    asked = [q.question for q in load_questions()]
    assert not [q for q in asked if q in pages], "question text in a report of records without it"


def test_a_reply_rated_down_through_the_api_is_found_by_its_request_id_and_shown_least_helpful(
    pipeline: Pipeline, store_url: str, tmp_path: Path
) -> None:
    settings = pipeline.settings.model_copy(
        update={"index_dir": tmp_path / "index", "database_url": store_url}
    )
    with TestClient(create_app(settings, pipeline)) as client:
        liked = client.post("/v1/ask", json={"question": "How long does ketamine last?"}).json()
        disliked = client.post(
            "/v1/ask", json={"question": "What does ketamine do to NMDA receptors?"}
        ).json()
        for reply, rating in ((liked, "up"), (disliked, "down")):
            assert reply["status"] == "answered"
            rated = client.post(
                "/v1/feedback", json={"request_id": reply["request_id"], "rating": rating}
            )
            assert rated.status_code == 201
    store = Records.open(settings)
    try:
        kept = store.reply(disliked["request_id"])
        rating = store.feedback(disliked["request_id"])
    finally:
        store.close()
    assert kept is not None and rating is not None and rating.rating == "down"

    report = read_report(settings, embedder=HashingEmbedder())
    worst = report.least_helpful[0]
    down_sections = {c["section"] for c in disliked["citations"]}
    up_sections = {c["section"] for c in liked["citations"]}
    assert worst.section in down_sections and worst.down == 1
    if worst.section not in up_sections:
        assert worst.down_share == 1.0
    assert (report.rated_up, report.rated_down) == (1, 1)


# ---------------------------------------------------------------------------------------------
# What the report shows


def test_since_leaves_out_replies_from_before_it(records: Records, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    seed(
        records,
        [
            {"at": now - timedelta(days=10), "status": "no_answer"},
            {"at": now - timedelta(days=2)},
            {"at": now - timedelta(hours=1), "status": "refused"},
        ],
    )
    settings = Settings(
        index_dir=tmp_path / "index",
        database_url=str(records.engine.url.render_as_string(hide_password=False)),
    )
    recent = read_report(settings, since="7d", embedder=HashingEmbedder())
    everything = read_report(settings, embedder=HashingEmbedder())
    assert (recent.replies, everything.replies) == (2, 3)
    assert recent.statuses["no_answer"] == 0 and recent.refused == 1
    # Every day of the period is shown, quiet days included.
    assert len(recent.by_day) == 8 and recent.by_day[0].day == (now - timedelta(days=7)).date()


def test_the_days_run_to_the_reports_own_day_even_when_today_is_quiet() -> None:
    # Made five minutes after midnight, the last reply an hour before: today still has a row.
    just_after_midnight = datetime(2025, 3, 10, 0, 5, tzinfo=UTC)
    reply = ReplyRecord(
        request_id="r1",
        time=just_after_midnight - timedelta(hours=1),
        channel="api",
        status="answered",
        intent="article",
        turn="first",
        sections=(),
        build_id="b",
        latency_ms=1.0,
    )
    report = gather(
        [reply],
        {},
        embed=None,
        max_distance=0.5,
        since=just_after_midnight - timedelta(days=2),
        now=just_after_midnight,
    )
    assert [d.day.isoformat() for d in report.by_day] == ["2025-03-08", "2025-03-09", "2025-03-10"]
    assert [d.counts["answered"] for d in report.by_day] == [0, 1, 0]


def test_kept_unanswered_questions_are_grouped_and_suggested_and_crises_only_counted(
    records: Records, tmp_path: Path
) -> None:
    now = datetime.now(UTC)  # kept text older than the retention period is deleted on open
    # The hashing embedder reads words: the same words asked twice differently are one group.
    seed(
        records,
        [
            {
                "status": "no_answer",
                "question": "ketamine price in canada",
                "keep_questions": True,
                "at": now,
            },
            {
                "status": "no_answer",
                "question": "ketamine price in canada",
                "keep_questions": True,
                "at": now,
            },
            {
                "status": "no_answer",
                "question": "Ketamine price in Canada?",
                "keep_questions": True,
                "at": now,
            },
            {
                "status": "no_answer",
                "question": "driving after ketamine",
                "keep_questions": True,
                "at": now,
            },
            {
                "status": "crisis",
                "question": "I want to end my life",
                "keep_questions": True,
                "at": now,
                "crisis": True,
            },
            {
                "status": "refused",
                "question": "should I take 50 mg",
                "keep_questions": True,
                "at": now,
            },
        ],
    )
    settings = Settings(
        index_dir=tmp_path / "index",
        database_url=records.engine.url.render_as_string(hide_password=False),
    )
    report = read_report(settings, embedder=HashingEmbedder())
    assert [g.size for g in report.groups] == [3, 1]
    assert report.groups[0].representative == "ketamine price in canada"
    assert report.suggestions[0] == "ketamine price in canada (3 asked)"
    assert (report.crisis, report.refused, report.topics) == (1, 1, [])
    page = render_html(report) + render_markdown(report)
    assert "Ketamine price in Canada?" in page
    assert "end my life" not in page


def test_the_html_page_is_self_contained(records: Records, tmp_path: Path) -> None:
    seed(
        records,
        [
            {"status": s, "at": NOW - timedelta(days=i % 3)}
            for i, s in enumerate(["answered", "no_answer", "refused", "crisis"] * 3)
        ],
    )
    settings = Settings(
        index_dir=tmp_path / "index",
        database_url=records.engine.url.render_as_string(hide_password=False),
    )
    page = render_html(read_report(settings, embedder=HashingEmbedder()))
    links = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]*)""", page, flags=re.I)
    assert links and all(link.startswith("data:image/png;base64,") for link in links)
    assert not re.search(r"https?://", page)
    assert "<style>" in page


def test_the_report_command_writes_markdown_and_html(
    records: Records, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(records, [{"at": datetime.now(UTC)}])
    monkeypatch.setenv(
        "RAGBOT_DATABASE_URL", records.engine.url.render_as_string(hide_password=False)
    )
    monkeypatch.setenv("RAGBOT_INDEX_DIR", str(tmp_path / "index"))
    assert main(["report", "--since", "1d", "--out", str(tmp_path / "out")]) == 0
    assert "1 replies" in (tmp_path / "out" / "report.md").read_text("utf-8")
    assert (tmp_path / "out" / "report.html").is_file()


# ---------------------------------------------------------------------------------------------
# The nearest section


def test_a_store_made_before_the_nearest_section_gains_the_column_in_place(
    store_url: str, tmp_path: Path
) -> None:
    old = sa.MetaData()
    sa.Table(
        "replies",
        old,
        *(
            sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
            for c in metadata.tables["replies"].columns
            if c.name != "nearest_section"
        ),
    )
    engine = sa.create_engine(store_url)
    old.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO replies (request_id, time, channel, status, intent, turn, sections, "
                "build_id, latency_ms) VALUES ('old', :t, 'api', 'no_answer', 'other', 'new', '[]', "
                "'b0', 1.0)"
            ),
            {"t": NOW},
        )
    engine.dispose()
    store = Records.open(Settings(index_dir=tmp_path / "index", database_url=store_url))
    try:
        seed(store, [{"status": "no_answer", "nearest_section": "Effects", "sections": []}])
        before, after = store.reply("old"), store.reply("r0")
    finally:
        store.close()
    assert before is not None and before.nearest_section is None
    assert after is not None and after.nearest_section == "Effects"


def test_a_no_answer_reply_names_its_nearest_section_and_a_crisis_none(pipeline: Pipeline) -> None:
    headings = {s.heading for s in pipeline.index.sections.values()}
    unanswered = pipeline.ask_traced("How do I bake sourdough bread?")
    crisis = pipeline.ask_traced("I want to kill myself tonight")
    assert unanswered.answer.status == "no_answer" and unanswered.nearest_section in headings
    assert crisis.answer.status == "crisis" and crisis.nearest_section is None


# ---------------------------------------------------------------------------------------------
# Grouping with the real query encoder


@pytest.mark.model
def test_paraphrases_fall_in_one_group_and_other_subjects_apart(real_embedder: Embedder) -> None:
    questions = [
        "How much does ketamine therapy cost?",
        "What is the price of a ketamine treatment?",
        "Can I drive after a ketamine session?",
        "Is it safe to drive home after ketamine?",
        "Does insurance cover ketamine?",
    ]
    groups = group_questions(questions, real_embedder.embed, Settings().report_group_distance)
    members = [{g.representative, *g.examples} for g in groups]
    assert set(questions[:2]) in members or any(set(questions[:2]) <= m for m in members)
    assert any(set(questions[2:4]) <= m for m in members)
    assert not any(questions[0] in m and questions[2] in m for m in members)
    assert (
        group_questions(
            list(reversed(questions)), real_embedder.embed, Settings().report_group_distance
        )
        == groups
    )
