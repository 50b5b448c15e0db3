"""The DRAM model behind the memory port: same data as the block RAM, and the timing asked for."""

import random

import pytest

from golden.common import memory_reads
from hw.common import MemoryPortConfig
from sim.dram import DRAMModel, DRAMTiming, MemoryPortWires
from sim.stimulus import random_commands
from sim.stream import simulate, stream_put
from tests.test_common_sim import STALLS, run_memory_port


@pytest.mark.parametrize("stalls", STALLS, ids="-".join)
@pytest.mark.parametrize("timing", [DRAMTiming(latency=1, bytes_per_cycle=4),
                                    DRAMTiming(latency=30, bytes_per_cycle=1.5, queue_depth=2)],
                         ids=repr)
def test_dram_model_serves_commands_in_order(timing, stalls):
    cfg = MemoryPortConfig(addr_width=10, data_width=32, length_width=5)
    rng = random.Random(7)
    words = 512
    commands = random_commands(rng, cfg, 40, words * 2)
    write_data = [{"data": rng.getrandbits(32)}
                  for c in commands if c["write"] for _ in range(c["length"])]
    expected = memory_reads(commands, write_data, words)
    dut = MemoryPortWires(cfg)
    dram = DRAMModel(cfg, timing, words=words)

    async def serve(ctx):
        await dram.process(ctx, dut.mem)

    received = run_memory_port(dut, dut.host, cfg, commands, write_data, len(expected), 7,
                               stalls, background=[serve])
    assert received == expected
    assert dram.bytes_written == 4 * len(write_data)
    assert dram.bytes_read == 4 * len(expected)


@pytest.mark.parametrize("latency", [1, 5, 40])
@pytest.mark.parametrize("bytes_per_cycle", [0.5, 1, 2, 4, 8])
def test_dram_model_latency_and_bandwidth(latency, bytes_per_cycle):
    cfg = MemoryPortConfig(addr_width=12, data_width=32, length_width=8)
    length = 200
    dut = MemoryPortWires(cfg)
    dram = DRAMModel(cfg, DRAMTiming(latency=latency, bytes_per_cycle=bytes_per_cycle))
    dram.load(0, range(length))
    arrivals = []

    async def serve(ctx):
        await dram.process(ctx, dut.mem)

    async def host(ctx):
        await stream_put(ctx, dut.host.cmd, [{"addr": 0, "length": length, "write": 0}])
        start = 0
        ctx.set(dut.host.rdata.ready, 1)
        cycle = 0
        while len(arrivals) < length:
            _, _, valid, payload = await ctx.tick().sample(dut.host.rdata.valid,
                                                           dut.host.rdata.payload)
            cycle += 1
            if valid:
                arrivals.append((cycle - start, payload.data))

    simulate(dut, host, background=[serve])
    assert [data for _, data in arrivals] == list(range(length))
    # first beat: `latency` cycles after the command's transfer (counted from the edge after it)
    first = arrivals[0][0]
    assert latency <= first <= latency + max(1, round(4 / bytes_per_cycle))
    span = arrivals[-1][0] - first
    measured = 4 * (length - 1) / span
    assert measured == pytest.approx(min(bytes_per_cycle, 4), rel=0.02)


def test_dram_timing_rejects_bad_values():
    with pytest.raises(ValueError, match="latency"):
        DRAMTiming(latency=0)
    with pytest.raises(ValueError, match="bytes_per_cycle"):
        DRAMTiming(bytes_per_cycle=0)
