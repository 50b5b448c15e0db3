"""``flexcim``: the FlexCiM sparse digital compute-in-memory macro (arXiv 2504.14365).

Golden models: :mod:`golden.flexcim` (N:M products and the macro's arithmetic) and
:mod:`golden.flow` (FLOW's per-layer N:M choice). Block: the DCiM macro with its distribution
and merging units, N:M chosen at run time; registered as ``flexcim``.
"""

from ..registry import BlockInfo
from . import macro
from .macro import FlexCiMConfig, FlexCiMMacro

__all__ = ["FlexCiMConfig", "FlexCiMMacro"]

BLOCKS = [
    BlockInfo("flexcim", "flexcim", FlexCiMMacro, FlexCiMConfig, macro.PRESETS,
              "sparse DCiM macro: N:M (or dense) chosen at run time, distribution unit, "
              "sub-macro adder trees, merging unit with accumulator"),
]
