"""amaranth.sim tests of the common stream blocks against their Python references."""

import random

import pytest

from golden.common import memory_reads, split_packets, width_down, width_up
from hw.common import (
    ArbiterConfig,
    BlockRAMConfig,
    BlockRAMMemory,
    Queue,
    QueueConfig,
    RoundRobinArbiter,
    SkidBuffer,
    SkidBufferConfig,
    StreamDemux,
    WidthConverterConfig,
    WidthDownConverter,
    WidthUpConverter,
)
from sim.stalls import stall_pattern
from sim.stimulus import random_commands, random_packets
from sim.stream import simulate, stream_get, stream_put

# (input stalls, output back-pressure)
STALLS = [("none", "none"), ("random", "heavy"), ("bursty", "random"), ("heavy", "none"),
          ("every_fourth", "alternate")]
SEEDS = [0, 1]


def run_stream(dut, sent, seed, stalls, count=None):
    """Send ``sent`` into ``dut.i`` and take ``count`` (default ``len(sent)``) from ``dut.o``."""
    count = len(sent) if count is None else count
    received = []

    async def source(ctx):
        await stream_put(ctx, dut.i, sent, stall=stall_pattern(stalls[0], seed))

    async def sink(ctx):
        received.extend(await stream_get(ctx, dut.o, count,
                                         backpressure=stall_pattern(stalls[1], seed + 100)))

    simulate(dut, source, sink)
    return received


@pytest.mark.parametrize("stalls", STALLS, ids="-".join)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("cfg", [QueueConfig(), QueueConfig(depth=2, buffered=False),
                                 QueueConfig(data_width=64, depth=5),
                                 QueueConfig(depth=3, buffered=False, eager_write=True),
                                 QueueConfig(depth=4, buffered=False, eager_write=True)],
                         ids=repr)
def test_queue_keeps_every_entry_in_order(cfg, seed, stalls):
    rng = random.Random(seed)
    sent = random_packets(rng, 150, cfg.data_width)
    assert run_stream(Queue(cfg), sent, seed, stalls) == sent


@pytest.mark.parametrize("cfg", [QueueConfig(depth=4),
                                 QueueConfig(depth=4, buffered=False, eager_write=True)],
                         ids=repr)
def test_queue_level_counts_entries(cfg):
    dut = Queue(cfg)
    levels = []

    async def testbench(ctx):
        ctx.set(dut.o.ready, 0)
        for k in range(6):
            ctx.set(dut.i.payload, {"data": k, "first": 0, "last": 0})
            ctx.set(dut.i.valid, 1)
            await ctx.tick()
            levels.append(ctx.get(dut.level))
        ctx.set(dut.i.valid, 0)

    simulate(dut, testbench)
    assert levels == [1, 2, 3, 4, 4, 4]


@pytest.mark.parametrize("fields,name", [({"eager_write": True}, "eager_write needs buffered"),
                                         ({"eager_write": 1, "buffered": False},
                                          "eager_write must be a bool")])
def test_queue_config_rejects(fields, name):
    with pytest.raises(ValueError, match=name):
        QueueConfig(**fields)


@pytest.mark.parametrize("stalls", STALLS, ids="-".join)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("cfg", [SkidBufferConfig(), SkidBufferConfig(data_width=128)], ids=repr)
def test_skid_buffer_keeps_every_entry_in_order(cfg, seed, stalls):
    sent = random_packets(random.Random(seed), 150, cfg.data_width)
    assert run_stream(SkidBuffer(cfg), sent, seed, stalls) == sent


def test_skid_buffer_full_throughput():
    """With no stalls, entries leave on consecutive cycles: one per cycle."""
    dut = SkidBuffer(SkidBufferConfig())
    sent = random_packets(random.Random(3), 64, 8)
    transfer_cycles = []

    async def source(ctx):
        await stream_put(ctx, dut.i, sent)

    async def sink(ctx):
        ctx.set(dut.o.ready, 1)
        for cycle in range(len(sent) + 4):
            _, _, valid = await ctx.tick().sample(dut.o.valid)
            if valid:
                transfer_cycles.append(cycle)

    simulate(dut, source, sink)
    first = transfer_cycles[0]
    assert transfer_cycles == list(range(first, first + len(sent)))


@pytest.mark.parametrize("stalls", STALLS, ids="-".join)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("cfg", [WidthConverterConfig(), WidthConverterConfig(8, 8),
                                 WidthConverterConfig(5, 3)], ids=repr)
def test_width_up_matches_reference(cfg, seed, stalls):
    sent = random_packets(random.Random(seed), 120, cfg.narrow_width, max_length=2 * cfg.ratio + 1)
    expected = width_up(sent, cfg.narrow_width, cfg.ratio)
    received = run_stream(WidthUpConverter(cfg), sent, seed, stalls, len(expected))
    assert received == expected


@pytest.mark.parametrize("stalls", STALLS, ids="-".join)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("cfg", [WidthConverterConfig(), WidthConverterConfig(8, 8),
                                 WidthConverterConfig(5, 3)], ids=repr)
def test_width_down_matches_reference(cfg, seed, stalls):
    rng = random.Random(seed)
    narrow = random_packets(rng, 120, cfg.narrow_width, max_length=2 * cfg.ratio + 1)
    words = width_up(narrow, cfg.narrow_width, cfg.ratio)
    # round trip through the reference, plus words with arbitrary count (0 and full included)
    words += [{"data": rng.getrandbits(cfg.wide_width), "count": rng.randint(0, cfg.ratio),
               "first": rng.getrandbits(1), "last": rng.getrandbits(1)} for _ in range(30)]
    expected = width_down(words, cfg.narrow_width, cfg.ratio)
    assert expected[:len(narrow)] == narrow
    received = run_stream(WidthDownConverter(cfg), words, seed, stalls, len(expected))
    assert received == expected


def run_arbiter(cfg, per_port, seed, stalls):
    dut = RoundRobinArbiter(cfg)
    total = sum(len(beats) for beats in per_port)
    received = []

    def source(port):
        async def testbench(ctx):
            await stream_put(ctx, dut.i[port], per_port[port],
                             stall=stall_pattern(stalls[0], seed * 10 + port))
        return testbench

    async def sink(ctx):
        received.extend(await stream_get(ctx, dut.o, total,
                                         backpressure=stall_pattern(stalls[1], seed + 100)))

    simulate(dut, *(source(p) for p in range(cfg.ports)), sink)
    return received


@pytest.mark.parametrize("stalls", STALLS, ids="-".join)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("cfg", [ArbiterConfig(), ArbiterConfig(ports=2, data_width=32),
                                 ArbiterConfig(ports=3, packets=False)], ids=repr)
def test_arbiter_loses_nothing_and_keeps_packets_whole(cfg, seed, stalls):
    rng = random.Random(seed)
    per_port = [random_packets(rng, rng.randint(20, 60), cfg.data_width)
                for _ in range(cfg.ports)]
    received = run_arbiter(cfg, per_port, seed, stalls)
    for port in range(cfg.ports):
        assert [r["payload"] for r in received if r["port"] == port] == per_port[port]
    if cfg.packets:
        for packet in split_packets([{**r["payload"], "port": r["port"]} for r in received]):
            assert len({beat["port"] for beat in packet}) == 1, "packets interleaved"


def test_arbiter_takes_turns():
    cfg = ArbiterConfig(ports=3)
    one_beat = [{"data": k, "first": 1, "last": 1} for k in range(8)]
    received = run_arbiter(cfg, [one_beat] * 3, 0, ("none", "none"))
    assert [r["port"] for r in received] == [0, 1, 2] * 8


@pytest.mark.parametrize("stalls", STALLS, ids="-".join)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("cfg", [ArbiterConfig(), ArbiterConfig(ports=3, data_width=32)],
                         ids=repr)
def test_demux_routes_every_entry(cfg, seed, stalls):
    rng = random.Random(seed)
    beats = random_packets(rng, 150, cfg.data_width)
    sent = [{"port": rng.randrange(cfg.ports), "payload": beat} for beat in beats]
    dut = StreamDemux(cfg)
    received = {}

    async def source(ctx):
        await stream_put(ctx, dut.i, sent, stall=stall_pattern(stalls[0], seed))

    def sink(port):
        async def testbench(ctx):
            expected = sum(1 for s in sent if s["port"] == port)
            received[port] = await stream_get(
                ctx, dut.o[port], expected,
                backpressure=stall_pattern(stalls[1], seed * 10 + port))
        return testbench

    simulate(dut, source, *(sink(p) for p in range(cfg.ports)))
    for port in range(cfg.ports):
        assert received[port] == [s["payload"] for s in sent if s["port"] == port]


def run_memory_port(dut, port, port_cfg, commands, write_data, read_count, seed, stalls,
                    background=()):
    received = []

    async def commands_tb(ctx):
        await stream_put(ctx, port.cmd, commands, stall=stall_pattern(stalls[0], seed))

    async def write_tb(ctx):
        await stream_put(ctx, port.wdata, write_data, stall=stall_pattern(stalls[0], seed + 1))

    async def read_tb(ctx):
        received.extend(await stream_get(ctx, port.rdata, read_count,
                                         backpressure=stall_pattern(stalls[1], seed + 2)))

    simulate(dut, commands_tb, write_tb, read_tb, background=background)
    return received


@pytest.mark.parametrize("stalls", STALLS, ids="-".join)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("cfg", [BlockRAMConfig(addr_width=8, data_width=8, length_width=4,
                                                depth=256),
                                 BlockRAMConfig(addr_width=12, data_width=32, depth=64)],
                         ids=repr)
def test_bram_memory_matches_reference(cfg, seed, stalls):
    rng = random.Random(seed)
    commands = random_commands(rng, cfg.port, 60, min(cfg.depth, 1 << cfg.addr_width) * 2)
    write_data = [{"data": rng.getrandbits(cfg.data_width)}
                  for c in commands if c["write"] for _ in range(c["length"])]
    expected = memory_reads(commands, write_data, cfg.depth)
    dut = BlockRAMMemory(cfg)
    received = run_memory_port(dut, dut.mem, cfg.port, commands, write_data, len(expected),
                               seed, stalls)
    assert received == expected
