"""Frozen dataclasses passed between the pipeline stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Status = Literal["answered", "no_answer", "refused", "crisis"]
Kind = Literal["chunk", "sentence", "heading"]


@dataclass(frozen=True)
class Section:
    """A heading and the body under it; offsets slice the document text."""

    section_id: str
    doc_id: str
    heading: str
    ordinal: int
    heading_start: int
    heading_end: int
    start: int  # body start
    end: int  # body end


@dataclass(frozen=True)
class Document:
    """A cleaned article; `text` is the stored text every offset refers to."""

    doc_id: str
    title: str
    text: str
    url: str | None
    publisher: str | None
    retrieved: str | None
    source: str  # file name inside the corpus folder
    content_hash: str
    sections: tuple[Section, ...] = field(default=())


@dataclass(frozen=True)
class Sentence:
    """One sentence of a section; `text == document.text[start:end]`."""

    sentence_id: str
    doc_id: str
    section_id: str
    ordinal: int  # position within its section
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Chunk:
    """Consecutive sentences of one section under the token budget."""

    chunk_id: str
    doc_id: str
    section_id: str
    start: int
    end: int
    text: str
    sentence_ids: tuple[str, ...]
    tokens: int


@dataclass(frozen=True)
class Hit:
    """A scored search result of one kind (chunk, sentence or heading)."""

    kind: Kind
    ref: str  # chunk_id, sentence_id or section_id
    doc_id: str
    section_id: str
    start: int
    end: int
    text: str
    score: float
    dense: float | None = None  # cosine similarity, when the dense retriever found it
    lexical: float | None = None  # BM25 score, when the keyword retriever found it


@dataclass(frozen=True)
class Citation:
    """What an `[n]` marker resolves to: a verbatim quote and where it stands."""

    id: int
    doc_id: str
    title: str
    section: str
    quote: str
    start: int
    end: int
    url: str | None
    score: float
    ref: str = ""  # the sentence id: what a client sends back in a conversation's history


@dataclass(frozen=True)
class Answer:
    """The one reply shape of every surface."""

    status: Status
    answer: str
    citations: tuple[Citation, ...]
    disclaimer: str
    suggestions: tuple[str, ...] = ()
    # The crisis resources (a fixed, reviewed message), shown before anything else: on every
    # crisis reply, and on any reply to a question that shows distress below the crisis threshold.
    resources: str | None = None
    # Whether "tell me more" would find further sentences in the section this reply quoted.
    more: bool = False
