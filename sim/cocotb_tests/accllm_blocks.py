"""cocotb tests of the ``hw.accllm`` blocks, run on their generated Verilog.

Launched by ``tests/test_cocotb_accllm.py`` through :func:`sim.cocotb_bridge.run_cocotb`; each
``test_<block>`` runs once per seed and (source stall, sink back-pressure) pair of
:mod:`sim.cocotb_tests.common_blocks`. The stimulus is the one the ``amaranth.sim`` tests use
(:func:`golden.accllm.mixed_workload`: every mode in both dataflows back to back, extremes,
filler in unused lanes; :func:`golden.accllm.kv_command_sequence`) and every output beat is
compared with the golden model's, so a beat lost, duplicated, wrong or left inside fails.
"""

import numpy as np

from golden import accllm as g
from hw.accllm.kv_manager import OPS
from sim.cocotb_bridge import load_config
from sim.cocotb_stream import StreamDriver, StreamMonitor, start_clock_and_reset
from sim.cocotb_tests.common_blocks import drain_and_check, parametrised, patterns


@parametrised(timeout_ms=50)
async def test_accllm(dut, seed, source, sink):
    cfg = load_config()
    await start_clock_and_reset(dut, [dut.i__valid, dut.o__ready])
    beats = g.mixed_workload(np.random.default_rng(seed), cfg.rows, cfg.cols)
    real = g.smollm2_tensors()
    x = real["x"][-1, :8].astype(np.int64)
    beats += g.gemv_beats("w2a8", x, real["w2"][:4 * cfg.pes, :8].astype(np.int64),
                          rows=cfg.rows, cols=cfg.cols, shift=5)
    expected = g.PEArrayModel(cfg.rows, cfg.cols).run(beats)
    source_stall, sink_stall = patterns(source, sink, seed)
    driver = StreamDriver(dut, "i", dut.clk, source_stall, layout=cfg.input_layout, seed=seed)
    monitor = StreamMonitor(dut, "o", dut.clk, sink_stall, layout=cfg.output_layout)
    driver.extend(beats)
    await drain_and_check(dut.clk, [driver], [monitor], [expected], lambda: [monitor.received],
                          "o")


@parametrised(timeout_ms=50)
async def test_accllm_kv_manager(dut, seed, source, sink):
    cfg = load_config()
    await start_clock_and_reset(dut, [dut.i__valid, dut.o__ready])
    ops = g.kv_command_sequence(seed, appends=80)
    model = g.LambdaKVManager(cfg.sink, cfg.window, cfg.entry_words, cfg.base, cfg.addr_width,
                              cfg.pos_width)
    expected = [b for op in ops if op != "noop" for b in model.command(op)]
    source_stall, sink_stall = patterns(source, sink, seed)
    driver = StreamDriver(dut, "i", dut.clk, source_stall, layout=cfg.command_layout,
                          seed=seed)
    monitor = StreamMonitor(dut, "o", dut.clk, sink_stall, layout=cfg.output_layout)
    driver.extend({"op": OPS.get(op, 3)} for op in ops)
    await drain_and_check(dut.clk, [driver], [monitor], [expected], lambda: [monitor.received],
                          "o")
