"""Golden model of the ``meadow`` family (MEADOW, arXiv 2503.11663): W8A8 integer attention
and linear layers with an exactly defined integer softmax, the GEMM and TPHS schedules as
explicit tile loops over that math, and lossless weight packing.

Everything integer here is the hardware contract: ``hw.meadow`` reproduces it bit for bit.

Integer softmax (one row of int32 scores ``s`` with a visibility mask)
------------------------------------------------------------------------
1. ``m = max(s[j])`` over the visible keys (at least one must be visible).
2. ``d = min(m - s[j], DIFF_MAX)`` with ``DIFF_MAX = 2**21 - 1`` (21-bit saturation: exact
   for int8 dot products of up to 64 lanes).
3. ``idx = min((d * exp_mult + 2**(exp_shift-1)) >> exp_shift, EXP_ENTRIES - 1)`` (rounded)
   with ``exp_mult`` in ``[0, 2**16)`` and ``exp_shift`` in ``[1, 31]``;
   ``exp_mult / 2**exp_shift`` is the real score scale times ``EXP_STEPS_PER_UNIT`` (32 table
   steps per unit of exponent).
4. ``e[j] = EXP_TABLE[idx]`` for a visible key, 0 for a masked one, where
   ``EXP_TABLE[k] = round(2**15 * exp(-k / 32))`` for ``k < 512`` (uint16;
   ``EXP_TABLE[0] = 32768``; entries from 355 on are 0, so far keys weigh nothing).
5. ``total = sum(e)``; ``recip = 2**31 // total`` (``total >= 32768``, so ``recip <= 2**16``).
6. ``p[j] = min((e[j] * recip) >> 23, 255)``: probabilities in units of 1/256 (uint8).

Requantisation (attention output and linear layers)
---------------------------------------------------
``requant(acc) = clip((acc * mult + 2**(shift-1)) >> shift, -127, 127)`` with an arithmetic
(floor) shift, ``mult`` in ``[0, 2**16)`` and ``shift`` in ``[1, 47]``; a linear layer may
then apply ReLU (``max(y, 0)``).

Attention of one head: ``acc[t, j] = q[t] . k[j]`` (int8 x int8, int32), key ``j`` visible to
query ``t`` iff ``j <= q_offset + t`` (causal; a decode step is ``T = 1``,
``q_offset = keys - 1``), ``p = softmax_int(acc[t])``, ``o[t, d] = requant(sum_j p[j] *
v[j, d])``. Linear: ``y[t, n] = requant(sum_k x[t, k] * w[n, k])`` (optional ReLU).

Weight packing
--------------
See :func:`pack_weights`: chunks of ``chunk`` int8 weights along the inner dimension become
IDs into a table of unique chunks, the table is re-indexed by decreasing frequency (IDs 0, 1,
... for the most frequent chunks), and the ID stream is cut into packets of ``packet`` IDs,
each stored with its own ID width (the bits of its largest ID) in a 5-bit header.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "EXP_ENTRIES", "EXP_STEPS_PER_UNIT", "EXP_TABLE", "DIFF_MAX", "PROB_ONE",
    "scale_to_mult_shift", "softmax_int", "softmax_float", "requant", "causal_mask",
    "attention_head", "attention", "linear", "mlp",
    "AttentionParams", "Traffic", "attention_gemm", "attention_tphs",
    "PackedWeights", "pack_weights", "unpack_weights", "packed_bits", "ID_WIDTH_BITS",
]

EXP_ENTRIES = 512
EXP_STEPS_PER_UNIT = 32
EXP_FRAC_BITS = 15
EXP_TABLE = np.array([round(2 ** EXP_FRAC_BITS * np.exp(-k / EXP_STEPS_PER_UNIT))
                      for k in range(EXP_ENTRIES)], dtype=np.int64)
DIFF_MAX = 2 ** 21 - 1
RECIP_BITS = 31
PROB_SHIFT = 23
PROB_ONE = 256
#: Bits of the per-packet ID-width header.
ID_WIDTH_BITS = 5


def scale_to_mult_shift(scale: float, *, mult_bits: int = 16, max_shift: int = 47
                        ) -> tuple[int, int]:
    """``(mult, shift)`` with ``mult / 2**shift`` closest to ``scale`` and ``mult`` using as
    many of its ``mult_bits`` as possible (``scale`` > 0)."""
    if not scale > 0:
        raise ValueError(f"scale must be positive, not {scale!r}")
    shift = 0
    while shift < max_shift and scale * 2 ** (shift + 1) < 2 ** mult_bits - 1:
        shift += 1
    mult = int(round(scale * 2 ** shift))
    return min(mult, 2 ** mult_bits - 1), shift


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not (isinstance(value, int | np.integer) and low <= value <= high):
        raise ValueError(f"{name} must be an integer in [{low}, {high}], not {value!r}")


def softmax_int(scores, mask, exp_mult: int, exp_shift: int) -> np.ndarray:
    """Integer softmax of the last axis of int32 ``scores`` (see the module docstring);
    ``mask`` (same shape, bool) says which keys are visible. Returns int64 probabilities in
    units of 1/256 (0..255)."""
    _check_range("exp_mult", exp_mult, 0, 2 ** 16 - 1)
    _check_range("exp_shift", exp_shift, 1, 31)
    s = np.asarray(scores, dtype=np.int64)
    mask = np.asarray(mask, dtype=bool)
    if not mask.any(axis=-1).all():
        raise ValueError("every row needs at least one visible key")
    m = np.where(mask, s, np.iinfo(np.int64).min).max(axis=-1, keepdims=True)
    d = np.minimum(m - s, DIFF_MAX)
    idx = np.minimum((d * exp_mult + (1 << (exp_shift - 1))) >> exp_shift, EXP_ENTRIES - 1)
    e = np.where(mask, EXP_TABLE[np.where(mask, idx, 0)], 0)
    total = e.sum(axis=-1, keepdims=True)
    recip = (2 ** RECIP_BITS) // total
    return np.minimum((e * recip) >> PROB_SHIFT, PROB_ONE - 1)


def softmax_float(x, mask) -> np.ndarray:
    """Float64 softmax of the last axis over the visible entries (the reference)."""
    x = np.where(mask, np.asarray(x, np.float64), -np.inf)
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def requant(acc, mult: int, shift: int, *, relu: bool = False) -> np.ndarray:
    """``clip((acc * mult + 2**(shift-1)) >> shift, -127, 127)`` (then ReLU), as int64."""
    _check_range("mult", mult, 0, 2 ** 16 - 1)
    _check_range("shift", shift, 1, 47)
    acc = np.asarray(acc, dtype=np.int64)
    y = np.clip((acc * mult + (1 << (shift - 1))) >> shift, -127, 127)
    return np.maximum(y, 0) if relu else y


def causal_mask(tokens: int, keys: int, q_offset: int) -> np.ndarray:
    """``(tokens, keys)`` bool: key ``j`` visible to query ``t`` iff ``j <= q_offset + t``."""
    return np.arange(keys)[None, :] <= q_offset + np.arange(tokens)[:, None]


def _int_matmul(a, b) -> np.ndarray:
    """Exact ``a @ b.T`` of small integer arrays as int64."""
    return np.asarray(a, np.int64) @ np.asarray(b, np.int64).T


@dataclass(frozen=True)
class AttentionParams:
    """Integer parameters of attention: the softmax's ``exp_mult``/``exp_shift`` and the
    output requantisation ``out_mult``/``out_shift``; ``q_offset`` for the causal mask."""

    exp_mult: int
    exp_shift: int
    out_mult: int
    out_shift: int
    q_offset: int = 0

    def __post_init__(self):
        _check_range("exp_mult", self.exp_mult, 0, 2 ** 16 - 1)
        _check_range("exp_shift", self.exp_shift, 1, 31)
        _check_range("out_mult", self.out_mult, 0, 2 ** 16 - 1)
        _check_range("out_shift", self.out_shift, 1, 47)
        _check_range("q_offset", self.q_offset, 0, 2 ** 16 - 1)


def attention_head(q, k, v, params: AttentionParams) -> np.ndarray:
    """One head: int8 ``q`` (T, D), ``k``/``v`` (keys, D) -> int8 output (T, D) as int64."""
    scores = _int_matmul(q, k)
    mask = causal_mask(len(q), len(k), params.q_offset)
    p = softmax_int(scores, mask, params.exp_mult, params.exp_shift)
    return requant(p @ np.asarray(v, np.int64), params.out_mult, params.out_shift)


def attention(q, k, v, params: AttentionParams) -> np.ndarray:
    """All heads: ``q`` (H, T, D), ``k``/``v`` (KV, keys, D) with ``H`` a multiple of ``KV``
    (query head ``h`` uses KV head ``h // (H // KV)``) -> (H, T, D)."""
    group = len(q) // len(k)
    return np.stack([attention_head(q[h], k[h // group], v[h // group], params)
                     for h in range(len(q))])


def linear(x, w, mult: int, shift: int, *, relu: bool = False) -> np.ndarray:
    """``requant(x @ w.T)``: int8 ``x`` (T, K), ``w`` (N, K) -> int8 (T, N) as int64."""
    return requant(_int_matmul(x, w), mult, shift, relu=relu)


def mlp(x, w_up, w_down, up: tuple[int, int], down: tuple[int, int]) -> np.ndarray:
    """OPT-style W8A8 MLP: ``linear(relu(linear(x, w_up)), w_down)``; ``up``/``down`` are the
    ``(mult, shift)`` of each requantisation."""
    hidden = linear(x, w_up, *up, relu=True)
    return linear(hidden, w_down, *down)


# --- schedules ------------------------------------------------------------------------------

@dataclass
class Traffic:
    """DRAM bytes moved, by tensor, counted by the schedule loops."""

    read: dict[str, int] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)

    def load(self, name: str, array: np.ndarray, bytes_per_value: int = 1) -> np.ndarray:
        self.read[name] = self.read.get(name, 0) + array.size * bytes_per_value
        return array

    def store(self, name: str, array: np.ndarray, bytes_per_value: int = 1) -> np.ndarray:
        self.written[name] = self.written.get(name, 0) + array.size * bytes_per_value
        return array.copy()

    @property
    def total(self) -> int:
        return sum(self.read.values()) + sum(self.written.values())


def attention_gemm(q, k, v, params: AttentionParams, traffic: Traffic | None = None,
                   token_tile: int = 16) -> np.ndarray:
    """Attention as three GEMM passes through DRAM: every matrix product reads its operands
    from DRAM and writes its whole output back (scores as int32, probabilities as uint8),
    tiled by ``token_tile`` query tokens. Same result as :func:`attention`."""
    traffic = traffic if traffic is not None else Traffic()
    heads, tokens, _ = q.shape
    group = heads // len(k)
    keys = k.shape[1]
    mask = causal_mask(tokens, keys, params.q_offset)
    scores = np.zeros((heads, tokens, keys), np.int64)
    for h in range(heads):                       # pass 1: S = Q K^T -> DRAM
        kh = traffic.load("k", k[h // group])
        for t0 in range(0, tokens, token_tile):
            qt = traffic.load("q", q[h, t0:t0 + token_tile])
            scores[h, t0:t0 + token_tile] = traffic.store("scores", _int_matmul(qt, kh), 4)
    probs = np.zeros_like(scores)
    for h in range(heads):                       # pass 2: P = softmax(S) -> DRAM
        for t0 in range(0, tokens, token_tile):
            st = traffic.load("scores", scores[h, t0:t0 + token_tile], 4)
            pt = softmax_int(st, mask[t0:t0 + token_tile], params.exp_mult, params.exp_shift)
            probs[h, t0:t0 + token_tile] = traffic.store("probs", pt)
    out = np.zeros((heads, tokens, q.shape[2]), np.int64)
    for h in range(heads):                       # pass 3: O = P V -> DRAM
        vh = traffic.load("v", v[h // group])
        for t0 in range(0, tokens, token_tile):
            pt = traffic.load("probs", probs[h, t0:t0 + token_tile])
            ot = requant(pt @ vh.astype(np.int64), params.out_mult, params.out_shift)
            out[h, t0:t0 + token_tile] = traffic.store("out", ot)
    return out


def attention_tphs(q, k, v, params: AttentionParams, traffic: Traffic | None = None,
                   pes: int = 16) -> np.ndarray:
    """Token-parallel head-sequential attention: heads one after another; per head, K and V
    are loaded once (once per KV group), ``pes`` query tokens at a time run Q·Kᵀ -> softmax ->
    ·V on chip, and only the output goes back to DRAM. Same result as :func:`attention`."""
    traffic = traffic if traffic is not None else Traffic()
    heads, tokens, _ = q.shape
    group = heads // len(k)
    keys = k.shape[1]
    mask = causal_mask(tokens, keys, params.q_offset)
    out = np.zeros((heads, tokens, q.shape[2]), np.int64)
    for h in range(heads):
        if h % group == 0:
            kh = traffic.load("k", k[h // group]).astype(np.int64)
            vh = traffic.load("v", v[h // group]).astype(np.int64)
        for t0 in range(0, tokens, pes):
            qt = traffic.load("q", q[h, t0:t0 + pes])
            pt = softmax_int(_int_matmul(qt, kh), mask[t0:t0 + pes], params.exp_mult,
                             params.exp_shift)
            out[h, t0:t0 + pes] = traffic.store(
                "out", requant(pt @ vh, params.out_mult, params.out_shift))
    return out


# --- weight packing -------------------------------------------------------------------------

@dataclass(frozen=True)
class PackedWeights:
    """A packed int8 weight matrix.

    Members
    -------
    table : (unique, chunk) int8
        Unique chunks, most frequent first (frequency re-indexing).
    ids : (rows, chunks_per_row) int64
        Chunk IDs, row-major (the order the IDs are streamed).
    id_widths : (packets,) int64
        Bits per ID of each packet of ``packet`` IDs (0 when a packet holds only ID 0).
    shape, chunk, packet
        Original shape, chunk size and IDs per packet.
    """

    table: np.ndarray
    ids: np.ndarray
    id_widths: np.ndarray
    shape: tuple[int, int]
    chunk: int
    packet: int

    @property
    def table_bytes(self) -> int:
        return self.table.size

    @property
    def stream_bits(self) -> int:
        """Bits of the packet stream: a header and ``packet`` IDs per packet."""
        sizes = np.full(len(self.id_widths), self.packet)
        sizes[-1] = self.ids.size - self.packet * (len(self.id_widths) - 1)
        return int(len(self.id_widths) * ID_WIDTH_BITS + (sizes * self.id_widths).sum())

    @property
    def packed_bytes(self) -> int:
        return self.table_bytes + -(-self.stream_bits // 8)

    @property
    def raw_bytes(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def ratio(self) -> float:
        return self.raw_bytes / self.packed_bytes


def _id_width(max_id: int) -> int:
    return int(max_id).bit_length()


def pack_weights(w, chunk: int = 2, packet: int = 64, *, reindex: bool = True) -> PackedWeights:
    """Pack int8 weights ``w`` (rows, K), ``K`` a multiple of ``chunk``.

    Chunks are ``chunk`` consecutive weights of a row. Unique chunks are numbered by
    decreasing frequency (ties: lexicographic order of the chunk's bytes as uint8) when
    ``reindex``, else in order of first appearance. The row-major ID stream is cut into
    packets of ``packet`` IDs; a packet's IDs are stored with ``bit_length(max ID in the
    packet)`` bits each, after a 5-bit header holding that width.
    """
    w = np.asarray(w)
    if w.ndim != 2 or w.dtype != np.int8:
        raise ValueError(f"w must be a 2-D int8 array, not {w.dtype} {w.shape}")
    if not (isinstance(chunk, int) and chunk >= 1 and w.shape[1] % chunk == 0):
        raise ValueError(f"chunk must be a positive divisor of {w.shape[1]}, not {chunk!r}")
    if not (isinstance(packet, int) and packet >= 1):
        raise ValueError(f"packet must be a positive integer, not {packet!r}")
    chunks = np.ascontiguousarray(w.reshape(-1, chunk)).view(np.uint8)
    keys = chunks.view(np.dtype((np.void, chunk))).reshape(-1)
    unique, first, inverse, counts = np.unique(keys, return_index=True, return_inverse=True,
                                               return_counts=True)
    if reindex:
        order = np.lexsort((np.arange(len(unique)), -counts))   # unique is lexicographic
    else:
        order = np.argsort(first, kind="stable")
    rank = np.empty(len(unique), np.int64)
    rank[order] = np.arange(len(unique))
    ids = rank[inverse.reshape(-1)]
    table = chunks[first[order]].view(np.int8).reshape(len(unique), chunk)
    padded = np.concatenate([ids, np.zeros(-len(ids) % packet, np.int64)])
    widths = np.array([_id_width(m) for m in padded.reshape(-1, packet).max(axis=1)], np.int64)
    return PackedWeights(table, ids.reshape(w.shape[0], -1), widths, w.shape, chunk, packet)


def unpack_weights(packed: PackedWeights) -> np.ndarray:
    """The int8 weights back from the table and the IDs."""
    return packed.table[packed.ids].reshape(packed.shape)


def packed_bits(packed: PackedWeights, word_bits: int = 32) -> list[int]:
    """The packet stream as ``word_bits``-bit words, least significant bit first: per packet a
    5-bit width header, then its IDs at that width (the stream the WILU reads)."""
    bits, nbits, words = 0, 0, []
    flat = packed.ids.reshape(-1)
    for p, width in enumerate(packed.id_widths.tolist()):
        fields = [(width, ID_WIDTH_BITS)]
        fields += [(int(i), width) for i in flat[p * packed.packet:(p + 1) * packed.packet]]
        for value, size in fields:
            bits |= value << nbits
            nbits += size
            while nbits >= word_bits:
                words.append(bits & ((1 << word_bits) - 1))
                bits >>= word_bits
                nbits -= word_bits
    if nbits:
        words.append(bits)
    return words


def quantize_int8(w: np.ndarray) -> np.ndarray:
    """Per-output-channel symmetric int8 codes of float weights (``golden.models.quant``)."""
    from golden.models.quant import quantize_per_channel

    return quantize_per_channel(w, 8).codes


def packing_report(weights: dict[str, np.ndarray], chunk: int = 2, packet: int = 64,
                   progress: Callable[[str, PackedWeights], None] | None = None) -> dict:
    """Pack every int8 matrix of ``weights`` (name -> int8 array) with and without frequency
    re-indexing; totals of raw and packed bytes."""
    rows, raw, packed_total, plain_total = [], 0, 0, 0
    for name, w in weights.items():
        packed = pack_weights(w, chunk, packet)
        plain = pack_weights(w, chunk, packet, reindex=False)
        rows.append({"name": name, "raw_bytes": packed.raw_bytes,
                     "packed_bytes": packed.packed_bytes, "unique_chunks": len(packed.table),
                     "packed_bytes_no_reindex": plain.packed_bytes,
                     "mean_id_bits": float(np.mean(packed.id_widths))})
        raw += packed.raw_bytes
        packed_total += packed.packed_bytes
        plain_total += plain.packed_bytes
        if progress:
            progress(name, packed)
    return {"chunk": chunk, "packet": packet, "raw_bytes": raw, "packed_bytes": packed_total,
            "packed_bytes_no_reindex": plain_total, "ratio": raw / packed_total,
            "ratio_no_reindex": raw / plain_total, "layers": rows}
