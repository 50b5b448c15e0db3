"""``camc``: the compression-aware memory controller family (arXiv 2503.18869).

Golden model: :mod:`golden.camc`. Blocks: bit-plane split and merge units; the LZ4 lanes
and the controller follow.
"""

from ..registry import BlockInfo
from . import bitplane
from .bitplane import BitplaneConfig, BitplaneMerge, BitplaneSplit

__all__ = ["BitplaneConfig", "BitplaneMerge", "BitplaneSplit"]

BLOCKS = [
    BlockInfo("bitplane_split", "camc", BitplaneSplit, BitplaneConfig, bitplane.PRESETS,
              "values -> bit planes (MSB plane first), double-buffered"),
    BlockInfo("bitplane_merge", "camc", BitplaneMerge, BitplaneConfig, bitplane.PRESETS,
              "bit planes (top p of them) -> values, low planes zero"),
]
