"""Golden model of the ``camc`` family: the compression-aware memory controller.

After "Reimagining Memory Access for LLM Inference: Compression-Aware Memory Controller
Design" (arXiv 2503.18869). Submodules:

:mod:`.bitplane`
    formats (BF16, FP16, FP8-E4M3 as raw bit patterns), bit-plane and byte-plane
    disaggregation, plane groups, mantissa truncation.
:mod:`.layout`
    cross-token KV-cache layout with a per-channel exponent base.
:mod:`.lz4`
    the LZ4 block compressor the hardware runs (exact algorithm in its docstring) and a
    validating decompressor.
:mod:`.block`
    the compressed block container, reduced-precision read plans, footprint estimates
    (LZ4 golden, the ``lz4`` library, ZSTD).
"""

from .bitplane import *
from .bitplane import __all__ as _bitplane_all
from .block import *
from .block import __all__ as _block_all
from .layout import *
from .layout import __all__ as _layout_all
from .lz4 import *
from .lz4 import __all__ as _lz4_all

__all__ = [*_bitplane_all, *_layout_all, *_lz4_all, *_block_all]
