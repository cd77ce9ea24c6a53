"""Load and clean the articles of the corpus folder -> list[Document].

Each file (.md with optional front matter, .txt, .html) is read into blocks (headings and
paragraphs), page furniture is dropped, and the rest is laid out as the stored text that every
offset refers to: the title, then each section's heading and paragraphs, separated by blank lines.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

from ragbot.errors import CorpusError
from ragbot.models import Document, Section

SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm")

# Page furniture: whole lines that are never article text. Reviewed against the shipped page; the
# generic rows also cover the newsletter and footer boilerplate of common site builders.
FURNITURE_PATTERNS: tuple[str, ...] = (
    r"thank you!? your submission has been received!?",
    r"oops!? something went wrong.*",
    r".*\bmailing list\b.*",
    r"join the .{1,40}",
    r"sign up (to|for) .*newsletter.*",
    r"(subscribe|sign up)( now| today)?[.!]?",
    r"get started[.!]?",
    r"begin your journey with us[.!]?",
    r"need further advice\??",
    r"speak with our .{1,30} team[.!]?",
    r"have you made up your mind to change your mind\??",
    r"(©|\(c\)|copyright)\s.*",
    r".*all rights reserved.*",
    r"(the )?(instagram|facebook|twitter|linkedin|youtube|tiktok)\b.*\blogo\b.*",
    r"(share|follow us)( on)?( (facebook|twitter|x|linkedin|instagram))*[.!]?",
    r"(read more|back to (top|blog)|previous post|next post)[.!]?",
)
_FURNITURE = re.compile(r"^(?:" + "|".join(FURNITURE_PATTERNS) + r")$", re.IGNORECASE)
# A © line names the publisher's legal entity; footer lines that start with it are boilerplate.
_ENTITY = re.compile(
    r"(?:©|\(c\)|copyright)\s*(?:\d{4}\s*)?(.+?)(?:\.?\s+all rights reserved.*)?$", re.I
)


@dataclass(frozen=True)
class Block:
    """A heading or a paragraph as read from a file, before cleaning."""

    kind: str  # "heading" | "para"
    text: str
    level: int = 0


def load_corpus(corpus_dir: Path) -> list[Document]:
    """Read every article of the corpus folder, cleaned, in file-name order."""
    files = corpus_files(corpus_dir)
    if not files:
        raise CorpusError(
            f"{corpus_dir} holds no article ({', '.join(SUFFIXES)}): add one, or set RAGBOT_CORPUS_DIR"
        )
    docs = [load_document(path) for path in files]
    seen: dict[str, str] = {}
    for doc in docs:
        if doc.doc_id in seen:
            raise CorpusError(
                f"{doc.source} and {seen[doc.doc_id]} give the same document id {doc.doc_id!r}"
            )
        seen[doc.doc_id] = doc.source
    return docs


def corpus_files(corpus_dir: Path) -> list[Path]:
    """The article files of the corpus folder (hidden files and READMEs skipped)."""
    if not corpus_dir.is_dir():
        raise CorpusError(
            f"corpus folder {corpus_dir} does not exist: create it or set RAGBOT_CORPUS_DIR"
        )
    return sorted(
        p
        for p in corpus_dir.iterdir()
        if p.is_file()
        and p.suffix.lower() in SUFFIXES
        and not p.name.startswith(".")
        and p.stem.lower() != "readme"
    )


def file_hash(path: Path) -> str:
    """SHA-256 of a file's bytes: what the manifest records to tell a stale index."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_document(path: Path) -> Document:
    """Read one article file and clean it into a Document."""
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"cannot read {path}: {exc}") from exc
    suffix = path.suffix.lower()
    meta: dict[str, object] = {}
    if suffix in (".md", ".markdown"):
        meta, body = split_front_matter(raw, path)
        blocks = markdown_blocks(body)
    elif suffix in (".html", ".htm"):
        meta, blocks = html_blocks(raw)
    else:
        meta, body = split_front_matter(raw, path)
        blocks = text_blocks(body)
        meta = {**_text_byline(blocks), **meta}
    return build_document(path, meta, blocks, content_hash=file_hash(path))


def split_front_matter(raw: str, path: Path) -> tuple[dict[str, object], str]:
    """Split YAML front matter (between `---` lines) from the body."""
    if not raw.startswith("---"):
        return {}, raw
    match = re.match(r"^---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|$)", raw, re.S)
    if not match:
        raise CorpusError(f"{path}: front matter opened with --- is never closed")
    import yaml  # only a build reads articles; serving does not import it

    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise CorpusError(f"{path}: front matter is not valid YAML: {exc}") from exc
    if not isinstance(meta, dict):
        raise CorpusError(f"{path}: front matter must be a mapping of fields")
    return {str(k): v for k, v in meta.items()}, raw[match.end() :]


def _paragraphs(body: str) -> Iterable[str]:
    for para in re.split(r"\n[ \t\u00a0]*\n", body.replace("\r\n", "\n")):
        if para.strip():
            yield para


def markdown_blocks(body: str) -> list[Block]:
    """Headings (`#` lines) and paragraphs of a Markdown body."""
    blocks: list[Block] = []
    for para in _paragraphs(body):
        lines: list[str] = []
        for line in para.split("\n"):
            heading = re.match(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$", line)
            if heading:
                if lines:
                    blocks.append(Block("para", "\n".join(lines)))
                    lines = []
                blocks.append(
                    Block(
                        "heading", _strip_inline_markdown(heading.group(2)), len(heading.group(1))
                    )
                )
            else:
                lines.append(_strip_inline_markdown(line))
        if lines:
            blocks.append(Block("para", "\n".join(lines)))
    return blocks


def _strip_inline_markdown(text: str) -> str:
    text = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", text)  # images -> alt text
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)  # links -> link text
    text = re.sub(r"(\*\*|__)(.+?)\1", r"\2", text)
    return re.sub(r"^\s*[-*+]\s+", "", text)


def text_blocks(body: str) -> list[Block]:
    """Paragraphs of plain text; a short standalone line without a full stop is a heading."""
    blocks: list[Block] = []
    for para in _paragraphs(body):
        lines = [ln for ln in para.split("\n") if ln.strip()]
        if len(lines) == 1 and _looks_like_heading(lines[0]):
            blocks.append(Block("heading", lines[0].strip(), 2))
        else:
            blocks.append(Block("para", "\n".join(lines)))
    return blocks


def _text_byline(blocks: list[Block]) -> dict[str, object]:
    # A plain-text page opens with its title and, often, a short byline: "Title / Publisher / Title".
    if len(blocks) >= 2 and blocks[0].kind == blocks[1].kind == "heading":
        byline = blocks[1].text.strip()
        if len(byline.split()) <= 4 and not byline.endswith("?"):
            return {"title": blocks[0].text.strip(), "publisher": byline}
    return {}


def _looks_like_heading(line: str) -> bool:
    words = line.split()
    return 0 < len(words) <= 14 and not line.rstrip().endswith((".", ",", ";", ":", "!"))


class _HTMLReader(HTMLParser):
    SKIP: ClassVar[set[str]] = {
        "script",
        "style",
        "nav",
        "footer",
        "form",
        "header",
        "aside",
        "noscript",
        "button",
        "svg",
    }
    BLOCK: ClassVar[set[str]] = {"p", "li", "blockquote", "div", "section", "article", "td", "br"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.meta: dict[str, object] = {}
        self._skip = 0
        self._buf: list[str] = []
        self._heading: int = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in self.SKIP:
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif tag == "link" and a.get("rel") == "canonical" and a.get("href"):
            self.meta["url"] = a["href"]
        elif tag == "meta" and a.get("property") == "og:url" and a.get("content"):
            self.meta.setdefault("url", a["content"])
        elif tag == "meta" and a.get("property") == "og:site_name" and a.get("content"):
            self.meta.setdefault("publisher", a["content"])
        elif re.fullmatch(r"h[1-6]", tag):
            self._flush()
            self._heading = int(tag[1])
        elif tag in self.BLOCK:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag == "title":
            self._in_title = False
        elif re.fullmatch(r"h[1-6]", tag) or tag in self.BLOCK:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.meta.setdefault("html_title", data.strip())
        elif not self._skip:
            self._buf.append(data)

    def _flush(self) -> None:
        text = " ".join("".join(self._buf).split())
        self._buf = []
        if text:
            kind = "heading" if self._heading else "para"
            self.blocks.append(Block(kind, text, self._heading))
        self._heading = 0


def html_blocks(raw: str) -> tuple[dict[str, object], list[Block]]:
    """Headings and paragraphs of an HTML page; navigation, forms and footers are skipped."""
    reader = _HTMLReader()
    reader.feed(raw)
    reader.close()
    reader._flush()
    meta = dict(reader.meta)
    # <title> usually carries the site name ("Article | Site"); the <h1> is the article's own.
    h1 = next((b.text for b in reader.blocks if b.kind == "heading" and b.level == 1), None)
    html_title = meta.pop("html_title", None)
    if h1 or html_title:
        meta.setdefault("title", h1 or html_title)
    return meta, reader.blocks


def clean_line(line: str) -> str:
    """Normalise a line's spacing (NBSP, tabs, runs of spaces) without touching its words."""
    line = unicodedata.normalize("NFC", line).replace("\u00a0", " ").replace("\t", " ")
    return re.sub(r" {2,}", " ", line).strip()


def is_furniture(line: str, entities: Iterable[str] = ()) -> bool:
    """True for a line that belongs to the page around the article, not to the article."""
    if _FURNITURE.match(line):
        return True
    return any(entity and line.startswith(entity) for entity in entities)


def _footer_entities(blocks: list[Block]) -> set[str]:
    entities = set()
    for block in blocks:
        for line in block.text.split("\n"):
            match = _ENTITY.match(clean_line(line))
            if match and len(match.group(1)) >= 4:
                entities.add(match.group(1).strip().rstrip("."))
    return entities


def clean_blocks(blocks: list[Block], title: str, publisher: str | None) -> list[Block]:
    """Drop furniture lines, repeated title lines and the byline; keep every article line."""
    entities = _footer_entities(blocks)
    drop_exact = {title.casefold()} | ({publisher.casefold()} if publisher else set())
    kept: list[Block] = []
    for block in blocks:
        lines = [clean_line(ln) for ln in block.text.split("\n")]
        lines = [
            ln
            for ln in lines
            if ln and not is_furniture(ln, entities) and ln.casefold() not in drop_exact
        ]
        if lines:
            kept.append(
                Block(
                    block.kind,
                    " ".join(lines) if block.kind == "heading" else "\n".join(lines),
                    block.level,
                )
            )
    return kept


def slugify(text: str) -> str:
    """A stable, URL-safe id from a file name."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "document"


def short_hash(*parts: str, size: int = 16) -> str:
    """A content-derived id: the same content gives the same id in every build."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:size]


def build_document(
    path: Path, meta: dict[str, object], blocks: list[Block], *, content_hash: str
) -> Document:
    """Lay out cleaned blocks as the stored text and record each section's offsets."""
    first_heading = next((b.text for b in blocks if b.kind == "heading"), None)
    title = clean_line(str(meta.get("title") or first_heading or path.stem.replace("-", " ")))
    publisher = str(meta["publisher"]) if meta.get("publisher") else None
    url = str(meta["url"]) if meta.get("url") else None
    retrieved = str(meta["retrieved"]) if meta.get("retrieved") else None
    doc_id = slugify(str(meta.get("id") or path.stem))

    blocks = clean_blocks(blocks, title, publisher)
    # Group paragraphs under their heading; text before the first heading belongs to the title.
    groups: list[tuple[str | None, list[str]]] = [(None, [])]
    for block in blocks:
        if block.kind == "heading":
            groups.append((block.text, []))
        else:
            groups[-1][1].append(block.text)

    text = title
    sections: list[Section] = []
    seen: dict[tuple[str, str], int] = {}
    for heading, paras in groups:
        if not paras:
            continue  # a heading with no body (or furniture that looked like one) is no section
        if heading is None:
            heading_start, heading_end = 0, len(title)
            heading = title
        else:
            text += "\n\n"
            heading_start = len(text)
            text += heading
            heading_end = len(text)
        text += "\n\n"
        start = len(text)
        text += "\n\n".join(paras)
        body = text[start:]
        # Identical sections (a repeated disclaimer, say) still need ids of their own.
        repeat = seen.get((heading, body), 0)
        seen[(heading, body)] = repeat + 1
        sections.append(
            Section(
                section_id=short_hash(doc_id, heading, body, *([str(repeat)] if repeat else [])),
                doc_id=doc_id,
                heading=heading,
                ordinal=len(sections),
                heading_start=heading_start,
                heading_end=heading_end,
                start=start,
                end=len(text),
            )
        )
    if not sections:
        raise CorpusError(f"{path}: no article text left after cleaning")
    return Document(
        doc_id=doc_id,
        title=title,
        text=text,
        url=url,
        publisher=publisher,
        retrieved=retrieved,
        source=path.name,
        content_hash=content_hash,
        sections=tuple(sections),
    )
