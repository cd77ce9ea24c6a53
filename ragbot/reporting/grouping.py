"""Unanswered questions grouped by meaning: agglomerative clustering under a cosine distance.

Deterministic: the texts are sorted before clustering, average linkage has no random start, and
groups come out largest first, ties broken by their representative question.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ragbot.embeddings import Vectors

EXAMPLES = 3  # other questions shown beside a group's representative


@dataclass(frozen=True)
class QuestionGroup:
    """Questions close in meaning: how many, the one nearest the group's centre, a few others."""

    size: int
    representative: str
    examples: tuple[str, ...]


def group_questions(
    texts: Sequence[str], embed: Callable[[list[str]], Vectors], max_distance: float
) -> list[QuestionGroup]:
    """Groups of `texts` whose members lie within `max_distance` (cosine, average linkage)."""
    counts = Counter(texts)
    unique = sorted(counts)
    if not unique:
        return []
    vectors = np.asarray(embed(unique), dtype=np.float64)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    if len(unique) == 1:
        labels = np.zeros(1, dtype=int)
    else:
        from sklearn.cluster import AgglomerativeClustering

        labels = AgglomerativeClustering(
            n_clusters=None,
            metric="cosine",
            linkage="average",
            distance_threshold=max_distance,
        ).fit_predict(vectors)
    groups: list[QuestionGroup] = []
    for label in sorted(set(labels.tolist())):
        members = [i for i, x in enumerate(labels.tolist()) if x == label]
        centre = vectors[members].mean(axis=0)
        # Nearest the centre; among equals, the most often asked, then alphabetical.
        ranked = sorted(
            members,
            key=lambda i: (-round(float(vectors[i] @ centre), 6), -counts[unique[i]], unique[i]),
        )
        size = sum(counts[unique[i]] for i in members)
        others = tuple(unique[i] for i in ranked[1 : 1 + EXAMPLES])
        groups.append(QuestionGroup(size, unique[ranked[0]], others))
    groups.sort(key=lambda g: (-g.size, g.representative))
    return groups
