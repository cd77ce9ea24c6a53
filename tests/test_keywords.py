"""The keyword index: bm25s's scores, kept in the build and summed by numpy when serving."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import bm25s
import numpy as np
import pytest
from bm25s.stopwords import STOPWORDS_EN

from ragbot.chunking import ChunkerConfig, split_document
from ragbot.corpus import load_corpus
from ragbot.errors import IndexCorrupt
from ragbot.keywords import (
    KEYWORDS_FILE,
    KINDS,
    KeywordIndex,
    index_records,
    load_keywords,
    save_keywords,
)
from ragbot.models import Chunk, Sentence
from ragbot.query import _stopwords, stems, words

QUESTIONS = [
    "how long does ketamine stay in the body",
    "ketamine ketamine glutamate",  # a word twice counts twice, as in bm25s
    "nmda receptor antagonist depression",
    "bladder",  # one rare word
    "zzz unknownword",  # nothing known: all zeros
    "",
]


def _split(corpus_dir: Path) -> tuple[list[Sentence], list[Chunk]]:
    """The shipped article's sentences and chunks (words counted as tokens)."""
    cfg = ChunkerConfig(128, 1, lambda text: len(text.split()))
    sentences: list[Sentence] = []
    chunks: list[Chunk] = []
    for doc in load_corpus(corpus_dir):
        s, c = split_document(doc, cfg)
        sentences += s
        chunks += c
    return sentences, chunks


@pytest.fixture(scope="module")
def corpus(shipped_corpus_dir: Path) -> list[list[str]]:
    return [stems(words(s.text)) for s in _split(shipped_corpus_dir)[0]]


def test_scores_are_bm25s_own_for_every_question(corpus: list[list[str]]) -> None:
    reference = bm25s.BM25()
    reference.index(corpus, show_progress=False)
    index = KeywordIndex.build(corpus)
    for question in QUESTIONS:
        tokens = stems(words(question))
        known = [t for t in tokens if t in reference.vocab_dict and t]
        want = reference.get_scores(known) if known else np.zeros(len(corpus), dtype=np.float32)
        np.testing.assert_array_equal(index.scores(tokens), np.asarray(want, dtype=np.float32))
    assert index.scores(stems(words("zzz unknownword"))).sum() == 0


def test_search_gives_the_best_records_holding_a_word_best_first(
    corpus: list[list[str]],
) -> None:
    index = KeywordIndex.build(corpus)
    hits = index.search(stems(words("bladder problems")), 5)
    assert hits and all(score > 0 for _, score in hits)
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    assert all("bladder" in corpus[row] for row, _ in hits[:1])
    assert index.search(["zzz"], 5) == []


def test_saved_and_loaded_indexes_score_alike(tmp_path: Path, corpus: list[list[str]]) -> None:
    built = {"sentence": KeywordIndex.build(corpus), "chunk": KeywordIndex.build(corpus[:5])}
    save_keywords(tmp_path, built)
    loaded = load_keywords(tmp_path)
    assert set(loaded) == set(KINDS)
    for kind in KINDS:
        assert loaded[kind].terms == built[kind].terms
        for question in QUESTIONS:
            tokens = stems(words(question))
            np.testing.assert_array_equal(loaded[kind].scores(tokens), built[kind].scores(tokens))


def test_an_empty_corpus_scores_zero() -> None:
    for corpus in ([], [[], []]):
        index = KeywordIndex.build(corpus)
        assert index.scores(["ketamin"]).tolist() == [0.0] * len(corpus)


def test_a_missing_or_unreadable_keyword_file_is_a_corrupt_index(tmp_path: Path) -> None:
    with pytest.raises(IndexCorrupt, match="run `ragbot build-index`"):
        load_keywords(tmp_path)
    (tmp_path / KEYWORDS_FILE).write_bytes(b"not an npz")
    with pytest.raises(IndexCorrupt, match="no readable keyword index"):
        load_keywords(tmp_path)


def test_each_kind_of_record_is_indexed_over_its_own_texts(shipped_corpus_dir: Path) -> None:
    sentences, chunks = _split(shipped_corpus_dir)
    indexes = index_records(sentences, chunks)
    assert indexes["sentence"].size == len(sentences)
    assert indexes["chunk"].size == len(chunks)


def test_the_stop_words_are_bm25s_english_list() -> None:
    """Kept in lexicon.json so that serving needs no bm25s; the same words it would drop."""
    assert _stopwords() == frozenset(STOPWORDS_EN)


PROBE = """
import json, sys
from ragbot.keywords import KeywordIndex, load_keywords
from ragbot.query import stems, words
index = load_keywords(__import__("pathlib").Path(sys.argv[1]))["sentence"]
index.scores(stems(words("how long does ketamine last")))
print(json.dumps(sorted(m for m in ("bm25s", "scipy") if m in sys.modules)))
"""


def test_serving_keywords_imports_neither_bm25s_nor_scipy(
    tmp_path: Path, corpus: list[list[str]]
) -> None:
    save_keywords(tmp_path, {kind: KeywordIndex.build(corpus) for kind in KINDS})
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
