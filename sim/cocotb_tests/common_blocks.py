"""cocotb tests of the ``hw.common`` blocks, run on their generated Verilog.

Launched by ``tests/test_cocotb_common.py`` through :func:`sim.cocotb_bridge.run_cocotb`,
one simulator run per (block, preset): the config arrives in ``LLMHW_CONFIG`` and each
``test_<block>`` runs once per seed and per (source stall, sink back-pressure) pair.

``LLMHW_SEEDS`` (``"0,1"``) and ``LLMHW_STALLS`` (``"none:none,random:heavy,..."``) pick the
parametrisation; every test compares the complete sequences received with a Python reference
model, so a beat lost, duplicated, reordered or left inside the DUT fails it.
"""

import functools
import itertools
import os
import random

import cocotb

from golden.common import memory_reads, width_down, width_up
from sim.cocotb_bridge import load_config
from sim.cocotb_stream import (
    StreamDriver,
    StreamMonitor,
    layout_width,
    run_cycles,
    start_clock_and_reset,
    unpack,
    wait_until,
)
from sim.stalls import stall_pattern
from sim.stimulus import random_packets

# (source stall, sink back-pressure) pairs: free flow, each side slow on its own (which fills
# and drains the DUT), both random, and the periodic patterns against each other
DEFAULT_STALLS = ("none:none,random:random,none:heavy,heavy:none,bursty:alternate,"
                  "alternate:every_fourth,every_fourth:bursty,heavy:heavy")


def parse_stalls(text: str) -> list[tuple[str, str]]:
    pairs = []
    for item in text.split(","):
        source, _, sink = item.strip().partition(":")
        pairs.append((source, sink or source))
    return pairs


SEEDS = [int(s) for s in os.environ.get("LLMHW_SEEDS", "0,1").split(",")]
STALLS = parse_stalls(os.environ.get("LLMHW_STALLS", DEFAULT_STALLS))
# Cycles a test lets pass after the last expected beat, with every sink ready, so a beat the
# DUT should not have sent (a duplicate, or one made up) still shows up.
DRAIN_CYCLES = 16


def parametrised(test=None, *, timeout_ms: int = 20):
    """One cocotb test per seed and stall pair, named ``test/seed=0/source=none/sink=heavy``.

    Use as ``@parametrised``, or ``@parametrised(timeout_ms=...)`` for blocks with long latency.
    """
    if test is None:
        return functools.partial(parametrised, timeout_ms=timeout_ms)
    # Param keeps pattern names readable in test names (cocotb shortens long strings to indices)
    pairs = [(cocotb.Param(source, source), cocotb.Param(sink, sink)) for source, sink in STALLS]
    test = cocotb.parametrize(("seed", SEEDS), (("source", "sink"), pairs))(test)
    # a deadlocked DUT ends the test here rather than hanging the run
    return cocotb.test(timeout_time=timeout_ms, timeout_unit="ms")(test)


def random_payload(rng: random.Random, layout):
    """Random field dict covering every bit of ``layout``."""
    return unpack(layout, rng.getrandbits(layout_width(layout)))




def patterns(source: str, sink: str, seed: int, index: int = 0):
    """The (source, sink) pattern iterators of one stream pair, distinct per ``index``."""
    return (stall_pattern(source, seed * 64 + index),
            stall_pattern(sink, seed * 64 + 32 + index))


async def drain_and_check(clock, drivers, monitors, expected, received_of, what: str, *,
                          quiet_cycles: int = DRAIN_CYCLES):
    """Wait for every expected beat, let the DUT run on with all sinks ready, compare.

    ``received_of()`` gives what the monitors hold, in the same form as ``expected``. Beats
    are compared as they arrive, so a wrong one fails the test at once rather than at the
    timeout. Then, with every sink ready, the DUT runs ``quiet_cycles`` more cycles (make it
    longer than the block's latency) and nothing more may come out.
    """
    checked = [0] * len(expected)

    def check_new():
        for k, (got, want) in enumerate(zip(received_of(), expected, strict=True)):
            for index in range(checked[k], len(got)):
                if index >= len(want):
                    raise AssertionError(f"{what} stream {k}: beat {index} ({got[index]}) is "
                                         f"one more than the {len(want)} expected")
                if got[index] != want[index]:
                    raise AssertionError(f"{what} stream {k}: beat {index} is {got[index]}, "
                                         f"expected {want[index]}")
            checked[k] = len(got)

    def complete():
        check_new()
        return all(d.idle for d in drivers) and all(
            checked[k] == len(want) for k, want in enumerate(expected))

    def progress():
        counts = ", ".join(f"{n}/{len(want)}" for n, want in zip(checked, expected, strict=True))
        unsent = sum(d.pending for d in drivers)
        return f"all {what} beats (received/expected per stream: {counts}; {unsent} unsent)"

    budget = 2000 + 40 * sum(len(want) for want in expected)
    await wait_until(clock, complete, budget, progress)
    for monitor in monitors:
        monitor.backpressure = itertools.repeat(False)
    await run_cycles(clock, quiet_cycles)
    check_new()
    assert [list(got) for got in received_of()] == expected


# -- queue and skid buffer: the output sequence is the input sequence ----------------------------

async def _pass_through(dut, seed, source, sink, beats_count: int):
    cfg = load_config()
    layout = cfg.payload_shape
    await start_clock_and_reset(dut, [dut.i__valid, dut.o__ready])
    rng = random.Random(f"pass:{seed}")
    beats = [random_payload(rng, layout) for _ in range(beats_count)]
    source_stall, sink_stall = patterns(source, sink, seed)
    driver = StreamDriver(dut, "i", dut.clk, source_stall, layout=layout, seed=seed)
    monitor = StreamMonitor(dut, "o", dut.clk, sink_stall, layout=layout)
    driver.extend(beats)
    await drain_and_check(dut.clk, [driver], [monitor], [beats], lambda: [monitor.received],
                          "o")
    assert driver.sent == beats


async def _watch_level(dut, depth: int, levels: list):
    while True:
        await run_cycles(dut.clk, 1)
        levels.append(int(dut.level.value))
        assert levels[-1] <= depth, f"queue level {levels[-1]} above depth {depth}"


@parametrised
async def test_queue(dut, seed, source, sink):
    """Queue: same sequence out as in; level within depth, reaches it, and back to 0."""
    cfg = load_config()
    levels = []
    cocotb.start_soon(_watch_level(dut, cfg.depth, levels))
    # enough beats that a slow sink fills even the deepest preset
    await _pass_through(dut, seed, source, sink, min(max(64, 2 * cfg.depth + 16), 1100))
    if (source, sink) == ("none", "heavy"):
        assert max(levels) == cfg.depth, f"queue never full: level at most {max(levels)}"
    assert levels[-1] == 0, f"queue level {levels[-1]} after draining"


@parametrised
async def test_skid_buffer(dut, seed, source, sink):
    """Skid buffer: same sequence out as in."""
    await _pass_through(dut, seed, source, sink, 120)


# -- width converters ------------------------------------------------------------------------





@parametrised
async def test_width_up(dut, seed, source, sink):
    """Narrow packets of every length mod ratio → wide beats, vs :func:`golden.common.width_up`."""
    cfg = load_config()
    await start_clock_and_reset(dut, [dut.i__valid, dut.o__ready])
    rng = random.Random(f"width_up:{seed}")
    beats = random_packets(rng, 100, cfg.narrow_width, 3 * cfg.ratio + 1)
    expected = width_up(beats, cfg.narrow_width, cfg.ratio)
    source_stall, sink_stall = patterns(source, sink, seed)
    driver = StreamDriver(dut, "i", dut.clk, source_stall, layout=cfg.narrow_layout, seed=seed)
    monitor = StreamMonitor(dut, "o", dut.clk, sink_stall, layout=cfg.wide_layout)
    driver.extend(beats)
    await drain_and_check(dut.clk, [driver], [monitor], [expected],
                          lambda: [monitor.received], "o")


def random_wide_beats(cfg, rng: random.Random, packets: int):
    """Wide packets: full beats then a last beat of 1..ratio lanes; lanes past count zero.

    Single-beat packets with ``count`` 0 and ``ratio + 1`` are mixed in, the two
    out-of-range counts the down-converter documents (sent as 1 and ``ratio`` lanes).
    """
    beats = []
    for _ in range(packets):
        length = rng.randint(1, 4)
        for k in range(length):
            last = k == length - 1
            count = rng.randint(1, cfg.ratio) if last else cfg.ratio
            if length == 1 and rng.random() < 0.2:
                count = rng.choice([0, cfg.ratio + 1])
            lanes = min(max(count, 1), cfg.ratio)
            beats.append({"data": rng.getrandbits(lanes * cfg.narrow_width), "count": count,
                          "first": int(k == 0), "last": int(last)})
    return beats


@parametrised
async def test_width_down(dut, seed, source, sink):
    """Wide packets → narrow beats, vs :func:`golden.common.width_down`."""
    cfg = load_config()
    await start_clock_and_reset(dut, [dut.i__valid, dut.o__ready])
    rng = random.Random(f"width_down:{seed}")
    beats = random_wide_beats(cfg, rng, 20)
    expected = width_down(beats, cfg.narrow_width, cfg.ratio)
    source_stall, sink_stall = patterns(source, sink, seed)
    driver = StreamDriver(dut, "i", dut.clk, source_stall, layout=cfg.wide_layout, seed=seed)
    monitor = StreamMonitor(dut, "o", dut.clk, sink_stall, layout=cfg.narrow_layout)
    driver.extend(beats)
    await drain_and_check(dut.clk, [driver], [monitor], [expected],
                          lambda: [monitor.received], "o")


# -- arbiter and demux -----------------------------------------------------------------------

@parametrised
async def test_arbiter(dut, seed, source, sink):
    """Each port's beats come out in order, none lost or made up, tagged with the port.

    With ``packets`` the output never switches port inside a packet.
    """
    cfg = load_config()
    ports = cfg.ports
    inputs = [getattr(dut, f"i__{k}__valid") for k in range(ports)]
    await start_clock_and_reset(dut, [*inputs, dut.o__ready])
    rng = random.Random(f"arbiter:{seed}")
    sent = [random_packets(rng, rng.randint(10, 30), cfg.data_width, 5) for _ in range(ports)]
    drivers = []
    for k in range(ports):
        source_stall, _ = patterns(source, sink, seed, k)
        drivers.append(StreamDriver(dut, f"i__{k}", dut.clk, source_stall,
                                    layout=cfg.payload_shape,
                                    seed=seed * 64 + k))
        drivers[k].extend(sent[k])
    _, sink_stall = patterns(source, sink, seed)
    monitor = StreamMonitor(dut, "o", dut.clk, sink_stall, layout=cfg.tagged_layout)

    def per_port():
        return [[b["payload"] for b in monitor.received if b["port"] == k] for k in range(ports)]

    await drain_and_check(dut.clk, drivers, [monitor], sent, per_port, "arbiter port")
    assert len(monitor.received) == sum(map(len, sent))
    if cfg.packets:
        open_port = None
        for index, beat in enumerate(monitor.received):
            assert open_port is None or beat["port"] == open_port, (
                f"beat {index} from port {beat['port']} inside a packet of port {open_port}")
            open_port = None if beat["payload"]["last"] else beat["port"]


@parametrised
async def test_demux(dut, seed, source, sink):
    """Each entry reaches the output its port field names, in order, nothing else."""
    cfg = load_config()
    ports = cfg.ports
    # the demux is combinational: no clk in its Verilog, so the helpers step on a time grid
    clock = getattr(dut, "clk", None)
    readies = [getattr(dut, f"o__{k}__ready") for k in range(ports)]
    await start_clock_and_reset(dut, [dut.i__valid, *readies])
    rng = random.Random(f"demux:{seed}")
    beats = [{"port": rng.randrange(ports), "payload": random_payload(rng, cfg.payload_shape)}
             for _ in range(40 * ports)]
    source_stall, _ = patterns(source, sink, seed)
    driver = StreamDriver(dut, "i", clock, source_stall, layout=cfg.tagged_layout, seed=seed)
    monitors = []
    for k in range(ports):
        _, sink_stall = patterns(source, sink, seed, k)
        monitors.append(StreamMonitor(dut, f"o__{k}", clock, sink_stall,
                                      layout=cfg.payload_shape))
    driver.extend(beats)
    expected = [[b["payload"] for b in beats if b["port"] == k] for k in range(ports)]
    await drain_and_check(clock, [driver], monitors, expected,
                          lambda: [m.received for m in monitors], "demux output")


# -- block-RAM memory behind the memory port ---------------------------------------------------

def random_bram_commands(cfg, rng: random.Random, count: int):
    """Memory commands: writes and reads, lengths 0, 1, short bursts and the longest burst.

    Addresses gather in a small window (so reads find written data), sit just below the
    wrap point of ``depth`` (bursts that wrap) or fall anywhere in the address space
    (high address bits dropped).
    """
    longest = (1 << cfg.length_width) - 1
    window = min(cfg.depth, 64)
    commands = []
    for index in range(count):
        write = index < 4 or rng.random() < 0.5
        roll = rng.random()
        if roll < 0.1:
            length = 0
        elif roll < 0.3:
            length = 1
        elif roll < 0.33:
            length = longest
        else:
            length = rng.randint(2, min(longest, 12))
        where = rng.random()
        if where < 0.7:
            addr = rng.randrange(window)
        elif where < 0.85:
            addr = cfg.depth - rng.randint(1, 4)
        else:
            addr = rng.randrange(1 << cfg.addr_width)
        commands.append({"addr": addr, "length": length, "write": int(write)})
    return commands


def bram_stimulus(cfg, commands, rng: random.Random):
    """Write beats to send and read beats to expect; ``None`` data for unwritten words.

    The memory's contents before the test are unknown (an earlier test of the same run may
    have written them), so a word not written in this test matches anything.
    """
    writes = [{"data": rng.getrandbits(cfg.data_width)}
              for command in commands if command["write"] for _ in range(command["length"])]
    return writes, memory_reads(commands, writes, cfg.depth, unwritten=None)


@parametrised
async def test_bram_memory(dut, seed, source, sink):
    """Random writes and reads (length 0, bursts, wrapping) vs a Python memory; rdata.last."""
    cfg = load_config()
    port = cfg.port
    await start_clock_and_reset(dut, [dut.mem__cmd__valid, dut.mem__wdata__valid,
                                      dut.mem__rdata__ready])
    rng = random.Random(f"bram:{seed}")
    commands = random_bram_commands(cfg, rng, 40)
    writes, reads = bram_stimulus(cfg, commands, rng)
    source_stall, sink_stall = patterns(source, sink, seed)
    wdata_stall, _ = patterns(source, sink, seed, 1)
    cmd = StreamDriver(dut, "mem__cmd", dut.clk, source_stall, layout=port.command_layout,
                       seed=seed)
    wdata = StreamDriver(dut, "mem__wdata", dut.clk, wdata_stall, layout=port.write_layout,
                         seed=seed + 1)
    rdata = StreamMonitor(dut, "mem__rdata", dut.clk, sink_stall, layout=port.read_layout)
    cmd.extend(commands)
    wdata.extend(writes)

    await drain_and_check(dut.clk, [cmd, wdata], [rdata], [reads],
                          lambda: [_fill_wildcards(rdata.received, reads)], "rdata")
    assert cmd.sent == commands and wdata.sent == writes


def _fill_wildcards(got, want):
    """``got`` with the don't-care (``None``) words of ``want`` copied in, so ``==`` skips them."""
    return [dict(g, data=w["data"]) if w["data"] is None else g
            for g, w in zip(got, want, strict=False)] + got[len(want):]


# -- block RAM: the pipelined RAM against a two-stage model, the RAM queue as a queue ----------

@parametrised
async def test_pipelined_ram(dut, seed, source, sink):
    """Random writes, reads and output enables (never a read colliding with a write); every
    cycle ``r_data`` equals a model of the read latch (under ``r_en``) and the output register
    (under ``r_oe``). Run on the generic Verilog and on the ECP5 netlist of DP16KD blocks
    (with ``sim/models/dp16kd.v``)."""
    cfg = load_config()
    await start_clock_and_reset(dut, [dut.w_en, dut.r_en, dut.r_oe])
    rng = random.Random(f"pipelined_ram:{seed}:{source}:{sink}")
    # the stall pattern names set how often each port is busy
    busy = {"none": 0.9, "random": 0.7, "heavy": 0.3, "bursty": 0.5, "alternate": 0.5,
            "every_fourth": 0.75}
    p_write, p_read = busy[source], busy[sink]
    mask = (1 << cfg.width) - 1
    mem = {}        # words written by this test (earlier tests of the run leave others behind)
    latch = out = None
    checked = 0
    for _ in range(1200):
        w_en, r_en, r_oe = rng.random() < p_write, rng.random() < p_read, rng.random() < 0.7
        # confine writes to half the words now and then, so reads find fresh data
        w_addr = rng.randrange(cfg.depth if rng.random() < 0.5 else min(cfg.depth, 16))
        r_addr = rng.randrange(cfg.depth if rng.random() < 0.5 else min(cfg.depth, 16))
        if w_en and r_en and w_addr == r_addr:
            w_en = False
        w_data = rng.getrandbits(cfg.width)
        dut.w_en.value, dut.w_addr.value, dut.w_data.value = int(w_en), w_addr, w_data
        dut.r_en.value, dut.r_addr.value, dut.r_oe.value = int(r_en), r_addr, int(r_oe)
        await run_cycles(dut.clk, 1)
        if r_oe:
            out = latch
        if r_en:
            latch = mem.get(r_addr)
        if w_en:
            mem[w_addr] = w_data
        if out is not None:
            got = int(dut.r_data.value)
            assert got == out & mask, f"r_data {got:#x}, expected {out:#x}"
            checked += 1
    assert checked > 200


@parametrised
async def test_ram_queue(dut, seed, source, sink):
    """RAM queue: same sequence out as in; level within depth + 2 and back to 0."""
    cfg = load_config()
    levels = []
    cocotb.start_soon(_watch_level(dut, cfg.depth + 2, levels))
    await _pass_through(dut, seed, source, sink, min(max(64, 2 * cfg.depth + 16), 1100))
    if (source, sink) == ("none", "heavy"):
        assert max(levels) == cfg.depth + 2, f"queue never full: level at most {max(levels)}"
    assert levels[-1] == 0, f"queue level {levels[-1]} after draining"
