"""What every part needs first: the question set, and a built index."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

from ragbot.config import Settings
from ragbot.evaluation.questions import default_questions_path, load_questions

# The tuning set and the newest hold-out, every category: what people ask, screened or not.
QUESTION_FILES = ("eval_questions.jsonl", "holdout_v3.jsonl")
RAGBOT = Path(sys.executable).with_name("ragbot")  # the venv's own command


def question_set() -> tuple[list[str], dict[str, int]]:
    """The questions of QUESTION_FILES in file order, and how many there are per category."""
    folder = default_questions_path().parent
    questions = [q for name in QUESTION_FILES for q in load_questions(folder / name)]
    return [q.question for q in questions], dict(Counter(q.category for q in questions))


def ensure_index(settings: Settings) -> bool:
    """Run `ragbot build-index` (about a minute) when index/current is missing; True if it ran."""
    if (settings.index_dir / "current").exists():
        return False
    print(f"no {settings.index_dir / 'current'}: running `ragbot build-index`", file=sys.stderr)
    subprocess.run([str(RAGBOT), "build-index"], check=True, stdin=subprocess.DEVNULL)
    return True
