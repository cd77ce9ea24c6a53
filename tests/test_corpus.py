"""Loading and cleaning articles: what is kept, what is dropped, and how a bad corpus fails."""

from __future__ import annotations

import itertools
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from ragbot.corpus import load_corpus, load_document
from ragbot.embeddings import HashingEmbedder
from ragbot.errors import CorpusError
from ragbot.index import build_index, load_index
from ragbot.models import Document

TITLE = "What are the Effects of Ketamine on the Brain?"
SOURCE_NAME = "what-are-the-effects-of-ketamine-on-the-brain.txt"
SECTION_HEADINGS = [
    TITLE,  # the introduction, under the title
    "How Does Ketamine Work in the Brain?",
    "How Does the Brain Process Ketamine?",
    "Are There Long-Term Side Effects on the Brain from Using Ketamine?",
    "The Role of Neurochemistry and Neuroplasticity",
    "How Long Does Ketamine Stay in the Body?",
    "Are There Long-Term Effects, Positive or Negative, from Ketamine Use?",
    "Understanding the Effects of Ketamine on the Brain with Nue Life",
]
# Page furniture of the published page: none of it may reach the index.
FORBIDDEN = [
    "Thank you! Your submission has been received!",
    "Oops! Something went wrong",
    "Join the Beckley Academy",
    "Mailing List",
    "Sign up to the Nue Life newsletter",
    "©",
    "All Rights Reserved",
    "NueCo Holdings, P.B.C. is a technology platform",
    "Instagram logo",
    "Facebook logo",
    "LinkedIn logo",
    "Get Started",
    "Begin your journey with us",
    "Need further advice?",
    "Speak with our Welcome team",
    "Have you made up your mind",
]
FURNITURE_STARTS = "Join the Beckley Academy"  # the first line after the article body


def _squash(text: str) -> str:
    return " ".join(text.split())


def _source_text(corpus_source_dir: Path) -> str:
    return (corpus_source_dir / SOURCE_NAME).read_text(encoding="utf-8")


def _source_article(corpus_source_dir: Path) -> tuple[list[str], list[str]]:
    """Headings and body paragraphs of the published article, read without ragbot's cleaner."""
    paragraphs = [
        _squash(p) for p in re.split(r"\n\s*\n", _source_text(corpus_source_dir)) if p.strip()
    ]
    end = next(i for i, p in enumerate(paragraphs) if p.startswith(FURNITURE_STARTS))
    article = paragraphs[3:end]  # after: title, byline, title again
    headings = [p for p in article if not p.endswith(".")]
    body = [p for p in article if p.endswith(".")]
    return headings, body


@pytest.fixture
def source_corpus(tmp_path: Path, corpus_source_dir: Path) -> Path:
    """A corpus folder holding only the raw published page (.txt)."""
    folder = tmp_path / "source-corpus"
    folder.mkdir()
    shutil.copy(corpus_source_dir / SOURCE_NAME, folder)
    return folder


@pytest.fixture
def shipped_document(shipped_corpus_dir: Path) -> Document:
    """The one article of the shipped corpus, cleaned."""
    (doc,) = load_corpus(shipped_corpus_dir)
    return doc


# ---------------------------------------------------------------------------------------------
# The shipped corpus


def test_shipped_corpus_loads_one_article_with_its_front_matter(shipped_document: Document) -> None:
    doc = shipped_document
    assert doc.doc_id == "what-are-the-effects-of-ketamine-on-the-brain"
    assert doc.title == TITLE
    assert doc.publisher == "Nue Life"
    assert doc.url is None
    assert doc.retrieved == "2026-11-26"
    assert doc.source == "what-are-the-effects-of-ketamine-on-the-brain.md"
    assert re.fullmatch(r"[0-9a-f]{64}", doc.content_hash)


def test_headings_become_the_eight_sections_in_order(shipped_document: Document) -> None:
    assert [s.heading for s in shipped_document.sections] == SECTION_HEADINGS
    assert [s.ordinal for s in shipped_document.sections] == list(range(8))


def test_section_offsets_slice_headings_and_bodies(shipped_document: Document) -> None:
    doc = shipped_document
    for section in doc.sections:
        assert doc.text[section.heading_start : section.heading_end] == section.heading
        body = doc.text[section.start : section.end]
        assert body == body.strip() and body
    bodies = [(s.start, s.end) for s in doc.sections]
    assert bodies == sorted(bodies) and all(a[1] < b[0] for a, b in itertools.pairwise(bodies))


def test_title_appears_once_and_the_byline_is_dropped(shipped_document: Document) -> None:
    doc = shipped_document
    assert doc.text.startswith(TITLE + "\n\n")
    assert doc.text.count(TITLE) == 1
    assert "Nue Life" not in doc.text.split(
        "\n\n"
    )  # the byline paragraph, not the words in the body


def test_every_paragraph_of_the_published_article_is_kept_verbatim(
    shipped_document: Document, corpus_source_dir: Path
) -> None:
    headings, body = _source_article(corpus_source_dir)
    assert headings == SECTION_HEADINGS[1:]
    text = _squash(shipped_document.text)
    sentences = [s for p in body for s in re.split(r"(?<=[.?!])\s+(?=[A-Z])", p)]
    assert len(sentences) > 30
    assert [s for s in sentences if s not in text] == []
    # Whole paragraphs, in the published order: nothing cut inside or reordered.
    positions = [text.find(p) for p in body]
    assert -1 not in positions and positions == sorted(positions)


@pytest.mark.parametrize("furniture", FORBIDDEN)
def test_the_published_page_holds_the_furniture_the_cleaner_must_drop(
    furniture: str, corpus_source_dir: Path
) -> None:
    """Keeps the cleaning test honest: each forbidden string is really on the raw page."""
    assert furniture in _source_text(corpus_source_dir)


@pytest.mark.parametrize("corpus", ["shipped", "published page (.txt)"])
def test_no_page_furniture_reaches_the_index(
    corpus: str, shipped_corpus_dir: Path, source_corpus: Path, tmp_path: Path
) -> None:
    from ragbot.config import Settings

    corpus_dir = shipped_corpus_dir if corpus == "shipped" else source_corpus
    cfg = Settings(corpus_dir=corpus_dir, index_dir=tmp_path / "index")
    embedder = HashingEmbedder()
    build_index(cfg, embedder)
    index = load_index(cfg, embedder)
    stored = [
        *(d.text for d in index.documents.values()),
        *(s.text for s in index.sentences),
        *(c.text for c in index.chunks),
        *(s.heading for s in index.sections.values()),
    ]
    found = sorted({(f, t[:60]) for f in FORBIDDEN for t in stored if f.casefold() in t.casefold()})
    assert found == []
    assert len(index.sections) == 8


def test_the_published_page_as_txt_cleans_to_the_shipped_article(
    source_corpus: Path, shipped_document: Document
) -> None:
    (doc,) = load_corpus(source_corpus)
    assert doc.text == shipped_document.text
    assert doc.title == TITLE
    assert doc.publisher == "Nue Life"  # read from the plain-text byline
    assert [s.heading for s in doc.sections] == SECTION_HEADINGS


# ---------------------------------------------------------------------------------------------
# Formats

HTML_PAGE = """<!doctype html>
<html><head>
<title>Ketamine and Sleep | Example Clinic</title>
<link rel="canonical" href="https://example.org/ketamine-sleep">
<meta property="og:site_name" content="Example Clinic">
<style>body { color: red }</style>
<script>window.track("Get Started");</script>
</head><body>
<header><a href="/">Example Clinic home</a></header>
<nav><ul><li>Services</li><li>Blog</li></ul></nav>
<article>
<h1>Ketamine and Sleep</h1>
<p>Ketamine can change how people sleep. Some report vivid dreams.</p>
<h2>What the Research Says</h2>
<p>Small studies found <em>short</em> effects on sleep &amp; mood.</p>
<p>Larger trials are needed.</p>
<h2>Talking to a Clinician</h2>
<ul><li>Ask about timing.</li><li>Ask about dreams.</li></ul>
</article>
<form><p>Sign up to the Example Clinic newsletter.</p><button>Subscribe</button></form>
<div>Thank you! Your submission has been received!</div>
<div>Oops! Something went wrong while submitting the form.</div>
<footer><p>© 2024 Example Clinic LLC. All Rights Reserved</p><p>Follow us on Instagram</p></footer>
<script>console.log("loaded")</script>
</body></html>
"""


def test_html_keeps_headings_and_paragraphs_and_drops_navigation_forms_scripts_and_footer(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ketamine-sleep.html"
    path.write_text(HTML_PAGE, encoding="utf-8")
    doc = load_document(path)
    assert (
        doc.title == "Ketamine and Sleep"
    )  # the article's <h1>, not the <title> with the site name
    assert doc.text.count("Ketamine and Sleep") == 1
    assert doc.url == "https://example.org/ketamine-sleep"
    assert doc.publisher == "Example Clinic"
    assert [s.heading for s in doc.sections] == [
        "Ketamine and Sleep",
        "What the Research Says",
        "Talking to a Clinician",
    ]
    assert doc.text.split("\n\n")[1:] == [
        "Ketamine can change how people sleep. Some report vivid dreams.",
        "What the Research Says",
        "Small studies found short effects on sleep & mood.",
        "Larger trials are needed.",
        "Talking to a Clinician",
        "Ask about timing.",
        "Ask about dreams.",
    ]
    for furniture in (
        "Services",
        "home",
        "track",
        "color",
        "Subscribe",
        "newsletter",
        "Thank you",
        "Oops",
        "©",
        "Instagram",
        "loaded",
    ):
        assert furniture not in doc.text


def test_markdown_front_matter_gives_title_url_publisher_and_id(tmp_path: Path) -> None:
    path = tmp_path / "some-file-name.md"
    path.write_text(
        "---\n"
        'title: "Ketamine: A Primer"\n'
        "url: https://example.org/primer\n"
        "publisher: Example Clinic\n"
        "retrieved: 2025-01-02\n"
        "id: primer\n"
        "---\n"
        "# Ketamine: A Primer\n\n"
        "Ketamine is an anesthetic. It is also studied for depression.\n\n"
        "## Risks\n\n"
        "Misuse carries **real** risks. See [the FDA](https://fda.gov) for more.\n",
        encoding="utf-8",
    )
    doc = load_document(path)
    assert (doc.doc_id, doc.title, doc.url, doc.publisher, doc.retrieved) == (
        "primer",
        "Ketamine: A Primer",
        "https://example.org/primer",
        "Example Clinic",
        "2025-01-02",
    )
    assert doc.source == "some-file-name.md"
    assert doc.text == (
        "Ketamine: A Primer\n\n"
        "Ketamine is an anesthetic. It is also studied for depression.\n\n"
        "Risks\n\n"
        "Misuse carries real risks. See the FDA for more."
    )


def test_markdown_without_front_matter_takes_its_title_from_the_first_heading(
    tmp_path: Path,
) -> None:
    path = tmp_path / "no-front-matter.md"
    path.write_text("# A Plain Title\n\nFirst paragraph here.\n", encoding="utf-8")
    doc = load_document(path)
    assert (doc.doc_id, doc.title, doc.url, doc.publisher) == (
        "no-front-matter",
        "A Plain Title",
        None,
        None,
    )
    assert doc.text == "A Plain Title\n\nFirst paragraph here."


def test_corpus_loads_md_txt_and_html_together_in_file_name_order(
    tmp_path: Path, corpus_source_dir: Path
) -> None:
    shutil.copy(corpus_source_dir / SOURCE_NAME, tmp_path / SOURCE_NAME)
    (tmp_path / "b-sleep.html").write_text(HTML_PAGE, encoding="utf-8")
    (tmp_path / "a-notes.md").write_text("# Notes\n\nA short note.\n", encoding="utf-8")
    (tmp_path / "README.md").write_text("# Not an article\n\nSkipped.\n", encoding="utf-8")
    (tmp_path / ".hidden.md").write_text("# Hidden\n\nSkipped.\n", encoding="utf-8")
    (tmp_path / "data.json").write_text("{}", encoding="utf-8")
    docs = load_corpus(tmp_path)
    assert [d.source for d in docs] == ["a-notes.md", "b-sleep.html", SOURCE_NAME]


# A Markdown article made of generated headings and paragraphs keeps every one of them verbatim.
_WORDS = st.sampled_from(
    ["ketamine", "brain", "receptor", "dose", "study", "sleep", "mood", "memory", "care", "trial"]
)
_HEADING = st.lists(_WORDS, min_size=1, max_size=6).map(lambda ws: " ".join(ws).title())
_SENTENCE = st.lists(_WORDS, min_size=2, max_size=12).map(
    lambda ws: " ".join(ws).capitalize() + "."
)
_PARAGRAPH = st.lists(_SENTENCE, min_size=1, max_size=4).map(" ".join)


@hypothesis_settings(max_examples=60, deadline=None)
@given(
    title=_HEADING,
    intro=st.lists(_PARAGRAPH, max_size=2),
    sections=st.lists(
        st.tuples(_HEADING, st.lists(_PARAGRAPH, min_size=1, max_size=3)), min_size=1, max_size=5
    ),
)
def test_markdown_articles_keep_every_heading_and_paragraph(
    tmp_path_factory: pytest.TempPathFactory,
    title: str,
    intro: list[str],
    sections: list[tuple[str, list[str]]],
) -> None:
    body = "\n\n".join(
        [f"# {title}", *intro, *(f"## {h}\n\n" + "\n\n".join(ps) for h, ps in sections)]
    )
    path = tmp_path_factory.mktemp("md") / "generated.md"
    path.write_text(f"---\ntitle: {title}\n---\n{body}\n", encoding="utf-8")
    doc = load_document(path)
    expected = [title, *intro]
    for heading, paragraphs in sections:
        # A heading that repeats the title is dropped; its paragraphs join the section before.
        expected += [*([heading] if heading.casefold() != title.casefold() else []), *paragraphs]
    assert doc.text.split("\n\n") == expected
    for section in doc.sections:
        assert doc.text[section.heading_start : section.heading_end] == section.heading


# ---------------------------------------------------------------------------------------------
# Errors


def test_an_empty_corpus_folder_is_an_error_that_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "notes.json").write_text("{}", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"holds no article .*RAGBOT_CORPUS_DIR") as err:
        load_corpus(tmp_path)
    assert str(tmp_path) in err.value.message


def test_a_missing_corpus_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"does not exist.*RAGBOT_CORPUS_DIR"):
        load_corpus(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "---\ntitle: Never closed\n\n# Heading\n\nBody text.\n",
            r"front matter opened with --- is never closed",
        ),
        ("---\ntitle: [unbalanced\n---\n\nBody text.\n", r"front matter is not valid YAML"),
        ("---\n- a list\n- not a mapping\n---\n\nBody text.\n", r"front matter must be a mapping"),
        (
            "---\ntitle: Only furniture\n---\n\nGet Started\n\nAll Rights Reserved.\n",
            r"no article text left",
        ),
    ],
    ids=["unclosed", "bad-yaml", "not-a-mapping", "only-furniture"],
)
def test_a_bad_article_is_a_corpus_error_naming_the_file(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad-article.md"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CorpusError, match=message) as err:
        load_corpus(tmp_path)
    assert "bad-article.md" in err.value.message


def test_a_file_that_is_not_utf8_is_a_corpus_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9 au lait.".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"cannot read .*latin1\.txt"):
        load_corpus(tmp_path)


def test_two_files_giving_the_same_document_id_are_an_error(tmp_path: Path) -> None:
    (tmp_path / "same.md").write_text("# One\n\nText one.\n", encoding="utf-8")
    (tmp_path / "same.txt").write_text("Two\n\nText two.\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"same document id 'same'"):
        load_corpus(tmp_path)
