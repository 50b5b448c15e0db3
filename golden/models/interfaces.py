"""Plug-in points of the numpy models: how linear layers compute, how K/V are cached, which
keys a query sees.

A :class:`Variant` bundles the three choices. The reference is :data:`FLOAT` (float32 linear
layers, float32 KV cache, causal attention over the whole cache); quantized variants
(``golden/models/quant.py``) implement the same three methods and register a factory in
:data:`VARIANTS` when imported.

Positions are absolute token indices everywhere (the first token of a sequence is position 0),
so an attention policy can keep "S sink tokens + W most recent" (Λ-shaped attention) and
evict the rest of the cache, while RoPE keeps using the true positions.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["FloatLinear", "FloatKV", "CausalAttention", "Variant", "FLOAT", "VARIANTS",
           "register_variant", "get_variant", "variant_names"]


class FloatLinear:
    """The reference linear layer: ``y = x @ W.T`` in float32.

    ``prepare`` is called once per layer when a model is built for a variant, with the layer's
    name (``blk.{i}.attn_q``, ``attn_k``, ``attn_v``, ``attn_output``, ``ffn_gate``, ``ffn_up``,
    ``ffn_down``, and ``output`` for the tied LM head) and its float32 weight shaped
    ``(out_features, in_features)``; whatever it returns is passed back to ``apply``. A
    quantized variant may return the weight unchanged for layers it leaves in float (e.g.
    ``output``).
    """

    name = "fp32"

    def prepare(self, name: str, weight: np.ndarray) -> object:
        return weight

    def apply(self, prepared: object, x: np.ndarray) -> np.ndarray:
        """``x`` (T, in) float32 -> (T, out) float32."""
        return x @ prepared.T


class FloatKV:
    """How K and V are stored in the cache: as float32, unchanged.

    ``store`` gets the new entries of one layer, shaped ``(kv_heads, T_new, head_dim)`` (K after
    RoPE), and returns what later reads of the cache see; a KV4 variant quantizes and
    dequantizes here. The new tokens' own attention reads the stored values too, so an
    incremental decode and a full forward agree.
    """

    name = "fp32"

    def store(self, x: np.ndarray) -> np.ndarray:
        return x


class CausalAttention:
    """Which keys each query sees, and which cache entries survive an append.

    ``keep(query_pos, key_pos)`` -> bool ``(Tq, Tk)``: True where the query may attend to the
    key; every query must see at least one key. ``evict(key_pos)`` -> bool ``(Tk,)``: the
    cached positions to keep after the new entries were appended (and attended to).
    """

    name = "causal"

    def keep(self, query_pos: np.ndarray, key_pos: np.ndarray) -> np.ndarray:
        return key_pos[None, :] <= query_pos[:, None]

    def evict(self, key_pos: np.ndarray) -> np.ndarray:
        return np.ones(len(key_pos), bool)


@dataclass(frozen=True)
class Variant:
    """A way of running a model: linear layers, KV storage and attention policy."""

    name: str
    linear: object
    kv: object
    attention: object

    def __post_init__(self):
        for role, method in (("linear", "apply"), ("linear", "prepare"), ("kv", "store"),
                             ("attention", "keep"), ("attention", "evict")):
            if not callable(getattr(getattr(self, role), method, None)):
                raise TypeError(f"variant {self.name!r}: {role} {getattr(self, role)!r} has no "
                                f"{method}() method")


FLOAT = Variant("fp32", FloatLinear(), FloatKV(), CausalAttention())

#: Variant factories by name; ``golden/models/quant.py`` adds its own when imported.
VARIANTS: dict[str, Callable[[], Variant]] = {"fp32": lambda: FLOAT}


def register_variant(name: str, factory: Callable[[], Variant]) -> None:
    """Make ``factory`` available as ``get_variant(name)``."""
    VARIANTS[name] = factory


def _load_plugins() -> None:
    # quant.py is written separately and registers its variants on import; it may be absent
    if importlib.util.find_spec(__package__ + ".quant") is not None:
        importlib.import_module(__package__ + ".quant")


def variant_names() -> list[str]:
    """Names :func:`get_variant` accepts."""
    _load_plugins()
    return sorted(VARIANTS)


def get_variant(name: str | Variant) -> Variant:
    """The variant registered as ``name`` (a :class:`Variant` is returned as is)."""
    if isinstance(name, Variant):
        return name
    if name not in VARIANTS:
        _load_plugins()
    if name not in VARIANTS:
        choices = ", ".join(sorted(VARIANTS))
        raise ValueError(f"unknown variant {name!r}; choose one of: {choices}")
    return VARIANTS[name]()
