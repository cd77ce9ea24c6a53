"""Durable records of replies and their ratings, for the clinic's team (SQLAlchemy Core).

__init__.py  the record dataclasses, reply_record() and Records: open, write, read, purge
keep.py      record_of(): the record of one reply from any surface; keep_reply() writes it
migrate.py   columns added since a table was created, added in place
redact.py    emails and phone numbers out of free text before it is stored

The default is a SQLite file beside the index builds (RAGBOT_INDEX_DIR/records.sqlite3);
RAGBOT_DATABASE_URL (postgresql+psycopg://...) selects PostgreSQL. A reply record never holds the
question text unless RAGBOT_KEEP_QUESTIONS is on, and never for a crisis message.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ragbot.config import Settings
from ragbot.errors import StoreUnavailable
from ragbot.records.migrate import add_missing_columns
from ragbot.records.redact import redact

log = logging.getLogger("ragbot.records")

__all__ = ["FeedbackRecord", "Records", "ReplyRecord", "redact", "reply_record"]

Channel = Literal["api", "widget", "slack", "cli", "eval"]
CHANNELS: tuple[Channel, ...] = ("api", "widget", "slack", "cli", "eval")
Rating = Literal["up", "down"]
MAX_COMMENT_CHARS = 500
PURGE_EVERY_S = 3600.0  # the retention purge runs on open and then at most once an hour on write

metadata = sa.MetaData()
replies = sa.Table(
    "replies",
    metadata,
    sa.Column("request_id", sa.String(128), primary_key=True),
    sa.Column("time", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("intent", sa.String(16), nullable=False),
    sa.Column("turn", sa.String(16), nullable=False),
    sa.Column("sections", sa.Text, nullable=False),  # JSON list of cited section headings
    sa.Column("build_id", sa.String(128), nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("question", sa.Text, nullable=True),  # opt-in, redacted, purged after retention
    # The heading of the best retrieved section: where a no_answer reply came closest.
    sa.Column("nearest_section", sa.Text, nullable=True),
)
feedback = sa.Table(
    "feedback",
    metadata,
    # One rating per reply; not a foreign key so that purging or losing replies never blocks it.
    sa.Column("request_id", sa.String(128), primary_key=True),
    sa.Column("rating", sa.String(8), nullable=False),
    sa.Column("comment", sa.Text, nullable=True),
    sa.Column("time", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class ReplyRecord:
    """What is kept of one reply; `question` is None unless kept on purpose."""

    request_id: str
    time: datetime
    channel: Channel
    status: str
    intent: str
    turn: str
    sections: tuple[str, ...]
    build_id: str
    latency_ms: float
    question: str | None = None
    nearest_section: str | None = None  # best retrieved section; None when screened out


@dataclass(frozen=True)
class FeedbackRecord:
    """A rating of one reply, with its optional (redacted) comment."""

    request_id: str
    rating: Rating
    comment: str | None
    time: datetime


def now_utc() -> datetime:
    return datetime.now(UTC)


def reply_record(
    *,
    request_id: str,
    channel: Channel,
    status: str,
    intent: str,
    turn: str,
    sections: Sequence[str],
    build_id: str,
    latency_ms: float,
    question: str,
    crisis: bool,
    keep_questions: bool,
    nearest_section: str | None = None,
    at: datetime | None = None,
) -> ReplyRecord:
    """The record of a reply: the question text only when opted in, never for a crisis, redacted."""
    kept = redact(question) if keep_questions and not crisis and status != "crisis" else None
    return ReplyRecord(
        request_id=request_id,
        time=at or now_utc(),
        channel=channel,
        status=status,
        intent=intent,
        turn=turn,
        sections=tuple(dict.fromkeys(sections)),  # each section once, in citation order
        build_id=build_id,
        latency_ms=round(latency_ms, 1),
        question=kept,
        nearest_section=nearest_section,
    )


def database_url(settings: Settings) -> str:
    """RAGBOT_DATABASE_URL, or the SQLite file beside the index builds."""
    if settings.database_url:
        return settings.database_url
    return f"sqlite:///{settings.index_dir / 'records.sqlite3'}"


class Records:
    """The records store. Every method raises StoreUnavailable when the database cannot be used."""

    def __init__(self, engine: sa.Engine, retention_days: int) -> None:
        self.engine = engine
        self.retention = timedelta(days=retention_days)
        self._purged_at = 0.0
        self._purge_lock = threading.Lock()

    @classmethod
    def open(cls, settings: Settings) -> Records:
        """Connect, create the tables when missing, and purge question text past retention."""
        url = database_url(settings)
        try:
            if url.startswith("sqlite:"):
                settings.index_dir.mkdir(parents=True, exist_ok=True)
                engine = sa.create_engine(url, connect_args={"timeout": 5})
                sa.event.listen(engine, "connect", _sqlite_wal)
            else:
                engine = sa.create_engine(url, pool_pre_ping=True)
        except ImportError as exc:  # the driver: psycopg comes with the [postgres] extra
            raise StoreUnavailable(
                f"records store driver missing ({exc.name}): pip install 'ragbot[postgres]'"
            ) from exc
        except (sa.exc.SQLAlchemyError, OSError, ValueError) as exc:
            raise StoreUnavailable(f"records store cannot be opened: {_brief(exc)}") from exc
        _create_tables(engine)
        records = cls(engine, settings.question_retention_days)
        records.purge()
        return records

    @property
    def where(self) -> str:
        """The database, without its password, for the logs."""
        return self.engine.url.render_as_string(hide_password=True)

    def add_reply(self, record: ReplyRecord) -> None:
        """Keep a reply's record (a request id seen again replaces it)."""
        self.add_replies([record])

    def add_replies(self, records: Sequence[ReplyRecord]) -> None:
        """Keep reply records in one transaction (a request id seen again replaces its record)."""
        if not records:
            return
        self._upsert(replies, [_row_of(record) for record in records])
        if time.monotonic() - self._purged_at >= PURGE_EVERY_S:
            self.purge()

    def reply(self, request_id: str) -> ReplyRecord | None:
        """The record of a reply, or None when there is none."""
        row = self._one(sa.select(replies).where(replies.c.request_id == request_id))
        return None if row is None else _reply_of(row)

    def replies(self, since: datetime | None = None) -> list[ReplyRecord]:
        """Every reply record (since a time, when given), oldest first."""
        statement = sa.select(replies).order_by(replies.c.time, replies.c.request_id)
        if since is not None:
            statement = statement.where(replies.c.time >= since)
        return [_reply_of(row) for row in self._all(statement)]

    def ratings(self) -> dict[str, Rating]:
        """Every rating, by the request id of the reply it rates."""
        rows = self._all(sa.select(feedback.c.request_id, feedback.c.rating))
        return {row.request_id: row.rating for row in rows}

    def add_feedback(
        self, request_id: str, rating: Rating, comment: str | None = None
    ) -> FeedbackRecord | None:
        """Rate a reply (a second rating replaces the first); None when no reply has that id."""
        if self.reply(request_id) is None:
            return None
        text = redact(comment.strip())[:MAX_COMMENT_CHARS] if comment and comment.strip() else None
        record = FeedbackRecord(request_id, rating, text, now_utc())
        self._upsert(
            feedback,
            [{"request_id": request_id, "rating": rating, "comment": text, "time": record.time}],
        )
        return record

    def feedback(self, request_id: str) -> FeedbackRecord | None:
        """The rating of a reply, or None when it was not rated."""
        row = self._one(sa.select(feedback).where(feedback.c.request_id == request_id))
        if row is None:
            return None
        return FeedbackRecord(row.request_id, row.rating, row.comment, _utc(row.time))

    def purge(self, at: datetime | None = None) -> int:
        """Forget question text older than the retention period; returns how many were cleared."""
        with self._purge_lock:
            self._purged_at = time.monotonic()
            cutoff = (at or now_utc()) - self.retention
            statement = (
                sa.update(replies)
                .where(replies.c.time < cutoff, replies.c.question.is_not(None))
                .values(question=None)
            )
            try:
                with self.engine.begin() as conn:
                    return conn.execute(statement).rowcount
            except sa.exc.SQLAlchemyError as exc:
                raise StoreUnavailable(f"records store: {_brief(exc)}") from exc

    def close(self) -> None:
        self.engine.dispose()

    def _upsert(self, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
        dialect = self.engine.dialect.name
        insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(table)
        key = [c.name for c in table.primary_key.columns]
        # The new row's values (`excluded`), so that one statement serves every row of a batch.
        statement = statement.on_conflict_do_update(
            index_elements=key,
            set_={c.name: statement.excluded[c.name] for c in table.columns if c.name not in key},
        )
        try:
            with self.engine.begin() as conn:
                conn.execute(statement, list(rows))
        except sa.exc.SQLAlchemyError as exc:
            raise StoreUnavailable(f"records store: {_brief(exc)}") from exc

    def _all(self, statement: sa.Select[Any]) -> list[Any]:
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(statement))
        except sa.exc.SQLAlchemyError as exc:
            raise StoreUnavailable(f"records store: {_brief(exc)}") from exc

    def _one(self, statement: sa.Select[Any]) -> Any:
        try:
            with self.engine.connect() as conn:
                return conn.execute(statement).first()
        except sa.exc.SQLAlchemyError as exc:
            raise StoreUnavailable(f"records store: {_brief(exc)}") from exc


def _create_tables(engine: sa.Engine) -> None:
    # Workers starting together may race to create the tables: the loser tries once more.
    for attempt in (1, 2):
        try:
            metadata.create_all(engine)
            add_missing_columns(engine, metadata)
            return
        except sa.exc.SQLAlchemyError as exc:
            if attempt == 2:
                engine.dispose()
                raise StoreUnavailable(f"records store cannot be opened: {_brief(exc)}") from exc
            time.sleep(0.2)


def _row_of(record: ReplyRecord) -> dict[str, Any]:
    return {
        "request_id": record.request_id,
        "time": record.time,
        "channel": record.channel,
        "status": record.status,
        "intent": record.intent,
        "turn": record.turn,
        "sections": json.dumps(list(record.sections)),
        "build_id": record.build_id,
        "latency_ms": record.latency_ms,
        "question": record.question,
        "nearest_section": record.nearest_section,
    }


def _reply_of(row: Any) -> ReplyRecord:
    return ReplyRecord(
        request_id=row.request_id,
        time=_utc(row.time),
        channel=row.channel,
        status=row.status,
        intent=row.intent,
        turn=row.turn,
        sections=tuple(json.loads(row.sections)),
        build_id=row.build_id,
        latency_ms=row.latency_ms,
        question=row.question,
        nearest_section=row.nearest_section,
    )


def _sqlite_wal(connection: Any, _record: Any) -> None:
    # Several workers write the same file: WAL lets readers and one writer proceed together.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored time is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _brief(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
