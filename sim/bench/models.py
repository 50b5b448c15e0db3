"""Perplexity of SmolLM2-135M under each quantized variant (``golden/models/quant.py``).

Every variant runs the numpy model on the bundled evaluation text with a 512-token window;
``quick`` keeps the first 1024 tokens. The rows carry the perplexity, the tokens scored and
the wall time, for the table in ``docs/``.
"""

import time

__all__ = ["run", "VARIANT_NAMES"]

#: The variants benchmarked, in table order.
VARIANT_NAMES = ["fp32", "bf16", "w8a8", "w4a8", "w4a8-min", "w2a8", "kv4", "2:4", "2:4-wanda",
                 "lambda"]
WINDOW = 512
QUICK_TOKENS = 1024


def run(quick: bool = False) -> dict:
    from golden.models import evaluate
    from golden.models.interfaces import get_variant
    from golden.models.quant import QUANT_VARIANTS
    from golden.models.smollm2 import SmolLM2

    started = time.monotonic()
    tokens = evaluate.load_eval_tokens()
    if quick:
        tokens = tokens[:QUICK_TOKENS]
    descriptions = {"fp32": "float32 weights (the dequantized Q4_1 GGUF values) and activations"}
    descriptions.update({name: text for name, (_, text) in QUANT_VARIANTS.items()})
    rows = []
    for k, name in enumerate(VARIANT_NAMES):
        start = time.monotonic()
        # the time includes preparing the weights (and, for 2:4-wanda, its calibration)
        model = SmolLM2(variant=get_variant(name))
        perplexity = float(evaluate.perplexity(model, tokens, window=WINDOW))
        seconds = round(time.monotonic() - start, 1)
        rows.append({"variant": name, "description": descriptions[name],
                     "perplexity": round(perplexity, 4), "tokens": len(tokens),
                     "seconds": seconds})
        print(f"[{k + 1}/{len(VARIANT_NAMES)}] {name}: perplexity {perplexity:.3f} on "
              f"{len(tokens)} tokens in {seconds} s", flush=True)
    return {"model": "SmolLM2-135M-Instruct", "window": WINDOW, "quick": quick,
            "variants": rows, "seconds": round(time.monotonic() - started, 1)}
