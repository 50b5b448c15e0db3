"""Golden model of the FlexCiM sparse digital compute-in-memory macro (arXiv 2504.14365).

Three layers, each checked against the one below it:

* **N:M compact format and sparse products.** :func:`compress_nm` keeps the ``n``
  highest-scoring weights of every group of ``m`` consecutive inputs of each output row
  (:func:`golden.models.quant.prune_nm`): ``values`` (out, K*n/m) and ``indices`` (same shape,
  the position of each kept weight inside its group). :func:`sparse_matmul` multiplies integer
  activations with that form directly (a gather, no dense matrix); it equals the dense integer
  product of the unpruned weights. Dense is the mode ``n = m = 1``.
* **The macro's arithmetic** (:func:`macro_run`): the weights of ``cols`` output rows are cut
  into *tiles* of ``rows`` compact weights per output (tile ``t``, row ``r`` holds compact
  entry ``t*rows + r``); the matching activation tile is ``rows*m/n`` inputs. Row ``r`` of the
  macro sees the window of ``m`` activations that starts at ``(r // n) * m`` of the tile
  (distribution unit) and picks the one its stored index names (an index ``>= m`` reads zero).
  The products of ``rows/submacros`` rows are added per column in each sub-macro (adder tree),
  the sub-macros' partial sums are added (merging unit) and accumulated over the tiles of one
  activation vector in a ``acc_bits``-bit two's-complement accumulator that wraps.
* **Stream beats** (:func:`weight_beats`, :func:`activation_beats`, :func:`output_beats`):
  the payloads of :class:`hw.flexcim.macro.FlexCiMMacro`, as plain ``dict``/``int``.

All integer results are exact (int64 arithmetic, wrapped to ``acc_bits`` where the hardware
wraps), so the hardware tests compare with ``==``.
"""

from __future__ import annotations

import numpy as np

from golden.models.quant import prune_nm, unprune

__all__ = [
    "NM_CANDIDATES", "DENSE", "nm_log2", "check_mode", "compress_nm", "decompress_nm",
    "wrap", "sparse_matmul", "sparse_matvec", "tile_length", "tile_weights",
    "tile_activations", "macro_run", "pack_lanes", "unpack_lanes", "weight_beats",
    "activation_beats", "output_beats", "macro_matmul", "session", "random_steps",
    "real_steps",
]

#: The N:M patterns FLOW chooses from and the macro runs: N in {1, 2, 4, 8}, M in {4, 8, 16},
#: N < M.
NM_CANDIDATES: tuple[tuple[int, int], ...] = tuple(
    (n, m) for m in (4, 8, 16) for n in (1, 2, 4, 8) if n < m)
#: Dense operation as an N:M mode: every weight kept, each row reads its own activation.
DENSE = (1, 1)


def nm_log2(n: int, m: int) -> tuple[int, int]:
    """``(log2 n, log2 m)``, the mode encoding of the weight-load stream."""
    return int(n).bit_length() - 1, int(m).bit_length() - 1


def check_mode(n: int, m: int) -> None:
    """Raise ``ValueError`` unless ``(n, m)`` is dense or one of :data:`NM_CANDIDATES`."""
    if (n, m) != DENSE and (n, m) not in NM_CANDIDATES:
        raise ValueError(f"N:M must be dense (1:1) or one of "
                         f"{', '.join(f'{a}:{b}' for a, b in NM_CANDIDATES)}, not {n}:{m}")


def compress_nm(w: np.ndarray, n: int, m: int,
                scores: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """N:M compact form ``(values, indices)`` of ``w`` (out, K), ``K`` a multiple of ``m``:
    of every ``m`` consecutive inputs the ``n`` with the highest ``scores`` (default ``|w|``;
    ties to the lower index), in increasing input order. ``indices`` are uint8 in ``[0, m)``.
    Dense (``n = m = 1``) gives ``(w, zeros)``."""
    check_mode(n, m)
    return prune_nm(w, n, m, scores)


def decompress_nm(values: np.ndarray, indices: np.ndarray, n: int, m: int) -> np.ndarray:
    """Dense (out, K) weights of a compact form; pruned weights are zero."""
    return unprune(values, indices, n, m)


def wrap(x, bits: int) -> np.ndarray:
    """``x`` (integers) reduced to ``bits``-bit two's complement, as int64."""
    x = np.asarray(x, dtype=np.int64)
    half = np.int64(1) << np.int64(bits - 1)
    return ((x + half) & ((half << np.int64(1)) - np.int64(1))) - half


def sparse_matmul(x: np.ndarray, values: np.ndarray, indices: np.ndarray, n: int, m: int,
                  acc_bits: int | None = None) -> np.ndarray:
    """``y[t, o] = sum_k values[o, k] * x[t, (k // n) * m + indices[o, k]]`` (int64), the
    product of integer activations ``x`` (T, K) with N:M compact weights, read straight from
    the compact form (an index ``>= m`` reads zero, as in the macro). ``acc_bits`` wraps the
    result to that two's-complement width."""
    x = np.asarray(x, dtype=np.int64)
    values = np.asarray(values, dtype=np.int64)
    indices = np.asarray(indices, dtype=np.int64)
    outs, kept = values.shape
    if kept % n or indices.shape != values.shape:
        raise ValueError(f"values {values.shape} and indices {indices.shape} are not {n}:{m}")
    k_in = kept // n * m
    if x.shape[-1] != k_in:
        raise ValueError(f"activations have {x.shape[-1]} inputs, the weights {k_in}")
    position = (np.arange(kept) // n * m)[None, :] + np.minimum(indices, m - 1)
    valid = indices < m
    y = np.empty((x.shape[0], outs), np.int64)
    for o in range(outs):
        gathered = x[:, position[o]] * valid[o]
        y[:, o] = gathered @ values[o]
    return y if acc_bits is None else wrap(y, acc_bits)


def sparse_matvec(x: np.ndarray, values: np.ndarray, indices: np.ndarray, n: int, m: int,
                  acc_bits: int | None = None) -> np.ndarray:
    """:func:`sparse_matmul` of one activation vector ``x`` (K,) -> (out,)."""
    return sparse_matmul(np.asarray(x)[None, :], values, indices, n, m, acc_bits)[0]


# --- the macro --------------------------------------------------------------------------------

def tile_length(rows: int, n: int, m: int) -> int:
    """Activations one weight tile of ``rows`` compact rows covers: ``rows * m / n``."""
    return rows * m // n


def tile_weights(values: np.ndarray, indices: np.ndarray, n: int, m: int, rows: int,
                 cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Macro tiles of compact weights for at most ``cols`` output rows.

    Returns ``weights`` and ``index`` shaped (tiles, rows, cols): tile ``t``, row ``r``,
    column ``c`` is compact entry ``t*rows + r`` of output ``c``. Entries past the end (a
    partial last tile, or output columns past ``values.shape[0]``) are weight 0, index 0.
    ``rows`` must be a multiple of ``n`` so that no N-group straddles two tiles.
    """
    outs, kept = values.shape
    if outs > cols:
        raise ValueError(f"{outs} output rows do not fit {cols} columns")
    if rows % n:
        raise ValueError(f"rows ({rows}) must be a multiple of n ({n})")
    tiles = max(1, -(-kept // rows))
    weights = np.zeros((tiles * rows, cols), np.int64)
    index = np.zeros((tiles * rows, cols), np.int64)
    weights[:kept, :outs] = np.asarray(values, np.int64).T
    index[:kept, :outs] = np.asarray(indices, np.int64).T
    return weights.reshape(tiles, rows, cols), index.reshape(tiles, rows, cols)


def tile_activations(x: np.ndarray, n: int, m: int, rows: int, tiles: int) -> np.ndarray:
    """Activations ``x`` (T, K) zero-padded and cut into ``tiles`` tiles:
    (T, tiles, rows*m/n)."""
    x = np.asarray(x, np.int64)
    length = tile_length(rows, n, m)
    if x.shape[-1] > tiles * length:
        raise ValueError(f"{x.shape[-1]} inputs do not fit {tiles} tiles of {length}")
    padded = np.zeros((x.shape[0], tiles * length), np.int64)
    padded[:, :x.shape[-1]] = x
    return padded.reshape(x.shape[0], tiles, length)


def macro_run(weights: np.ndarray, index: np.ndarray, x_tiles: np.ndarray, n: int, m: int,
              submacros: int, acc_bits: int) -> np.ndarray:
    """What the macro computes for each activation vector, step by step as the hardware does.

    ``weights``/``index`` (tiles, rows, cols) as :func:`tile_weights` makes them,
    ``x_tiles`` (T, tiles, rows*m/n). Per vector and tile: the distribution unit gives row
    ``r`` the window ``x_tile[(r//n)*m : (r//n)*m + m]`` and each weight the activation at its
    index (zero for an index ``>= m``); each sub-macro (``rows/submacros`` consecutive rows)
    adds its products per column; the merging unit adds the sub-macro sums and accumulates
    over the tiles, wrapping at ``acc_bits``. Returns (T, cols) int64.
    """
    tiles, rows, cols = weights.shape
    if rows % submacros:
        raise ValueError(f"rows ({rows}) must be a multiple of submacros ({submacros})")
    base = (np.arange(rows) // n * m)[:, None]
    valid = index < m
    position = base + np.minimum(index, m - 1)       # (tiles, rows, cols)
    out = np.zeros((x_tiles.shape[0], cols), np.int64)
    for token in range(x_tiles.shape[0]):
        acc = np.zeros(cols, np.int64)
        for t in range(x_tiles.shape[1]):
            slot = t % tiles
            act = x_tiles[token, t][position[slot]] * valid[slot]
            products = act * weights[slot]
            partial = products.reshape(submacros, rows // submacros, cols).sum(axis=1)
            acc = wrap(acc + partial.sum(axis=0), acc_bits)
        out[token] = acc
    return out


def macro_matmul(x: np.ndarray, values: np.ndarray, indices: np.ndarray, n: int, m: int,
                 rows: int, cols: int, submacros: int, acc_bits: int) -> np.ndarray:
    """``x`` (T, K) times compact weights of any number of outputs, as the macro does it: the
    outputs in blocks of ``cols`` (a weight reload each), every vector of ``x`` through every
    block. Equals ``sparse_matmul(..., acc_bits)``."""
    outs = values.shape[0]
    y = np.zeros((x.shape[0], outs), np.int64)
    for start in range(0, outs, cols):
        w, idx = tile_weights(values[start:start + cols], indices[start:start + cols], n, m,
                              rows, cols)
        xt = tile_activations(x, n, m, rows, w.shape[0])
        block = macro_run(w, idx, xt, n, m, submacros, acc_bits)
        y[:, start:start + cols] = block[:, :min(cols, outs - start)]
    return y


# --- stream beats -----------------------------------------------------------------------------

def pack_lanes(values, width: int) -> int:
    """Lanes of ``width`` bits (two's complement), lane 0 in the lowest bits."""
    mask = (1 << width) - 1
    return sum((int(v) & mask) << (k * width) for k, v in enumerate(values))


def unpack_lanes(word: int, width: int, count: int, signed: bool = True) -> list[int]:
    """Inverse of :func:`pack_lanes`."""
    out = []
    for k in range(count):
        v = (int(word) >> (k * width)) & ((1 << width) - 1)
        if signed and v >> (width - 1):
            v -= 1 << width
        out.append(v)
    return out


def weight_beats(weights: np.ndarray, index: np.ndarray, n: int, m: int,
                 index_bits: int) -> list[dict]:
    """Weight-load beats: one per (tile, row) in that order, ``weights`` (8-bit lanes),
    ``index`` (``index_bits``-bit lanes), ``n_log2``/``m_log2`` of the mode, ``first`` and
    ``last`` of the load."""
    n_log2, m_log2 = nm_log2(n, m)
    tiles, rows, _ = weights.shape
    beats = []
    for t in range(tiles):
        for r in range(rows):
            beats.append({"weights": pack_lanes(weights[t, r], 8),
                          "index": pack_lanes(index[t, r], index_bits),
                          "n_log2": n_log2, "m_log2": m_log2,
                          "first": int(t == 0 and r == 0),
                          "last": int(t == tiles - 1 and r == rows - 1)})
    return beats


def activation_beats(x_tiles: np.ndarray, lanes: int, *, inputs: int | None = None) -> list[dict]:
    """Activation beats of each vector (a packet each): every tile in ``max(1, L/lanes)``
    beats of ``lanes`` 8-bit activations (``L`` = tile length; lanes past ``L`` zero),
    ``first``/``last`` of the vector. With ``inputs``, beats wholly past the first ``inputs``
    activations of the vector are not sent (the macro reads them as zero)."""
    beats = []
    for vector in x_tiles:
        tiles, length = vector.shape
        per_tile = max(1, length // lanes)
        chunks = []
        for t in range(tiles):
            for b in range(per_tile):
                start = t * length + b * lanes
                lane_values = np.zeros(lanes, np.int64)
                take = min(lanes, length - b * lanes)
                lane_values[:take] = vector[t, b * lanes:b * lanes + take]
                if inputs is None or start < inputs:
                    chunks.append(lane_values)
        for k, lane_values in enumerate(chunks):
            beats.append({"data": pack_lanes(lane_values, 8), "first": int(k == 0),
                          "last": int(k == len(chunks) - 1)})
    return beats


def output_beats(y: np.ndarray, acc_bits: int) -> list[dict]:
    """One output beat per vector: ``data`` = the ``cols`` accumulators (``acc_bits`` lanes),
    ``first = last = 1``."""
    return [{"data": pack_lanes(row, acc_bits), "first": 1, "last": 1} for row in y]


def session(steps, cfg) -> tuple[list[tuple[str, list[dict]]], list[dict]]:
    """Stream traffic and expected outputs of a sequence of weight loads and runs.

    ``steps``: ``("load", n, m, values, indices)`` (compact weights of at most ``cfg.cols``
    outputs) and ``("run", x, inputs)`` (integer activations (T, K); ``inputs`` trims each
    vector's trailing beats as :func:`activation_beats` does, or ``None``). ``cfg`` has
    ``rows``, ``cols``, ``submacros``, ``acc_bits``, ``act_lanes`` and ``index_bits`` (a
    :class:`hw.flexcim.FlexCiMConfig`). Returns ``[(stream, beats), ...]`` in order
    (``"weight"`` or ``"act"``) and the expected output beats. A run uses as many tiles as the
    last load holds.
    """
    traffic, expected = [], []
    loaded = None
    for step in steps:
        if step[0] == "load":
            _, n, m, values, indices = step
            w, idx = tile_weights(values, indices, n, m, cfg.rows, cfg.cols)
            traffic.append(("weight", weight_beats(w, idx, n, m, cfg.index_bits)))
            loaded = (n, m, w, idx)
        elif step[0] == "run":
            _, x, inputs = step
            n, m, w, idx = loaded
            xt = tile_activations(x, n, m, cfg.rows, w.shape[0])
            traffic.append(("act", activation_beats(xt, cfg.act_lanes, inputs=inputs)))
            y = macro_run(w, idx, xt, n, m, cfg.submacros, cfg.acc_bits)
            expected += output_beats(y, cfg.acc_bits)
        else:
            raise ValueError(f"unknown step {step[0]!r}")
    return traffic, expected


def random_steps(cfg, rng: np.random.Generator, *, vectors: int = 2) -> list[tuple]:
    """Test traffic for ``cfg`` (a :class:`hw.flexcim.FlexCiMConfig`): every pattern of
    ``cfg.modes`` once in a random order and the first again at the end (N:M switches between
    runs, no reset), each with random int8 weights (full range, some outputs unused), a random
    number of tiles up to ``cfg.depth`` and ``vectors`` random activation vectors, the second
    run of each load ending early (trailing beats not sent)."""
    modes = list(cfg.modes)
    order = [modes[k] for k in rng.permutation(len(modes))]
    steps = []
    for n, m in order + order[:1]:
        outs = int(rng.integers(max(1, cfg.cols - 1), cfg.cols + 1))
        groups = int(rng.integers(1, cfg.depth * cfg.rows // n + 1))
        k = groups * m
        w = rng.integers(-128, 128, (outs, k))
        values, indices = compress_nm(w, n, m, rng.random(w.shape))
        steps.append(("load", n, m, values, indices))
        steps.append(("run", rng.integers(-128, 128, (vectors, k)), None))
        steps.append(("run", rng.integers(-128, 128, (1, k)), k))
    return steps


def real_steps(cfg, layer: str = "blk.2.ffn_down", tokens: int = 3,
               modes=((2, 4), (1, 8), (4, 8))) -> list[tuple]:
    """Traffic with real SmolLM2 weights and activations: the int8 per-channel codes of the
    first ``cfg.cols`` outputs of ``layer`` (the first ``K`` inputs, ``K`` as many as
    ``cfg.depth`` tiles hold), Wanda-pruned to each of ``modes`` (those ``cfg`` offers) with
    input norms from the same ``tokens`` evaluation tokens whose int8 activation codes are
    then run."""
    from golden.models.evaluate import load_eval_tokens
    from golden.models.quant import quantize_per_channel, quantize_per_token
    from golden.models.smollm2 import Capture, SmolLM2

    model = SmolLM2()
    block = int(layer.split(".")[1])
    capture = Capture(layers=[block], what=("linear_inputs",))
    model.forward(load_eval_tokens(tokens), capture=capture)
    x_float = capture.records[layer + ".in"]
    norms = np.sqrt(np.sum(np.square(x_float, dtype=np.float64), axis=0))
    steps = []
    for n, m in modes:
        if (n, m) not in cfg.modes:
            continue
        k = min(x_float.shape[1], cfg.depth * cfg.rows * m // n) // m * m
        w = quantize_per_channel(model.weights[layer + ".weight"][:cfg.cols, :k], 8).codes
        x = quantize_per_token(x_float[:, :k], 8).codes.astype(np.int64)
        values, indices = compress_nm(w, n, m, np.abs(w.astype(np.float64)) * norms[None, :k])
        steps += [("load", n, m, values, indices), ("run", x, None)]
    return steps
