"""Throughput of the common stream blocks and the DRAM model, measured in ``amaranth.sim``."""

import random
import time

from hw.registry import all_blocks, make_config
from sim.dram import DRAMModel, DRAMTiming, MemoryPortWires
from sim.stalls import stall_pattern
from sim.stimulus import random_packets
from sim.stream import simulate, stream_get, stream_put

__all__ = ["run"]

PATTERNS = [("none", "none"), ("random", "random"), ("none", "every_fourth")]


def _stream_case(name: str, preset: str, beats: int, stalls) -> dict:
    """Cycles to move ``beats`` input beats through block ``name`` (packets of up to 9 beats)."""
    from golden.common import width_up

    info = all_blocks()[name]
    cfg = make_config(name, preset)
    dut = info.component(cfg)
    rng = random.Random(1)
    if name in ("width_up", "width_down"):
        narrow = random_packets(rng, beats, cfg.narrow_width, max_length=4 * cfg.ratio)
        wide = width_up(narrow, cfg.narrow_width, cfg.ratio)
        sources = {"width_up": [(dut.i, narrow)], "width_down": [(dut.i, wide)]}[name]
        sinks = [(dut.o, len(wide) if name == "width_up" else len(narrow))]
        in_bits = cfg.narrow_width * len(narrow)
    elif name == "arbiter":
        per_port = [random_packets(rng, beats // cfg.ports, cfg.data_width)
                    for _ in range(cfg.ports)]
        sources = list(zip(dut.i, per_port, strict=True))
        sinks = [(dut.o, sum(map(len, per_port)))]
        in_bits = cfg.data_width * sum(map(len, per_port))
    elif name == "demux":
        sent = [{"port": rng.randrange(cfg.ports), "payload": p}
                for p in random_packets(rng, beats, cfg.data_width)]
        sources = [(dut.i, sent)]
        sinks = [(dut.o[k], sum(s["port"] == k for s in sent)) for k in range(cfg.ports)]
        in_bits = cfg.data_width * len(sent)
    else:
        sent = random_packets(rng, beats, cfg.data_width)
        sources = [(dut.i, sent)]
        sinks = [(dut.o, len(sent))]
        in_bits = cfg.data_width * len(sent)

    done = []
    cycles = []

    def source(k, stream, payloads):
        async def tb(ctx):
            await stream_put(ctx, stream, payloads, stall=stall_pattern(stalls[0], k))
        return tb

    def sink(k, stream, count):
        async def tb(ctx):
            await stream_get(ctx, stream, count, backpressure=stall_pattern(stalls[1], 50 + k))
            done.append(k)
        return tb

    async def clock(ctx):
        n = 0
        while len(done) < len(sinks):
            await ctx.tick()
            n += 1
        cycles.append(n)

    simulate(dut, *(source(k, s, p) for k, (s, p) in enumerate(sources)),
             *(sink(k, s, c) for k, (s, c) in enumerate(sinks)), clock)
    in_beats = sum(len(p) for _, p in sources)
    return {"block": name, "preset": preset, "input_stalls": stalls[0],
            "output_backpressure": stalls[1], "input_beats": in_beats, "cycles": cycles[0],
            "input_beats_per_cycle": round(in_beats / cycles[0], 4),
            "input_bytes_per_cycle": round(in_bits / 8 / cycles[0], 4)}


def _bram_case(preset: str, length: int) -> dict:
    """Cycles for back-to-back read bursts from the block-RAM memory with no back-pressure."""
    from hw.common import BlockRAMMemory

    cfg = make_config("bram_memory", preset)
    dut = BlockRAMMemory(cfg)
    length = min(length, (1 << cfg.length_width) - 1)
    bursts = 8
    commands = [{"addr": k * length, "length": length, "write": 0} for k in range(bursts)]
    cycles = []

    async def cmd(ctx):
        await stream_put(ctx, dut.mem.cmd, commands)

    async def read(ctx):
        start = dut_cycles[0]
        await stream_get(ctx, dut.mem.rdata, bursts * length)
        cycles.append(dut_cycles[0] - start)

    dut_cycles = [0]

    async def clock(ctx):
        async for _ in ctx.tick():
            dut_cycles[0] += 1

    simulate(dut, cmd, read, background=[clock])
    beats = bursts * length
    return {"block": "bram_memory", "preset": preset, "burst_length": length, "bursts": bursts,
            "cycles": cycles[0], "beats_per_cycle": round(beats / cycles[0], 4),
            "bytes_per_cycle": round(beats * cfg.data_width / 8 / cycles[0], 4)}


def _dram_case(latency: int, bytes_per_cycle: float, length: int = 256) -> dict:
    """Bytes per cycle the DRAM model delivers on one read burst, against its setting."""
    from hw.common import MemoryPortConfig

    cfg = MemoryPortConfig(addr_width=16, data_width=32, length_width=9)
    dut = MemoryPortWires(cfg)
    dram = DRAMModel(cfg, DRAMTiming(latency=latency, bytes_per_cycle=bytes_per_cycle))
    cycles = []

    async def serve(ctx):
        await dram.process(ctx, dut.mem)

    async def host(ctx):
        await stream_put(ctx, dut.host.cmd, [{"addr": 0, "length": length, "write": 0}])
        await stream_get(ctx, dut.host.rdata, length)
        cycles.append(dram.cycles)

    simulate(dut, host, background=[serve])
    return {"latency": latency, "bytes_per_cycle_set": bytes_per_cycle, "burst_bytes": 4 * length,
            "cycles": cycles[0], "bytes_per_cycle_measured": round(4 * length / cycles[0], 4)}


def run(quick: bool = False) -> dict:
    started = time.monotonic()
    beats = 200 if quick else 1000
    streams = []
    cases = [(name, preset) for name, info in all_blocks().items() if name != "bram_memory"
             for preset in info.presets]
    for k, (name, preset) in enumerate(cases):
        for stalls in PATTERNS:
            streams.append(_stream_case(name, preset, beats, stalls))
        print(f"[{k + 1}/{len(cases)}] {name} {preset}: "
              f"{streams[-len(PATTERNS)]['input_beats_per_cycle']} beats/cycle without stalls",
              flush=True)
    memories = [_bram_case(preset, length)
                for preset in all_blocks()["bram_memory"].presets for length in (1, 4, 255)]
    drams = [_dram_case(latency, bpc) for latency in (1, 20, 100) for bpc in (1, 4)]
    return {"streams": streams, "bram_memory": memories, "dram_model": drams,
            "seconds": round(time.monotonic() - started, 1)}
