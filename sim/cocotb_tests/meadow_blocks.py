"""cocotb tests of the ``hw.meadow`` blocks, run on their generated Verilog.

Launched by ``tests/test_cocotb_meadow.py`` through :func:`sim.cocotb_bridge.run_cocotb`, one
simulator run per (block, config), with the seeds and stall pairs of
:mod:`sim.cocotb_tests.common_blocks` (``LLMHW_SEEDS``, ``LLMHW_STALLS``).

The engine is served by :class:`sim.perf.meadow_rtl.StallingDRAM` (the same DRAM model as in
``amaranth.sim``, stalling with the source pattern) through :func:`serve_memory`, a cocotb
coroutine that drives and samples the memory port with the helpers' timing; its results in
DRAM are compared with :mod:`golden.meadow` with ``==``. The WILU gets real packed SmolLM2
int8 weights and must send every chunk back, in order, nothing more.
"""

import math
import random

import numpy as np

from golden.meadow import (
    AttentionParams,
    attention,
    linear,
    pack_weights,
    packed_bits,
    quantize_int8,
    scale_to_mult_shift,
)
from sim.cocotb_bridge import load_config
from sim.cocotb_stream import (
    StreamDriver,
    StreamMonitor,
    serve_memory,
    start_clock_and_reset,
    wait_until,
)
from sim.cocotb_tests.common_blocks import drain_and_check, parametrised, patterns
from sim.dram import DRAMTiming
from sim.perf.meadow_rtl import AttentionJob, LinearJob, StallingDRAM, _layout


def _int8(rng: np.random.Generator, shape):
    return np.clip(np.rint(rng.normal(0, 50, shape)), -127, 127).astype(np.int64)


def engine_jobs(cfg, seed: int) -> list:
    """Prefill attention in both schedules (a KV head shared by two query heads), a decode
    step with a KV cache, and a linear layer with ReLU."""
    rng = np.random.default_rng(seed)
    D = cfg.dot_width
    exp = scale_to_mult_shift(3.0 / (2500 * math.sqrt(D)) * 32)
    out = scale_to_mult_shift(1.5 / 256)
    jobs = []
    for gemm, (heads, kv, tokens, keys, offset) in [(False, (2, 1, 3, 3, 0)),
                                                    (True, (2, 1, 3, 3, 0)),
                                                    (False, (1, 1, 1, 6, 5))]:
        jobs.append(AttentionJob(_int8(rng, (heads, tokens, D)), _int8(rng, (kv, keys, D)),
                                 _int8(rng, (kv, keys, D)),
                                 AttentionParams(*exp, *out, q_offset=offset), gemm))
    jobs.append(LinearJob(_int8(rng, (3, 2 * D)), _int8(rng, (2 * D, 2 * D)),
                          *scale_to_mult_shift(1.5 / (2500 * math.sqrt(2 * D)) * 60), True))
    return jobs


def golden_output(job):
    if isinstance(job, AttentionJob):
        return attention(job.q, job.k, job.v, job.params).tolist()
    return linear(job.x, job.w, job.mult, job.shift, relu=job.relu).tolist()


@parametrised(timeout_ms=200)
async def test_meadow(dut, seed, source, sink):
    cfg = load_config()
    port = cfg.port
    await start_clock_and_reset(dut, [dut.i_desc__valid, dut.o_done__ready,
                                      dut.mem__cmd__ready, dut.mem__wdata__ready,
                                      dut.mem__rdata__valid])
    memory_stall, done_stall = patterns(source, sink, seed)
    desc_stall, _ = patterns(source, sink, seed, 1)
    dram = StallingDRAM(port, DRAMTiming(6, 8.0, 4), memory_stall, words=1 << cfg.addr_width)
    jobs = engine_jobs(cfg, seed)
    descs, readers, base = [], [], 0
    for job in jobs:
        desc, read = _layout(cfg, job, base, dram)
        descs.append(desc)
        readers.append(read)
        base = max(desc[k] for k in ("a_base", "b_base", "c_base", "d_base", "s_base")) + 256
    import cocotb

    cocotb.start_soon(serve_memory(dut, dram, port))
    driver = StreamDriver(dut, "i_desc", dut.clk, desc_stall, layout=cfg.descriptor_layout,
                          seed=seed)
    monitor = StreamMonitor(dut, "o_done", dut.clk, done_stall, layout=cfg.done_layout)
    driver.extend(descs)
    await wait_until(dut.clk, lambda: len(monitor.received) == len(descs), 60_000,
                     lambda: f"{len(monitor.received)} of {len(descs)} jobs done")
    assert [r["error"] for r in monitor.received] == [0] * len(descs)
    for job, read in zip(jobs, readers, strict=True):
        assert read().tolist() == golden_output(job), f"{type(job).__name__} differs"
    assert not int(dut.mem__cmd__valid.value)


def _chunk_word(chunk) -> int:
    return sum((int(v) & 0xFF) << (8 * c) for c, v in enumerate(chunk))


@parametrised(timeout_ms=100)
async def test_meadow_wilu(dut, seed, source, sink):
    cfg = load_config()
    await start_clock_and_reset(dut, [dut.i__valid, dut.i_table__valid, dut.i_job__valid,
                                      dut.o__ready])
    from golden.models.weights import load_smollm2

    _, weights = load_smollm2()
    rng = random.Random(seed)
    row = rng.randrange(0, 500)
    w = quantize_int8(weights["blk.1.ffn_up.weight"])[row:row + 4, :64]
    packed = pack_weights(w, cfg.chunk, cfg.packet)
    table = [{"data": _chunk_word(c), "first": int(k == 0)} for k, c in enumerate(packed.table)]
    words = [{"data": x} for x in packed_bits(packed, cfg.word_bits)]
    chunks = packed.table[packed.ids.reshape(-1)]
    expected = [{"data": _chunk_word(c), "first": int(k == 0), "last": int(k == len(chunks) - 1)}
                for k, c in enumerate(chunks)]
    source_stall, sink_stall = patterns(source, sink, seed)
    table_driver = StreamDriver(dut, "i_table", dut.clk, source_stall, layout=cfg.table_layout,
                                seed=seed)
    table_driver.extend(table)
    await wait_until(dut.clk, lambda: table_driver.idle, 20_000, lambda: "table loaded")
    words_stall, _ = patterns(source, sink, seed, 1)
    job = StreamDriver(dut, "i_job", dut.clk, None, seed=seed + 1)
    data = StreamDriver(dut, "i", dut.clk, words_stall, seed=seed + 2)
    monitor = StreamMonitor(dut, "o", dut.clk, sink_stall, layout=cfg.chunk_layout)
    job.send(int(packed.ids.size))
    data.extend(x["data"] for x in words)
    await drain_and_check(dut.clk, [job, data], [monitor], [expected],
                          lambda: [monitor.received], "o")
