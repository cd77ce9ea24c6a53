"""The query encoder for serving: the build's model run by ONNX Runtime, with no torch.

`export()` (build time, torch) writes the sentence-transformers model to ONNX with
`torch.onnx.export`, and `check_parity()` compares both on every corpus text: the build fails
unless every cosine is at least PARITY_COSINE. `OnnxEmbedder` (serve time) tokenises with
`tokenizers` from the model's own tokenizer.json, with sentence-transformers' truncation, mean
pooling and L2 normalisation, and needs nothing but onnxruntime, tokenizers and numpy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ragbot import build_cache
from ragbot.embeddings import Embedder, Vectors
from ragbot.errors import BuildError, IndexCorrupt

MODEL_FILE = "model.onnx"
QUANTISED_FILE = "model.int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
ENCODER_FILE = "encoder.json"
PARITY_COSINE = 0.9999  # the bar: ONNX must agree with sentence-transformers on every text
OPSET = 17
# Bumped whenever export() writes a different graph, so that a cached export of the same
# weights made by an older exporter is not reused.
EXPORT_VERSION = 2
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def export(
    model: Any,
    folder: Path,
    cache: Path | None = None,
    key: str = "",
    say: Callable[[str], None] = lambda _msg: None,
) -> Path:
    """Write model.onnx (and the tokenizer) for a loaded SentenceTransformerEmbedder's model;
    reuse a cached export of the same weights (`key`: their hash) when there is one."""
    target = folder / MODEL_FILE
    cached = cache / f"{key}-v{EXPORT_VERSION}.onnx" if cache is not None and key else None
    if cached is not None and cached.is_file():
        shutil.copyfile(cached, target)
    else:
        _export(model, target)
        if cached is not None:
            build_cache.keep(cached, target, say)
    return target


def _export(st_model: Any, target: Path) -> None:
    import warnings

    import torch

    bert = st_model[0].auto_model
    bert.eval()
    # Eager attention exports as plain MatMul/Softmax, which ONNX Runtime's BERT optimiser
    # fuses into one Attention op a layer; the SDPA export does not fuse. Restored after.
    attention = bert.config._attn_implementation
    bert.set_attn_implementation("eager")

    class LastHidden(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state

    ids = torch.ones((2, 8), dtype=torch.long)
    axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "hidden")}
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter warns about traced shape checks of the Hugging Face model.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHidden(bert),
            (ids, ids, torch.zeros_like(ids)),
            str(target),
            input_names=list(INPUTS),
            output_names=["hidden"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,  # the dynamo exporter needs onnxscript; this one needs nothing more
        )
    bert.set_attn_implementation(attention)
    _fuse(target, bert.config.num_attention_heads, bert.config.hidden_size)


def _fuse(target: Path, heads: int, hidden: int) -> None:
    """Rewrite the export with ONNX Runtime's BERT fusions (Attention, SkipLayerNormalization,
    BiasGelu): 10-20% less time a query on this CPU, the same vectors (the parity check)."""
    from onnxruntime.transformers.optimizer import optimize_model

    fused = optimize_model(str(target), model_type="bert", num_heads=heads, hidden_size=hidden)
    fused.save_model_to_file(str(target))


def quantise(folder: Path) -> Path:
    """Write model.int8.onnx: dynamic int8 quantisation of the weights (RAGBOT_ENCODER=onnx-int8)."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = folder / QUANTISED_FILE
    # The quantiser logs every tensor through the root logger (and advises a pre-processing
    # step it does not need here): dozens of lines in `ragbot serve`'s log. Only its errors pass.
    root = logging.getLogger()
    quiet = _ErrorsOnly()
    root.addFilter(quiet)  # records logged to root itself: ragbot's own loggers are untouched
    try:
        quantize_dynamic(
            str(folder / MODEL_FILE),
            str(target),
            weight_type=QuantType.QInt8,
            # One scale per output channel, not per tensor: on 387 questions the mean cosine to
            # fp32 went from 0.961 to 0.993 (least 0.917 -> 0.979), and a query got faster.
            per_channel=True,
            # Shape inference cannot type the outputs of the fused contrib ops; they are float.
            extra_options={"DefaultTensorType": TensorProto.FLOAT},
        )
    finally:
        root.removeFilter(quiet)
    return target


class _ErrorsOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


def write_meta(folder: Path, model_path: Path, reference: Embedder, quantised: bool) -> None:
    """Copy the tokenizer and record what the encoder is (name, fingerprint, size, window)."""
    shutil.copyfile(model_path / TOKENIZER_FILE, folder / TOKENIZER_FILE)
    meta = {
        "name": reference.name,
        "fingerprint": str(getattr(reference, "fingerprint", reference.name)),
        "dim": reference.dim,
        "max_tokens": int(getattr(reference, "max_tokens", 256)),
        "model_sha256": _sha256(folder / MODEL_FILE),
        "int8_sha256": _sha256(folder / QUANTISED_FILE) if quantised else None,
    }
    (folder / ENCODER_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")


def check_parity(reference: Vectors, onnx: Embedder, texts: list[str]) -> float:
    """The least cosine between sentence-transformers' vectors of the texts (`reference`, the
    index's own) and ONNX's; BuildError below PARITY_COSINE."""
    if not texts:
        return 1.0
    cosines = np.sum(reference * onnx.embed(texts), axis=1)
    worst = int(np.argmin(cosines))
    if cosines[worst] < PARITY_COSINE:
        raise BuildError(
            f"the ONNX export disagrees with sentence-transformers on {texts[worst][:60]!r} "
            f"(cosine {cosines[worst]:.6f} < {PARITY_COSINE}): set RAGBOT_ENCODER=torch"
        )
    return float(cosines[worst])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class OnnxEmbedder:
    """The build's exported model under ONNX Runtime: same vectors, no torch."""

    def __init__(self, folder: Path, *, threads: int = 1, quantised: bool = False) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        try:
            meta = json.loads((folder / ENCODER_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IndexCorrupt(
                f"the index has no ONNX encoder ({exc}): run `ragbot build-index` with the real "
                "model, or set RAGBOT_ENCODER=torch"
            ) from exc
        self.name: str = meta["name"]
        self.fingerprint: str = meta["fingerprint"]
        self.dim: int = int(meta["dim"])
        self.max_tokens: int = int(meta["max_tokens"])
        model = folder / (QUANTISED_FILE if quantised else MODEL_FILE)
        if quantised and meta.get("int8_sha256") is None:
            raise IndexCorrupt("the index has no int8 model: run `ragbot build-index`")
        self._tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        # sentence-transformers truncates at max_seq_length, [CLS] and [SEP] included.
        self._tokenizer.enable_truncation(max_length=self.max_tokens)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # The arena grows to the largest batch ever seen and keeps it; without it memory
        # follows the work (README: Benchmarks).
        options.enable_cpu_mem_arena = False
        # Idle pool threads would otherwise spin for the next run, taking the core that the
        # request threads need between model calls (README: Benchmarks).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            str(model), options, providers=["CPUExecutionProvider"]
        )

    def embed(self, texts: list[str]) -> Vectors:
        """Mean-pooled, L2-normalised vectors, one row per text."""
        unique = list(dict.fromkeys(texts))
        if len(unique) < len(texts):
            # A one-clause message is its own clause, and a batch may hold one question twice:
            # each distinct text is encoded once.
            rows = {text: row for row, text in enumerate(unique)}
            return self.embed(unique)[[rows[t] for t in texts]]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encoded = self._tokenizer.encode_batch(texts)
        lengths = [int(sum(e.attention_mask)) for e in encoded]
        for group in length_groups(lengths):
            width = max(lengths[i] for i in group)
            ids = np.array([encoded[i].ids[:width] for i in group], dtype=np.int64)
            mask = np.array([encoded[i].attention_mask[:width] for i in group], dtype=np.int64)
            hidden = self._session.run(
                None,
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[group] = pooled / np.clip(norms, 1e-12, None)
        return out


# Texts in one model call are padded to the longest: a 200-token message beside its 20-token
# clauses would cost ten times the work. Texts are grouped so that none is padded past this.
MAX_PADDING = 1.5


def length_groups(lengths: list[int]) -> list[list[int]]:
    """Indices grouped by similar token length (shortest first); one model call a group."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and lengths[i] <= MAX_PADDING * lengths[groups[-1][0]]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups
