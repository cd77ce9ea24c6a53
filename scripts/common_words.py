"""Write ragbot/data/common_words.txt: everyday English words, from wordfreq.

A follow-up that uses only the article's words and everyday ones ("good ones?", "how do you stop
that from happening") is about the answer before it; one with a rarer word the article never uses
("what about migraines?", "psilocybin tho?") brings a subject of its own (README: Conversations).
The list is every word of wordfreq's English top 50,000 at Zipf frequency 4.5 or more (about
once in 30,000 words of text), chosen on the training dialogues; kept as data so that serving
needs no wordfreq.

    .venv/bin/python scripts/common_words.py [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wordfreq import top_n_list, zipf_frequency

OUT = Path(__file__).resolve().parents[1] / "ragbot" / "data" / "common_words.txt"
TOP = 50_000
MIN_ZIPF = 4.5


def common_words() -> list[str]:
    """The words, sorted."""
    # Spelt as ragbot.query.words() leaves them: "don't" -> "dont".
    kept = {
        w.replace("'", "")
        for w in top_n_list("en", TOP)
        if w.replace("'", "").isalpha() and zipf_frequency(w, "en") >= MIN_ZIPF
    }
    return sorted(kept)


def render() -> str:
    header = f"# wordfreq English, top {TOP:,}, Zipf >= {MIN_ZIPF}: scripts/common_words.py\n"
    return header + "\n".join(common_words()) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is not current")
    args = parser.parse_args()
    text = render()
    if args.check:
        if OUT.read_text(encoding="utf-8") != text:
            sys.exit(f"error: {OUT.name} is not what wordfreq gives: run scripts/common_words.py")
        return
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({text.count(chr(10)) - 1} words)")


if __name__ == "__main__":
    main()
