"""amaranth.sim tests of the FlexCiM macro against golden.flexcim, with stalls on both inputs
and back-pressure on the output: every pattern the config offers (dense included), switched
between runs without reset, random and real (pruned SmolLM2) weights."""

import dataclasses

import numpy as np
import pytest

from golden.flexcim import output_beats, random_steps, real_steps, session
from hw.flexcim import FlexCiMConfig, FlexCiMMacro
from hw.flexcim.macro import PRESETS
from sim.stalls import stall_pattern
from sim.stream import simulate, stream_get, stream_put

# small configs: amaranth.sim runs this block at a few thousand cycles per second
TINY = PRESETS["tiny"]                                        # 8x4, 2 sub-macros, M <= 8
CONFIGS = {
    "tiny": TINY,
    # M up to 16, 4 sub-macros of 2 rows (so N <= 2), a tile per beat up to 8:1, 16-bit
    # accumulators that wrap, 2 tile slots
    "m16_wrap": FlexCiMConfig(rows=8, cols=3, submacros=4, max_m=16, act_lanes=64,
                              acc_bits=16, depth=2, out_depth=8),
    # one activation per beat, one sub-macro, shift-and-add multipliers
    "serial_lut": FlexCiMConfig(rows=4, cols=2, submacros=1, max_m=4, act_lanes=1,
                                acc_bits=20, depth=2, multipliers="lut"),
}
# (input stalls, output back-pressure)
STALLS = [("none", "none"), ("random", "heavy"), ("bursty", "alternate")]


def run_session(cfg, traffic, count, *, seed=0, stalls=("none", "none"), extra=None):
    """Send ``traffic`` ([(stream, beats)], each group after the previous one was taken)
    and collect ``count`` output beats; afterwards nothing more may come out."""
    dut = FlexCiMMacro(cfg)
    received, done = [], []

    async def source(ctx):
        for k, (which, beats) in enumerate(traffic):
            port = dut.i_weight if which == "weight" else dut.i_act
            await stream_put(ctx, port, beats, stall=stall_pattern(stalls[0], seed + k))
        done.append(True)

    async def sink(ctx):
        received.extend(await stream_get(ctx, dut.o, count, timeout=50_000,
                                         backpressure=stall_pattern(stalls[1], seed + 100)))
        for _ in range(24):
            ctx.set(dut.o.ready, 1)
            assert not ctx.get(dut.o.valid), "the macro sent more sums than vectors"
            await ctx.tick()
        assert done, "the macro did not take every beat"

    simulate(dut, source, sink)
    return received


@pytest.mark.parametrize("stalls", STALLS, ids=["-".join(s) for s in STALLS])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_pattern_against_golden(name, seed, stalls):
    cfg = CONFIGS[name]
    rng = np.random.default_rng(seed)
    traffic, expected = session(random_steps(cfg, rng), cfg)
    received = run_session(cfg, traffic, len(expected), seed=seed, stalls=stalls)
    assert received == expected


@pytest.mark.parametrize("multipliers", ["dsp", "lut"])
def test_real_pruned_smollm2_weights(multipliers):
    """int8 codes of SmolLM2 blk.2.ffn_down, Wanda-pruned 2:4, 1:8 and 4:8, with the real
    activations of three tokens, stalls on both sides."""
    cfg = dataclasses.replace(TINY, depth=8, multipliers=multipliers)
    traffic, expected = session(real_steps(cfg), cfg)
    assert len(expected) == 9
    received = run_session(cfg, traffic, len(expected), seed=3, stalls=("random", "random"))
    assert received == expected


def test_unsupported_pattern_computes_zero_and_dense_recovers():
    cfg = TINY
    load = [{"weights": 0x01020304, "index": 0, "n_log2": 3, "m_log2": 2,      # "8:4"
             "first": int(r == 0), "last": int(r == cfg.rows - 1)} for r in range(cfg.rows)]
    acts = [{"data": 0x7F7F7F7F7F7F7F7F, "first": 1, "last": 1}]
    rng = np.random.default_rng(9)
    w = rng.integers(-128, 128, (cfg.cols, cfg.rows))
    x = rng.integers(-128, 128, (1, cfg.rows))
    from golden.flexcim import compress_nm
    traffic, expected = session([("load", 1, 1, *compress_nm(w, 1, 1)), ("run", x, None)], cfg)
    zero = output_beats(np.zeros((1, cfg.cols), np.int64), cfg.acc_bits)
    received = run_session(cfg, [("weight", load), ("act", acts)] + traffic, 2)
    assert received == zero + expected
    assert expected[0]["data"] != 0


@pytest.mark.parametrize(("field", "value"), [
    ("rows", 12), ("rows", 1), ("cols", 0), ("submacros", 3), ("submacros", 32),
    ("max_m", 32), ("act_lanes", 3), ("act_lanes", 256), ("acc_bits", 8), ("depth", 6),
    ("out_depth", 7), ("multipliers", "dsp48")])
def test_bad_config_names_parameter(field, value):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(TINY, **{field: value})


def test_modes_follow_submacro_rows():
    assert CONFIGS["m16_wrap"].modes == ((1, 1), (1, 4), (2, 4), (1, 8), (2, 8), (1, 16),
                                         (2, 16))
    assert TINY.modes == ((1, 1), (1, 4), (2, 4), (1, 8), (2, 8), (4, 8))
