"""AccLLM golden model (arXiv 2505.03745): W2A8KV4 quantizers, 2:4 compact weights, the packed
multiplier of the reconfigurable PE, the PE array and the Λ-shaped KV cache manager.

Everything integer here is bit-exact with ``hw.accllm``; the tests compare with ``==``.

Quantizers
----------
:func:`quantize_activations` (8-bit symmetric per token), :func:`quantize_weights` (2/4-bit
asymmetric group-wise, integer zero point) and :func:`quantize_kv` (4-bit group-wise K/V)
are written out with explicit integer codes; they agree with the variants of
:mod:`golden.models.quant` (tested), which the perplexity figures use.

The packed multiplier (one ECP5 ``MULT18X18D``: 18 x 18 bits signed, 36-bit product)
---------------------------------------------------------------------------------------
Operand A is one signed 8-bit activation ``a`` (-128 included). Operand B is the *weight
word* turned into an 18-bit signed number:

========  =================================  ===========================  ============
mode      B                                  products                     field ``s``
========  =================================  ===========================  ============
w8a8      ``w`` (signed 8-bit)               ``a*w``                      --
w4a8      ``q0 + q1 * 2**12`` (4-bit codes)  ``a*q0``, ``a*q1``           12
w2a8      ``q0 + q1 * 2**10`` (2-bit codes)  ``a*q0``, ``a*q1``           10
a8kv4     ``k0 + k1 * 2**12`` (4-bit K/V)    ``a*k0``, ``a*k1``           12
sparse24  ``v`` (signed 8-bit kept value)    ``x[idx]*v``                 --
========  =================================  ===========================  ============

Codes are unsigned (``[0, 2**b - 1]``), activations signed, so ``a*q`` can be negative and a
negative low product *borrows* from the field above: ``P = p0 + p1 * 2**s`` read as bits is
``low = P mod 2**s`` and ``P >> s = p1 + floor(p0 / 2**s)``. The sign corrections are

``p0 = low - 2**s * low[s-1]`` (sign-extend the low field) and
``p1 = (P >> s) + low[s-1]`` (add back the borrow),

exact whenever ``-2**(s-1) <= p0 < 2**(s-1)``: with ``a`` in [-128, 127] and ``q`` in
[0, 2**b - 1], ``|a*q| <= 128 * (2**b - 1)`` = 384 (b = 2) < 512 = 2**9 and
1920 (b = 4) < 2048 = 2**11 (:func:`packing_bounds` checks it; the tests try every ``a`` and
every code pair). B stays below 2**17 (61455 for b = 4), a positive 18-bit signed number.

**Why two products and not four.** Every product field needs ``b + 8`` bits, so a third code
would sit at bit ``2 * (b + 8)`` >= 20 of B, past its 18 bits; and packing two activations
into A (``a0 + a1 * 2**t``, ``t >= b + 8``) with two codes in B needs fields at 0, t, s and
s + t, so ``s >= 2t >= 20`` again. On the 18 x 18 multiplier two 2-bit or 4-bit products per
multiply is the most that extracts exactly (the 27 x 18 DSP48E2 of the paper's U280 has room
for more). W2A8's gain over W4A8 is in weight bandwidth and memory (half the bits), not in
multiplies. In ``sparse24`` mode one kept weight of a 2:4 group is multiplied per cycle, the
index choosing one of the group's four activations: one multiply does the work of two dense
ones.

PE array
--------
:class:`PEArrayModel` runs beats of the array's input stream (see ``hw.accllm.pe_array``) and
returns its output beats. :func:`gemv_beats` / :func:`gemm_beats` lay out a decode GEMV or a
prefill GEMM on the array and :func:`gemv_result` / :func:`gemm_result` read the results back;
the tests check those against plain integer matrix products.

Λ-shaped KV cache
-----------------
:class:`LambdaKVManager`: ``sink`` slots for positions ``0 .. sink-1`` and a ring of
``window`` slots for the rest; position ``p >= sink`` lives in slot
``sink + (p - sink) % window``, so writing position ``p`` evicts ``p - window`` once
``p >= sink + window``. A read returns the sinks then the window, oldest first: exactly the
keys :class:`golden.models.quant.LambdaAttention` keeps for the newest query.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "MODES", "MODE_NAMES", "CODE_BITS", "FIELD_SHIFT", "LANES", "DENSE_MACS_PER_MULTIPLY",
    "ActQuant", "GroupCodes", "quantize_activations", "quantize_weights", "quantize_kv",
    "dequantize_codes", "prune_24", "unprune_24", "pack_24", "unpack_24",
    "weight_word", "multiplier_operand", "packed_multiply", "packing_bounds",
    "saturate", "requantize", "wrap", "ACC_BITS",
    "PEArrayModel", "gemv_beats", "gemv_result", "gemm_beats", "gemm_result",
    "LambdaKVManager", "smollm2_tensors", "mixed_workload", "kv_command_sequence",
]

#: Run-time modes of the PE, in the encoding of the hardware's ``mode`` field.
MODES = {"w8a8": 0, "w4a8": 1, "w2a8": 2, "a8kv4": 3, "sparse24": 4}
MODE_NAMES = {v: k for k, v in MODES.items()}
#: Bits per weight (or K/V) code in each mode.
CODE_BITS = {"w8a8": 8, "w4a8": 4, "w2a8": 2, "a8kv4": 4, "sparse24": 8}
#: Bit offset of the second product in the packed modes.
FIELD_SHIFT = {"w4a8": 12, "w2a8": 10, "a8kv4": 12}
#: Products each PE computes per multiply (its accumulator lanes in use).
LANES = {"w8a8": 1, "w4a8": 2, "w2a8": 2, "a8kv4": 2, "sparse24": 1}
#: Dense multiply-accumulates each multiply stands for (2:4 skips the zero half).
DENSE_MACS_PER_MULTIPLY = {"w8a8": 1, "w4a8": 2, "w2a8": 2, "a8kv4": 2, "sparse24": 2}
#: Accumulator width (wraps modulo 2**32, as the hardware's registers).
ACC_BITS = 32
#: Multiplier operand width (ECP5 MULT18X18D).
OPERAND_BITS = 18


def _mode(mode) -> str:
    name = MODE_NAMES.get(mode, mode) if isinstance(mode, int | np.integer) else mode
    if name not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    return name


# --- quantizers -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ActQuant:
    """Signed per-token codes: ``x[t, k] ~= codes[t, k] * scale[t]``."""

    codes: np.ndarray
    scale: np.ndarray


@dataclass(frozen=True)
class GroupCodes:
    """Unsigned group-wise codes: ``x[..., k] ~= scale[..., g] * (codes[..., k] - zero[..., g])``
    with ``g = k // group``."""

    codes: np.ndarray
    scale: np.ndarray
    zero: np.ndarray
    bits: int
    group: int


def quantize_activations(x: np.ndarray, bits: int = 8) -> ActQuant:
    """Per-token symmetric codes in ``[-(2**(b-1) - 1), 2**(b-1) - 1]``:
    ``scale[t] = max_k |x[t, k]| / (2**(b-1) - 1)`` (float32, 1.0 for an all-zero token),
    ``code = rint(x / scale)`` (half to even, one float32 division), clipped."""
    if not (isinstance(bits, int) and 2 <= bits <= 8):
        raise ValueError(f"bits must be an integer in [2, 8], not {bits!r}")
    x = np.asarray(x, np.float32)
    qmax = (1 << (bits - 1)) - 1
    codes = np.zeros(x.shape, np.int8)
    scale = np.ones(x.shape[:-1], np.float32)
    for index in np.ndindex(*x.shape[:-1]):
        row = x[index]
        amax = np.float32(np.max(np.abs(row))) if row.size else np.float32(0)
        s = np.float32(amax / np.float32(qmax)) if amax > 0 else np.float32(1)
        scale[index] = s
        codes[index] = np.clip(np.rint(row / s), -qmax, qmax).astype(np.int8)
    return ActQuant(codes, scale)


def quantize_weights(w: np.ndarray, bits: int, group: int) -> GroupCodes:
    """Asymmetric codes of ``w`` (..., K) in groups of ``group`` along the last axis, ``bits``
    2, 4 or 8. Per group, with ``levels = 2**bits - 1``: ``lo = min(min w, 0)``,
    ``hi = max(max w, 0)``, ``scale = (hi - lo) / levels`` (float32, 1.0 if zero),
    ``zero = clip(rint(-lo / scale), 0, levels)`` and
    ``code = clip(rint(w / scale) + zero, 0, levels)``."""
    if bits not in (2, 4, 8):
        raise ValueError(f"bits must be 2, 4 or 8, not {bits!r}")
    if not (isinstance(group, int) and group >= 1):
        raise ValueError(f"group must be a positive integer, not {group!r}")
    w = np.asarray(w, np.float32)
    if w.shape[-1] % group:
        raise ValueError(f"group {group} does not divide the last dimension {w.shape[-1]}")
    levels = (1 << bits) - 1
    groups = w.shape[-1] // group
    codes = np.zeros(w.shape, np.uint8)
    scale = np.ones((*w.shape[:-1], groups), np.float32)
    zero = np.zeros((*w.shape[:-1], groups), np.uint8)
    for index in np.ndindex(*w.shape[:-1]):
        for g in range(groups):
            values = w[index][g * group:(g + 1) * group]
            lo = min(np.float32(values.min()), np.float32(0))
            hi = max(np.float32(values.max()), np.float32(0))
            s = np.float32((hi - lo) / np.float32(levels))
            if s == 0:
                s = np.float32(1)
            z = int(np.clip(np.rint(-lo / s), 0, levels))
            q = np.clip(np.rint(values / s) + z, 0, levels)
            codes[index][g * group:(g + 1) * group] = q.astype(np.uint8)
            scale[index + (g,)] = s
            zero[index + (g,)] = z
    return GroupCodes(codes, scale, zero, bits, group)


def quantize_kv(x: np.ndarray, bits: int = 4, group: int = 64) -> GroupCodes:
    """K or V (kv_heads, T, head_dim) as ``bits``-bit group-wise codes along ``head_dim``
    (the formula of :func:`quantize_weights`; ``group = head_dim`` gives one scale and zero
    point per cached head vector)."""
    return quantize_weights(x, bits, group)


def dequantize_codes(q: GroupCodes) -> np.ndarray:
    shape = q.codes.shape
    grouped = q.codes.reshape(*shape[:-1], -1, q.group).astype(np.int32)
    centred = (grouped - q.zero[..., None].astype(np.int32)).astype(np.float32)
    return (centred * q.scale[..., None]).reshape(shape)


# --- 2:4 semi-structured sparsity ----------------------------------------------------------

def prune_24(w: np.ndarray, scores: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Compact 2:4 form of ``w`` (rows, K): ``values`` (rows, K/2) and ``indices`` (rows, K/2,
    uint8 in 0..3). In every group of four inputs the two with the highest ``scores``
    (default ``|w|``; ties to the lower index) are kept, in increasing input order."""
    w = np.asarray(w)
    scores = np.abs(w) if scores is None else np.asarray(scores)
    if w.ndim != 2 or w.shape[1] % 4:
        raise ValueError(f"weights must be (rows, K) with K a multiple of 4, not {w.shape}")
    rows, k = w.shape
    values = np.zeros((rows, k // 2), w.dtype)
    indices = np.zeros((rows, k // 2), np.uint8)
    for r in range(rows):
        for g in range(k // 4):
            group = scores[r, 4 * g:4 * g + 4]
            keep = sorted(sorted(range(4), key=lambda j: (-group[j], j))[:2])
            for j, position in enumerate(keep):
                values[r, 2 * g + j] = w[r, 4 * g + position]
                indices[r, 2 * g + j] = position
    return values, indices


def unprune_24(values: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Dense (rows, K) weights from the compact form; dropped weights are 0."""
    rows, half = values.shape
    dense = np.zeros((rows, 2 * half), values.dtype)
    for r in range(rows):
        for j in range(half):
            dense[r, 4 * (j // 2) + int(indices[r, j])] = values[r, j]
    return dense


def pack_24(values: np.ndarray, indices: np.ndarray, bits: int = 8) -> np.ndarray:
    """One integer per group of four: ``v0 | v1 << bits | i0 << 2*bits | i1 << 2*bits+2``
    (values as ``bits``-bit two's complement). ``2*bits + 4`` bits per four weights."""
    v = np.asarray(values, np.int64) & ((1 << bits) - 1)
    i = np.asarray(indices, np.int64)
    return (v[:, 0::2] | v[:, 1::2] << bits | i[:, 0::2] << 2 * bits
            | i[:, 1::2] << (2 * bits + 2))


def unpack_24(words: np.ndarray, bits: int = 8) -> tuple[np.ndarray, np.ndarray]:
    words = np.asarray(words, np.int64)
    mask = (1 << bits) - 1
    v0, v1 = words & mask, words >> bits & mask
    v0, v1 = (np.where(v >= 1 << (bits - 1), v - (1 << bits), v) for v in (v0, v1))
    i0, i1 = words >> 2 * bits & 3, words >> (2 * bits + 2) & 3
    values = np.stack([v0, v1], -1).reshape(words.shape[0], -1)
    indices = np.stack([i0, i1], -1).reshape(words.shape[0], -1).astype(np.uint8)
    return values, indices


# --- the PE ---------------------------------------------------------------------------------

def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def wrap(value: int, bits: int = ACC_BITS) -> int:
    """``value`` as a ``bits``-bit two's complement register holds it."""
    return _signed(int(value), bits)


def weight_word(mode, lanes, index: int = 0) -> int:
    """The PE's 10-bit weight word: ``w8a8``: ``w`` (signed 8-bit) in bits 0-7; ``w4a8`` /
    ``a8kv4``: codes ``q0 | q1 << 4``; ``w2a8``: ``q0 | q1 << 2``; ``sparse24``: the kept value
    (signed 8-bit) in bits 0-7 and its index in the group of four in bits 8-9."""
    name = _mode(mode)
    lanes = [int(x) for x in lanes]
    if name in ("w8a8", "sparse24"):
        (w,) = lanes
        if not -128 <= w <= 127:
            raise ValueError(f"{name} weight must be signed 8-bit, not {w}")
        if not 0 <= index <= 3:
            raise ValueError(f"index must be in 0..3, not {index}")
        return (w & 0xFF) | (index << 8 if name == "sparse24" else 0)
    bits = CODE_BITS[name]
    if len(lanes) != 2 or not all(0 <= q < 1 << bits for q in lanes):
        raise ValueError(f"{name} needs two {bits}-bit codes, not {lanes}")
    return lanes[0] | lanes[1] << bits


def multiplier_operand(mode, word: int) -> int:
    """Operand B of the multiplier (an 18-bit signed value) for a weight word."""
    name = _mode(mode)
    if name in ("w8a8", "sparse24"):
        return _signed(word, 8)
    bits, shift = CODE_BITS[name], FIELD_SHIFT[name]
    mask = (1 << bits) - 1
    return (word & mask) + ((word >> bits & mask) << shift)


def packed_multiply(mode, acts, word: int) -> tuple[int, int]:
    """The two lane products of one PE multiply, computed as the hardware does: one signed
    18 x 18 product ``P = a * B`` and the sign-corrected fields. ``acts`` are the four
    activations of the PE's row (signed 8-bit); lane 0 of them is used except in
    ``sparse24``, where the word's index picks one. Lane 1 is 0 in unpacked modes."""
    name = _mode(mode)
    a = int(acts[(word >> 8) & 3] if name == "sparse24" else acts[0])
    b = multiplier_operand(name, word)
    assert -(1 << 7) <= a < 1 << 7 and -(1 << 17) <= b < 1 << 17
    product = a * b                      # the MULT18X18D's 36-bit signed output
    if name in ("w8a8", "sparse24"):
        return product, 0
    s = FIELD_SHIFT[name]
    low = product & ((1 << s) - 1)
    borrow = low >> (s - 1)              # sign bit of the low field
    p0 = low - (borrow << s)
    p1 = (product >> s) + borrow         # arithmetic shift, then undo the borrow
    return p0, p1


def packing_bounds(mode) -> dict:
    """Ranges that make :func:`packed_multiply` exact, checked: largest product magnitude,
    field half-range and largest operand B."""
    name = _mode(mode)
    if name in ("w8a8", "sparse24"):
        return {"fields": 1, "product_max": 128 * 128, "operand_max": 128}
    bits, s = CODE_BITS[name], FIELD_SHIFT[name]
    levels = (1 << bits) - 1
    product_max = 128 * levels
    operand_max = levels + (levels << s)
    assert product_max < 1 << (s - 1), "low field overflows"
    assert operand_max < 1 << (OPERAND_BITS - 1), "operand B is not an 18-bit signed value"
    third_field = 2 * s + bits
    assert third_field > OPERAND_BITS - 1, "a third field would fit"
    return {"fields": 2, "field_bits": s, "product_max": product_max,
            "operand_max": operand_max, "third_field_needs_bits": third_field}


def saturate(value: int, bits: int = 8) -> int:
    hi = (1 << (bits - 1)) - 1
    return max(-hi - 1, min(hi, int(value)))


def requantize(acc: int, shift: int) -> int:
    """``sat8((acc + 2**(shift-1)) >> shift)`` (round half up; no rounding at shift 0):
    the array's per-run power-of-two requantisation of a 32-bit accumulator."""
    rounding = (1 << (shift - 1)) if shift else 0
    return saturate((int(acc) + rounding) >> shift)


# --- the PE array ---------------------------------------------------------------------------

class PEArrayModel:
    """Beat-level model of ``hw.accllm.PEArray`` with ``rows`` x ``cols`` PEs.

    An input beat is ``{"mode", "gemm", "shift", "act", "wgt", "first", "last"}``: ``act`` is
    ``rows`` lists of four signed activations, ``wgt`` is ``rows * cols`` weight words (PE
    ``(r, c)`` reads ``wgt[r * cols + c]``). In matrix-vector mode (``gemm = 0``) every PE
    takes the activations of ``act[0]`` and its own word; in matrix-matrix mode (``gemm = 1``)
    PE ``(r, c)`` takes ``act[r]`` and the column's word ``wgt[c]``. Each PE adds its two lane
    products (:func:`packed_multiply`) to its accumulators, and each row adds ``act[0]`` of the
    activations it used to its activation sum (for zero points). A beat with ``last`` ends the
    run: the array sends ``rows`` output beats ``{"row", "acc", "q", "sum_a", "first",
    "last"}`` (``acc[c][l]`` and ``q[c][l] = requantize(acc, shift of the last beat)``) and
    starts the next run from zero. Mode and dataflow are per beat, so they can change between
    runs without a reset.
    """

    def __init__(self, rows: int, cols: int):
        self.rows, self.cols = rows, cols
        self._clear()

    def _clear(self):
        self.acc = [[[0, 0] for _ in range(self.cols)] for _ in range(self.rows)]
        self.sum_a = [0] * self.rows

    def step(self, beat: dict) -> list[dict]:
        gemm = bool(beat["gemm"])
        for r in range(self.rows):
            acts = beat["act"][r if gemm else 0]
            self.sum_a[r] = wrap(self.sum_a[r] + int(acts[0]))
            for c in range(self.cols):
                word = beat["wgt"][c if gemm else r * self.cols + c]
                for lane, p in enumerate(packed_multiply(beat["mode"], acts, word)):
                    self.acc[r][c][lane] = wrap(self.acc[r][c][lane] + p)
        if not beat["last"]:
            return []
        out = [{"row": r, "acc": [list(a) for a in self.acc[r]],
                "q": [[requantize(x, beat["shift"]) for x in a] for a in self.acc[r]],
                "sum_a": self.sum_a[r], "first": int(r == 0), "last": int(r == self.rows - 1)}
               for r in range(self.rows)]
        self._clear()
        return out

    def run(self, beats) -> list[dict]:
        return [o for beat in beats for o in self.step(beat)]


def _empty_beat(rows: int, cols: int, mode: str, gemm: int, shift: int) -> dict:
    return {"mode": MODES[mode], "gemm": gemm, "shift": shift, "first": 0, "last": 0,
            "act": [[0, 0, 0, 0] for _ in range(rows)], "wgt": [0] * (rows * cols)}


def _weight_lanes(mode: str, w: np.ndarray, outs: list[int], k: int) -> list[int]:
    return [int(w[o, k]) if o is not None else 0 for o in outs]


def _tiles(count: int, size: int) -> list[list[int | None]]:
    return [[i if i < count else None for i in range(start, start + size)]
            for start in range(0, count, size)]


def gemv_beats(mode: str, x: np.ndarray, w, *, rows: int, cols: int, shift: int = 0):
    """Beats for ``y = W x`` on the array in matrix-vector mode. ``x`` (K,) signed 8-bit.
    Dense modes: ``w`` (O, K) of signed 8-bit weights (``w8a8``) or codes. ``sparse24``: ``w``
    is ``(values, indices)`` of :func:`prune_24` (O, K/2). Outputs go ``lanes`` per PE:
    PE ``p = r * cols + c``, lane ``l`` computes output ``tile * rows*cols*lanes + p*lanes +
    l``. One run (packet) per tile of outputs."""
    name = _mode(mode)
    lanes = LANES[name]
    x = np.asarray(x)
    outs_total = (w[0] if name == "sparse24" else w).shape[0]
    beats = []
    for tile in _tiles(outs_total, rows * cols * lanes):
        run = []
        if name == "sparse24":
            values, indices = w
            for j in range(values.shape[1]):
                beat = _empty_beat(rows, cols, name, 0, shift)
                g = j // 2
                beat["act"][0] = [int(v) for v in x[4 * g:4 * g + 4]]
                for p, o in enumerate(tile):
                    if o is not None:
                        beat["wgt"][p] = weight_word(name, [values[o, j]], int(indices[o, j]))
                run.append(beat)
        else:
            for k in range(x.shape[0]):
                beat = _empty_beat(rows, cols, name, 0, shift)
                beat["act"][0] = [int(x[k]), 0, 0, 0]
                for p in range(rows * cols):
                    beat["wgt"][p] = weight_word(
                        name, _weight_lanes(name, w, tile[p * lanes:(p + 1) * lanes], k))
                run.append(beat)
        run[0]["first"], run[-1]["last"] = 1, 1
        beats += run
    return beats


def gemv_result(mode: str, outputs: list[dict], outs: int, *, rows: int, cols: int,
                key: str = "acc") -> np.ndarray:
    """``y`` (outs,) from the output beats of :func:`gemv_beats`."""
    lanes = LANES[_mode(mode)]
    y = []
    for start in range(0, len(outputs), rows):
        for beat in outputs[start:start + rows]:
            for c in range(cols):
                y += beat[key][c][:lanes]
    return np.array(y[:outs], np.int64)


def gemm_beats(mode: str, x: np.ndarray, w, *, rows: int, cols: int, shift: int = 0):
    """Beats for ``Y = X W^T`` in matrix-matrix mode: ``x`` (T, K), ``w`` as in
    :func:`gemv_beats`. Row ``r`` of the array holds token ``t0 + r``, column ``c`` outputs
    ``o0 + c*lanes + l``; one run per (token tile, output tile), token tiles outermost."""
    name = _mode(mode)
    lanes = LANES[name]
    x = np.asarray(x)
    outs_total = (w[0] if name == "sparse24" else w).shape[0]
    beats = []
    for tokens in _tiles(x.shape[0], rows):
        for tile in _tiles(outs_total, cols * lanes):
            run = []
            steps = w[0].shape[1] if name == "sparse24" else x.shape[1]
            for j in range(steps):
                beat = _empty_beat(rows, cols, name, 1, shift)
                for r, t in enumerate(tokens):
                    if t is None:
                        continue
                    if name == "sparse24":
                        g = j // 2
                        beat["act"][r] = [int(v) for v in x[t, 4 * g:4 * g + 4]]
                    else:
                        beat["act"][r] = [int(x[t, j]), 0, 0, 0]
                for c in range(cols):
                    group = tile[c * lanes:(c + 1) * lanes]
                    if name == "sparse24":
                        o = group[0]
                        if o is not None:
                            values, indices = w
                            beat["wgt"][c] = weight_word(name, [values[o, j]],
                                                         int(indices[o, j]))
                    else:
                        beat["wgt"][c] = weight_word(name, _weight_lanes(name, w, group, j))
                run.append(beat)
            run[0]["first"], run[-1]["last"] = 1, 1
            beats += run
    return beats


def gemm_result(mode: str, outputs: list[dict], tokens: int, outs: int, *, rows: int,
                cols: int, key: str = "acc") -> np.ndarray:
    """``Y`` (tokens, outs) from the output beats of :func:`gemm_beats`."""
    lanes = LANES[_mode(mode)]
    y = np.zeros((tokens, outs), np.int64)
    runs = [outputs[k:k + rows] for k in range(0, len(outputs), rows)]
    out_tiles = -(-outs // (cols * lanes))
    for n, run in enumerate(runs):
        t0, o0 = (n // out_tiles) * rows, (n % out_tiles) * cols * lanes
        for beat in run:
            t = t0 + beat["row"]
            for c in range(cols):
                for lane in range(lanes):
                    o = o0 + c * lanes + lane
                    if t < tokens and o < outs:
                        y[t, o] = beat[key][c][lane]
    return y


# --- Λ-shaped KV cache manager --------------------------------------------------------------

class LambdaKVManager:
    """Slots and addresses of a bounded KV cache for Λ-shaped attention.

    Commands: ``append`` (the next position's K/V is written), ``read`` (the keys of the
    newest query) and ``clear`` (a new sequence). Each returns the beats the hardware sends:

    * ``append`` of position ``p``: one beat, ``write = 1``, ``slot``/``addr`` where it goes and
      ``evict = 1``, ``evicted = p - window`` when that position leaves the cache;
    * ``read`` with ``n`` positions written: ``min(n, sink) + min(max(n - sink, 0), window)``
      beats, ``write = 0``, sinks ascending then the window from its oldest position, each with
      its ``pos``, ``slot`` and ``addr = base + slot * entry_words``; none when ``n = 0``;
    * ``clear``: no beat.
    """

    def __init__(self, sink: int, window: int, entry_words: int = 1, base: int = 0,
                 addr_width: int = 16, pos_width: int = 16):
        if sink < 0:
            raise ValueError(f"sink must be >= 0, not {sink!r}")
        if window < 1:
            raise ValueError(f"window must be >= 1, not {window!r}")
        self.sink, self.window, self.entry_words, self.base = sink, window, entry_words, base
        self.addr_mask, self.pos_mask = (1 << addr_width) - 1, (1 << pos_width) - 1
        self.count = 0

    @property
    def slots(self) -> int:
        return self.sink + self.window

    def slot_of(self, pos: int) -> int:
        return pos if pos < self.sink else self.sink + (pos - self.sink) % self.window

    def _beat(self, pos, write, evicted=None, first=1, last=1):
        slot = self.slot_of(pos)
        return {"pos": pos & self.pos_mask, "slot": slot,
                "addr": (self.base + slot * self.entry_words) & self.addr_mask,
                "write": int(write), "evict": int(evicted is not None),
                "evicted": (evicted or 0) & self.pos_mask, "first": first, "last": last}

    def positions(self) -> list[int]:
        """Positions held, in read order."""
        n = self.count
        sinks = list(range(min(n, self.sink)))
        return sinks + list(range(max(self.sink, n - self.window), n))

    def command(self, op: str) -> list[dict]:
        if op == "clear":
            self.count = 0
            return []
        if op == "append":
            pos = self.count
            self.count += 1
            evicted = pos - self.window if pos >= self.slots else None
            return [self._beat(pos, True, evicted)]
        if op == "read":
            held = self.positions()
            return [self._beat(p, False, first=int(k == 0), last=int(k == len(held) - 1))
                    for k, p in enumerate(held)]
        raise ValueError(f"op must be 'append', 'read' or 'clear', not {op!r}")

    def run(self, ops) -> list[dict]:
        return [beat for op in ops for beat in self.command(op)]


# --- real tensors ---------------------------------------------------------------------------

_REAL: dict = {}


def smollm2_tensors(prompt: str = "The capital of France is", layer: int = 0) -> dict:
    """Real SmolLM2-135M tensors of one block for the hardware tests, as AccLLM codes:
    ``x`` (T, 576) int8 activation codes of ``attn_q``'s input, ``w8`` (576, 576) int8
    per-channel weights of ``attn_q``, ``w4``/``w2`` group codes (groups 64/32) of the same
    weights, ``q`` (T, 64) int8 codes of head 0's queries, ``k4``/``v4`` (T, 64) 4-bit codes of
    KV head 0's keys and values (one group per head vector) and ``p`` (T, T) head 0's
    attention probabilities as codes ``rint(127 p)`` (the A8 operand of P·V)."""
    key = (prompt, layer)
    if key not in _REAL:
        from golden.models.quant import quantize_per_channel
        from golden.models.smollm2 import Capture, SmolLM2
        from golden.models.tokenizer import load_tokenizer

        model = SmolLM2()
        capture = Capture(layers=[layer], what=["linear_inputs", "qkv", "attention"])
        model.forward(load_tokenizer().encode(prompt), capture=capture)
        rec = capture.layer(layer)
        weight = model.weights[f"blk.{layer}.attn_q.weight"]
        _REAL[key] = {
            "x": quantize_activations(rec["attn_q.in"]).codes,
            "w8": quantize_per_channel(weight, 8).codes,
            "w4": quantize_weights(weight, 4, 64).codes,
            "w2": quantize_weights(weight, 2, 32).codes,
            "q": quantize_activations(rec["q"][0]).codes,
            "k4": quantize_kv(rec["k"][0], 4, 64).codes,
            "v4": quantize_kv(rec["v"][0], 4, 64).codes,
            "p": np.rint(rec["attn_probs"][0] * 127).astype(np.int8),
        }
    return _REAL[key]


# --- stimulus shared by the amaranth.sim and cocotb tests -----------------------------------

def mixed_workload(rng: np.random.Generator, rows: int, cols: int) -> list[dict]:
    """Runs in every mode and both dataflows, back to back, with extremes (-128, 127, largest
    codes) and a saturating requantisation shift; short runs (1 beat) too."""
    R, C = rows, cols
    beats = []
    order = [("w8a8", 0), ("w4a8", 1), ("w2a8", 0), ("a8kv4", 1), ("sparse24", 0),
             ("w2a8", 1), ("sparse24", 1), ("w8a8", 1), ("a8kv4", 0), ("w4a8", 0)]
    for n, (mode, gemm) in enumerate(order):
        k = int(rng.integers(1, 7)) * 4
        tokens = R if gemm else 1
        x = rng.integers(-128, 128, (tokens, k))
        x[:, ::3] = -128
        if mode in ("w8a8", "sparse24"):
            w = rng.integers(-128, 128, (R * C + 1, k))
            w[:, 1::4] = -128
        else:
            levels = (1 << CODE_BITS[mode]) - 1
            w = rng.integers(0, levels + 1, (2 * R * C + 1, k))
            w[0] = levels
        if mode == "sparse24":
            w = prune_24(w)
        shift = [0, 4, 9, 31][n % 4]
        if gemm:
            beats += gemm_beats(mode, x, w, rows=R, cols=C, shift=shift)
        else:
            beats += gemv_beats(mode, x[0], w, rows=R, cols=C, shift=shift)
    # a one-beat run
    beats += gemv_beats("w8a8", np.array([-128]), np.full((R * C, 1), -128), rows=R, cols=C)
    # random filler where the mode and dataflow read nothing: must not matter
    for beat in beats:
        name = MODE_NAMES[beat["mode"]]
        for r in range(R):
            if beat["gemm"] == 0 and r:
                beat["act"][r] = [int(v) for v in rng.integers(-128, 128, 4)]
            elif name != "sparse24":
                beat["act"][r][1:] = [int(v) for v in rng.integers(-128, 128, 3)]
        for p in range(R * C):
            if beat["gemm"] and p >= C:
                beat["wgt"][p] = int(rng.integers(0, 1 << 10))
            elif name != "sparse24":
                unused = ((1 << 10) - (1 << (2 * CODE_BITS[name] if name != "w8a8" else 8)))
                beat["wgt"][p] |= int(rng.integers(0, 1 << 10)) & unused
    return beats


def kv_command_sequence(seed: int, appends: int = 300) -> list[str]:
    """Appends with a read after most, past several ring wrap-arounds and, with 8-bit
    positions, past the position counter's wrap; clears and no-ops in between."""
    rng = np.random.default_rng(seed)
    ops = ["read", "append", "read"]
    for n in range(appends):
        ops.append("append")
        if rng.random() < 0.5 or n > appends - 10:
            ops.append("read")
        if n == 40:
            ops += ["clear", "read", "append", "read"]
        if rng.random() < 0.05:
            ops.append("noop")
    return ops
