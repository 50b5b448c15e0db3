"""golden.meadow against independent references: plain-Python integer loops, float softmax
and attention, and real SmolLM2 weights and activations."""

import math

import numpy as np
import pytest

from golden.meadow import (
    EXP_TABLE,
    AttentionParams,
    Traffic,
    attention,
    attention_gemm,
    attention_head,
    attention_tphs,
    causal_mask,
    linear,
    mlp,
    pack_weights,
    packed_bits,
    quantize_int8,
    requant,
    scale_to_mult_shift,
    softmax_float,
    softmax_int,
    unpack_weights,
)


def softmax_reference(row, visible, exp_mult, exp_shift):
    """The integer softmax written out element by element with Python ints."""
    m = max(s for s, ok in zip(row, visible, strict=True) if ok)
    e = []
    for s, ok in zip(row, visible, strict=True):
        if not ok:
            e.append(0)
            continue
        idx = min((min(m - s, 2 ** 21 - 1) * exp_mult + 2 ** (exp_shift - 1)) >> exp_shift,
                  511)
        e.append(int(math.floor(32768 * math.exp(-idx / 32) + 0.5)))
    recip = 2 ** 31 // sum(e)
    return [min(x * recip // 2 ** 23, 255) for x in e]


def test_exp_table():
    assert EXP_TABLE[0] == 32768 and len(EXP_TABLE) == 512 and EXP_TABLE[-1] == 0
    for k in (1, 16, 100, 255, 354, 356):
        assert abs(EXP_TABLE[k] - 32768 * math.exp(-k / 32)) <= 0.5


@pytest.mark.parametrize("seed", range(4))
def test_softmax_int_matches_python_loops(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(-2 ** 20, 2 ** 20, (6, 23))
    scores[0] = 5                                    # all equal
    mask = rng.random((6, 23)) < 0.7
    mask[:, 0] = True
    mult, shift = int(rng.integers(1, 2 ** 16)), int(rng.integers(8, 28))
    got = softmax_int(scores, mask, mult, shift)
    for r in range(6):
        assert got[r].tolist() == softmax_reference(scores[r].tolist(), mask[r].tolist(),
                                                    mult, shift)
    assert (got[~mask] == 0).all()


def test_softmax_int_wide_score_range():
    """Scores spread over 2**20 (64-lane dot products) with a small scale: no saturation
    of the difference before scaling, so still close to float."""
    rng = np.random.default_rng(0)
    scores = rng.normal(0, 3e5, (16, 100)).astype(np.int64)
    mask = np.ones(scores.shape, bool)
    p = softmax_int(scores, mask, *scale_to_mult_shift(32e-5)) / 256
    assert np.abs(p - softmax_float(scores * 1e-5, mask)).max() < 4 / 256


def test_softmax_int_error_against_float():
    """With the score scale set through exp_mult/exp_shift, probabilities are within a few
    units of 1/256 of the float softmax (the error the bench reports on real scores)."""
    rng = np.random.default_rng(7)
    alpha = 0.013
    scores = rng.normal(0, 300, (64, 40)).astype(np.int64)
    mask = causal_mask(64, 40, 0) | (np.arange(40) < 8)
    mult, shift = scale_to_mult_shift(alpha * 32)
    p = softmax_int(scores, mask, mult, shift) / 256
    ref = softmax_float(scores * alpha, mask)
    assert np.abs(p - ref).max() < 3 / 256
    assert np.abs(p.sum(axis=-1) - 1).max() < 0.1


def test_softmax_int_rejects_bad_params():
    with pytest.raises(ValueError, match="exp_mult"):
        softmax_int([[1]], [[True]], 2 ** 16, 0)
    with pytest.raises(ValueError, match="visible"):
        softmax_int([[1, 2]], [[False, False]], 1, 1)


def test_requant_matches_python():
    rng = np.random.default_rng(1)
    acc = rng.integers(-2 ** 31, 2 ** 31, 500)
    for mult, shift in [(1, 1), (40000, 30), (65535, 47), (123, 9)]:
        got = requant(acc, mult, shift)
        want = [max(-127, min(127, (int(a) * mult + (1 << (shift - 1))) >> shift)) for a in acc]
        assert got.tolist() == want
    assert requant([-5000], 1, 1, relu=True).tolist() == [0]


def test_scale_to_mult_shift():
    for scale in (1e-6, 0.0123, 0.5, 3.0):
        mult, shift = scale_to_mult_shift(scale)
        assert 2 ** 15 <= mult < 2 ** 16 or shift == 47
        assert abs(mult / 2 ** shift - scale) <= scale * 2 ** -15


def _quantize_tensor(x):
    scale = float(np.abs(x).max()) / 127
    return np.clip(np.rint(x / scale), -127, 127).astype(np.int64), scale


@pytest.fixture(scope="module")
def smollm2_qkv():
    """Real Q, K, V of SmolLM2 block 3 for 12 tokens of text."""
    from golden.models.smollm2 import Capture, SmolLM2
    from golden.models.tokenizer import load_tokenizer

    model = SmolLM2()
    tokens = load_tokenizer().encode("The capital of France is Paris, and the")[:12]
    capture = Capture(layers=[3], what=["qkv"])
    model.forward(tokens, capture=capture)
    rec = capture.layer(3)
    return rec["q"], rec["k"], rec["v"]


def test_attention_close_to_float_on_real_activations(smollm2_qkv):
    q, k, v = smollm2_qkv
    (qi, sq), (ki, sk), (vi, sv) = map(_quantize_tensor, (q, k, v))
    d = q.shape[-1]
    alpha = sq * sk / math.sqrt(d)
    out_scale = float(np.abs(v).max()) / 127
    exp_mult, exp_shift = scale_to_mult_shift(alpha * 32)
    out_mult, out_shift = scale_to_mult_shift(sv / 256 / out_scale)
    params = AttentionParams(exp_mult, exp_shift, out_mult, out_shift)
    got = attention(qi, ki, vi, params) * out_scale
    group = len(q) // len(k)
    mask = causal_mask(q.shape[1], k.shape[1], 0)
    ref = np.stack([softmax_float(q[h] @ k[h // group].T / math.sqrt(d), mask)
                    @ v[h // group] for h in range(len(q))])
    assert np.abs(got - ref).max() < 0.1 * np.abs(ref).max()
    # integer probabilities against float ones on the same real scores
    scores = np.einsum("htd,hkd->htk", qi, np.repeat(ki, group, axis=0))
    p = softmax_int(scores, np.broadcast_to(mask, scores.shape), exp_mult, exp_shift)
    assert np.abs(p / 256 - softmax_float(scores * alpha, mask)).max() < 4 / 256


def test_attention_head_matches_loops():
    rng = np.random.default_rng(3)
    q, k, v = (rng.integers(-127, 128, (n, 8)) for n in (3, 5, 5))
    params = AttentionParams(40000, 22, 30000, 16, q_offset=2)
    got = attention_head(q, k, v, params)
    for t in range(3):
        scores = [int(np.dot(q[t], k[j])) for j in range(5)]
        visible = [j <= 2 + t for j in range(5)]
        p = softmax_reference(scores, visible, 40000, 22)
        for d in range(8):
            acc = sum(p[j] * int(v[j, d]) for j in range(5))
            assert got[t, d] == max(-127, min(127, (acc * 30000 + 2 ** 15) >> 16))


@pytest.mark.parametrize(("heads", "kv", "tokens", "keys", "offset"),
                         [(4, 4, 13, 13, 0), (6, 2, 5, 9, 4), (3, 1, 1, 20, 19)])
def test_schedules_agree_and_count_traffic(heads, kv, tokens, keys, offset):
    rng = np.random.default_rng(heads * 100 + keys)
    d = 8
    q = rng.integers(-127, 128, (heads, tokens, d))
    k = rng.integers(-127, 128, (kv, keys, d))
    v = rng.integers(-127, 128, (kv, keys, d))
    params = AttentionParams(50000, 24, 40000, 18, q_offset=offset)
    ref = attention(q, k, v, params)
    tg, tt = Traffic(), Traffic()
    assert (attention_gemm(q, k, v, params, tg, token_tile=4) == ref).all()
    assert (attention_tphs(q, k, v, params, tt, pes=4) == ref).all()
    assert tt.read == {"k": kv * keys * d, "v": kv * keys * d, "q": heads * tokens * d}
    assert tt.written == {"out": heads * tokens * d}
    intermediate = heads * tokens * keys * (4 + 1)
    assert tg.written["scores"] + tg.written["probs"] == intermediate
    assert tg.read["scores"] + tg.read["probs"] == intermediate
    assert tg.total > tt.total


def test_linear_and_mlp_match_loops():
    rng = np.random.default_rng(5)
    x = rng.integers(-127, 128, (3, 16))
    w1 = rng.integers(-127, 128, (8, 16))
    w2 = rng.integers(-127, 128, (4, 8))
    y = linear(x, w1, 30000, 20, relu=True)
    for t in range(3):
        for n in range(8):
            acc = sum(int(x[t, j]) * int(w1[n, j]) for j in range(16))
            assert y[t, n] == max(0, min(127, (acc * 30000 + 2 ** 19) >> 20))
    assert (mlp(x, w1, w2, (30000, 20), (20000, 17)) == linear(y, w2, 20000, 17)).all()


def test_pack_hand_case():
    w = np.array([[1, 2, 1, 2, 3, 4, 1, 2]], np.int8)
    p = pack_weights(w, chunk=2, packet=2)
    assert p.table.tolist() == [[1, 2], [3, 4]]          # most frequent first
    assert p.ids.tolist() == [[0, 0, 1, 0]]
    assert p.id_widths.tolist() == [0, 1]
    assert p.stream_bits == 2 * 5 + 0 * 2 + 1 * 2
    assert packed_bits(p, 32) == [(0 | 1 << 5 | 1 << 10 | 0 << 11)]
    assert (unpack_weights(p) == w).all()


def test_pack_real_int8_weights_round_trip():
    from golden.models.weights import load_smollm2

    _, weights = load_smollm2()
    w = quantize_int8(weights["blk.2.attn_k.weight"])
    for chunk, packet in [(1, 16), (2, 64), (4, 8)]:
        p = pack_weights(w, chunk, packet)
        assert (unpack_weights(p) == w).all()
        assert len(packed_bits(p, 32)) == -(-p.stream_bits // 32)
        plain = pack_weights(w, chunk, packet, reindex=False)
        assert (unpack_weights(plain) == w).all()
        # frequency re-indexing gives the frequent chunks the small IDs
        assert p.ids.mean() < plain.ids.mean()


def test_pack_validation():
    with pytest.raises(ValueError, match="chunk"):
        pack_weights(np.zeros((2, 6), np.int8), chunk=4)
    with pytest.raises(ValueError, match="int8"):
        pack_weights(np.zeros((2, 6), np.int16))
