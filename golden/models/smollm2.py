"""SmolLM2-135M in numpy: the reference forward pass, with a KV cache and capture hooks.

Llama architecture: token embedding; 30 blocks of RMSNorm -> grouped-query attention with
RoPE (9 query heads sharing 3 KV heads of 64) -> residual, RMSNorm -> SiLU-gated MLP ->
residual; final RMSNorm; LM head tied to the embedding.

RoPE rotates ADJACENT pairs ``(x[2i], x[2i+1])`` by ``position * base**(-2i/64)``. That is
llama.cpp's "normal" RoPE, which the GGUF weights expect: its converter permutes the rows of
``attn_q``/``attn_k`` so that Hugging Face's rotate-half pairing ``(x[i], x[i+32])`` becomes
the adjacent one. ``SmolLM2(rope="half")`` applies the Hugging Face pairing to these weights;
it is wrong on purpose, and the tests use it to show that the perplexity check catches a
broken forward.

Everything is float32 except the RoPE angles (float64, then cos/sin rounded to float32).
Linear layers go through ``variant.linear`` (see :mod:`golden.models.interfaces`), with the
weights prepared once per model and variant; K/V go through ``variant.kv.store`` on their way
into the cache; ``variant.attention`` decides which cached positions each query sees and
which stay cached.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from .interfaces import FLOAT, Variant, get_variant

__all__ = ["SmolLM2Config", "SmolLM2", "KVCache", "Capture", "LINEAR_NAMES", "CAPTURE_KINDS"]

#: Linear layers of a block, by GGUF name (``blk.{i}.<name>``); the LM head is ``output``.
LINEAR_NAMES = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


@dataclass(frozen=True)
class SmolLM2Config:
    """Shape of a Llama-architecture model as GGUF metadata describes it.

    Parameters
    ----------
    n_layers, d_model, n_heads, n_kv_heads, head_dim, d_ff, vocab_size : int
    rope_base : float
        RoPE frequency base (``base**(-2i/head_dim)``).
    rms_eps : float
        epsilon of RMSNorm.
    context_length : int
        longest sequence the model was trained for.
    tied_embeddings : bool
        the LM head reuses ``token_embd.weight`` (there is no ``output.weight``).
    """

    n_layers: int = 30
    d_model: int = 576
    n_heads: int = 9
    n_kv_heads: int = 3
    head_dim: int = 64
    d_ff: int = 1536
    vocab_size: int = 49152
    rope_base: float = 100000.0
    rms_eps: float = 1e-5
    context_length: int = 8192
    tied_embeddings: bool = True

    def __post_init__(self):
        for name in ("n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "d_ff",
                     "vocab_size", "context_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if self.n_heads * self.head_dim != self.d_model:
            raise ValueError(f"n_heads * head_dim must equal d_model, not {self.n_heads} * "
                             f"{self.head_dim} != {self.d_model}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads must be a multiple of n_kv_heads, not {self.n_heads} "
                             f"and {self.n_kv_heads}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim must be even for RoPE, not {self.head_dim}")
        if not self.rope_base > 1:
            raise ValueError(f"rope_base must be above 1, not {self.rope_base!r}")
        if not self.rms_eps > 0:
            raise ValueError(f"rms_eps must be positive, not {self.rms_eps!r}")

    @property
    def group_size(self) -> int:
        """Query heads per KV head."""
        return self.n_heads // self.n_kv_heads

    @classmethod
    def from_gguf_metadata(cls, metadata: dict, *, tied_embeddings: bool = True):
        """Config from the ``llama.*`` fields of a GGUF file."""
        arch = metadata.get("general.architecture", "llama")
        if arch != "llama":
            raise ValueError(f"expected a llama-architecture GGUF, not {arch!r}")
        n_heads = int(metadata["llama.attention.head_count"])
        d_model = int(metadata["llama.embedding_length"])
        return cls(
            n_layers=int(metadata["llama.block_count"]),
            d_model=d_model,
            n_heads=n_heads,
            n_kv_heads=int(metadata.get("llama.attention.head_count_kv", n_heads)),
            head_dim=int(metadata.get("llama.rope.dimension_count", d_model // n_heads)),
            d_ff=int(metadata["llama.feed_forward_length"]),
            vocab_size=int(metadata["llama.vocab_size"]),
            rope_base=float(metadata.get("llama.rope.freq_base", 10000.0)),
            rms_eps=float(metadata["llama.attention.layer_norm_rms_epsilon"]),
            context_length=int(metadata.get("llama.context_length", 2048)),
            tied_embeddings=tied_embeddings,
        )


class KVCache:
    """Per-layer K and V as the variant stored them, and their absolute positions.

    Members
    -------
    k, v : list of numpy.ndarray
        one ``(n_kv_heads, T_cached, head_dim)`` float32 array per layer; K is after RoPE.
    positions : list of numpy.ndarray
        one int64 ``(T_cached,)`` array per layer: the token position of each entry (layers
        may differ if an attention policy evicts per layer).
    next_position : int
        position the next token fed to :meth:`SmolLM2.forward` gets.
    """

    def __init__(self, config: SmolLM2Config):
        empty = np.zeros((config.n_kv_heads, 0, config.head_dim), np.float32)
        self.k = [empty] * config.n_layers
        self.v = [empty] * config.n_layers
        self.positions = [np.zeros(0, np.int64)] * config.n_layers
        self.next_position = 0

    def __len__(self) -> int:
        """Entries cached in layer 0."""
        return len(self.positions[0])

    def nbytes(self) -> int:
        return sum(k.nbytes + v.nbytes for k, v in zip(self.k, self.v, strict=True))


#: What a :class:`Capture` can record (its ``what``).
CAPTURE_KINDS = ("linear_inputs", "qkv", "attention", "kv_cache", "hidden")


@dataclass
class Capture:
    """Activations recorded during :meth:`SmolLM2.forward`, for the hardware families' tests.

    Parameters
    ----------
    layers : iterable of int, optional
        blocks to record (default: all).
    what : iterable of str
        any of :data:`CAPTURE_KINDS`:

        ``"linear_inputs"``: ``blk.{i}.{linear}.in``, the input ``(T, in_features)`` of every
        linear layer (``attn_q``/``attn_k``/``attn_v`` share one array, as do ``ffn_gate`` and
        ``ffn_up``). ``"qkv"``: ``blk.{i}.q``/``.k``/``.v``, shaped ``(heads, T, head_dim)``,
        Q and K after RoPE, K and V before ``variant.kv.store``. ``"attention"``:
        ``blk.{i}.attn_probs``, ``(n_heads, T, T_keys)`` of the last call only.
        ``"kv_cache"``: ``blk.{i}.cache_k``/``cache_v``/``cache_pos``, the layer's cache after
        the last call. ``"hidden"``: ``blk.{i}.hidden``, the residual stream entering block i.
    head : bool
        also record ``output.in``, the input of the LM head.

    Members
    -------
    records : dict[str, numpy.ndarray]
        what was recorded, plus ``positions`` (the positions of all tokens seen). Token-indexed
        records grow along their token axis over successive calls (a prefill then one call per
        generated token gives the whole sequence); attention and cache records are replaced.
    """

    layers: Iterable[int] | None = None
    what: Iterable[str] = ("linear_inputs", "qkv", "kv_cache")
    head: bool = False
    records: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        self.what = frozenset(self.what)
        unknown = self.what - set(CAPTURE_KINDS)
        if unknown:
            raise ValueError(f"unknown capture kinds {sorted(unknown)}; known: {CAPTURE_KINDS}")
        if self.layers is not None:
            self.layers = frozenset(int(layer) for layer in self.layers)

    def wants(self, layer: int, kind: str) -> bool:
        return kind in self.what and (self.layers is None or layer in self.layers)

    def append(self, key: str, value: np.ndarray, axis: int) -> None:
        if key in self.records:
            value = np.concatenate([self.records[key], value], axis=axis)
        self.records[key] = value

    def set(self, key: str, value: np.ndarray) -> None:
        self.records[key] = value

    def layer(self, index: int) -> dict[str, np.ndarray]:
        """Records of block ``index``, keyed without the ``blk.{index}.`` prefix."""
        prefix = f"blk.{index}."
        return {key[len(prefix):]: value for key, value in self.records.items()
                if key.startswith(prefix)}

    def save(self, path) -> None:
        """Write the records to an ``.npz`` (an array shared by several keys goes under each)."""
        np.savez(path, **self.records)


class SmolLM2:
    """SmolLM2 forward pass in numpy, run as ``variant`` says.

    Parameters
    ----------
    weights : dict[str, numpy.ndarray], optional
        GGUF-named float32 weights (default: :func:`golden.models.weights.load_smollm2`).
    config : SmolLM2Config, optional
        required when ``weights`` is given.
    variant : Variant or str
        linear layers, KV storage and attention policy (default: float32, causal).
    rope : "adjacent" or "half"
        RoPE pairing; "adjacent" is right for GGUF weights (see the module docstring).

    Members
    -------
    prepared : dict[str, object]
        ``variant.linear.prepare(name, weight)`` of every linear layer: ``blk.{i}.attn_q``...
        and ``output`` (the tied LM head; a quantized variant may choose to leave it float).
    """

    def __init__(self, weights: dict[str, np.ndarray] | None = None,
                 config: SmolLM2Config | None = None, variant: Variant | str = FLOAT,
                 rope: str = "adjacent", *, _prepared: dict | None = None):
        if weights is None:
            from .weights import load_smollm2
            loaded_config, weights = load_smollm2()
            config = config or loaded_config
        elif config is None:
            raise ValueError("config is required when weights are given")
        if rope not in ("adjacent", "half"):
            raise ValueError(f"rope must be 'adjacent' or 'half', not {rope!r}")
        self.config = config
        self.weights = weights
        self.variant = get_variant(variant)
        self.rope = rope
        self.embedding = weights["token_embd.weight"]
        if self.embedding.shape != (config.vocab_size, config.d_model):
            raise ValueError(f"token_embd.weight is {self.embedding.shape}, config says "
                             f"{(config.vocab_size, config.d_model)}")
        self.prepared = _prepared if _prepared is not None else self._prepare()
        half = config.head_dim // 2
        self.inv_freq = config.rope_base ** (-np.arange(half, dtype=np.float64) * 2
                                             / config.head_dim)

    def _prepare(self) -> dict[str, object]:
        linear = self.variant.linear
        prepared = {}
        for layer in range(self.config.n_layers):
            for name in LINEAR_NAMES:
                full = f"blk.{layer}.{name}"
                prepared[full] = linear.prepare(full, self.weights[full + ".weight"])
        head = self.weights.get("output.weight", self.embedding)
        prepared["output"] = linear.prepare("output", head)
        return prepared

    def with_variant(self, variant: Variant | str) -> SmolLM2:
        """The same weights run as ``variant`` (its linear layers prepared anew)."""
        return SmolLM2(self.weights, self.config, variant, self.rope)

    def with_rope(self, rope: str) -> SmolLM2:
        """The same model with another RoPE pairing (for checking the pairing matters)."""
        return SmolLM2(self.weights, self.config, self.variant, rope, _prepared=self.prepared)

    def new_cache(self) -> KVCache:
        return KVCache(self.config)

    # --- pieces ---------------------------------------------------------------------------------

    def _rms_norm(self, x: np.ndarray, weight: np.ndarray) -> np.ndarray:
        scale = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + np.float32(
            self.config.rms_eps))
        return (x * scale.astype(np.float32)) * weight

    def _rotate(self, x: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """RoPE of ``x`` (heads, T, head_dim) at absolute ``positions`` (T,)."""
        angles = positions.astype(np.float64)[:, None] * self.inv_freq[None, :]
        cos, sin = np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)
        if self.rope == "adjacent":
            first, second = x[..., 0::2], x[..., 1::2]
        else:
            half = x.shape[-1] // 2
            first, second = x[..., :half], x[..., half:]
        out = np.empty_like(x)
        rotated_first = first * cos - second * sin
        rotated_second = first * sin + second * cos
        if self.rope == "adjacent":
            out[..., 0::2], out[..., 1::2] = rotated_first, rotated_second
        else:
            out[..., :half], out[..., half:] = rotated_first, rotated_second
        return out

    def _linear(self, name: str, x: np.ndarray) -> np.ndarray:
        return self.variant.linear.apply(self.prepared[name], x)

    def _attention(self, layer: int, x: np.ndarray, positions: np.ndarray, cache: KVCache,
                   capture: Capture | None) -> np.ndarray:
        cfg = self.config
        tokens = x.shape[0]
        prefix = f"blk.{layer}."
        if capture is not None and capture.wants(layer, "linear_inputs"):
            for name in ("attn_q", "attn_k", "attn_v"):
                capture.append(prefix + name + ".in", x, axis=0)
        q = self._linear(prefix + "attn_q", x).reshape(tokens, cfg.n_heads, cfg.head_dim)
        k = self._linear(prefix + "attn_k", x).reshape(tokens, cfg.n_kv_heads, cfg.head_dim)
        v = self._linear(prefix + "attn_v", x).reshape(tokens, cfg.n_kv_heads, cfg.head_dim)
        q = self._rotate(q.transpose(1, 0, 2), positions)
        k = self._rotate(k.transpose(1, 0, 2), positions)
        v = np.ascontiguousarray(v.transpose(1, 0, 2))
        if capture is not None and capture.wants(layer, "qkv"):
            capture.append(prefix + "q", q, axis=1)
            capture.append(prefix + "k", k, axis=1)
            capture.append(prefix + "v", v, axis=1)

        keys = np.concatenate([cache.k[layer], self.variant.kv.store(k)], axis=1)
        values = np.concatenate([cache.v[layer], self.variant.kv.store(v)], axis=1)
        key_positions = np.concatenate([cache.positions[layer], positions])
        visible = np.asarray(self.variant.attention.keep(positions, key_positions), bool)
        if not visible.any(axis=1).all():
            raise ValueError(f"attention policy {self.variant.attention.name!r} left a query "
                             f"at layer {layer} with no key to attend to")

        # the query heads of one KV head form one matrix: (kv_heads, group * T, head_dim)
        group = cfg.group_size
        grouped = q.reshape(cfg.n_kv_heads, group * tokens, cfg.head_dim)
        scores = grouped @ keys.transpose(0, 2, 1)
        scores *= np.float32(1.0 / np.sqrt(cfg.head_dim))
        scores = scores.reshape(cfg.n_kv_heads, group, tokens, -1)
        scores = np.where(visible, scores, np.float32(-np.inf))
        scores -= scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        if capture is not None and capture.wants(layer, "attention"):
            capture.set(prefix + "attn_probs", probs.reshape(cfg.n_heads, tokens, -1))
        out = probs.reshape(cfg.n_kv_heads, group * tokens, -1) @ values
        out = out.reshape(cfg.n_heads, tokens, cfg.head_dim).transpose(1, 0, 2)
        out = out.reshape(tokens, cfg.d_model)

        kept = np.asarray(self.variant.attention.evict(key_positions), bool)
        cache.k[layer], cache.v[layer] = keys[:, kept], values[:, kept]
        cache.positions[layer] = key_positions[kept]
        if capture is not None and capture.wants(layer, "kv_cache"):
            capture.set(prefix + "cache_k", cache.k[layer])
            capture.set(prefix + "cache_v", cache.v[layer])
            capture.set(prefix + "cache_pos", cache.positions[layer])
        if capture is not None and capture.wants(layer, "linear_inputs"):
            capture.append(prefix + "attn_output.in", out, axis=0)
        return self._linear(prefix + "attn_output", out)

    def _mlp(self, layer: int, x: np.ndarray, capture: Capture | None) -> np.ndarray:
        prefix = f"blk.{layer}."
        wants = capture is not None and capture.wants(layer, "linear_inputs")
        if wants:
            capture.append(prefix + "ffn_gate.in", x, axis=0)
            capture.append(prefix + "ffn_up.in", x, axis=0)
        gate = self._linear(prefix + "ffn_gate", x)
        up = self._linear(prefix + "ffn_up", x)
        # SiLU as g * sigmoid(g), with sigmoid through tanh: no exp overflow for large |g|
        hidden = gate * (np.float32(0.5) * (np.float32(1) + np.tanh(np.float32(0.5) * gate)))
        hidden *= up
        if wants:
            capture.append(prefix + "ffn_down.in", hidden, axis=0)
        return self._linear(prefix + "ffn_down", hidden)

    # --- forward --------------------------------------------------------------------------------

    def forward(self, tokens, cache: KVCache | None = None, capture: Capture | None = None,
                *, last_only: bool = False) -> np.ndarray:
        """Logits ``(T, vocab)`` float32 of ``tokens`` (T,), following what ``cache`` holds.

        Tokens get positions ``cache.next_position ...``; their K/V are appended to ``cache``
        (which then advances). Without a cache the sequence starts at position 0 and nothing
        is kept. ``last_only`` returns only the last token's logits, shaped ``(1, vocab)``.
        """
        tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
        if tokens.size == 0:
            raise ValueError("forward needs at least one token")
        if tokens.min() < 0 or tokens.max() >= self.config.vocab_size:
            raise ValueError(f"token ids must be in [0, {self.config.vocab_size}), got "
                             f"{tokens.min()}..{tokens.max()}")
        if cache is None:
            cache = self.new_cache()
        positions = cache.next_position + np.arange(tokens.size, dtype=np.int64)
        if capture is not None:
            capture.append("positions", positions, axis=0)

        w = self.weights
        x = self.embedding[tokens]
        for layer in range(self.config.n_layers):
            if capture is not None and capture.wants(layer, "hidden"):
                capture.append(f"blk.{layer}.hidden", x, axis=0)
            normed = self._rms_norm(x, w[f"blk.{layer}.attn_norm.weight"])
            x = x + self._attention(layer, normed, positions, cache, capture)
            normed = self._rms_norm(x, w[f"blk.{layer}.ffn_norm.weight"])
            x = x + self._mlp(layer, normed, capture)
        cache.next_position += tokens.size

        if last_only:
            x = x[-1:]
        x = self._rms_norm(x, w["output_norm.weight"])
        if capture is not None and capture.head:
            capture.append("output.in", x, axis=0)
        return self._linear("output", x)

    __call__ = forward


def config_with(config: SmolLM2Config, **changes) -> SmolLM2Config:
    """``config`` with some fields replaced (validated again)."""
    return dataclasses.replace(config, **changes)
