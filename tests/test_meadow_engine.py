"""amaranth.sim tests of the MEADOW engine against golden.meadow (==), behind the DRAM model
with random stalls on the memory port, the descriptor input and the report output; cycles
and DRAM bytes against the sim.perf model."""

import math

import numpy as np
import pytest
from amaranth.back import verilog

from golden.meadow import EXP_TABLE, AttentionParams, attention, linear, mlp, scale_to_mult_shift
from hw.meadow.engine import EXP_TABLE as HW_EXP_TABLE
from hw.meadow.engine import PRESETS, EngineConfig, MeadowEngine
from sim.dram import DRAMTiming
from sim.perf.meadow import DRAM, EngineModel, engine_job
from sim.perf.meadow_rtl import AttentionJob, LinearJob, run_jobs

TINY = PRESETS["tiny"]
# (descriptor stalls, report back-pressure, memory-port stalls)
STALLS = [("none", "none", "random"), ("random", "heavy", "bursty"),
          ("bursty", "alternate", "heavy")]


def int8(rng, shape, spread=50):
    x = np.clip(np.rint(rng.normal(0, spread, shape)), -127, 127).astype(np.int64)
    x.reshape(-1)[:2] = [127, -127]          # the extremes appear
    return x


def attention_job(rng, heads, kv_heads, tokens, keys, q_offset, D, gemm=False):
    """Random int8 Q/K/V with the scales chosen so the softmax and the output are not
    saturated (scores spread over a few units of exponent)."""
    q, k, v = int8(rng, (heads, tokens, D)), int8(rng, (kv_heads, keys, D)), \
        int8(rng, (kv_heads, keys, D))
    alpha = 3.0 / (50 * 50 * math.sqrt(D))
    exp_mult, exp_shift = scale_to_mult_shift(alpha * 32)
    out_mult, out_shift = scale_to_mult_shift(1 / 256 * 1.5)
    params = AttentionParams(exp_mult, exp_shift, out_mult, out_shift, q_offset)
    return AttentionJob(q, k, v, params, gemm)


def check_attention(job):
    want = attention(job.q, job.k, job.v, job.params)
    assert job.output.tolist() == want.tolist()
    assert len(np.unique(want)) > 10           # not a saturated, trivial output


def test_config_validation():
    with pytest.raises(ValueError, match="dot_width must be at least 4 \\* pes = 16, not 8"):
        EngineConfig(pes=4, dot_width=8)
    with pytest.raises(ValueError, match="dot_width must be a power of two"):
        EngineConfig(pes=1, dot_width=12)
    with pytest.raises(ValueError, match="max_keys must be at most 4096"):
        EngineConfig(max_keys=5000)
    with pytest.raises(ValueError, match="pes must be at least 1"):
        EngineConfig(pes=0)
    assert HW_EXP_TABLE == EXP_TABLE.tolist()


@pytest.mark.parametrize("gemm", [False, True], ids=["tphs", "gemm"])
@pytest.mark.parametrize("stalls", STALLS, ids="-".join)
def test_prefill_attention_head_group(gemm, stalls):
    """Prefill: 5 tokens (groups of 2, 2, 1), a KV head shared by 2 query heads."""
    rng = np.random.default_rng(1)
    for seed in (0, 1):
        job = attention_job(rng, 2, 1, 5, 5, 0, TINY.dot_width, gemm)
        run_jobs(TINY, [job], stalls=stalls, seed=seed)
        check_attention(job)


@pytest.mark.parametrize("gemm", [False, True], ids=["tphs", "gemm"])
def test_decode_attention_with_kv_cache(gemm):
    """Decode: one new token attending to a KV cache of 12 earlier tokens plus itself."""
    rng = np.random.default_rng(2)
    job = attention_job(rng, 2, 2, 1, 13, 12, TINY.dot_width, gemm)
    run_jobs(TINY, [job], stalls=STALLS[1], seed=3)
    check_attention(job)


@pytest.mark.parametrize("stalls", STALLS[:2], ids="-".join)
def test_linear_and_mlp_tile(stalls):
    """An MLP tile: up projection with ReLU, then the down projection on its output."""
    rng = np.random.default_rng(4)
    D = TINY.dot_width
    x = int8(rng, (3, 2 * D))
    w_up, w_down = int8(rng, (4 * D, 2 * D)), int8(rng, (D, 4 * D))
    up = scale_to_mult_shift(1.5 / (50 * 50 * math.sqrt(2 * D)) * 60)
    down = scale_to_mult_shift(1.5 / (50 * 30 * math.sqrt(4 * D)) * 40)
    first = LinearJob(x, w_up, *up, relu=True)
    run_jobs(TINY, [first], stalls=stalls, seed=5)
    assert first.output.tolist() == linear(x, w_up, *up, relu=True).tolist()
    assert (first.output == 0).any() and (first.output > 0).any()
    second = LinearJob(first.output, w_down, *down)
    run_jobs(TINY, [second], stalls=stalls, seed=6)
    assert second.output.tolist() == mlp(x, w_up, w_down, up, down).tolist()


def test_jobs_back_to_back():
    """Several descriptors of both kinds and schedules in one run."""
    rng = np.random.default_rng(7)
    jobs = [attention_job(rng, 1, 1, 3, 4, 1, TINY.dot_width, True),
            LinearJob(int8(rng, (2, 8)), int8(rng, (8, 8)), 40000, 23),
            attention_job(rng, 2, 1, 2, 2, 0, TINY.dot_width, False)]
    run_jobs(TINY, jobs, stalls=STALLS[2], seed=8)
    check_attention(jobs[0])
    check_attention(jobs[2])
    assert jobs[1].output.tolist() == linear(jobs[1].x, jobs[1].w, 40000, 23).tolist()


@pytest.mark.parametrize("timing", [DRAMTiming(8, 8.0, 4), DRAMTiming(20, 3.0, 4)],
                         ids=["fast", "slow"])
def test_cycles_and_bytes_match_perf_model(timing):
    """The RTL's cycles are within 5% of sim.perf.meadow (exact for attention in practice)
    and its DRAM bytes are exactly the model's; GEMM moves more bytes than TPHS."""
    rng = np.random.default_rng(9)
    D = TINY.dot_width
    eng, dram = EngineModel(TINY.pes, D), DRAM(timing.latency, timing.bytes_per_cycle)
    results = {}
    for gemm in (False, True):
        job = attention_job(rng, 2, 1, 3, 7, 4, D, gemm)
        measured = run_jobs(TINY, [job], timing=timing)
        check_attention(job)
        model = engine_job(eng, dram, {"op": "attention", "gemm": gemm, "tokens": 3, "keys": 7,
                                       "heads": 2, "kv_heads": 1})
        assert measured["bytes_read"] == model["bytes_read"]
        assert measured["bytes_written"] == model["bytes_written"]
        assert abs(model["cycles"] - job.cycles) <= 0.05 * job.cycles
        results[gemm] = measured
    assert results[True]["bytes_read"] > results[False]["bytes_read"]
    lin = LinearJob(int8(rng, (3, 2 * D)), int8(rng, (2 * D, 2 * D)), 40000, 24)
    measured = run_jobs(TINY, [lin], timing=timing)
    model = engine_job(eng, dram, {"op": "linear", "tokens": 3, "in_features": 2 * D,
                                   "out_features": 2 * D})
    assert measured["bytes_read"] == model["bytes_read"]
    assert measured["bytes_written"] == model["bytes_written"]
    assert abs(model["cycles"] - lin.cycles) <= 0.05 * lin.cycles


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_convert(preset):
    text = verilog.convert(MeadowEngine(PRESETS[preset]), name="meadow")
    assert "mem__cmd__payload" in text and "i_desc__payload" in text


def test_refused_descriptor_moves_no_data():
    """keys = 0 (and keys > max_keys) are reported as errors without touching DRAM."""
    from sim.stream import simulate, stream_get, stream_put

    dut = MeadowEngine(TINY)
    layout = TINY.descriptor_layout
    base = {name: 0 for name, _ in layout}
    descs = [dict(base, keys=0, tokens=1, heads=1, group=1, exp_shift=1, out_shift=1),
             dict(base, keys=TINY.max_keys + 1, tokens=1, heads=1, group=1, exp_shift=1,
                  out_shift=1),
             dict(base, op=1, tokens=1, chunks=1, out_blocks=0, out_shift=1)]
    reports, commands = [], []

    async def source(ctx):
        await stream_put(ctx, dut.i_desc, descs)

    async def sink(ctx):
        reports.extend(await stream_get(ctx, dut.o_done, len(descs), timeout=200))

    async def watch(ctx):
        async for _, _, valid in ctx.tick().sample(dut.mem.cmd.valid):
            commands.append(valid)

    simulate(dut, source, sink, background=[watch])
    assert [r["error"] for r in reports] == [1, 1, 1]
    assert not any(commands)
