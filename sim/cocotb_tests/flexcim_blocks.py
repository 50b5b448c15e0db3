"""cocotb tests of the ``hw.flexcim`` macro, run on its generated Verilog.

Launched by ``tests/test_cocotb_flexcim.py`` through :func:`sim.cocotb_bridge.run_cocotb`; each
test runs once per seed and (source stall, sink back-pressure) pair, with the parametrisation
of :mod:`sim.cocotb_tests.common_blocks` (``LLMHW_SEEDS``, ``LLMHW_STALLS``).

The traffic is :func:`golden.flexcim.random_steps` (every N:M pattern the config offers, dense
included, switched between runs without reset) or :func:`golden.flexcim.real_steps` (pruned
SmolLM2 weights and real activations); the output sequence is compared beat by beat with
:func:`golden.flexcim.session`, so a sum lost, duplicated, reordered or wrong fails.
"""

import cocotb
import numpy as np

from golden.flexcim import random_steps, real_steps, session
from sim.cocotb_bridge import load_config
from sim.cocotb_stream import StreamDriver, StreamMonitor, start_clock_and_reset, wait_until
from sim.cocotb_tests.common_blocks import drain_and_check, parametrised, patterns


async def _run(dut, cfg, steps, seed, source, sink):
    await start_clock_and_reset(dut, [dut.i_weight__valid, dut.i_act__valid, dut.o__ready])
    traffic, expected = session(steps, cfg)
    weight_stall, sink_stall = patterns(source, sink, seed)
    act_stall, _ = patterns(source, sink, seed, index=1)
    drivers = {
        "weight": StreamDriver(dut, "i_weight", dut.clk, weight_stall,
                               layout=cfg.weight_layout, seed=seed),
        "act": StreamDriver(dut, "i_act", dut.clk, act_stall, layout=cfg.act_layout,
                            seed=seed + 1),
    }
    monitor = StreamMonitor(dut, "o", dut.clk, sink_stall, layout=cfg.out_layout)
    async def feed():
        # one group at a time: a weight load is offered only once the vectors before it were
        # all taken, so the order of loads and runs is the one the golden model assumes
        for which, beats in traffic:
            drivers[which].extend(beats)
            await wait_until(dut.clk, lambda d=drivers[which]: d.idle, 200 * len(beats) + 2000,
                             f"the {which} beats to be taken")

    feeder = cocotb.start_soon(feed())
    await drain_and_check(dut.clk, list(drivers.values()), [monitor], [expected],
                          lambda: [monitor.received], "o", quiet_cycles=32)
    await feeder
    for which, driver in drivers.items():
        assert driver.sent == [beat for kind, beats in traffic if kind == which
                               for beat in beats]


@parametrised(timeout_ms=200)
async def test_flexcim(dut, seed, source, sink):
    """Random weights in every pattern, vs :func:`golden.flexcim.macro_run`."""
    cfg = load_config()
    await _run(dut, cfg, random_steps(cfg, np.random.default_rng(500 + seed)), seed, source,
               sink)


@parametrised(timeout_ms=200)
async def test_flexcim_real(dut, seed, source, sink):
    """Wanda-pruned int8 SmolLM2 weights (2:4, 1:8, 4:8) and real activations."""
    cfg = load_config()
    await _run(dut, cfg, real_steps(cfg, tokens=2 + seed), seed, source, sink)
