"""``camc``: the compression-aware memory controller family (arXiv 2503.18869).

Golden model: :mod:`golden.camc`. Blocks: bit-plane split and merge units, the LZ4 block
compressor and decompressor, and the controller that combines them (``camc_controller``,
with a memory port; ``camc``, the controller with block RAM behind it).
"""

from ..registry import BlockInfo
from . import bitplane, controller, lz4_compressor, lz4_decompressor
from .bitplane import BitplaneConfig, BitplaneMerge, BitplaneSplit
from .controller import CAMCConfig, CAMCController, CAMCError, CAMCSystem
from .lz4_compressor import LZ4Compressor, LZ4CompressorConfig
from .lz4_decompressor import LZ4Decompressor, LZ4DecompressorConfig

__all__ = ["CAMCConfig", "CAMCController", "CAMCError", "CAMCSystem",
           "BitplaneConfig", "BitplaneMerge", "BitplaneSplit",
           "LZ4Compressor", "LZ4CompressorConfig", "LZ4Decompressor", "LZ4DecompressorConfig"]

BLOCKS = [
    BlockInfo("bitplane_split", "camc", BitplaneSplit, BitplaneConfig, bitplane.PRESETS,
              "values -> bit planes (MSB plane first), double-buffered"),
    BlockInfo("bitplane_merge", "camc", BitplaneMerge, BitplaneConfig, bitplane.PRESETS,
              "bit planes (top p of them) -> values, low planes zero"),
    BlockInfo("lz4_compressor", "camc", LZ4Compressor, LZ4CompressorConfig,
              lz4_compressor.PRESETS,
              "LZ4 block compressor, hash-table match finder, bit-exact with the golden"),
    BlockInfo("lz4_decompressor", "camc", LZ4Decompressor, LZ4DecompressorConfig,
              lz4_decompressor.PRESETS,
              "LZ4 block decompressor, N-byte match copy, error flag per block"),
    BlockInfo("camc_controller", "camc", CAMCController, CAMCConfig, controller.PRESETS,
              "compression-aware memory controller: lanes, block map, memory port"),
    # its lanes' block RAMs pinned a patch per lane, and a placer that weighs timing
    # harder: 20 -> 6 minutes of place and route and 87 -> 97 MHz on four lanes
    # (docs/results.md)
    BlockInfo("camc", "camc", CAMCSystem, CAMCConfig, controller.PRESETS,
              "camc_controller with block RAM behind its memory port (the bitstream design)",
              pnr={"floorplan": True, "timing_weight": 30}),
]
