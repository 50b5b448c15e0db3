"""The footprint estimator on real tensors: schemes ordered as the physics says, codecs agree."""

import numpy as np
import pytest

from golden.camc import decode_block, encode_block
from golden.camc.estimate import estimate, kv_cache_values, weight_values
from hw.cli import main


@pytest.fixture(scope="module")
def minilm_sample():
    return weight_values("minilm", sample_bytes=1 << 18)


def test_weight_sample_is_real_bf16(minilm_sample):
    from golden.models.minilm import load_minilm
    from golden.models.weights import to_bf16_bits

    floats = np.concatenate([t.ravel() for t in load_minilm()[1].values()
                             if np.issubdtype(t.dtype, np.floating)])
    assert minilm_sample.dtype == np.uint16 and minilm_sample.size == 1 << 17
    # the sample's first stretch is the start of the model's weights, rounded to BF16
    assert np.array_equal(minilm_sample[:2048], to_bf16_bits(floats[:2048]))


def test_bitplane_beats_raw_on_real_weights(minilm_sample):
    rows = {(r["scheme"], r["codec"]): r for r in
            estimate(minilm_sample, ("raw", "byteplane", "bitplane"), ("lz4", "lz4-lib"))}
    # raw BF16 bytes interleave exponent and mantissa: LZ4 finds almost nothing
    assert rows["raw", "lz4"]["ratio"] < 1.02
    # bit planes gather the low-entropy sign/exponent planes: the paper's whole point
    assert rows["bitplane", "lz4"]["ratio"] > rows["byteplane", "lz4"]["ratio"] > 1.02
    # the golden LZ4 (the hardware's algorithm) is within 1% of the reference library
    assert rows["bitplane", "lz4"]["ratio"] == pytest.approx(
        rows["bitplane", "lz4-lib"]["ratio"], rel=0.01)


def test_real_weight_blocks_round_trip(minilm_sample):
    block = minilm_sample[:2048]
    for precision in (None, 3, 0):
        data = encode_block(block, "bf16")
        got = decode_block(data, precision=precision)
        keep = 0xFFFF if precision is None else ~((1 << (7 - precision)) - 1) & 0xFFFF
        assert np.array_equal(got, block & keep)


def test_cross_token_layout_helps_a_real_kv_cache():
    kv = kv_cache_values(64)[:6]
    assert kv[0].shape == (64, 192)
    rows = {r["scheme"]: r for r in estimate(kv, ("bitplane", "bitplane+crosstoken"), ("lz4",))}
    assert rows["bitplane+crosstoken"]["ratio"] > rows["bitplane"]["ratio"]


def test_footprint_cli(tmp_path, capsys):
    out = tmp_path / "f.json"
    assert main(["camc", "footprint", "--sample-mib", "0.25", "--codecs", "lz4-lib",
                 "-o", str(out)]) == 0
    assert "bitplane" in capsys.readouterr().out and out.is_file()
    assert main(["camc", "footprint", "--codecs", "gzip"]) == 2
    assert "unknown codec 'gzip'" in capsys.readouterr().err
