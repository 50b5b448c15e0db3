"""Quantized SmolLM2 variants (golden/models/quant.py): the integer math bit-exact against slow
pure-integer references, quantizer error bounds, N:M pruning, the Lambda mask, and the
perplexity of every variant on the real model."""

import importlib.util

import numpy as np
import pytest

from golden.models import quant
from golden.models.interfaces import VARIANTS, FloatLinear
from golden.models.weights import round_to

SEEDS = [0, 1, 2]


def _weights(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """Gaussian weights with row scales spread over three decades, like real layers."""
    scales = 10.0 ** rng.uniform(-2, 1, size=(rows, 1))
    return (rng.standard_normal((rows, cols)) * scales).astype(np.float32)


def _quotient_slack(scale: np.ndarray) -> np.ndarray:
    """Float32 rounding allowance on top of the ideal ``scale / 2`` round-trip bound: the
    quotient ``x / scale`` and the product ``code * scale`` are each rounded once."""
    return scale * 2.0 ** -16


# --- bf16 -----------------------------------------------------------------------------------

def test_bf16_linear_rounds_both_operands():
    rng = np.random.default_rng(0)
    w, x = _weights(rng, 16, 64), rng.standard_normal((3, 64)).astype(np.float32)
    linear = quant.BF16Linear()
    prepared = linear.prepare("blk.0.attn_q", w)
    assert np.all((prepared.view(np.uint32) & 0xFFFF) == 0)
    assert np.all(np.abs(prepared - w) <= np.abs(w) * 2.0 ** -8)
    np.testing.assert_array_equal(linear.apply(prepared, x), round_to(x, "bf16") @ prepared.T)


# --- symmetric quantizers -------------------------------------------------------------------

@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("seed", SEEDS)
def test_symmetric_round_trip_within_half_step(seed, bits):
    rng = np.random.default_rng(seed)
    w = _weights(rng, 48, 200)
    q = quant.quantize_per_channel(w, bits)
    qmax = 2 ** (bits - 1) - 1
    assert q.codes.dtype == np.int8 and q.scale.dtype == np.float32
    assert q.codes.min() >= -qmax and q.codes.max() <= qmax
    # the largest magnitude of each row lands on the extreme code
    np.testing.assert_array_equal(np.abs(q.codes).max(axis=1), qmax)
    error = np.abs(w - quant.dequantize_symmetric(q))
    assert np.all(error <= q.scale[:, None] / 2 + _quotient_slack(q.scale)[:, None])
    # per token is the same rule along rows
    x = rng.standard_normal((7, 200)).astype(np.float32)
    qx = quant.quantize_per_token(x, bits)
    np.testing.assert_array_equal(qx.codes, quant.quantize_per_channel(x, bits).codes)
    assert qx.scale.shape == (7,)


def test_symmetric_extremes():
    w = np.array([[0, 0, 0, 0],                      # all zero: scale 1, codes 0
                  [-5, 1, 0, 2.5],                   # negative maximum: -127, never -128
                  [1e6, 1, -1, 3e3],                 # one huge outlier swamps the row
                  [7, -7, 7, -7]], np.float32)
    q = quant.quantize_per_channel(w)
    np.testing.assert_array_equal(q.scale[0], 1.0)
    np.testing.assert_array_equal(q.codes[0], 0)
    np.testing.assert_array_equal(q.codes[1], [-127, 25, 0, 64])   # 63.5 rounds to even
    np.testing.assert_array_equal(q.codes[2], [127, 0, 0, 0])
    np.testing.assert_array_equal(q.codes[3], [127, -127, 127, -127])
    assert q.codes.min() == -127
    q4 = quant.quantize_per_channel(w, 4)
    assert q4.codes.min() == -7 and q4.codes.max() == 7
    with pytest.raises(ValueError, match="non-finite"):
        quant.quantize_per_channel(np.array([[np.inf, 1]], np.float32))
    with pytest.raises(ValueError, match="bits"):
        quant.quantize_per_channel(w, 1)


# --- asymmetric group-wise quantizers -------------------------------------------------------

@pytest.mark.parametrize(("bits", "group"), [(4, 128), (4, 64), (2, 32), (2, 64), (3, 16)])
@pytest.mark.parametrize("seed", SEEDS)
def test_groupwise_round_trip_within_half_step(seed, bits, group):
    rng = np.random.default_rng(seed)
    w = _weights(rng, 24, 256) + rng.uniform(-1, 1, size=(24, 1)).astype(np.float32)
    q = quant.quantize_groupwise(w, bits, group)
    levels = 2 ** bits - 1
    assert q.codes.dtype == np.uint8 and q.zero.dtype == np.uint8
    assert q.scale.shape == q.zero.shape == (24, 256 // group)
    assert q.codes.max() <= levels and q.zero.max() <= levels
    step = np.repeat(q.scale, group, axis=1)
    error = np.abs(w - quant.dequantize_groupwise(q))
    assert np.all(error <= step / 2 + _quotient_slack(step))


def test_groupwise_extremes():
    w = np.array([[0, 0, 0, 0, 1, 2, 3, 15, -1, -2, -3, -15, 4, 4, 4, 4]], np.float32)
    q = quant.quantize_groupwise(w, 4, 4)
    np.testing.assert_array_equal(q.zero[0], [0, 0, 15, 0])        # range always holds 0
    np.testing.assert_array_equal(q.scale[0], np.float32([1, 1, 1, np.float32(4) / 15]))
    np.testing.assert_array_equal(q.codes[0, :12], [0, 0, 0, 0, 1, 2, 3, 15, 14, 13, 12, 0])
    np.testing.assert_array_equal(q.codes[0, 12:], 15)             # constant group: top code
    np.testing.assert_allclose(quant.dequantize_groupwise(q), w, rtol=1e-6)
    with pytest.raises(ValueError, match="multiple of group"):
        quant.quantize_groupwise(np.zeros((2, 10), np.float32), 4, 4)


@pytest.mark.parametrize(("bits", "group"), [(4, 32), (2, 32), (4, 64)])
@pytest.mark.parametrize("seed", SEEDS)
def test_groupwise_min_round_trip_and_grid(seed, bits, group):
    rng = np.random.default_rng(seed)
    w = _weights(rng, 24, 256)
    q = quant.quantize_groupwise_min(w, bits, group)
    assert q.codes.dtype == np.uint8 and q.codes.max() <= 2 ** bits - 1
    step = np.repeat(q.scale, group, axis=1)
    assert np.all(np.abs(w - quant.dequantize_groupwise_min(q)) <= step / 2 * (1 + 2.0 ** -12))
    # weights already on a (scale, minimum) grid using every code come back exactly
    levels = 2 ** bits - 1
    codes = rng.integers(0, levels + 1, size=(24, 256 // group, group))
    codes[..., 0], codes[..., 1] = 0, levels
    d = rng.uniform(0.01, 1, (24, 256 // group, 1)).astype(np.float32)
    m = -rng.uniform(0, 8, (24, 256 // group, 1)).astype(np.float32) * d
    grid = (codes.astype(np.float32) * d + m).reshape(24, 256)
    q = quant.quantize_groupwise_min(grid, bits, group)
    np.testing.assert_array_equal(q.codes, codes.reshape(24, 256))
    np.testing.assert_allclose(quant.dequantize_groupwise_min(q), grid, rtol=0,
                               atol=float(np.max(d)) * 2.0 ** -18)


def test_kv_groupwise_shape_and_bound():
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((3, 17, 64)) * rng.uniform(0.1, 10, (3, 17, 1))).astype(np.float32)
    q = quant.quantize_kv_groupwise(x, 4, 64)
    assert q.scale.shape == (3, 17, 1) and q.codes.max() <= 15
    back = quant.KV4(4, 64).store(x)
    assert back.dtype == np.float32 and back.shape == x.shape
    np.testing.assert_array_equal(back, quant.dequantize_kv_groupwise(q))
    assert np.all(np.abs(back - x) <= q.scale / 2 + _quotient_slack(q.scale))


# --- integer matmuls ------------------------------------------------------------------------

def test_exact_integer_matmul_at_the_bound():
    k = 1536
    a = np.full((3, k), -127, np.int8)
    b = np.full((2, k), -127, np.int8)
    a[1, ::2] = 127
    acc = quant.exact_integer_matmul(a, b)
    np.testing.assert_array_equal(acc, a.astype(np.int64) @ b.astype(np.int64).T)
    assert acc[0, 0] == k * 127 * 127
    with pytest.raises(AssertionError, match="overflow the int32"):
        quant.exact_integer_matmul(np.full((1, 1 << 20), 127), np.full((1, 1 << 20), 127))


@pytest.mark.parametrize("depth", [576, 1536])      # 1536: float32 BLAS needs two chunks
@pytest.mark.parametrize("seed", SEEDS)
def test_w8a8_equals_integer_reference(seed, depth):
    rng = np.random.default_rng(seed)
    w = _weights(rng, 40, depth)
    w[5] = np.where(np.arange(depth) % 3, 1.0, -1.0)    # codes all +-127: the largest sums
    x = (rng.standard_normal((9, depth)) * rng.uniform(0.1, 30, (9, 1))).astype(np.float32)
    x[8] = w[5]
    x[3] = 0                                          # an all-zero token
    x[4, 7] = 500                                     # an outlier channel
    linear = quant.W8A8Linear()
    prepared = linear.prepare("blk.0.attn_q", w)
    y = linear.apply(prepared, x)

    qw, sw = prepared.quant.codes.astype(np.int64), prepared.quant.scale.astype(np.float64)
    qx = quant.quantize_per_token(x)
    acc = qx.codes.astype(np.int64) @ qw.T                       # slow, pure integer
    assert acc[8, 5] == depth * 127 * 127 < 2 ** 31
    expected = ((acc * qx.scale[:, None].astype(np.float64)) * sw[None, :]).astype(np.float32)
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(y[3], 0)

    # against float: |x w - x' w'| <= |x| |dw| + |dx| |w| + |dx| |dw|, each d <= scale / 2
    dw = sw[None, :] / 2 * (1 + 2.0 ** -15)
    dx = qx.scale[:, None].astype(np.float64) / 2 * (1 + 2.0 ** -15)
    ax, aw = np.abs(x).astype(np.float64), np.abs(w).astype(np.float64)
    bound = (ax.sum(1, keepdims=True) * dw + dx * aw.sum(1)[None, :]
             + dx * dw * w.shape[1])
    exact = x.astype(np.float64) @ w.astype(np.float64).T
    assert np.all(np.abs(y - exact) <= bound + 1e-5 * np.abs(exact) + 1e-6)


@pytest.mark.parametrize(("bits", "group"), [(4, 128), (4, 64), (2, 32), (2, 64)])
@pytest.mark.parametrize("seed", SEEDS[:2])
def test_group_linear_equals_integer_reference(seed, bits, group):
    rng = np.random.default_rng(seed)
    w = _weights(rng, 30, 384)
    x = (rng.standard_normal((6, 384)) * rng.uniform(0.1, 30, (6, 1))).astype(np.float32)
    linear = quant.GroupWeightLinear(bits, group)
    prepared = linear.prepare("blk.7.ffn_up", w)
    y = linear.apply(prepared, x)

    qx = quant.quantize_per_token(x)
    groups = 384 // group
    xg = qx.codes.astype(np.int64).reshape(6, groups, group)
    wq = prepared.quant
    wg = (wq.codes.astype(np.int64).reshape(30, groups, group)
          - wq.zero.astype(np.int64)[:, :, None])
    acc = np.einsum("tgk,ogk->gto", xg, wg)                       # slow, pure integer
    np.testing.assert_array_equal(quant.group_integer_accumulate(qx.codes, wq), acc)
    combined = np.zeros((6, 30), np.float64)
    for g in range(groups):
        combined += acc[g] * wq.scale[None, :, g].astype(np.float64)
    expected = (combined * qx.scale[:, None].astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(y, expected)
    # and it is the float product of the dequantised operands
    deq = (quant.dequantize_symmetric(qx).astype(np.float64)
           @ quant.dequantize_groupwise(wq).astype(np.float64).T)
    np.testing.assert_allclose(y, deq, rtol=1e-5, atol=1e-5 * np.abs(deq).max())


@pytest.mark.parametrize(("bits", "group"), [(4, 32), (2, 32), (4, 64)])
def test_group_min_linear_equals_integer_reference(bits, group):
    rng = np.random.default_rng(bits * group)
    w = _weights(rng, 30, 384)
    x = (rng.standard_normal((6, 384)) * rng.uniform(0.1, 30, (6, 1))).astype(np.float32)
    linear = quant.GroupMinWeightLinear(bits, group)
    prepared = linear.prepare("blk.1.ffn_down", w)
    y = linear.apply(prepared, x)

    wq, qx, groups = prepared.quant, quant.quantize_per_token(x), 384 // group
    xg = qx.codes.astype(np.int64).reshape(6, groups, group)
    acc = np.einsum("tgk,ogk->gto", xg, wq.codes.astype(np.int64).reshape(30, groups, group))
    sum_x = xg.sum(-1).T                                          # (G, T)
    got_acc, got_sum = linear.accumulate(prepared, qx.codes)
    np.testing.assert_array_equal(got_acc, acc)
    np.testing.assert_array_equal(got_sum, sum_x)
    combined = np.zeros((6, 30), np.float64)
    for g in range(groups):
        combined += (acc[g] * wq.scale[None, :, g].astype(np.float64)
                     + sum_x[g][:, None] * wq.minimum[None, :, g].astype(np.float64))
    expected = (combined * qx.scale[:, None].astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(y, expected)


def test_float_layers_stay_float():
    rng = np.random.default_rng(9)
    w, x = _weights(rng, 16, 64), rng.standard_normal((3, 64)).astype(np.float32)
    for linear in (quant.BF16Linear(), quant.W8A8Linear(), quant.GroupWeightLinear(2, 32),
                   quant.GroupMinWeightLinear(4, 32), quant.NMPrunedLinear(2, 4)):
        np.testing.assert_array_equal(linear.apply(linear.prepare("output", w), x), x @ w.T)
        assert not np.array_equal(linear.apply(linear.prepare("blk.0.attn_v", w), x), x @ w.T)


# --- N:M pruning ----------------------------------------------------------------------------

@pytest.mark.parametrize(("n", "m"), [(2, 4), (1, 4), (4, 8), (3, 4)])
@pytest.mark.parametrize("seed", SEEDS)
def test_nm_keeps_top_n_per_group(seed, n, m):
    rng = np.random.default_rng(seed)
    w = _weights(rng, 12, 64)
    scores = np.abs(w)
    values, indices = quant.prune_nm(w, n, m)
    assert values.shape == indices.shape == (12, 64 // m * n)
    assert indices.dtype == np.uint8 and indices.max() < m
    groups = indices.reshape(12, -1, n)
    assert np.all(np.diff(groups.astype(int), axis=-1) > 0)      # increasing, no repeats
    dense = quant.unprune(values, indices, n, m)
    mask = quant.nm_mask(scores, n, m)
    np.testing.assert_array_equal(dense, np.where(mask, w, 0))
    np.testing.assert_array_equal(mask.reshape(12, -1, m).sum(-1), n)
    kept = np.where(mask, scores, np.inf).reshape(12, -1, m).min(-1)
    dropped = np.where(mask, -np.inf, scores).reshape(12, -1, m).max(-1)
    assert np.all(kept >= dropped)
    # the compact form round-trips
    v2, i2 = quant.prune_nm(dense, n, m, scores=np.where(mask, 1.0, 0.0))
    np.testing.assert_array_equal(v2, values)
    np.testing.assert_array_equal(i2, indices)


def test_nm_ties_go_to_the_lower_index():
    w = np.array([[1, 1, 1, 1, 3, -5, 5, 5, 0, 0, 0, 0, 2, -2, 1, 2]], np.float32)
    values, indices = quant.prune_nm(w, 2, 4)
    np.testing.assert_array_equal(indices, [[0, 1, 1, 2, 0, 1, 0, 1]])
    np.testing.assert_array_equal(values, [[1, 1, -5, 5, 0, 0, 2, -2]])


def test_nm_pruned_linear_uses_the_pruned_weights():
    rng = np.random.default_rng(4)
    w, x = _weights(rng, 8, 32), rng.standard_normal((5, 32)).astype(np.float32)
    pruned = np.where(quant.nm_mask(np.abs(w), 2, 4), w, 0)
    linear = quant.NMPrunedLinear(2, 4)
    np.testing.assert_array_equal(linear.apply(linear.prepare("blk.0.ffn_up", w), x),
                                  x @ pruned.T)
    w8 = quant.NMPrunedLinear(2, 4, base=quant.W8A8Linear())
    reference = quant.W8A8Linear()
    np.testing.assert_array_equal(w8.apply(w8.prepare("blk.0.ffn_up", w), x),
                                  reference.apply(reference.prepare("x", pruned), x))
    norms = {"blk.0.ffn_up": np.linspace(0.1, 10, 32)}
    wanda = quant.NMPrunedLinear(2, 4, score="wanda", input_norms=norms)
    prepared = wanda.prepare("blk.0.ffn_up", w)
    expected = quant.nm_mask(np.abs(w) * norms["blk.0.ffn_up"], 2, 4)
    np.testing.assert_array_equal(quant.unprune(prepared.values, prepared.indices, 2, 4) != 0,
                                  expected & (w != 0))


# --- Lambda attention -----------------------------------------------------------------------

def test_lambda_mask_boundaries():
    attention = quant.LambdaAttention(sink=2, window=3)
    keep = attention.keep(np.arange(8), np.arange(8)).astype(int)
    np.testing.assert_array_equal(keep, [
        # keys 0 1 2 3 4 5 6 7
        [1, 0, 0, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0, 0, 0],
        [1, 1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 1, 1, 0, 0, 0],                    # window = keys 2..4, self included
        [1, 1, 0, 1, 1, 1, 0, 0],                    # key 2 = p - window leaves the window
        [1, 1, 0, 0, 1, 1, 1, 0],
        [1, 1, 0, 0, 0, 1, 1, 1],
    ])
    assert keep.sum(1).max() == 2 + 3
    # queries past the cache start (decode): only absolute positions matter
    np.testing.assert_array_equal(attention.keep(np.array([100]), np.array([0, 1, 2, 97, 98])),
                                  [[1, 1, 0, 0, 1]])


def test_lambda_evict_keeps_sink_plus_window():
    attention = quant.LambdaAttention(sink=4, window=16)
    for length in (1, 5, 20, 21, 100):
        keep = attention.evict(np.arange(length))
        assert keep.sum() == min(length, 20)
        np.testing.assert_array_equal(np.flatnonzero(keep)[:min(length, 4)],
                                      np.arange(min(length, 4)))
    # after eviction the cache is not contiguous: the newest 16 positions survive
    positions = np.concatenate([np.arange(4), np.arange(50, 67)])
    np.testing.assert_array_equal(positions[attention.evict(positions)],
                                  np.concatenate([np.arange(4), np.arange(51, 67)]))
    # what evict keeps covers what the next query (its own key appended) may see
    q = 67
    kept = np.append(positions[attention.evict(positions)], q)
    assert set(np.arange(q + 1)[attention.keep(np.array([q]), np.arange(q + 1))[0]]) <= set(kept)


# --- variant registry and the real model ----------------------------------------------------

def test_variants_registered():
    for name in ("bf16", "w8a8", "w4a8", "w4a8-min", "w2a8", "kv4", "2:4", "lambda"):
        variant = VARIANTS[name]()
        assert variant.name == name
        assert hasattr(variant.linear, "apply") and hasattr(variant.kv, "store")
    assert isinstance(VARIANTS["kv4"]().linear, FloatLinear)


HAVE_MODEL = importlib.util.find_spec("golden.models.smollm2") is not None
needs_model = pytest.mark.skipif(not HAVE_MODEL, reason="golden/models/smollm2.py is missing")
EVAL_TOKENS = 256


@pytest.fixture(scope="module")
def smollm2():
    from golden.models.smollm2 import SmolLM2
    from golden.models.weights import ModelNotInstalled

    try:
        return SmolLM2()
    except ModelNotInstalled as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def eval_tokens():
    from golden.models.evaluate import load_eval_tokens

    return load_eval_tokens(EVAL_TOKENS)


@pytest.fixture(scope="module")
def fp32_perplexity(smollm2, eval_tokens):
    from golden.models.evaluate import perplexity

    return perplexity(smollm2, eval_tokens, window=EVAL_TOKENS)


@needs_model
def test_lambda_decode_equals_masked_forward(smollm2, eval_tokens):
    """Token-by-token decoding with eviction gives the logits of one forward with the Lambda
    mask, and the cache never holds more than sink + window entries."""
    from golden.models.interfaces import FloatKV, Variant

    # float K/V: with KV4 a 1e-6 difference between the two computations can flip a 4-bit
    # code, and one flipped code moves the logits by far more than any tolerance
    sink, window, length = 3, 8, 24
    attention = quant.LambdaAttention(sink, window)
    model = smollm2.with_variant(Variant("lambda-test", FloatLinear(), FloatKV(), attention))
    tokens = eval_tokens[:length]
    full = model.forward(tokens)
    cache = model.new_cache()
    steps = [model.forward(tokens[:5], cache)]
    for k in range(5, length):
        steps.append(model.forward(tokens[k:k + 1], cache))
        assert len(cache) == min(k + 1, sink + window)
        expected = np.union1d(np.arange(sink), np.arange(max(k + 1 - window, 0), k + 1))
        for positions in cache.positions:
            np.testing.assert_array_equal(positions, expected)
    np.testing.assert_allclose(np.concatenate(steps), full, rtol=0, atol=2e-3)
    # the mask bites: past sink + window the logits leave the causal model's
    causal = smollm2.forward(tokens)
    np.testing.assert_allclose(full[:sink + window], causal[:sink + window], rtol=0, atol=2e-3)
    assert np.abs(full[-1] - causal[-1]).max() > 0.1


@needs_model
def test_w4a8_min_keeps_the_checkpoint_weights(smollm2):
    """The GGUF stores these layers as Q4_1 (4-bit codes, float scale and minimum per 32), so
    the float-minimum quantizer gives the same weights back (up to float32 rounding)."""
    linear = quant.GroupMinWeightLinear(4, 32)
    for name in ("blk.0.attn_q", "blk.29.ffn_down"):
        w = smollm2.weights[name + ".weight"]
        back = quant.dequantize_groupwise_min(linear.prepare(name, w).quant)
        np.testing.assert_allclose(back, w, rtol=0, atol=np.abs(w).max() * 2.0 ** -20)


# Loose bounds on perplexity / fp32 perplexity over the first 256 tokens (one window), from
# what each change can do: bf16 rounds operands by at most 2^-9 relative, so under 2%; int8
# with per-channel and per-token scales keeps operand errors under 1/254 of each row's largest
# magnitude, so a few %; w4a8-min puts the checkpoint's Q4_1 weights back exactly and adds
# only the int8 activations, so as w8a8; 4-bit groups with an integer zero point move every
# weight by up to half of a 17x coarser step (15 vs 254 levels), a clear but bounded loss;
# 2-bit round-to-nearest (3 levels) and magnitude 2:4 (half the weights gone) wreck a 135M
# model; 4-bit K/V touch only the two attention matmuls of the nine per block, a moderate loss;
# Lambda only changes the tokens after sink + window = 132, and those still see 132 tokens.
PERPLEXITY_RATIO = {
    "bf16": (0.98, 1.02),
    "w8a8": (0.98, 1.08),
    "w4a8": (1.02, 2.0),
    "w4a8-min": (0.98, 1.08),
    "w2a8": (10.0, np.inf),
    "kv4": (1.0, 1.5),
    "2:4": (5.0, np.inf),
    "lambda": (0.97, 1.15),
}


@needs_model
@pytest.mark.parametrize("name", list(PERPLEXITY_RATIO))
def test_variant_perplexity(smollm2, eval_tokens, fp32_perplexity, name):
    from golden.models.evaluate import perplexity

    ppl = perplexity(smollm2.with_variant(name), eval_tokens, window=EVAL_TOKENS)
    low, high = PERPLEXITY_RATIO[name]
    assert np.isfinite(ppl)
    assert low * fp32_perplexity <= ppl <= high * fp32_perplexity, (name, ppl, fp32_perplexity)
