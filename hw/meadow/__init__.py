"""``meadow``: the MEADOW tiled dataflow engine family (arXiv 2503.11663).

Golden model: :mod:`golden.meadow`. Blocks: the engine (``meadow``: P token-parallel PEs,
integer softmax, TPHS and GEMM attention schedules, linear layers, memory port) and the
weight unpacking / index look-up unit (``meadow_wilu``).
"""

from ..registry import BlockInfo
from . import engine
from .engine import EngineConfig, MeadowEngine

__all__ = ["EngineConfig", "MeadowEngine"]

BLOCKS = [
    BlockInfo("meadow", "meadow", MeadowEngine, EngineConfig, engine.PRESETS,
              "MEADOW engine: P token-parallel PEs, integer softmax, TPHS/GEMM attention, "
              "linear layers, memory port"),
]
