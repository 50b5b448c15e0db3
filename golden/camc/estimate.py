"""Footprint estimates on real tensors: how much a scheme and codec would save.

The user-facing side of the golden model (``llmhw camc footprint``): BF16 weights of the
bundled models or of any safetensors/GGUF file, and a real SmolLM2 KV cache, through every
storage scheme (raw, byte-plane, bit-plane, bit-plane + cross-token) and codec (the golden
LZ4 the hardware runs, the ``lz4`` library, ZSTD).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .block import footprint

__all__ = ["weight_values", "kv_cache_values", "estimate", "CODECS", "WEIGHT_SCHEMES"]

CODECS = ("lz4", "lz4-lib", "zstd")
WEIGHT_SCHEMES = ("raw", "byteplane", "bitplane")
KV_SCHEMES = ("raw", "byteplane", "bitplane", "bitplane+crosstoken")


def _float_tensors(source: str) -> dict[str, np.ndarray]:
    if source == "minilm":
        from golden.models.minilm import load_minilm

        return load_minilm()[1]
    if source == "smollm2":
        from golden.models.weights import load_smollm2

        return load_smollm2()[1]
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"model must be 'minilm', 'smollm2' or a .safetensors/.gguf file, "
                         f"not {source!r}")
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        return load_file(str(path))
    if path.suffix == ".gguf":
        import gguf

        reader = gguf.GGUFReader(str(path))
        return {t.name: gguf.quants.dequantize(t.data, t.tensor_type) for t in reader.tensors}
    raise ValueError(f"model file must end in .safetensors or .gguf, not {path.name!r}")


def weight_values(source: str, sample_bytes: int | None = None) -> np.ndarray:
    """BF16 bit patterns (RNE) of every floating-point tensor of ``source``, concatenated.

    ``sample_bytes`` keeps an evenly spaced sample of whole 4 KiB stretches of that size.
    """
    from golden.models.weights import to_bf16_bits

    parts = [np.asarray(t, np.float32).ravel() for t in _float_tensors(source).values()
             if np.issubdtype(np.asarray(t).dtype, np.floating)]
    values = to_bf16_bits(np.concatenate(parts))
    if sample_bytes is not None and 2 * values.size > sample_bytes:
        stretch = 2048
        stretches = values.size // stretch
        keep = max(1, sample_bytes // (2 * stretch))
        picks = np.linspace(0, stretches - 1, keep).astype(int)
        values = np.concatenate([values[k * stretch:(k + 1) * stretch] for k in picks])
    return values


def kv_cache_values(tokens: int = 512) -> list[np.ndarray]:
    """BF16 K and V caches of SmolLM2 after ``tokens`` tokens of the bundled text.

    One ``[tokens][kv_heads * head_dim]`` array per layer and per K/V (60 in all), the layout
    a cache is written in, token after token.
    """
    from golden.models.evaluate import load_eval_tokens
    from golden.models.smollm2 import Capture, SmolLM2
    from golden.models.weights import to_bf16_bits

    model = SmolLM2()
    capture = Capture(what=("kv_cache",))
    model.forward(load_eval_tokens(tokens), capture=capture)
    caches = []
    for layer in range(model.config.n_layers):
        for kind in ("cache_k", "cache_v"):
            x = capture.layer(layer)[kind]                    # (kv_heads, tokens, head_dim)
            caches.append(to_bf16_bits(x.transpose(1, 0, 2).reshape(x.shape[1], -1)))
    return caches


def estimate(values, schemes, codecs=CODECS, block_bytes: int = 4096,
             progress=None) -> list[dict]:
    """One row per (scheme, codec): raw and stored bytes, ratio, saving and seconds.

    ``values`` is one array, or a list of ``[tokens][channels]`` arrays (KV caches) whose
    footprints add up.
    """
    arrays = values if isinstance(values, list) else [values]
    rows = []
    for scheme in schemes:
        for codec in codecs:
            started = time.monotonic()
            raw = stored = 0
            for array in arrays:
                data = array if scheme == "bitplane+crosstoken" else array.ravel()
                result = footprint(data, "bf16", scheme, codec, block_bytes)
                raw += result.raw_bytes
                stored += result.stored_bytes
            rows.append({"scheme": scheme, "codec": codec, "raw_bytes": raw,
                         "stored_bytes": stored, "ratio": round(raw / stored, 4),
                         "saving": round(1 - stored / raw, 4),
                         "seconds": round(time.monotonic() - started, 2)})
            if progress:
                progress(rows[-1])
    return rows
