"""golden.accllm against independent references: golden.models.quant, plain integer products,
exhaustive operand sweeps and LambdaAttention."""

import itertools

import numpy as np
import pytest

from golden import accllm as g
from golden.models import quant

# ---- quantizers agree with golden.models.quant ---------------------------------------------

def _weights(rng, shape):
    w = rng.standard_normal(shape).astype(np.float32)
    w[0, :8] = 0                      # an all-zero group
    w[1, :] = np.abs(w[1, :])         # all positive: zero point 0
    return w


@pytest.mark.parametrize(("bits", "group"), [(2, 32), (4, 64), (4, 16), (8, 32)])
def test_weight_quantizer_matches_quant(bits, group):
    w = _weights(np.random.default_rng(bits * group), (6, 128))
    ours, ref = g.quantize_weights(w, bits, group), quant.quantize_groupwise(w, bits, group)
    assert np.array_equal(ours.codes, ref.codes)
    assert np.array_equal(ours.zero, ref.zero)
    assert np.array_equal(ours.scale, ref.scale)
    err = np.abs(g.dequantize_codes(ours) - w).reshape(6, -1, group)
    assert np.all(err <= ours.scale[..., None] * 0.5001 + 1e-7)


def test_activation_and_kv_quantizers_match_quant():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 96)).astype(np.float32) * 3
    x[2] = 0
    ours, ref = g.quantize_activations(x), quant.quantize_per_token(x)
    assert np.array_equal(ours.codes, ref.codes) and np.array_equal(ours.scale, ref.scale)
    assert ours.codes.min() >= -127
    kv = rng.standard_normal((3, 7, 64)).astype(np.float32)
    ours_kv, ref_kv = g.quantize_kv(kv, 4, 64), quant.quantize_kv_groupwise(kv, 4, 64)
    assert np.array_equal(ours_kv.codes, ref_kv.codes)
    assert np.array_equal(ours_kv.zero, ref_kv.zero)
    assert ours_kv.codes.max() <= 15


def test_quantizers_reject_bad_parameters():
    with pytest.raises(ValueError, match="bits"):
        g.quantize_weights(np.zeros((2, 8)), 3, 4)
    with pytest.raises(ValueError, match="group"):
        g.quantize_weights(np.zeros((2, 8)), 4, 3)


# ---- 2:4 compact format ----------------------------------------------------------------------

def test_prune_24_matches_quant_and_packs():
    rng = np.random.default_rng(2)
    w = rng.integers(-128, 128, (7, 32)).astype(np.int64)
    w[0, :4] = [5, -5, 5, 1]                                   # ties go to the lower index
    values, indices = g.prune_24(w)
    ref_values, ref_indices = quant.prune_nm(w, 2, 4)
    assert np.array_equal(values, ref_values) and np.array_equal(indices, ref_indices)
    assert list(indices[0, :2]) == [0, 1]
    dense = g.unprune_24(values, indices)
    assert np.array_equal(dense, quant.unprune(values, indices, 2, 4))
    assert np.all((dense != 0).reshape(7, -1, 4).sum(-1) <= 2)
    words = g.pack_24(values, indices)
    assert words.shape == (7, 8) and words.max() < 1 << 20
    back_values, back_indices = g.unpack_24(words)
    assert np.array_equal(back_values, values) and np.array_equal(back_indices, indices)


# ---- the packed multiplier -------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["w4a8", "w2a8", "a8kv4"])
def test_packed_multiply_exhaustive(mode):
    """Every activation (-128 included) times every pair of codes: the sign-corrected fields of
    the one 18 x 18 product are the two products."""
    bits = g.CODE_BITS[mode]
    acts = np.arange(-128, 128, dtype=np.int64)
    codes = np.arange(1 << bits, dtype=np.int64)
    s = g.FIELD_SHIFT[mode]
    for q0, q1 in itertools.product(codes, codes):
        word = g.weight_word(mode, [q0, q1])
        b = g.multiplier_operand(mode, word)
        assert 0 <= b < 1 << 17
        # vectorised over the activations, the same bit operations as packed_multiply
        product = acts * b
        low = product & ((1 << s) - 1)
        borrow = low >> (s - 1)
        assert np.array_equal(low - (borrow << s), acts * q0)
        assert np.array_equal((product >> s) + borrow, acts * q1)
    for a, q0, q1 in [(-128, codes[-1], codes[-1]), (-128, 0, codes[-1]), (127, codes[-1], 0),
                      (-1, 1, 1), (0, 3, 3)]:
        assert g.packed_multiply(mode, [a, 0, 0, 0], g.weight_word(mode, [q0, q1])) == \
            (a * q0, a * q1)


def test_packed_multiply_needs_the_correction():
    # without adding the borrow back the high field is wrong by one for a negative low product
    word = g.weight_word("w2a8", [3, 2])
    product = -128 * g.multiplier_operand("w2a8", word)
    assert (product >> 10) == -128 * 2 - 1
    assert g.packed_multiply("w2a8", [-128, 0, 0, 0], word) == (-384, -256)


def test_unpacked_modes_and_sparse_index():
    for a, w in itertools.product([-128, -1, 0, 1, 127], [-128, -1, 0, 1, 127]):
        assert g.packed_multiply("w8a8", [a, 9, 9, 9], g.weight_word("w8a8", [w])) == (a * w, 0)
    acts = [-128, 7, 127, -3]
    for idx in range(4):
        word = g.weight_word("sparse24", [-128], idx)
        assert g.packed_multiply("sparse24", acts, word) == (acts[idx] * -128, 0)


def test_packing_bounds():
    for mode in g.MODES:
        bounds = g.packing_bounds(mode)
        assert bounds["fields"] == g.LANES[mode]
    assert g.packing_bounds("w2a8")["third_field_needs_bits"] > 18
    with pytest.raises(ValueError, match="mode"):
        g.packing_bounds("w1a8")


def test_requantize_matches_float_rounding():
    for acc, shift in itertools.product([-(1 << 31), -70000, -129, -1, 0, 1, 383, 1 << 30],
                                        [0, 1, 3, 8, 31]):
        ref = np.floor(acc / 2 ** shift + 0.5) if shift else acc
        assert g.requantize(acc, shift) == int(np.clip(ref, -128, 127))


# ---- the array model against plain integer products --------------------------------------------

def _extreme_acts(rng, shape):
    x = rng.integers(-128, 128, shape)
    x.flat[::3] = -128
    x.flat[1::5] = 127
    return x


@pytest.mark.parametrize("mode", ["w8a8", "w4a8", "w2a8", "a8kv4"])
@pytest.mark.parametrize(("rows", "cols"), [(2, 2), (1, 3)])
def test_gemv_and_gemm_dense(mode, rows, cols):
    rng = np.random.default_rng(rows * 10 + cols)
    bits = g.CODE_BITS[mode]
    outs, k, tokens = 11, 6, 3
    if mode == "w8a8":
        w = rng.integers(-128, 128, (outs, k))
    else:
        w = rng.integers(0, 1 << bits, (outs, k))
        w[0] = (1 << bits) - 1
    x = _extreme_acts(rng, (tokens, k))
    model = g.PEArrayModel(rows, cols)
    y = g.gemv_result(mode, model.run(g.gemv_beats(mode, x[0], w, rows=rows, cols=cols)), outs,
                      rows=rows, cols=cols)
    assert np.array_equal(y, w @ x[0])
    out = model.run(g.gemm_beats(mode, x, w, rows=rows, cols=cols))
    assert np.array_equal(g.gemm_result(mode, out, tokens, outs, rows=rows, cols=cols),
                          x @ w.T)


@pytest.mark.parametrize(("rows", "cols"), [(2, 2), (3, 1)])
def test_gemv_and_gemm_sparse(rows, cols):
    rng = np.random.default_rng(5)
    w = rng.integers(-128, 128, (5, 16))
    values, indices = g.prune_24(w)
    dense = g.unprune_24(values, indices)
    x = _extreme_acts(rng, (4, 16))
    model = g.PEArrayModel(rows, cols)
    out = model.run(g.gemv_beats("sparse24", x[1], (values, indices), rows=rows, cols=cols))
    assert np.array_equal(g.gemv_result("sparse24", out, 5, rows=rows, cols=cols),
                          dense @ x[1])
    out = model.run(g.gemm_beats("sparse24", x, (values, indices), rows=rows, cols=cols))
    assert np.array_equal(g.gemm_result("sparse24", out, 4, 5, rows=rows, cols=cols),
                          x @ dense.T)


def test_array_requantises_and_wraps():
    model = g.PEArrayModel(1, 1)
    beat = g.gemv_beats("w8a8", np.array([-128] * 3), np.array([[-128] * 3]), rows=1, cols=1,
                        shift=7)
    out = model.run(beat)
    assert out[0]["acc"][0][0] == 3 * 16384 and out[0]["q"][0][0] == 127
    assert out[0]["sum_a"] == -384
    assert g.wrap(1 << 31) == -(1 << 31)


def test_real_smollm2_gemv_matches_integer_matmul():
    real = g.smollm2_tensors()
    x, k = real["x"][-1, :16].astype(np.int64), 16
    for mode, w in [("w8a8", real["w8"]), ("w4a8", real["w4"]), ("w2a8", real["w2"])]:
        w = w[:6, :k].astype(np.int64)
        out = g.PEArrayModel(2, 2).run(g.gemv_beats(mode, x, w, rows=2, cols=2))
        assert np.array_equal(g.gemv_result(mode, out, 6, rows=2, cols=2), w @ x)
    # quant.py's W4A8 group accumulation is the array's acc minus zero point x activation sum
    from golden.models.weights import load_smollm2

    weight = load_smollm2()[1]["blk.0.attn_q.weight"][:4, :64]
    wq = quant.quantize_groupwise(weight, 4, 64)
    x = real["x"][-1, :64].astype(np.int64)
    out = g.PEArrayModel(1, 2).run(g.gemv_beats("w4a8", x, wq.codes, rows=1, cols=2))
    acc = g.gemv_result("w4a8", out, 4, rows=1, cols=2)
    centred = acc - wq.zero[:, 0].astype(np.int64) * out[0]["sum_a"]
    assert np.array_equal(centred, quant.group_integer_accumulate(x[None], wq)[0, 0])


# ---- Λ-shaped KV cache manager --------------------------------------------------------------

@pytest.mark.parametrize(("sink", "window"), [(4, 8), (0, 3), (2, 1), (3, 5)])
def test_lambda_manager_matches_lambda_attention(sink, window):
    manager = g.LambdaKVManager(sink, window, entry_words=4, base=100)
    attention = quant.LambdaAttention(sink, window)
    written = {}
    for n in range(1, 3 * (sink + window) + 2):
        (beat,) = manager.command("append")
        pos = n - 1
        assert beat["pos"] == pos and beat["write"] == 1
        if beat["evict"]:
            assert written[beat["slot"]] == beat["evicted"]
        else:
            assert beat["slot"] not in written
        written[beat["slot"]] = pos
        assert beat["addr"] == 100 + 4 * beat["slot"]
        read = manager.command("read")
        keep = attention.keep(np.array([pos]), np.arange(n))[0]
        assert [b["pos"] for b in read] == list(np.flatnonzero(keep))
        assert all(written[b["slot"]] == b["pos"] for b in read)
        assert read[0]["first"] == 1 and read[-1]["last"] == 1
        assert sum(b["first"] + b["last"] for b in read) == 2 or len(read) == 1
        assert len(read) <= sink + window
    assert manager.command("clear") == [] and manager.command("read") == []
    assert manager.command("append")[0]["slot"] == 0
