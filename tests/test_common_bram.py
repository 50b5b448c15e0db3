"""PipelinedRAM and RAMQueue: cycle behaviour against a Python model, stalls, collisions, and
the ECP5 DP16KD tiling they elaborate to."""

import random

import pytest
from amaranth.back import rtlil

from hw.common.bram import (
    PipelinedRAM,
    PipelinedRAMConfig,
    RAMQueue,
    RAMQueueConfig,
    ecp5_tiling,
)
from sim.stalls import stall_pattern
from sim.stream import simulate, stream_get, stream_put


@pytest.mark.parametrize("width,depth", [(8, 64), (36, 512), (13, 100)])
@pytest.mark.parametrize("seed", [0, 1])
def test_pipelined_ram_matches_model(width, depth, seed):
    """Random writes, reads and output enables; each cycle r_data equals a two-stage model of
    the RAM (latch loaded under r_en, output register under r_oe); reads never collide."""
    dut = PipelinedRAM(PipelinedRAMConfig(width=width, depth=depth))
    rng = random.Random(seed)
    mask = (1 << width) - 1
    checked = []

    async def bench(ctx):
        mem = [0] * depth
        latch = out = None
        for _ in range(1500):
            w_en, r_en, r_oe = rng.random() < 0.5, rng.random() < 0.6, rng.random() < 0.6
            w_addr, w_data = rng.randrange(depth), rng.getrandbits(width)
            r_addr = rng.randrange(depth)
            if w_en and r_en and w_addr == r_addr:
                w_en = False
            ctx.set(dut.w_addr, w_addr)
            ctx.set(dut.w_data, w_data)
            ctx.set(dut.w_en, w_en)
            ctx.set(dut.r_addr, r_addr)
            ctx.set(dut.r_en, r_en)
            ctx.set(dut.r_oe, r_oe)
            await ctx.tick()
            # on the edge: the output register takes the latch as it was, the latch the array
            # as it was, then the write lands
            if r_oe:
                out = latch
            if r_en:
                latch = mem[r_addr]
            if w_en:
                mem[w_addr] = w_data
            if out is not None:
                assert ctx.get(dut.r_data) == out & mask
                checked.append(out)

    simulate(dut, bench)
    assert len(checked) > 300


def test_pipelined_ram_poisons_collisions():
    """A read on the same edge as a write to its address returns the old word inverted in
    simulation, so a design relying on DP16KD's undefined cross-port collision fails."""
    dut = PipelinedRAM(PipelinedRAMConfig(width=8, depth=16))

    async def bench(ctx):
        for addr, value in ((3, 0x5A), (4, 0x11)):
            ctx.set(dut.w_addr, addr)
            ctx.set(dut.w_data, value)
            ctx.set(dut.w_en, 1)
            await ctx.tick()
        # collide on address 3, read address 4 cleanly next
        ctx.set(dut.w_addr, 3)
        ctx.set(dut.w_data, 0x77)
        ctx.set(dut.r_addr, 3)
        ctx.set(dut.r_en, 1)
        ctx.set(dut.r_oe, 1)
        await ctx.tick()
        ctx.set(dut.w_en, 0)
        ctx.set(dut.r_addr, 4)
        await ctx.tick()
        assert ctx.get(dut.r_data) == 0x5A ^ 0xFF
        await ctx.tick()
        assert ctx.get(dut.r_data) == 0x11

    simulate(dut, bench)


@pytest.mark.parametrize("stalls", [("none", "none"), ("random", "heavy"), ("heavy", "none"),
                                    ("bursty", "random"), ("every_fourth", "alternate")])
@pytest.mark.parametrize("depth", [2, 5, 64])
def test_ram_queue_loses_nothing(stalls, depth):
    """Every entry comes out once, in order, whatever the stalls on either side."""
    dut = RAMQueue(RAMQueueConfig(width=12, depth=depth))
    rng = random.Random(depth)
    sent = [rng.getrandbits(12) for _ in range(300)]
    received = []

    async def source(ctx):
        await stream_put(ctx, dut.i, sent, stall=stall_pattern(stalls[0], depth))

    async def sink(ctx):
        received.extend(await stream_get(ctx, dut.o, len(sent),
                                         backpressure=stall_pattern(stalls[1], depth + 1)))

    simulate(dut, source, sink)
    assert received == sent


def test_ram_queue_full_rate_and_latency():
    """With no stalls an entry leaves 3 cycles after it enters, then one per cycle."""
    dut = RAMQueue(RAMQueueConfig(width=8, depth=16))
    arrivals = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for cycle in range(40):
            feeding = cycle < 20
            ctx.set(dut.i.valid, feeding)
            ctx.set(dut.i.payload, cycle)
            _, _, ready, valid, payload = await ctx.tick().sample(
                dut.i.ready, dut.o.valid, dut.o.payload)
            if feeding:
                assert ready
            if valid:
                arrivals.append((cycle, payload))

    simulate(dut, bench)
    assert [p for _, p in arrivals] == list(range(20))
    assert arrivals[0][0] == 3          # entered on edge 0, leaves on edge 3
    assert [c for c, _ in arrivals] == list(range(arrivals[0][0], arrivals[0][0] + 20))


def test_ram_queue_fills_to_depth_plus_pipeline():
    """With the output stalled the queue takes depth + 2 entries, then holds i.ready low."""
    depth = 6
    dut = RAMQueue(RAMQueueConfig(width=8, depth=depth))

    async def bench(ctx):
        ctx.set(dut.o.ready, 0)
        taken = 0
        for cycle in range(30):
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, cycle)
            _, _, ready = await ctx.tick().sample(dut.i.ready)
            taken += ready
        assert taken == depth + 2
        assert ctx.get(dut.level) == depth + 2

    simulate(dut, bench)


@pytest.mark.parametrize("width,depth,expected", [
    (8, 2048, (9, 2048, 1)), (8, 4096, (4, 4096, 2)), (72, 512, (36, 512, 2)),
    (32, 1024, (18, 1024, 2)), (8, 16, None), (1, 1 << 15, None)])
def test_ecp5_tiling(width, depth, expected):
    assert ecp5_tiling(width, depth) == expected


class _ECP5:
    family = "ecp5"


@pytest.mark.parametrize("width,depth", [(8, 2048), (72, 512), (20, 1024)])
def test_ecp5_instances(width, depth):
    """On ECP5 the RAM is DP16KD blocks with the read side's output register enabled."""
    tile_width, _, tiles = ecp5_tiling(width, depth)
    dut = PipelinedRAM(PipelinedRAMConfig(width=width, depth=depth))
    text = rtlil.convert(dut, platform=_ECP5())
    assert text.count("cell \\DP16KD ") == tiles
    assert text.count('parameter \\REGMODE_B "OUTREG"') == tiles
    assert text.count(f"parameter \\DATA_WIDTH_B {tile_width}") == tiles
    assert "$mem" not in text


@pytest.mark.parametrize("kwargs", [{"width": 0}, {"depth": 1}, {"domain": "comb"}])
def test_config_errors(kwargs):
    for cls in (PipelinedRAMConfig, RAMQueueConfig):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            cls(**kwargs)
