"""``llmhw bench camc``: savings of every storage scheme and codec on real tensors (software).

MiniLM BF16 weights and a SmolLM2 KV cache of 512 tokens through raw / byte-plane /
bit-plane (/ bit-plane + cross-token) layouts, with the golden LZ4 the hardware runs, the
``lz4`` library and ZSTD, in 4 KiB blocks. (The RTL figures join when the controller does.)
"""

import time

from golden.camc.estimate import (
    CODECS,
    KV_SCHEMES,
    WEIGHT_SCHEMES,
    estimate,
    kv_cache_values,
    weight_values,
)

__all__ = ["run"]

# the paper's figures (arXiv 2503.18869), for the table beside ours
PAPER = {"weights": "−25.2% (Llama-3.1-8B BF16, ZSTD)", "kv_cache": "−46.9%"}


def _progress(what):
    def report(row):
        print(f"  {what}: {row['scheme']:<20} {row['codec']:<8} ratio {row['ratio']:.4f} "
              f"saving {100 * row['saving']:5.1f}% ({row['seconds']} s)", flush=True)
    return report


def run(quick: bool = False) -> dict:
    started = time.monotonic()
    sample = (4 << 20) if quick else None
    tokens = 128 if quick else 512
    print(f"camc: MiniLM BF16 weights ({'4 MiB sample' if quick else 'all'})", flush=True)
    weights = weight_values("minilm", sample_bytes=sample)
    weight_rows = estimate(weights, WEIGHT_SCHEMES, CODECS, progress=_progress("weights"))
    print(f"camc: SmolLM2 KV cache, {tokens} tokens, 30 layers x K/V", flush=True)
    kv_rows = estimate(kv_cache_values(tokens), KV_SCHEMES, CODECS,
                       progress=_progress("kv cache"))
    return {"block_bytes": 4096, "weights": {"model": "all-MiniLM-L6-v2", "rows": weight_rows},
            "kv_cache": {"model": "SmolLM2-135M-Instruct", "tokens": tokens, "rows": kv_rows},
            "paper": PAPER, "seconds": round(time.monotonic() - started, 1)}
