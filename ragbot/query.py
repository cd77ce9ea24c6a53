"""Query analysis: normalisation, content words and stems, street names, typo correction."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache
from importlib import resources
from typing import Any

# Curly quotes, dashes and the like, mapped so that keyword search sees plain ASCII.
_PUNCT = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "\u00a0": " "})
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
MIN_TYPO_LENGTH = 4  # shorter words have too many near neighbours to correct safely
TYPO_SCORE = 80.0  # rapidfuzz ratio (0-100) at which a word is taken for a misspelt corpus word


def normalize(text: str) -> str:
    """Case-fold, straighten quotes and dashes, and collapse whitespace."""
    text = unicodedata.normalize("NFKC", text).translate(_PUNCT).casefold()
    return " ".join(text.split())


@lru_cache(maxsize=1)
def _lexicon() -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(
        resources.files("ragbot.data").joinpath("lexicon.json").read_text("utf-8")
    )
    return raw


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    return frozenset(_lexicon()["stopwords"])


@lru_cache(maxsize=1)
def common_words() -> frozenset[str]:
    """Everyday English words (scripts/common_words.py writes the list from wordfreq) and the
    chat shorthand of lexicon.json ("tho", "pt", "idk")."""
    text = resources.files("ragbot.data").joinpath("common_words.txt").read_text("utf-8")
    listed = (line for line in text.splitlines() if line and not line.startswith("#"))
    return frozenset([*listed, *_lexicon()["chat_words"]])


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def words(text: str) -> list[str]:
    """Content words of a text: normalised, possessives dropped, stop words removed."""
    out = []
    for tok in _TOKEN.findall(normalize(text)):
        tok = tok.removesuffix("'s").replace("'", "")
        if len(tok) > 1 and tok not in _stopwords():
            out.append(tok)
    return out


def stems(tokens: Sequence[str]) -> list[str]:
    """Snowball stems, so "effects" finds "effect"."""
    return list(_stemmer().stemWords(list(tokens)))


@lru_cache(maxsize=1)
def _street_names() -> tuple[re.Pattern[str], str]:
    names = sorted(_lexicon()["ketamine"], key=len, reverse=True)  # "special k" before "k"
    alternatives = "|".join(re.escape(n) for n in names)
    # A name counts only as a whole word; a bare "k" also must not be "ok", "k." as in "k. thanks".
    return re.compile(rf"(?<![\w'])(?:{alternatives})(?![\w'])", re.IGNORECASE), "ketamine"


def expand(text: str) -> str:
    """The question with street names of the drug spelt out ("ket", "special k" -> "ketamine"),
    so that the model, which never read slang, and the keyword index both see the article's word."""
    pattern, name = _street_names()
    if len(text.split()) == 1 and text.strip().lower() in {"k", "kk", "ok"}:
        return text  # "k" alone is "okay"
    return pattern.sub(name, text)


# Where one message holds two things: a sentence end, a new line, or a turn such as "anyway".
_CLAUSE_BREAK = re.compile(
    r"(?<=[.?!…])\s+|\n+|\s+(?:also|anyway|but|because|bc|tho|though)\s+", re.IGNORECASE
)
MIN_CLAUSE_WORDS = 3


def clauses(text: str) -> list[str]:
    """The sentences of a message that holds more than one ("what receptors does it act on?
    i cant stop picturing the highway divider"), or []: a crisis said beside an ordinary
    question is screened on its own."""
    parts = [p.strip(" ,.?!") for p in _CLAUSE_BREAK.split(text)]
    parts = [p for p in parts if len(p.split()) >= MIN_CLAUSE_WORDS]
    return parts if len(parts) > 1 else []


class Vocabulary:
    """The corpus's words, for typo correction."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.words = sorted({w for t in texts for w in words(t)})
        self._known = frozenset(self.words)

    def new_subjects(self, tokens: list[str]) -> list[str]:
        """The words, after typo correction, that are neither the corpus's nor everyday English:
        "migraines" in "what about migraines?" names something the article may not cover;
        "good" in "good ones?" does not."""
        common = common_words()
        return [t for t in self.correct(tokens) if t not in self._known and t not in common]

    def correct(self, tokens: list[str]) -> list[str]:
        """Replace words the corpus does not know by their closest corpus word, if close enough."""
        from rapidfuzz import fuzz, process

        fixed = []
        for tok in tokens:
            if tok in self._known or len(tok) < MIN_TYPO_LENGTH or tok.isdigit():
                fixed.append(tok)
                continue
            match = process.extractOne(tok, self.words, scorer=fuzz.ratio, score_cutoff=TYPO_SCORE)
            fixed.append(match[0] if match else tok)
        return fixed
