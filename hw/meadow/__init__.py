"""``meadow``: the MEADOW tiled dataflow engine family (arXiv 2503.11663).

Golden model: :mod:`golden.meadow`. Blocks: the engine (``meadow``: P token-parallel PEs,
integer softmax, TPHS and GEMM attention schedules, linear layers, memory port) and the
weight unpacking / index look-up unit (``meadow_wilu``).
"""

from ..registry import BlockInfo
from . import engine, wilu
from .engine import EngineConfig, MeadowEngine
from .wilu import WILU, WILUConfig

__all__ = ["EngineConfig", "MeadowEngine", "WILU", "WILUConfig"]

BLOCKS = [
    BlockInfo("meadow", "meadow", MeadowEngine, EngineConfig, engine.PRESETS,
              "MEADOW engine: P token-parallel PEs, integer softmax, TPHS/GEMM attention, "
              "linear layers, memory port"),
    BlockInfo("meadow_wilu", "meadow", WILU, WILUConfig, wilu.PRESETS,
              "weight unpacking / index look-up: packed chunk IDs -> weight chunks"),
]
