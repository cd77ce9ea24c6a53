"""Fit the follow-up ranker (ragbot/followups.py) and write ragbot/data/followup_ranker.json.

The dialogue tuning sets and the retired dialogue hold-outs (never the newest) are replayed
through the service, each turn with the service's own earlier replies as history; every turn the
turn classifier reads as a follow-up, and whose gold sentences are in the index, gives one
training group, its votes from the labelled follow-ups of the other sets only. Two rounds: the
second replays with the first round's weights, so that the replies a follow-up sees are those
the fitted ranker gives. Each set is held out in turn to
report how often a gold sentence is first and in the top three, beside the follow-up alone
(the naive reading) on the same turns.

    HF_HUB_OFFLINE=1 .venv/bin/python scripts/fit_followups.py [--out PATH] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ragbot.config import Settings
from ragbot.conversation import Turn
from ragbot.evaluation.dialogues import dialogue_path, load_dialogues
from ragbot.followups import (
    FEATURES,
    L2,
    RANKER_FILE,
    FollowupRanker,
    features,
    fit,
    sets_hash,
    training_sets,
)
from ragbot.pipeline import Pipeline, serving_embedder

Group = tuple[str, np.ndarray, np.ndarray]  # (set, features, gold mask)


def replay(pipeline: Pipeline, names: list[str]) -> list[Group]:
    """One group per follow-up turn with a gold sentence, from the service's own replies."""
    groups: list[Group] = []
    sentences = pipeline.index.sentences
    for name in names:
        for dialogue in load_dialogues(dialogue_path(name)):
            history: list[Turn] = []
            for turn in dialogue.turns:
                trace = pipeline.ask_traced(turn.question, history)
                if trace.followup is not None and turn.gold_sentences:
                    gold = np.array(
                        [
                            any(g in s.text or s.text in g for g in turn.gold_sentences)
                            for s in sentences
                        ]
                    )
                    if gold.any():
                        # Its own set's follow-ups do not vote for it, as at serve time none
                        # of a new conversation's would.
                        x = features(
                            pipeline.index,
                            trace.followup,
                            pipeline.followup_pool,
                            exclude=name.removesuffix(".jsonl"),
                        )
                        groups.append((name, x, gold))
                quotes = tuple(c.quote for c in trace.answer.citations)
                history.append(Turn(turn.question, quotes))
    return groups


def hits_at(order: np.ndarray, gold: np.ndarray) -> tuple[bool, bool]:
    return bool(gold[order[0]]), bool(gold[order[:3]].any())


def held_out(groups: list[Group]) -> dict[str, float]:
    """Each set held out in turn: top-1 and top-3 hits of the fit and of the follow-up alone."""
    fitted, alone = [], []
    own = FEATURES.index("own")
    for name in sorted({g[0] for g in groups}):
        ranker = fit([(x, y) for s, x, y in groups if s != name])
        for s, x, y in groups:
            if s == name:
                logits = ((x - ranker.mean) / ranker.scale) @ ranker.weights
                fitted.append(hits_at(np.argsort(-logits, kind="stable"), y))
                alone.append(hits_at(np.argsort(-x[:, own], kind="stable"), y))
    return {
        "top1": round(float(np.mean([a for a, _ in fitted])), 4),
        "top3": round(float(np.mean([b for _, b in fitted])), 4),
        "alone_top1": round(float(np.mean([a for a, _ in alone])), 4),
        "alone_top3": round(float(np.mean([b for _, b in alone])), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = Path(__file__).resolve().parents[1] / "ragbot" / "data" / RANKER_FILE
    parser.add_argument("--out", type=Path, default=default)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    settings = Settings()
    pipeline = Pipeline.load(settings, embedder=serving_embedder(settings))
    names = training_sets()
    for round_ in range(1, args.rounds + 1):
        groups = replay(pipeline, names)
        ranker = fit([(x, y) for _, x, y in groups])
        pipeline.followups = ranker
        print(f"round {round_}: {len(groups)} follow-up turns")
    figures = held_out(groups)
    meta = {
        "sets": names,
        "sets_sha256": sets_hash(names),
        "turns": len(groups),
        "l2": L2,
        "held_out_by_set": figures,
        "index_build": pipeline.index.build_id,
    }
    out = FollowupRanker(ranker.weights, ranker.mean, ranker.scale, meta).to_json()
    args.out.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
