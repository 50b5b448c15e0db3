"""``accllm``: the reconfigurable mixed-precision PE array of AccLLM (arXiv 2505.03745).

Golden model: :mod:`golden.accllm`. Blocks: the R x C PE array (W8A8, W4A8, W2A8 with two
products per multiplier, A8 x KV4, 2:4 sparse; matrix-vector and matrix-matrix dataflows;
registered as ``accllm``, the family's top level) and the Λ-shaped KV cache manager.
"""

from ..registry import BlockInfo
from . import kv_manager, pe_array
from .kv_manager import KVManagerConfig, LambdaKVManager
from .pe_array import PEArray, PEArrayConfig, ProcessingElement

__all__ = ["KVManagerConfig", "LambdaKVManager", "PEArray", "PEArrayConfig",
           "ProcessingElement"]

BLOCKS = [
    BlockInfo("accllm", "accllm", PEArray, PEArrayConfig, pe_array.PRESETS,
              "R x C reconfigurable PE array: W8A8/W4A8/W2A8/A8KV4/2:4, GEMV and GEMM"),
    BlockInfo("accllm_kv_manager", "accllm", LambdaKVManager, KVManagerConfig,
              kv_manager.PRESETS,
              "Λ-shaped KV cache manager: sink + window slots, addresses, eviction"),
]
