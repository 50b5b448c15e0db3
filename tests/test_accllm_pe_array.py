"""amaranth.sim tests of the accllm PE array against golden.accllm.PEArrayModel, beat for beat:
every mode in both dataflows, random extremes, real SmolLM2 tensors, stalls and back-pressure,
mode and dataflow switches between runs without a reset."""

import numpy as np
import pytest
from amaranth.back import verilog

from golden import accllm as g
from hw.accllm.pe_array import PEArray, PEArrayConfig
from sim.stalls import stall_pattern
from sim.stream import simulate, stream_get, stream_put

STALLS = [("none", "none"), ("random", "heavy"), ("bursty", "alternate")]


def run_array(cfg: PEArrayConfig, beats: list[dict], *, stalls=("none", "none"), seed=0):
    """Send ``beats`` through the RTL array; the output beats, checking that nothing more
    comes out and that every input beat was taken."""
    dut = PEArray(cfg)
    expected = g.PEArrayModel(cfg.rows, cfg.cols).run(beats)
    done, received = [], []

    async def source(ctx):
        await stream_put(ctx, dut.i, beats, stall=stall_pattern(stalls[0], seed))
        done.append(True)

    async def sink(ctx):
        received.extend(await stream_get(ctx, dut.o, len(expected), timeout=40 * len(beats) + 200,
                                         backpressure=stall_pattern(stalls[1], seed + 7)))
        for _ in range(12):
            ctx.set(dut.o.ready, 1)
            assert not ctx.get(dut.o.valid), "array sent more beats than the runs hold"
            await ctx.tick()
        assert done, "array did not take every input beat"

    simulate(dut, source, sink)
    return received, expected


@pytest.mark.parametrize("cfg", [PEArrayConfig(2, 2), PEArrayConfig(1, 3), PEArrayConfig(1, 1)],
                         ids=lambda c: f"{c.rows}x{c.cols}")
@pytest.mark.parametrize("stalls", STALLS, ids=lambda s: f"{s[0]}-{s[1]}")
@pytest.mark.parametrize("seed", [0, 1])
def test_modes_and_dataflows_back_to_back(cfg, stalls, seed):
    beats = g.mixed_workload(np.random.default_rng(seed), cfg.rows, cfg.cols)
    received, expected = run_array(cfg, beats, stalls=stalls, seed=seed)
    assert received == expected


def test_real_smollm2_tensors():
    """Decode GEMV (W8A8, W4A8, W2A8, 2:4) and prefill GEMM of SmolLM2 block 0's attn_q on its
    real activations, Q·Kᵀ of head 0 with 4-bit keys and P·V with its real attention
    probabilities and 4-bit values, on a 2 x 2 array; the results are also checked against
    plain integer products."""
    cfg = PEArrayConfig(2, 2)
    real = g.smollm2_tensors()
    k = 12
    x = real["x"][:, :k].astype(np.int64)
    beats, checks = [], []
    for mode, key in [("w8a8", "w8"), ("w4a8", "w4"), ("w2a8", "w2")]:
        w = real[key][:8, :k].astype(np.int64)
        run = g.gemv_beats(mode, x[-1], w, rows=2, cols=2, shift=6)
        checks.append(("gemv", mode, run, w @ x[-1], 8))
        beats += run
    values, indices = g.prune_24(real["w8"][:4, :k].astype(np.int64))
    run = g.gemv_beats("sparse24", x[-1], (values, indices), rows=2, cols=2)
    checks.append(("gemv", "sparse24", run, g.unprune_24(values, indices) @ x[-1], 4))
    beats += run
    w4 = real["w4"][:4, :k].astype(np.int64)
    run = g.gemm_beats("w4a8", x[:2], w4, rows=2, cols=2)
    checks.append(("gemm", "w4a8", run, x[:2] @ w4.T, 4))
    beats += run
    q, k4 = real["q"][:, :16].astype(np.int64), real["k4"][:, :16].astype(np.int64)
    run = g.gemm_beats("a8kv4", q[:2], k4[:4], rows=2, cols=2)
    checks.append(("gemm", "a8kv4", run, q[:2] @ k4[:4].T, 4))
    beats += run
    # P·V of the last query: probabilities (A8) x 4-bit values, 16 of the 64 dimensions
    p, v4 = real["p"][-1].astype(np.int64), real["v4"][:, :16].astype(np.int64)
    run = g.gemv_beats("a8kv4", p, v4.T, rows=2, cols=2)
    checks.append(("gemv", "a8kv4", run, v4.T @ p, 16))
    beats += run
    received, expected = run_array(cfg, beats, stalls=("random", "random"), seed=3)
    assert received == expected
    start = 0
    for kind, mode, run, reference, outs in checks:
        runs = sum(beat["last"] for beat in run)
        chunk = received[start:start + 2 * runs]
        start += 2 * runs
        if kind == "gemv":
            got = g.gemv_result(mode, chunk, outs, rows=2, cols=2)
        else:
            got = g.gemm_result(mode, chunk, 2, outs, rows=2, cols=2)
        assert np.array_equal(got, reference), (kind, mode)


def test_every_preset_elaborates():
    import hw.accllm

    for info in hw.accllm.BLOCKS:
        for name, cfg in info.presets.items():
            text = verilog.convert(info.component(cfg), name=f"{info.name}_{name}")
            assert "i__ready" in text and "o__valid" in text


def test_config_validation():
    with pytest.raises(ValueError, match="rows"):
        PEArrayConfig(0, 2)
    with pytest.raises(ValueError, match="cols"):
        PEArrayConfig(2, 17)
    with pytest.raises(ValueError, match="cols"):
        PEArrayConfig(2, "4")
