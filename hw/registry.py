"""The catalogue of generatable blocks: each family lists its blocks, configs and presets.

A family module (``hw.common``, later ``hw.camc``...) exposes ``BLOCKS``, a list of
:class:`BlockInfo`. The CLI, the FPGA flow and the tests find blocks here by name.
"""

import dataclasses
import importlib
import importlib.util
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from amaranth.lib import wiring

__all__ = ["BlockInfo", "FAMILIES", "all_blocks", "get_block", "make_config", "build"]

# Family packages, in the order `llmhw list` shows them. A family whose package does not
# exist yet is skipped, so a new family only has to add its package.
FAMILIES = ["hw.common", "hw.camc", "hw.meadow", "hw.flexcim", "hw.accllm"]


@dataclass(frozen=True)
class BlockInfo:
    """One generatable block.

    Parameters
    ----------
    name : str
        Name used on the command line (``llmhw generate NAME``) and by ``make ... DESIGN=NAME``.
    family : str
        Family it belongs to (``common``, ``camc``, ``meadow``, ``flexcim``, ``accllm``).
    component : callable
        ``component(cfg) -> wiring.Component``.
    config : type
        Frozen dataclass type of the block's configuration.
    presets : mapping of str to config
        Named configurations; ``"default"`` must be among them.
    summary : str
        One line for ``llmhw list``.
    pnr : mapping of str to object
        Place and route options (keyword arguments of :func:`fpga.build.build`:
        ``floorplan``, ``timing_weight``) a build of this block uses unless told otherwise.
    """

    name: str
    family: str
    component: Callable[[object], wiring.Component]
    config: type
    presets: Mapping[str, object]
    summary: str
    pnr: Mapping[str, object] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if "default" not in self.presets:
            raise ValueError(f"block {self.name!r} has no 'default' preset")
        unknown = set(self.pnr) - {"floorplan", "timing_weight"}
        if unknown:
            raise ValueError(f"pnr of block {self.name!r} takes floorplan and timing_weight, "
                             f"not {sorted(unknown)}")


def all_blocks() -> dict[str, BlockInfo]:
    blocks = {}
    for family in FAMILIES:
        if importlib.util.find_spec(family) is None:
            continue
        for info in importlib.import_module(family).BLOCKS:
            if info.name in blocks:
                raise ValueError(f"block name {info.name!r} is registered twice")
            blocks[info.name] = info
    return blocks


def get_block(name: str) -> BlockInfo:
    blocks = all_blocks()
    if name not in blocks:
        raise ValueError(f"unknown block {name!r}; choose one of: {', '.join(blocks)}")
    return blocks[name]


def _parse_value(block: str, field: dataclasses.Field, text: str):
    hint = field.type
    if isinstance(hint, str):
        hint = {"int": int, "bool": bool, "str": str, "float": float}.get(hint, hint)
    # `int | None` style hints: take the first concrete type
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if text.lower() == "none":
            return None
        hint = args[0] if args else str
    try:
        if hint is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if hint is int:
            return int(text, 0)
        if hint is float:
            return float(text)
        if hint is str:
            return text
    except ValueError:
        raise ValueError(
            f"{block}: value {text!r} for {field.name} is not a valid {hint.__name__}"
        ) from None
    raise ValueError(f"{block}: parameter {field.name} cannot be set from the command line")


def make_config(name: str, preset: str | None = None, overrides: Mapping[str, str] = {}):
    """Configuration of block ``name``: a preset with ``key=value`` overrides (strings).

    Raises ``ValueError`` naming the block, preset or parameter that is wrong, with the choices.
    """
    info = get_block(name)
    preset = preset or "default"
    if preset not in info.presets:
        raise ValueError(
            f"{name}: unknown preset {preset!r}; choose one of: {', '.join(info.presets)}"
        )
    cfg = info.presets[preset]
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    changes = {}
    for key, text in overrides.items():
        if key not in fields:
            raise ValueError(
                f"{name}: unknown parameter {key!r}; choose one of: {', '.join(fields)}"
            )
        changes[key] = _parse_value(name, fields[key], text)
    try:
        return dataclasses.replace(cfg, **changes)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def build(name: str, preset: str | None = None, overrides: Mapping[str, str] = {}):
    """Elaborate-ready component of block ``name`` for a preset and overrides."""
    return get_block(name).component(make_config(name, preset, overrides))
