"""Quantized, pruned and sparse-attention variants of SmolLM2: the integer references.

Every variant plugs into :mod:`golden.models.interfaces` (a linear layer, a KV store and an
attention rule) and is registered in ``VARIANTS``. The integer parts are bit-exact and are what
hardware blocks are checked against; the float parts (scales, dequantisation) are written out
so that they are reproducible, but they are not a hardware contract.

Conventions shared by all quantizers
------------------------------------
* Rounding is round-half-to-even (``np.rint``) of a float32 quotient ``x / scale`` computed
  with one correctly rounded IEEE float32 division, so the codes are a deterministic function
  of the float32 input.
* Scales are float32 and strictly positive: a row or group that is all zeros gets scale 1.0
  (its codes are all zero, so the scale never matters, and nothing divides by zero).
* Symmetric codes use the restricted range ``[-(2^(b-1)-1), 2^(b-1)-1]``: -128 is never
  produced for 8 bits, so negating a code never overflows and ``q * scale`` is symmetric.
* Asymmetric codes are unsigned ``[0, 2^b-1]`` with an integer zero point ``z`` in the same
  range; the range is widened to include 0 (``lo = min(min w, 0)``, ``hi = max(max w, 0)``),
  which keeps ``z`` representable and makes 0.0 exactly representable.
* Round-trip error of every quantizer is at most ``scale / 2`` per element (tested), up to
  the float32 rounding of the quotient and of the dequantised product.

What stays float
----------------
The token embedding, the lm head (layer ``"output"``, tied to the embedding in SmolLM2),
RMSNorm, RoPE, softmax and the residual adds stay float32 in every variant. All 30 blocks,
including the first and the last, are quantized the same way: 7 linear layers per block
(``attn_q``, ``attn_k``, ``attn_v``, ``attn_output``, ``ffn_gate``, ``ffn_up``,
``ffn_down``).

The registered variants (:data:`QUANT_VARIANTS`)
-------------------------------------------------
``bf16``, ``w8a8``, ``w4a8`` (4-bit weights, groups of 64: 128 does not divide
d_model = 576), ``w4a8-min`` (4-bit, groups of 32, float minimum instead of an integer zero
point), ``w2a8`` (2-bit, groups of 32), ``kv4`` (4-bit K/V, one group per 64-wide
head vector), ``2:4`` (magnitude), ``2:4-wanda`` (``|w| * input norm`` from 128 tokens the
float model samples itself, so the calibration shares nothing with the evaluation text) and
``lambda`` (4 sink + 128 window positions). Weight quantizers are round-to-nearest (no GPTQ
or clipping search). The "fp32" reference these are compared with is itself the dequantized
Q4_1 GGUF, so every weight was already on a 4-bit grid with groups of 32 and a float minimum;
requantizing with an integer zero point does not land back on that grid (``w4a8``), while
``w4a8-min`` reproduces those weights exactly and only adds the int8 activations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from golden.models.interfaces import (
    CausalAttention,
    FloatKV,
    FloatLinear,
    Variant,
    register_variant,
)
from golden.models.weights import round_to

__all__ = [
    "FLOAT_LAYERS", "SymmetricQuant", "GroupQuant",
    "quantize_per_channel", "quantize_per_token", "dequantize_symmetric",
    "quantize_groupwise", "dequantize_groupwise", "GroupMinQuant", "quantize_groupwise_min",
    "dequantize_groupwise_min", "quantize_kv_groupwise",
    "dequantize_kv_groupwise", "exact_integer_matmul", "group_integer_accumulate",
    "prune_nm", "unprune", "nm_mask", "sample_calibration_tokens", "calibrate_input_norms",
    "wanda_input_norms",
    "BF16Linear", "W8A8Linear", "GroupWeightLinear", "GroupMinWeightLinear", "NMPrunedLinear",
    "KV4",
    "LambdaAttention", "QUANT_VARIANTS", "register_variants",
]

#: Linear layers every variant leaves in float32 (the lm head, tied to the embedding).
FLOAT_LAYERS = frozenset({"output"})

#: Largest integer below which float64 represents every integer, and so sums them exactly.
_FLOAT64_EXACT = 2 ** 53
#: The same for float32.
_FLOAT32_EXACT = 2 ** 24
#: Accumulator width the hardware families use for the integer dot products.
ACCUMULATOR_BITS = 32


# --- symmetric quantizers -------------------------------------------------------------------

@dataclass(frozen=True)
class SymmetricQuant:
    """Symmetric codes along the last axis: ``x ~= codes * scale[..., None]``.

    ``codes`` are int8 for ``bits <= 8`` (int16 above) in ``[-(2^(b-1)-1), 2^(b-1)-1]``;
    ``scale`` is float32 with one entry per row (all axes but the last).
    """

    codes: np.ndarray
    scale: np.ndarray
    bits: int


def _check_bits(bits: int, low: int, high: int) -> None:
    if not (isinstance(bits, int | np.integer) and low <= bits <= high):
        raise ValueError(f"bits must be an integer in [{low}, {high}], not {bits!r}")


def _quantize_symmetric_rows(x: np.ndarray, bits: int) -> SymmetricQuant:
    _check_bits(bits, 2, 16)
    x = np.asarray(x, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise ValueError("cannot quantize non-finite values")
    qmax = 2 ** (bits - 1) - 1
    amax = np.max(np.abs(x), axis=-1) if x.shape[-1] else np.zeros(x.shape[:-1], np.float32)
    scale = (amax / np.float32(qmax)).astype(np.float32)
    scale[scale == 0] = np.float32(1.0)
    quotient = x / scale[..., None]
    codes = np.clip(np.rint(quotient), -qmax, qmax)
    return SymmetricQuant(codes.astype(np.int8 if bits <= 8 else np.int16), scale, bits)


def quantize_per_channel(w: np.ndarray, bits: int = 8) -> SymmetricQuant:
    """Symmetric per-output-channel codes of weights ``w`` (out, in).

    ``scale[o] = max_k |w[o, k]| / (2^(b-1) - 1)`` (float32; 1.0 for an all-zero row) and
    ``q[o, k] = clip(rint(w[o, k] / scale[o]), -(2^(b-1)-1), 2^(b-1)-1)``. The largest
    magnitude of each row maps to exactly +-(2^(b-1)-1); -2^(b-1) (-128 at 8 bits) is never
    used. The clip only matters for the float32 rounding of the quotient.
    """
    return _quantize_symmetric_rows(w, bits)


def quantize_per_token(x: np.ndarray, bits: int = 8) -> SymmetricQuant:
    """Symmetric per-token (per-row) codes of activations ``x`` (T, in); same formula as
    :func:`quantize_per_channel` with one scale per token. This is dynamic quantisation: the
    scale comes from the token itself, as a hardware max-reduction before the matmul would."""
    return _quantize_symmetric_rows(x, bits)


def dequantize_symmetric(q: SymmetricQuant) -> np.ndarray:
    """``codes * scale`` in float32."""
    return q.codes.astype(np.float32) * q.scale[..., None]


# --- asymmetric group-wise quantizers -------------------------------------------------------

@dataclass(frozen=True)
class GroupQuant:
    """Asymmetric codes in groups of ``group`` along the last axis.

    ``x[..., k] ~= scale[..., k // group] * (codes[..., k] - zero[..., k // group])`` with
    ``codes`` uint8 in ``[0, 2^b-1]``, integer ``zero`` (uint8) in the same range, float32
    ``scale``.
    """

    codes: np.ndarray
    scale: np.ndarray
    zero: np.ndarray
    bits: int
    group: int


def quantize_groupwise(w: np.ndarray, bits: int, group: int) -> GroupQuant:
    """Asymmetric round-to-nearest codes of ``w`` (..., K), one scale and zero point per
    ``group`` consecutive elements of the last axis (K must be a multiple of ``group``).

    Per group: ``lo = min(min w, 0)``, ``hi = max(max w, 0)``,
    ``scale = (hi - lo) / (2^b - 1)`` (float32; 1.0 if the group is all zero),
    ``zero = clip(rint(-lo / scale), 0, 2^b - 1)`` and
    ``code = clip(rint(w / scale) + zero, 0, 2^b - 1)``.
    """
    _check_bits(bits, 1, 8)
    if not (isinstance(group, int | np.integer) and group >= 1):
        raise ValueError(f"group must be a positive integer, not {group!r}")
    w = np.asarray(w, dtype=np.float32)
    if w.shape[-1] % group:
        raise ValueError(f"last dimension {w.shape[-1]} is not a multiple of group {group}")
    if not np.all(np.isfinite(w)):
        raise ValueError("cannot quantize non-finite values")
    levels = 2 ** bits - 1
    grouped = w.reshape(*w.shape[:-1], w.shape[-1] // group, group)
    lo = np.minimum(grouped.min(axis=-1), np.float32(0))
    hi = np.maximum(grouped.max(axis=-1), np.float32(0))
    scale = ((hi - lo) / np.float32(levels)).astype(np.float32)
    scale[scale == 0] = np.float32(1.0)
    zero = np.clip(np.rint(-lo / scale), 0, levels)
    codes = np.clip(np.rint(grouped / scale[..., None]) + zero[..., None], 0, levels)
    return GroupQuant(codes.reshape(w.shape).astype(np.uint8), scale, zero.astype(np.uint8),
                      bits, group)


def dequantize_groupwise(q: GroupQuant) -> np.ndarray:
    """``scale * (codes - zero)`` in float32, same shape as the quantized array."""
    shape = q.codes.shape
    grouped = q.codes.reshape(*shape[:-1], shape[-1] // q.group, q.group).astype(np.int16)
    centred = (grouped - q.zero[..., None].astype(np.int16)).astype(np.float32)
    return (centred * q.scale[..., None]).reshape(shape)


@dataclass(frozen=True)
class GroupMinQuant:
    """Codes with a float minimum per group (llama.cpp's Q4_1 layout):
    ``x[..., k] ~= scale[..., k // group] * codes[..., k] + minimum[..., k // group]``."""

    codes: np.ndarray
    scale: np.ndarray
    minimum: np.ndarray
    bits: int
    group: int


def quantize_groupwise_min(w: np.ndarray, bits: int, group: int) -> GroupMinQuant:
    """Round-to-nearest codes with a float32 scale and minimum per ``group`` elements of the
    last axis: ``lo = min w``, ``scale = (max w - lo) / (2^b - 1)`` (1.0 if that is 0) and
    ``code = clip(rint((w - lo) / scale), 0, 2^b - 1)``; dequantised ``scale * code + lo``.

    The same grid as :func:`quantize_groupwise` but offset by a float instead of an integer
    number of steps, so weights already on such a grid (this checkpoint's Q4_1 blocks, group
    32) come back unchanged. Round-trip error is at most ``scale / 2``.
    """
    _check_bits(bits, 1, 8)
    if not (isinstance(group, int | np.integer) and group >= 1):
        raise ValueError(f"group must be a positive integer, not {group!r}")
    w = np.asarray(w, dtype=np.float32)
    if w.shape[-1] % group:
        raise ValueError(f"last dimension {w.shape[-1]} is not a multiple of group {group}")
    if not np.all(np.isfinite(w)):
        raise ValueError("cannot quantize non-finite values")
    levels = 2 ** bits - 1
    grouped = w.reshape(*w.shape[:-1], w.shape[-1] // group, group)
    lo = grouped.min(axis=-1)
    scale = ((grouped.max(axis=-1) - lo) / np.float32(levels)).astype(np.float32)
    scale[scale == 0] = np.float32(1.0)
    codes = np.clip(np.rint((grouped - lo[..., None]) / scale[..., None]), 0, levels)
    return GroupMinQuant(codes.reshape(w.shape).astype(np.uint8), scale, lo, bits, group)


def dequantize_groupwise_min(q: GroupMinQuant) -> np.ndarray:
    """``scale * codes + minimum`` in float32."""
    shape = q.codes.shape
    grouped = q.codes.reshape(*shape[:-1], shape[-1] // q.group, q.group).astype(np.float32)
    return (grouped * q.scale[..., None] + q.minimum[..., None]).reshape(shape)


def quantize_kv_groupwise(x: np.ndarray, bits: int = 4, group: int = 64) -> GroupQuant:
    """Asymmetric codes of keys or values ``x`` (kv_heads, T, head_dim): one scale and zero
    point per ``group`` elements of ``head_dim``, per token and per head (the formula of
    :func:`quantize_groupwise`). With ``group == head_dim`` each cached head vector carries one
    (scale, zero) pair: a token can be quantized as soon as it is produced."""
    return quantize_groupwise(x, bits, group)


def dequantize_kv_groupwise(q: GroupQuant) -> np.ndarray:
    """Float32 keys or values back from :func:`quantize_kv_groupwise`."""
    return dequantize_groupwise(q)


# --- exact integer matmuls ---------------------------------------------------------------

def _exact_float_dot(a: np.ndarray, b: np.ndarray, product_bound: int) -> np.ndarray:
    """``a @ b.T`` (float64) of float32 arrays holding integers whose products are at most
    ``product_bound`` in magnitude, exact.

    float32 BLAS adds exactly while every partial sum is an integer below 2^24, whatever order
    it sums in (fused multiply-adds included): the inner dimension is cut into chunks of
    ``(2^24 - 1) // product_bound`` and the chunk results, integers below 2^53, are added in
    float64, also exactly.
    """
    depth = a.shape[-1]
    chunk = max(1, (_FLOAT32_EXACT - 1) // max(product_bound, 1))
    if chunk >= depth:
        return (a @ b.T).astype(np.float64)
    out = np.zeros((a.shape[0], b.shape[0]), np.float64)
    for start in range(0, depth, chunk):
        out += a[:, start:start + chunk] @ b[:, start:start + chunk].T
    return out


def _check_accumulator(depth: int, product_bound: int) -> None:
    bound = depth * product_bound
    assert bound < _FLOAT64_EXACT, f"float64 is not exact for |sums| up to {bound}"
    assert bound < 2 ** (ACCUMULATOR_BITS - 1), \
        f"|sums| up to {bound} overflow the int32 accumulator"


def exact_integer_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b.T`` of integer arrays a (T, K), b (N, K), exact, as int64.

    Computed with float BLAS (:func:`_exact_float_dot`), exact because every partial sum is
    an integer of magnitude at most ``K * max|a| * max|b|``; that bound is asserted to fit the
    signed ``ACCUMULATOR_BITS`` (32-bit) accumulator the hardware uses, and so 2^53.
    """
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"inner dimensions differ: {a.shape} and {b.shape}")
    product_bound = int(np.max(np.abs(a), initial=0)) * int(np.max(np.abs(b), initial=0))
    _check_accumulator(a.shape[-1], product_bound)
    dot = _exact_float_dot(a.astype(np.float32), b.astype(np.float32), product_bound)
    return dot.astype(np.int64)


def group_integer_accumulate(x_codes: np.ndarray, w: GroupQuant) -> np.ndarray:
    """Exact per-group integer dot products ``acc[g, t, o] = sum_{k in g} qx[t,k] *
    (qw[o,k] - z[o,g])`` of int activation codes (T, K) and group weights (O, K): int64
    (G, T, O). This is what a group-wise W4A8/W2A8 datapath accumulates before scaling."""
    groups = w.codes.shape[-1] // w.group
    out = np.empty((groups, x_codes.shape[0], w.codes.shape[0]), np.int64)
    for g in range(groups):
        cols = slice(g * w.group, (g + 1) * w.group)
        centred = w.codes[:, cols].astype(np.int16) - w.zero[:, g : g + 1].astype(np.int16)
        out[g] = exact_integer_matmul(x_codes[:, cols], centred)
    return out


# --- N:M structured sparsity ----------------------------------------------------------------

def _check_nm(n: int, m: int, k: int) -> None:
    if not (1 <= n <= m):
        raise ValueError(f"need 1 <= n <= m, not n={n!r}, m={m!r}")
    if k % m:
        raise ValueError(f"inner dimension {k} is not a multiple of m={m}")


def nm_mask(scores: np.ndarray, n: int, m: int) -> np.ndarray:
    """Bool mask keeping the ``n`` highest scores of every ``m`` consecutive entries of each
    row (last axis). Ties go to the lower index (a stable sort of ``-score``)."""
    scores = np.asarray(scores)
    _check_nm(n, m, scores.shape[-1])
    grouped = scores.reshape(*scores.shape[:-1], scores.shape[-1] // m, m)
    order = np.argsort(-grouped, axis=-1, kind="stable")[..., :n]
    mask = np.zeros(grouped.shape, bool)
    np.put_along_axis(mask, order, True, axis=-1)
    return mask.reshape(scores.shape)


def prune_nm(w: np.ndarray, n: int, m: int,
             scores: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Compact N:M form of ``w`` (out, in): ``values`` (out, in/m*n) and ``indices`` (same
    shape, uint8 in ``[0, m)``): for each group of ``m`` inputs, the kept weights in increasing
    input order and their positions within the group. Kept = top ``n`` of ``scores`` (default
    ``|w|``), ties to the lower index. A kept weight may itself be zero."""
    w = np.asarray(w)
    scores = np.abs(w) if scores is None else np.asarray(scores)
    if scores.shape != w.shape:
        raise ValueError(f"scores shape {scores.shape} differs from weights {w.shape}")
    mask = nm_mask(scores, n, m)
    rows, groups = w.shape[0], w.shape[1] // m
    position = np.broadcast_to(np.arange(m, dtype=np.uint8), (rows, groups, m))
    kept = mask.reshape(rows, groups, m)
    values = w.reshape(rows, groups, m)[kept].reshape(rows, groups * n)
    indices = position[kept].reshape(rows, groups * n)
    return values, indices


def unprune(values: np.ndarray, indices: np.ndarray, n: int, m: int) -> np.ndarray:
    """Dense (out, in) weights from :func:`prune_nm`'s compact form; dropped weights are 0."""
    rows, kept = values.shape
    if kept % n or indices.shape != values.shape:
        raise ValueError(f"values {values.shape} and indices {indices.shape} are not N:M")
    groups = kept // n
    if np.any(indices >= m):
        raise ValueError(f"indices must be below m={m}")
    dense = np.zeros((rows, groups, m), values.dtype)
    np.put_along_axis(dense, indices.reshape(rows, groups, n).astype(np.intp),
                      values.reshape(rows, groups, n), axis=-1)
    return dense.reshape(rows, groups * m)


# --- linear layers --------------------------------------------------------------------------

@dataclass(frozen=True)
class _Float:
    """A layer left in float32 (see ``FLOAT_LAYERS``)."""

    weight: np.ndarray


class BF16Linear:
    """Weights and activations rounded to bfloat16 (RNE), products accumulated in float32.

    ``y = bf16(x) @ bf16(W).T`` with float32 BLAS, rounding by
    :func:`golden.models.weights.round_to` (as the model's bf16 weights are rounded). The
    product of two bf16 numbers is exact in float32; the summation order is the BLAS's, so
    this variant is a numerical reference, not a bit-exact one.
    """

    name = "bf16"

    def prepare(self, name: str, weight: np.ndarray) -> object:
        if name in FLOAT_LAYERS:
            return _Float(weight)
        return round_to(weight, "bf16")

    def apply(self, prepared: object, x: np.ndarray) -> np.ndarray:
        if isinstance(prepared, _Float):
            return x @ prepared.weight.T
        return round_to(x, "bf16") @ prepared.T


@dataclass(frozen=True)
class _PreparedSymmetric:
    """Per-channel weight codes and the same codes as float32 (exact) for the BLAS."""

    quant: SymmetricQuant
    codes_float: np.ndarray


class W8A8Linear:
    """int8 per-channel weights x int8 per-token activations, exact int32 accumulation.

    ``acc[t, o] = sum_k qx[t, k] * qw[o, k]`` (exact, as :func:`exact_integer_matmul`), then
    ``y[t, o] = float32((acc[t, o] * sx[t]) * sw[o])`` with the products in float64.
    """

    name = "w8a8"

    def __init__(self, weight_bits: int = 8, act_bits: int = 8):
        _check_bits(weight_bits, 2, 8)
        _check_bits(act_bits, 2, 8)
        self.weight_bits, self.act_bits = weight_bits, act_bits

    def prepare(self, name: str, weight: np.ndarray) -> object:
        if name in FLOAT_LAYERS:
            return _Float(weight)
        quant = quantize_per_channel(weight, self.weight_bits)
        return _PreparedSymmetric(quant, quant.codes.astype(np.float32))

    def accumulate(self, prepared: _PreparedSymmetric,
                   x: np.ndarray) -> tuple[np.ndarray, SymmetricQuant]:
        """The exact integer accumulators (T, out) as float64, and the activation codes."""
        xq = quantize_per_token(x, self.act_bits)
        product_bound = (2 ** (self.act_bits - 1) - 1) * (2 ** (self.weight_bits - 1) - 1)
        _check_accumulator(x.shape[-1], product_bound)
        acc = _exact_float_dot(xq.codes.astype(np.float32), prepared.codes_float, product_bound)
        return acc, xq

    def apply(self, prepared: object, x: np.ndarray) -> np.ndarray:
        if isinstance(prepared, _Float):
            return x @ prepared.weight.T
        acc, xq = self.accumulate(prepared, x)
        y = (acc * xq.scale[:, None].astype(np.float64)
             ) * prepared.quant.scale[None, :].astype(np.float64)
        return y.astype(np.float32)


@dataclass(frozen=True)
class _PreparedGroup:
    """Group weight codes, and ``codes - zero`` as float32 (exact) shaped (groups, group, out)
    for the batched BLAS."""

    quant: GroupQuant
    centred_float: np.ndarray


class GroupWeightLinear:
    """Group-wise asymmetric ``bits``-bit weights x int8 per-token activations.

    With weight codes ``qw``, zero points ``z`` and scales ``sw`` per (row, group of ``group``
    inputs) and activation codes ``qx`` with scale ``sx`` per token:

    ``acc[g, t, o] = sum_{k in g} qx[t, k] * (qw[o, k] - z[o, g])``   (exact integers)

    ``y[t, o] = float32(sx[t] * (sum over g = 0, 1, ... in order of sw[o, g] * acc[g, t, o]))``

    with the float combine in float64, the groups added one after the other in increasing
    order (:func:`group_integer_accumulate` gives the ``acc`` alone).
    """

    def __init__(self, bits: int = 4, group: int = 64, act_bits: int = 8):
        _check_bits(bits, 1, 8)
        _check_bits(act_bits, 2, 8)
        self.bits, self.group, self.act_bits = bits, group, act_bits
        self.name = f"w{bits}a{act_bits}g{group}"

    def prepare(self, name: str, weight: np.ndarray) -> object:
        if name in FLOAT_LAYERS:
            return _Float(weight)
        quant = quantize_groupwise(weight, self.bits, self.group)
        outs, groups = weight.shape[0], weight.shape[1] // self.group
        centred = (quant.codes.reshape(outs, groups, self.group).astype(np.float32)
                   - quant.zero[:, :, None].astype(np.float32))
        return _PreparedGroup(quant, np.ascontiguousarray(centred.transpose(1, 2, 0)))

    def apply(self, prepared: object, x: np.ndarray) -> np.ndarray:
        if isinstance(prepared, _Float):
            return x @ prepared.weight.T
        xq = quantize_per_token(x, self.act_bits)
        product_bound = (2 ** (self.act_bits - 1) - 1) * (2 ** self.bits - 1)
        _check_accumulator(self.group, product_bound)
        assert self.group * product_bound < _FLOAT32_EXACT, "float32 group sums not exact"
        groups, _, outs = prepared.centred_float.shape
        tokens = x.shape[0]
        # (G, T, g) @ (G, g, O): one batched float32 BLAS call, exact per group (asserted above)
        xs = np.ascontiguousarray(
            xq.codes.astype(np.float32).reshape(tokens, groups, self.group).transpose(1, 0, 2))
        acc = np.matmul(xs, prepared.centred_float)
        scale = np.ascontiguousarray(prepared.quant.scale.T, dtype=np.float64)
        y = np.zeros((tokens, outs), np.float64)
        for g in range(groups):
            y += acc[g] * scale[g]
        return (y * xq.scale[:, None].astype(np.float64)).astype(np.float32)


@dataclass(frozen=True)
class _PreparedGroupMin:
    """Group-min weight codes, and the codes as float32 shaped (groups, group, out)."""

    quant: GroupMinQuant
    codes_float: np.ndarray


class GroupMinWeightLinear:
    """Group-wise ``bits``-bit weights with a float scale ``d`` and minimum ``m`` per (row,
    group) (:func:`quantize_groupwise_min`, llama.cpp's Q4_1 x Q8 dot product) x int8 per-token
    activations:

    ``acc[g, t, o] = sum_{k in g} qx[t, k] * qw[o, k]`` and
    ``sum_x[g, t] = sum_{k in g} qx[t, k]``   (both exact integers)

    ``y[t, o] = float32(sx[t] * (sum over g in order of d[o, g] * acc[g, t, o]
    + m[o, g] * sum_x[g, t]))``, the float combine in float64.
    """

    def __init__(self, bits: int = 4, group: int = 32, act_bits: int = 8):
        _check_bits(bits, 1, 8)
        _check_bits(act_bits, 2, 8)
        self.bits, self.group, self.act_bits = bits, group, act_bits
        self.name = f"w{bits}a{act_bits}g{group}-min"

    def prepare(self, name: str, weight: np.ndarray) -> object:
        if name in FLOAT_LAYERS:
            return _Float(weight)
        quant = quantize_groupwise_min(weight, self.bits, self.group)
        outs, groups = weight.shape[0], weight.shape[1] // self.group
        codes = quant.codes.reshape(outs, groups, self.group).astype(np.float32)
        return _PreparedGroupMin(quant, np.ascontiguousarray(codes.transpose(1, 2, 0)))

    def accumulate(self, prepared: _PreparedGroupMin,
                   x_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``acc`` (G, T, O) and ``sum_x`` (G, T), exact integers held as float32."""
        product_bound = (2 ** (self.act_bits - 1) - 1) * (2 ** self.bits - 1)
        _check_accumulator(self.group, product_bound)
        assert self.group * product_bound < _FLOAT32_EXACT, "float32 group sums not exact"
        groups = prepared.codes_float.shape[0]
        xs = np.ascontiguousarray(x_codes.astype(np.float32).reshape(
            x_codes.shape[0], groups, self.group).transpose(1, 0, 2))
        return np.matmul(xs, prepared.codes_float), xs.sum(axis=-1)

    def apply(self, prepared: object, x: np.ndarray) -> np.ndarray:
        if isinstance(prepared, _Float):
            return x @ prepared.weight.T
        xq = quantize_per_token(x, self.act_bits)
        acc, sum_x = self.accumulate(prepared, xq.codes)
        scale = np.ascontiguousarray(prepared.quant.scale.T, dtype=np.float64)
        minimum = np.ascontiguousarray(prepared.quant.minimum.T, dtype=np.float64)
        y = np.zeros(acc.shape[1:], np.float64)
        for g in range(acc.shape[0]):
            y += acc[g] * scale[g] + sum_x[g][:, None].astype(np.float64) * minimum[g]
        return (y * xq.scale[:, None].astype(np.float64)).astype(np.float32)


@dataclass(frozen=True)
class _Pruned:
    values: np.ndarray
    indices: np.ndarray
    inner: object


class NMPrunedLinear:
    """N:M structured sparsity: of every ``m`` consecutive inputs of each output row, the ``n``
    with the highest score are kept and the rest set to zero, then ``base`` (float or any
    quantized linear) prepares the pruned dense weights.

    ``score="magnitude"`` ranks by ``|w|``; ``score="wanda"`` by ``|w[o, k]| * norm[k]`` with
    ``norm[k]`` the L2 norm of input feature ``k`` over calibration tokens, taken from
    ``input_norms[name]`` (see :func:`calibrate_input_norms`). Ties go to the lower index.
    """

    def __init__(self, n: int = 2, m: int = 4, base: object | None = None,
                 score: str = "magnitude", input_norms: dict[str, np.ndarray] | None = None):
        if score not in ("magnitude", "wanda"):
            raise ValueError(f"score must be 'magnitude' or 'wanda', not {score!r}")
        if score == "wanda" and input_norms is None:
            raise ValueError("score='wanda' needs input_norms")
        _check_nm(n, m, m)
        self.n, self.m, self.score = n, m, score
        self.base = FloatLinear() if base is None else base
        self.input_norms = input_norms
        self.name = f"{n}:{m}-{score}+{self.base.name}"

    def prepare(self, name: str, weight: np.ndarray) -> object:
        if name in FLOAT_LAYERS:
            return _Float(weight)
        scores = np.abs(weight)
        if self.score == "wanda":
            scores = scores * self.input_norms[name][None, :]
        values, indices = prune_nm(weight, self.n, self.m, scores)
        dense = unprune(values, indices, self.n, self.m)
        return _Pruned(values, indices, self.base.prepare(name, dense))

    def apply(self, prepared: object, x: np.ndarray) -> np.ndarray:
        if isinstance(prepared, _Float):
            return x @ prepared.weight.T
        return self.base.apply(prepared.inner, x)


def sample_calibration_tokens(model, count: int = 128, seed: int = 0) -> np.ndarray:
    """``count`` tokens ``model`` samples itself (temperature 1, ``numpy`` generator seeded
    with ``seed``), starting from its BOS token: calibration data that shares nothing with the
    evaluation text. The BOS token is the first of the returned ``count + 1``."""
    from golden.models.tokenizer import load_tokenizer

    rng = np.random.default_rng(seed)
    tokens = [load_tokenizer().bos_id]
    cache = model.new_cache()
    logits = model.forward(tokens, cache)
    for _ in range(count):
        row = logits[-1].astype(np.float64)
        probs = np.exp(row - row.max())
        tokens.append(int(rng.choice(probs.size, p=probs / probs.sum())))
        logits = model.forward(tokens[-1:], cache)
    return np.asarray(tokens, np.int64)


def calibrate_input_norms(model, tokens: np.ndarray) -> dict[str, np.ndarray]:
    """L2 norm over ``tokens`` of every input feature of every block linear layer, from one
    forward of ``model`` (the dense float model: one-shot Wanda, not layer-by-layer)."""
    from golden.models.smollm2 import Capture

    capture = Capture(what=("linear_inputs",))
    model.forward(tokens, capture=capture)
    return {key[:-len(".in")]: np.sqrt(np.sum(np.square(x, dtype=np.float64), axis=0))
            for key, x in capture.records.items() if key.endswith(".in")}


_WANDA_NORMS: dict[tuple[int, int], dict[str, np.ndarray]] = {}


def wanda_input_norms(count: int = 128, seed: int = 0) -> dict[str, np.ndarray]:
    """:func:`calibrate_input_norms` of the float SmolLM2 on :func:`sample_calibration_tokens`
    (computed once per process)."""
    if (count, seed) not in _WANDA_NORMS:
        from golden.models.smollm2 import SmolLM2

        model = SmolLM2()
        tokens = sample_calibration_tokens(model, count, seed)
        _WANDA_NORMS[count, seed] = calibrate_input_norms(model, tokens)
    return _WANDA_NORMS[count, seed]


# --- KV cache and attention -----------------------------------------------------------------

class KV4:
    """K and V stored as 4-bit asymmetric group-wise codes (:func:`quantize_kv_groupwise`,
    groups along ``head_dim``, one per token per head when ``group == head_dim``); reads
    return the dequantised float32 values."""

    def __init__(self, bits: int = 4, group: int = 64):
        _check_bits(bits, 1, 8)
        self.bits, self.group = bits, group
        self.name = f"kv{bits}g{group}"

    def store(self, x: np.ndarray) -> np.ndarray:
        return dequantize_kv_groupwise(quantize_kv_groupwise(x, self.bits, self.group))


class LambdaAttention:
    """Lambda-shaped (attention-sink + sliding-window) attention, as in StreamingLLM and
    LM-Infinite.

    A query at position ``p`` sees key ``j`` iff ``j <= p`` and (``j < sink`` or
    ``j > p - window``): the first ``sink`` positions plus the ``window`` most recent ones,
    the query's own position included (so a query sees at most ``sink + window`` keys).

    :meth:`evict` is given the positions in the cache after an append and keeps the sinks and
    the ``window`` newest positions (``j > max(key_pos) - window``); that is exactly what the
    newest query needs, and it is a superset of what the next query needs once its own key is
    appended, so incremental decoding with eviction equals a full forward with :meth:`keep`.
    """

    def __init__(self, sink: int = 4, window: int = 128):
        if sink < 0:
            raise ValueError(f"sink must be >= 0, not {sink!r}")
        if window < 1:
            raise ValueError(f"window must be >= 1, not {window!r}")
        self.sink, self.window = sink, window
        self.name = f"lambda-s{sink}-w{window}"

    def keep(self, query_pos: np.ndarray, key_pos: np.ndarray) -> np.ndarray:
        q = np.asarray(query_pos)[:, None]
        k = np.asarray(key_pos)[None, :]
        return (k <= q) & ((k < self.sink) | (k > q - self.window))

    def evict(self, key_pos: np.ndarray) -> np.ndarray:
        key_pos = np.asarray(key_pos)
        if key_pos.size == 0:
            return np.ones(0, bool)
        return (key_pos < self.sink) | (key_pos > key_pos.max() - self.window)


# --- the registry ---------------------------------------------------------------------------

#: The settings of the registered variants (the bench reports these).
W4_GROUP = 64
W2_GROUP = 32
KV_GROUP = 64
LAMBDA_SINK = 4
LAMBDA_WINDOW = 128
WANDA_TOKENS = 128


def _variant(name: str, linear: object = None, kv: object = None,
             attention: object = None) -> Variant:
    return Variant(name, FloatLinear() if linear is None else linear,
                   FloatKV() if kv is None else kv,
                   CausalAttention() if attention is None else attention)


#: name -> (factory, one-line description) of every variant this module adds.
QUANT_VARIANTS: dict[str, tuple[Any, str]] = {
    "bf16": (lambda: _variant("bf16", BF16Linear()),
             "weights and activations bf16 (RNE), fp32 accumulate"),
    "w8a8": (lambda: _variant("w8a8", W8A8Linear()),
             "int8 per-channel symmetric W x int8 per-token A, exact int32 accumulate"),
    "w4a8": (lambda: _variant("w4a8", GroupWeightLinear(4, W4_GROUP)),
             f"4-bit asymmetric W (integer zero point), group {W4_GROUP} x int8 per-token A"),
    "w4a8-min": (lambda: _variant("w4a8-min", GroupMinWeightLinear(4, 32)),
                 "4-bit W with float scale and minimum per group of 32 (the checkpoint's Q4_1 "
                 "layout, so its weights exactly) x int8 per-token A"),
    "w2a8": (lambda: _variant("w2a8", GroupWeightLinear(2, W2_GROUP)),
             f"2-bit asymmetric W (integer zero point), group {W2_GROUP} x int8 per-token A"),
    "kv4": (lambda: _variant("kv4", kv=KV4(4, KV_GROUP)),
            f"K and V 4-bit asymmetric, group {KV_GROUP} along head_dim per token"),
    "2:4": (lambda: _variant("2:4", NMPrunedLinear(2, 4)),
            "2:4 magnitude pruning of every block linear, fp32 otherwise"),
    "2:4-wanda": (lambda: _variant("2:4-wanda", NMPrunedLinear(
                      2, 4, score="wanda", input_norms=wanda_input_norms(WANDA_TOKENS))),
                  f"2:4 pruning by |w| * input norm over {WANDA_TOKENS} self-sampled tokens"),
    "lambda": (lambda: _variant("lambda", attention=LambdaAttention(LAMBDA_SINK, LAMBDA_WINDOW)),
               f"Lambda attention: {LAMBDA_SINK} sink + {LAMBDA_WINDOW} window positions"),
}


def register_variants() -> None:
    """Add this module's variants to :data:`golden.models.interfaces.VARIANTS`."""
    for name, (factory, _) in QUANT_VARIANTS.items():
        register_variant(name, factory)


register_variants()
