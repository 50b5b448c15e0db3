"""golden.flexcim: N:M compact form, sparse products and the macro's arithmetic, against
dense numpy products and a plain-Python reference."""

import numpy as np
import pytest

from golden.flexcim import (
    DENSE,
    NM_CANDIDATES,
    activation_beats,
    check_mode,
    compress_nm,
    decompress_nm,
    macro_matmul,
    macro_run,
    output_beats,
    pack_lanes,
    sparse_matmul,
    sparse_matvec,
    tile_activations,
    tile_weights,
    unpack_lanes,
    weight_beats,
    wrap,
)

MODES = [DENSE, *NM_CANDIDATES]


def reference_nm_keep(scores, n, m):
    """Plain-Python top-n of each group of m (ties to the lower index)."""
    keep = np.zeros(scores.shape, bool)
    for o in range(scores.shape[0]):
        for g in range(0, scores.shape[1], m):
            group = [(-float(scores[o, g + j]), j) for j in range(m)]
            for _, j in sorted(group)[:n]:
                keep[o, g + j] = True
    return keep


@pytest.mark.parametrize(("n", "m"), MODES)
def test_compress_keeps_top_n_and_round_trips(n, m):
    rng = np.random.default_rng(n * 100 + m)
    w = rng.integers(-127, 128, (5, 4 * m))
    scores = rng.random(w.shape)
    values, indices = compress_nm(w, n, m, scores)
    assert values.shape == indices.shape == (5, 4 * n)
    assert np.all(indices < m)
    keep = reference_nm_keep(scores, n, m)
    assert np.array_equal(decompress_nm(values, indices, n, m), np.where(keep, w, 0))


def test_check_mode_refuses_unsupported():
    for bad in [(3, 4), (4, 4), (8, 8), (2, 32), (0, 4)]:
        with pytest.raises(ValueError, match="N:M"):
            check_mode(*bad)


@pytest.mark.parametrize(("n", "m"), MODES)
@pytest.mark.parametrize("seed", [0, 1])
def test_sparse_matmul_equals_dense_product(n, m, seed):
    rng = np.random.default_rng(seed)
    k = 3 * 16
    w = rng.integers(-127, 128, (7, k))
    x = rng.integers(-127, 128, (4, k))
    values, indices = compress_nm(w, n, m)
    dense = decompress_nm(values, indices, n, m).astype(np.int64)
    assert np.array_equal(sparse_matmul(x, values, indices, n, m), x @ dense.T)
    assert np.array_equal(sparse_matvec(x[1], values, indices, n, m), x[1] @ dense.T)


def test_wrap_is_twos_complement():
    for bits in (4, 12, 20):
        for v in [0, 1, -1, 2 ** (bits - 1) - 1, -2 ** (bits - 1), 2 ** bits + 3, -7 * 2 ** bits]:
            r = v % (1 << bits)
            expected = r - (1 << bits) if r >= 1 << (bits - 1) else r
            assert wrap(v, bits) == expected


def test_sparse_matmul_wraps_like_python():
    rng = np.random.default_rng(5)
    w = rng.integers(-127, 128, (3, 64))
    x = rng.integers(-127, 128, (2, 64))
    values, indices = compress_nm(w, 2, 4)
    dense = decompress_nm(values, indices, 2, 4)
    got = sparse_matmul(x, values, indices, 2, 4, acc_bits=12)
    for t in range(2):
        for o in range(3):
            exact = sum(int(a) * int(b) for a, b in zip(x[t], dense[o], strict=True))
            assert got[t, o] == wrap(exact, 12)


def test_index_out_of_group_reads_zero():
    values = np.array([[5, 7]])
    indices = np.array([[1, 9]])          # 9 >= m = 8: reads zero
    x = np.arange(1, 9)[None, :]
    assert sparse_matmul(x, values, indices, 2, 8)[0, 0] == 5 * 2
    w, idx = tile_weights(values, indices, 2, 8, rows=2, cols=1)
    xt = tile_activations(x, 2, 8, rows=2, tiles=1)
    assert macro_run(w, idx, xt, 2, 8, submacros=1, acc_bits=32)[0, 0] == 10


@pytest.mark.parametrize(("n", "m"), MODES)
@pytest.mark.parametrize(("rows", "cols", "submacros", "acc_bits"),
                         [(8, 4, 2, 32), (16, 3, 4, 24), (8, 5, 1, 14)])
def test_macro_equals_sparse_product(n, m, rows, cols, submacros, acc_bits):
    if rows % n:
        pytest.skip("N larger than the rows")
    rng = np.random.default_rng(rows + cols + n + m)
    k = 5 * m + (m if m > 1 else 3)       # not a multiple of the tile length
    w = rng.integers(-127, 128, (2 * cols + 1, k))
    x = rng.integers(-127, 128, (3, k))
    values, indices = compress_nm(w, n, m)
    expected = sparse_matmul(x, values, indices, n, m, acc_bits)
    assert np.array_equal(macro_matmul(x, values, indices, n, m, rows, cols, submacros,
                                       acc_bits), expected)


def test_macro_on_real_weights():
    """Int8 codes of a real SmolLM2 projection and real activations, pruned by Wanda."""
    from golden.models.evaluate import load_eval_tokens
    from golden.models.quant import (
        calibrate_input_norms,
        quantize_per_channel,
        quantize_per_token,
    )
    from golden.models.smollm2 import Capture, SmolLM2

    model = SmolLM2()
    norms = calibrate_input_norms(model, load_eval_tokens(12))
    capture = Capture(layers=[3], what=("linear_inputs",))
    model.forward(load_eval_tokens(6), capture=capture)
    x = quantize_per_token(capture.records["blk.3.ffn_up.in"], 8).codes.astype(np.int64)
    w = quantize_per_channel(model.weights["blk.3.ffn_up.weight"][:6], 8).codes
    scores = np.abs(w.astype(np.float64)) * norms["blk.3.ffn_up"][None, :]
    for n, m in [DENSE, (2, 4), (1, 8), (4, 16)]:
        values, indices = compress_nm(w, n, m, scores)
        dense = decompress_nm(values, indices, n, m).astype(np.int64)
        expected = x @ dense.T
        assert np.array_equal(sparse_matmul(x, values, indices, n, m), expected)
        assert np.array_equal(macro_matmul(x, values, indices, n, m, 8, 4, 2, 32), expected)


def test_beats_round_trip():
    rng = np.random.default_rng(3)
    values, indices = compress_nm(rng.integers(-127, 128, (3, 32)), 2, 8)
    w, idx = tile_weights(values, indices, 2, 8, rows=4, cols=4)
    beats = weight_beats(w, idx, 2, 8, index_bits=3)
    assert len(beats) == w.shape[0] * 4
    assert [b["first"] for b in beats] == [1] + [0] * (len(beats) - 1)
    assert [b["last"] for b in beats] == [0] * (len(beats) - 1) + [1]
    assert all((b["n_log2"], b["m_log2"]) == (1, 3) for b in beats)
    got = np.array([unpack_lanes(b["weights"], 8, 4) for b in beats])
    assert np.array_equal(got, w.reshape(-1, 4))
    got = np.array([unpack_lanes(b["index"], 3, 4, signed=False) for b in beats])
    assert np.array_equal(got, idx.reshape(-1, 4))
    x = rng.integers(-127, 128, (2, 20))
    xt = tile_activations(x, 2, 8, rows=4, tiles=2)       # tiles of 16
    beats = activation_beats(xt, lanes=4)
    assert len(beats) == 2 * 8
    flat = [v for b in beats for v in unpack_lanes(b["data"], 8, 4)]
    assert np.array_equal(np.array(flat).reshape(2, -1), xt.reshape(2, -1))
    trimmed = activation_beats(xt, lanes=4, inputs=20)
    assert len(trimmed) == 2 * 5 and trimmed[4]["last"] == 1 and trimmed[5]["first"] == 1
    wide = activation_beats(xt, lanes=32)                 # a tile per beat, lanes past 16 zero
    assert len(wide) == 4 and unpack_lanes(wide[0]["data"], 8, 32)[16:] == [0] * 16
    out = output_beats(np.array([[1, -2, 3]]), 20)
    assert unpack_lanes(out[0]["data"], 20, 3) == [1, -2, 3]
    assert pack_lanes([-1], 8) == 0xFF
