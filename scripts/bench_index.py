"""Scale check of ingest and indexing (not a test): N synthetic articles, flat and HNSW, real model.

Generates N Markdown articles (front matter, an introduction and five sections, sentences
assembled from phrase banks so they differ), builds the index with the real embedding model as a
flat index and then as an HNSW index, and prints build time, bytes on disk, peak memory, the
latency of `Index.search` for flat and HNSW, and HNSW recall@10 against the exact flat search.

The HNSW build starts from a copy of the flat index folder, so the build cache hands it every
vector (same model, same records): its time is loading, chunking, FAISS graph construction and
writing, not embedding. Both builds are printed as measured, with CPU time next to wall time
and the machine's load average, because other processes on two cores slow torch down a lot.

    python scripts/bench_index.py                 # 1000 articles in a temporary folder
    python scripts/bench_index.py --docs 200 --out /tmp/ragbot-bench
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ragbot.config import Settings
from ragbot.embeddings import Embedder
from ragbot.index import BuildReport, Index, build_index, load_index
from ragbot.pipeline import load_embedder


def _bank(text: str) -> list[str]:
    return [line.strip() for line in text.strip().splitlines()]


SUBJECTS = _bank("""
    Ketamine
    The treatment
    A single infusion
    Low-dose therapy
    The medication
    Each session
    Regular monitoring
    The care team
    Esketamine
    A guided experience
    Behavioral support
    The prescribing clinician
    Home treatment
    The first dose
    Follow-up care
    A supervised program
""")
VERBS = _bank("""
    may improve
    can reduce
    often changes
    appears to strengthen
    is linked to
    tends to disrupt
    does not replace
    helps to restore
    may temporarily raise
    was shown to lower
    can quickly ease
    is believed to reshape
    rarely affects
    briefly blocks
""")
OBJECTS = _bank("""
    symptoms of depression
    glutamate signaling
    synaptic connections
    sleep quality
    blood pressure
    working memory
    anxious thoughts
    neural pathways
    mood regulation
    NMDA receptor activity
    bladder health
    social withdrawal
    chronic pain
    emotional processing
    AMPA receptor activity
    stress hormones
    motivation
    focus and attention
""")
MODIFIERS = _bank("""
    within hours
    over several weeks
    in most adults
    for some patients
    after six sessions
    when combined with coaching
    in early trials
    under medical supervision
    at higher doses
    in people with treatment-resistant depression
    according to recent studies
    for up to two weeks
    in a small number of cases
    compared with placebo
""")
TOPICS = _bank("""
    Sleep
    Memory
    Mood
    Anxiety
    Pain
    Focus
    Appetite
    Motivation
    Stress
    Recovery
    Dosing
    Safety
    Side Effects
    Integration
    Neuroplasticity
    Monitoring
""")
HEADINGS = _bank("""
    How Does Ketamine Affect {topic}?
    What Research Says About {topic}
    {topic} and Long-Term Use
    Is {topic} Affected After Treatment?
    Understanding {topic} During Therapy
    Can Ketamine Help With {topic}?
""")
SECTIONS = 5  # plus the introduction: six sections per article
# Sentences in the introduction and in each section: 23 texts to embed per article (11 sentences,
# 6 chunks, 6 headings): 1000 articles build in 2-3 minutes on 2 shared cores.
SENTENCES = (1, 2)
FURNITURE = (
    "Sign up to the Example Clinic newsletter.\n\n© 2025 Example Clinic. All Rights Reserved"
)
K = 10


def sentence(rng: random.Random) -> str:
    """One plausible sentence; 16 x 14 x 18 x 14 combinations."""
    parts = (rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS), rng.choice(MODIFIERS))
    return " ".join(parts) + "."


def article(number: int, rng: random.Random) -> str:
    """A Markdown article: front matter, an introduction, five sections, footer furniture."""
    topics = rng.sample(TOPICS, SECTIONS + 1)
    title = f"Ketamine and {topics[0]}: Notes {number}"
    url = f"https://example.org/articles/{number}"
    parts = [
        f'---\ntitle: "{title}"\npublisher: Example Clinic\nurl: {url}\n---',
        f"# {title}",
        " ".join(sentence(rng) for _ in range(SENTENCES[0])),
    ]
    for topic in topics[1:]:
        parts.append("## " + rng.choice(HEADINGS).format(topic=topic))
        parts.append(" ".join(sentence(rng) for _ in range(SENTENCES[1])))
    parts.append(FURNITURE)
    return "\n\n".join(parts) + "\n"


def write_corpus(folder: Path, docs: int, seed: int) -> int:
    """Write N articles, reproducible from the seed; return their bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for number in range(1, docs + 1):
        (folder / f"article-{number:05d}.md").write_text(article(number, rng), encoding="utf-8")
    return sum(p.stat().st_size for p in folder.iterdir())


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User and system CPU time of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min) {five:.1f} (5 min) on {os.cpu_count()} CPUs"


def timed_build(label: str, settings: Settings, embedder: Embedder) -> BuildReport:
    """Build, then print wall and CPU time, throughput, bytes on disk and peak memory."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    report = build_index(settings, embedder)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    files = {p.name: p.stat().st_size for p in sorted(report.path.iterdir())}
    faiss = ", ".join(f"{n} {b / 1e6:.1f}" for n, b in files.items() if n.endswith(".faiss"))
    if report.embedded:
        work = f"embedded {report.embedded} texts, {report.embedded / wall:.0f}/s"
    else:
        work = f"embedded 0, reused {report.reused} vectors of the flat build"
    print(f"\n[{label}] build {wall:.1f} s wall, {cpu:.1f} s CPU ({work})")
    print(
        f"  on disk {sum(files.values()) / 1e6:.1f} MB: records.json "
        f"{files['records.json'] / 1e6:.1f} MB, {faiss} MB"
    )
    print(f"  peak RSS so far {peak_rss_mb():.0f} MB; {machine_load()}")
    return report


def search_ms(index: Index, kind: str, queries: np.ndarray) -> tuple[list[set[int]], list[float]]:
    """The top-K rows and the milliseconds of Index.search for each query."""
    for query in queries[:10]:  # warm-up
        index.search(kind, query, K)
    rows, times = [], []
    for query in queries:
        started = time.perf_counter_ns()
        hits = index.search(kind, query, K)
        times.append((time.perf_counter_ns() - started) / 1e6)
        rows.append({row for row, _ in hits})
    return rows, times


def main(argv: list[str] | None = None) -> int:
    """Generate, build twice, search, print."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=1000, help="articles to generate")
    parser.add_argument("--out", type=Path, help="work folder (default: a temporary one, removed)")
    parser.add_argument("--queries", type=int, default=200, help="search queries to time")
    parser.add_argument("--seed", type=int, default=1, help="seed of the corpus and the queries")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    args = parser.parse_args(argv)

    out: Path = args.out or Path(tempfile.mkdtemp(prefix="ragbot-bench-"))
    corpus, flat_dir, hnsw_dir = out / "corpus", out / "index-flat", out / "index-hnsw"
    for path in (corpus, flat_dir, hnsw_dir):
        shutil.rmtree(path, ignore_errors=True)
    started = time.perf_counter()
    try:
        size = write_corpus(corpus, args.docs, args.seed)
        per_doc = SENTENCES[0] + SECTIONS * SENTENCES[1]
        print(
            f"corpus  {args.docs} articles ({SECTIONS + 1} sections, {per_doc} sentences each), "
            f"{size / 1e6:.1f} MB in {corpus}"
        )

        flat_settings = Settings(corpus_dir=corpus, index_dir=flat_dir, index_type="flat")
        wall = time.perf_counter()
        embedder = load_embedder(flat_settings, for_build=True)  # as `ragbot build-index` does
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        print(
            f"model   {flat_settings.model_name} loaded in {time.perf_counter() - wall:.1f} s, "
            f"torch threads {torch.get_num_threads()}, peak RSS {peak_rss_mb():.0f} MB"
        )
        print(f"machine {machine_load()}")

        flat_report = timed_build("flat", flat_settings, embedder)
        print(
            f"  records {flat_report.documents} documents, {flat_report.sections} sections, "
            f"{flat_report.sentences} sentences, {flat_report.chunks} chunks "
            f"({flat_report.tokens} chunk tokens)"
        )

        shutil.copytree(flat_dir, hnsw_dir, symlinks=True)
        hnsw_settings = flat_settings.model_copy(
            update={"index_dir": hnsw_dir, "index_type": "hnsw"}
        )
        timed_build(f"hnsw M={hnsw_settings.hnsw_m} efConstruction=80", hnsw_settings, embedder)

        wall = time.perf_counter()
        flat = load_index(flat_settings, embedder)
        hnsw = load_index(hnsw_settings, embedder)
        print(f"\nload    both indexes in {time.perf_counter() - wall:.2f} s (hashes checked)")

        rng = random.Random(args.seed + 1)
        questions = [
            f"what {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(MODIFIERS)}?"
            for _ in range(args.queries)
        ]
        wall = time.perf_counter()
        queries = embedder.embed(questions)
        embed_ms = 1000 * (time.perf_counter() - wall) / len(questions)
        print(f"queries {len(questions)} embedded in one batch, {embed_ms:.1f} ms each")

        print(
            f"\nsearch  Index.search(kind, query, k={K}), one query at a time, "
            f"efSearch {hnsw_settings.hnsw_ef_search}"
        )
        for kind in ("chunks", "sentences"):
            exact, flat_ms = search_ms(flat, kind, queries)
            approx, hnsw_ms = search_ms(hnsw, kind, queries)
            recall = statistics.fmean(len(a & e) / K for a, e in zip(approx, exact, strict=True))
            p = {
                name: np.percentile(ms, [50, 95])
                for name, ms in (("flat", flat_ms), ("hnsw", hnsw_ms))
            }
            print(
                f"  {kind:<9} {flat.faiss[kind].ntotal:>6} vectors  "
                f"flat p50 {p['flat'][0]:.3f} ms p95 {p['flat'][1]:.3f} ms  "
                f"hnsw p50 {p['hnsw'][0]:.3f} ms p95 {p['hnsw'][1]:.3f} ms  "
                f"recall@{K} {recall:.3f}"
            )

        print(f"\npeak RSS {peak_rss_mb():.0f} MB over the run (model, both builds, both indexes)")
        print(f"total   {time.perf_counter() - started:.0f} s; {machine_load()}")
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
