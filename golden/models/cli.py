"""What ``llmhw model ...`` runs: generation, perplexity and activation capture with SmolLM2.

Each function returns its result (the caller prints it); variants are named as in
:func:`golden.models.interfaces.get_variant` (``fp32`` and whatever ``quant.py`` registers).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .evaluate import greedy_generate, load_eval_tokens
from .evaluate import perplexity as _perplexity
from .interfaces import get_variant, variant_names
from .smollm2 import Capture, SmolLM2
from .tokenizer import load_tokenizer
from .weights import REPO_ROOT

__all__ = ["generate", "perplexity", "capture", "describe", "variants", "model"]


def variants() -> list[str]:
    """Names accepted by ``variant=``."""
    return variant_names()


def model(variant: str = "fp32") -> SmolLM2:
    """SmolLM2 with the FP32 (dequantized GGUF) weights, run as ``variant``."""
    return SmolLM2(variant=get_variant(variant))


def generate(prompt: str, n: int = 20, variant: str = "fp32", chat: bool = False) -> str:
    """Greedy continuation (``n`` tokens at most) of ``prompt``; ``chat`` wraps the prompt in
    SmolLM2's chat template."""
    tokenizer = load_tokenizer()
    text = tokenizer.chat_prompt(prompt) if chat else prompt
    return greedy_generate(model(variant), tokenizer, text, n)


def perplexity(variant: str = "fp32", tokens: int | None = None, window: int = 512,
               stride: int | None = None) -> dict:
    """Perplexity of ``variant`` on the first ``tokens`` tokens of the bundled text (all if
    None), in windows of ``window`` tokens; returns ``{variant, perplexity, tokens, window,
    stride, seconds}``."""
    ids = load_eval_tokens(tokens)
    start = time.perf_counter()
    value = _perplexity(model(variant), ids, window=window, stride=stride)
    return {"variant": variant, "perplexity": value, "tokens": int(ids.size), "window": window,
            "stride": stride or window, "seconds": time.perf_counter() - start}


def capture(tokens: int = 512, out: str | Path = "build/kv.npz",
            layers: list[int] | None = None, variant: str = "fp32",
            what=("linear_inputs", "qkv", "kv_cache")) -> Path:
    """Run the first ``tokens`` tokens of the bundled text through SmolLM2 and save, per layer,
    the KV cache and the inputs of the linear layers (see :class:`Capture` for the keys) to
    ``out`` (relative paths are taken from the repository root). Also saved: ``tokens`` and
    ``positions``. Returns the path written."""
    ids = load_eval_tokens(tokens)
    recorder = Capture(layers=layers, what=what, head=True)
    model(variant).forward(ids, capture=recorder)
    recorder.records["tokens"] = ids
    path = Path(out)
    if not path.is_absolute():
        path = REPO_ROOT / path
    path.parent.mkdir(parents=True, exist_ok=True)
    recorder.save(path)
    return path


def describe(path: str | Path) -> str:
    """One line about a capture file: array count and size."""
    path = Path(path)
    with np.load(path) as archive:
        size = sum(archive[name].nbytes for name in archive.files)
        return f"{path}: {len(archive.files)} arrays, {size / 2**20:.1f} MiB"
