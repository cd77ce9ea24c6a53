"""Build work kept between builds in different index folders (`RAGBOT_CACHE_DIR`).

Files are named by what they derive from (the model's hash; for trained models, also their
training data and this package's code), written whole or not at all, and never needed: a cache
that cannot be read or written costs a build time, never the build.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ragbot.embeddings import Vectors


def vectors_file(cache_dir: Path, model_fingerprint: str) -> Path:
    """Where the example vectors of one model live."""
    name = hashlib.sha256(model_fingerprint.encode()).hexdigest()[:24]
    return cache_dir / "vectors" / f"{name}.npz"


def learned_folder(cache_dir: Path, key: str) -> Path:
    """Where a model trained from the inputs that `key` names lives (as the file a build holds)."""
    digest = hashlib.sha256(f"{key}|{code_fingerprint()}".encode()).hexdigest()[:24]
    return cache_dir / "learned" / digest


@functools.cache
def code_fingerprint() -> str:
    """This package's code and data, and the versions of what training runs on: a model trained
    by other code (another commit, another scikit-learn) is never reused."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for dist in ("numpy", "scikit-learn"):
        try:
            digest.update(f"{dist}=={metadata.version(dist)}\n".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{dist} missing\n".encode())
    files = (p for p in package.rglob("*") if p.suffix in {".py", ".json", ".jsonl"})
    for path in sorted(files, key=lambda p: p.relative_to(package).as_posix()):
        if "__pycache__" not in path.parts:
            digest.update(path.relative_to(package).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def read_vectors(path: Path) -> dict[str, Vectors]:
    """Vectors by text key from a build's examples.npz or its copy in the cache; empty when
    there is none or it cannot be read."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {str(k): v for k, v in zip(data["keys"], data["vectors"], strict=True)}
    except (OSError, KeyError, ValueError, TypeError):
        return {}


def keep(path: Path, source: Path, say: Callable[[str], None]) -> None:
    """Copy a file the build made into the cache."""

    def write(fh: BinaryIO) -> None:
        with source.open("rb") as src:
            shutil.copyfileobj(src, fh)

    _store(path, write, say)


def _store(path: Path, write: Callable[[BinaryIO], None], say: Callable[[str], None]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # A unique temporary name: two builds may fill the same cache at once.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except OSError as exc:
        say(f"warning: build cache not written ({exc.strerror or exc}); the next build redoes it")
