"""cocotb tests of the ``hw.camc`` blocks, run on their generated Verilog.

Launched by ``tests/test_cocotb_camc.py`` through :func:`sim.cocotb_bridge.run_cocotb`, one
simulator run per (block, config); each ``test_<block>`` runs once per seed and per
(source stall, sink back-pressure) pair, with the parametrisation of
:mod:`sim.cocotb_tests.common_blocks` (``LLMHW_SEEDS``, ``LLMHW_STALLS`` and the same defaults).

Every test compares the complete sequences received with the golden model
(:mod:`golden.camc`) or the reference ``lz4`` library, so a byte lost, duplicated, reordered,
made up or left inside the DUT fails it.
"""

import random

import lz4.block
import numpy as np

from golden.camc import (
    FORMATS,
    LZ4_ERRORS,
    LZ4FormatError,
    bitplane_merge,
    bitplane_split,
    lz4_compress_block,
    lz4_decompress_block,
    plane_bytes,
)
from hw.common.validate import packet_layout
from sim.bench.camc_rtl import decompressor_beats, value_beats
from sim.cocotb_bridge import load_config
from sim.cocotb_stream import (
    StreamDriver,
    StreamMonitor,
    start_clock_and_reset,
)
from sim.cocotb_tests.common_blocks import drain_and_check, parametrised, patterns

# -- bit-plane split and merge -----------------------------------------------------------------

def _random_values(cfg, rng: np.random.Generator, count: int) -> np.ndarray:
    f = FORMATS[cfg.fmt]
    return rng.integers(0, 1 << f.width, count, dtype=np.int64).astype(f.dtype)


def bitplane_blocks(cfg, rng: np.random.Generator) -> list[np.ndarray]:
    """Full random blocks, one of a few repeated values, a short block (count not a multiple
    of 8), one beat, and a full block again."""
    n, v = cfg.block_values, cfg.values_per_cycle
    f = FORMATS[cfg.fmt]
    few = rng.choice(_random_values(cfg, rng, 3), n).astype(f.dtype)
    short = 3 * v if v >= 4 else 13 * v
    return [_random_values(cfg, rng, n), few, _random_values(cfg, rng, short),
            _random_values(cfg, rng, v), _random_values(cfg, rng, n)]


def plane_beats(cfg, blob: bytes, count: int, planes: int,
                rng: random.Random | None = None) -> list[dict]:
    """Plane-side beats of the top ``planes`` planes as the split sends them (bytes past the
    end of a plane zero, or random with ``rng``: the merge must ignore them)."""
    bpb, pb = cfg.bytes_per_beat, plane_bytes(count)
    beats = []
    for p in range(planes):
        plane = blob[p * pb:(p + 1) * pb]
        chunks = [plane[k:k + bpb] for k in range(0, pb, bpb)]
        for j, chunk in enumerate(chunks):
            pad = bpb - len(chunk)
            filler = rng.randbytes(pad) if rng is not None else bytes(pad)
            beats.append({"data": int.from_bytes(chunk + filler, "little"), "count": len(chunk),
                          "plane": cfg.width - 1 - p, "first": int(p == 0 and j == 0),
                          "last": int(p == planes - 1 and j == len(chunks) - 1)})
    return beats


def split_bytes_of(beats: list[dict], bytes_per_beat: int) -> list[bytes]:
    """The bytes of each block on the plane side (``count`` bytes of every beat)."""
    blocks, current = [], bytearray()
    for beat in beats:
        current += beat["data"].to_bytes(bytes_per_beat, "little")[:beat["count"]]
        if beat["last"]:
            blocks.append(bytes(current))
            current = bytearray()
    assert not current, f"{len(current)} plane bytes after the last block's end"
    return blocks


@parametrised(timeout_ms=50)
async def test_bitplane_split(dut, seed, source, sink):
    """Values → planes, vs :func:`golden.camc.bitplane_split`, beat by beat and byte by byte."""
    cfg = load_config()
    await start_clock_and_reset(dut, [dut.i__valid, dut.o__ready])
    blocks = bitplane_blocks(cfg, np.random.default_rng(100 + seed))
    beats = []
    for index, values in enumerate(blocks):
        # block 1 is full and sent without `last`: the unit ends it at block_values itself
        beats += value_beats(cfg, values, last=index != 1)
    expected = [beat for values in blocks
                for beat in plane_beats(cfg, bitplane_split(values, cfg.fmt), len(values),
                                        cfg.width)]
    source_stall, sink_stall = patterns(source, sink, seed)
    driver = StreamDriver(dut, "i", dut.clk, source_stall, layout=cfg.value_layout, seed=seed)
    monitor = StreamMonitor(dut, "o", dut.clk, sink_stall, layout=cfg.plane_layout)
    driver.extend(beats)
    await drain_and_check(dut.clk, [driver], [monitor], [expected], lambda: [monitor.received],
                          "o", quiet_cycles=8 * cfg.width + 32)
    assert driver.sent == beats
    assert split_bytes_of(monitor.received, cfg.bytes_per_beat) == [
        bitplane_split(values, cfg.fmt) for values in blocks]


def merge_requests(cfg, rng: np.random.Generator) -> list[tuple[np.ndarray, int]]:
    """(values, planes) per block: every plane, sign and exponent only, one, none, a few
    random counts; counts that are not multiples of ``values_per_cycle`` included."""
    f = FORMATS[cfg.fmt]
    blocks = bitplane_blocks(cfg, rng)
    planes = [cfg.width, f.sign_bits + f.exp_bits, cfg.width - 2, 1, 0]
    requests = list(zip(blocks, planes, strict=True))
    requests.append((blocks[0][:cfg.block_values - 3], int(rng.integers(1, cfg.width + 1))))
    requests.append((blocks[4][:5], cfg.width))
    return requests


@parametrised(timeout_ms=50)
async def test_bitplane_merge(dut, seed, source, sink):
    """Top ``p`` golden planes → values, vs :func:`golden.camc.bitplane_merge`."""
    cfg = load_config()
    await start_clock_and_reset(dut, [dut.i__valid, dut.i_block__valid, dut.o__ready])
    requests = merge_requests(cfg, np.random.default_rng(200 + seed))
    filler = random.Random(f"merge-filler:{seed}")
    descriptors, beats, expected, values_out = [], [], [], []
    for values, planes in requests:
        count = len(values)
        blob = bitplane_split(values, cfg.fmt)[:planes * plane_bytes(count)]
        descriptors.append({"count": count, "planes": planes})
        beats += plane_beats(cfg, blob, count, planes, filler)
        merged = bitplane_merge(blob, cfg.fmt, count, planes).tolist()
        values_out.append(merged)
        expected += value_beats(cfg, merged)
    source_stall, sink_stall = patterns(source, sink, seed)
    block_stall, _ = patterns(source, sink, seed, 1)
    blocks = StreamDriver(dut, "i_block", dut.clk, block_stall, layout=cfg.block_layout,
                          seed=seed + 1)
    driver = StreamDriver(dut, "i", dut.clk, source_stall, layout=cfg.plane_layout, seed=seed)
    monitor = StreamMonitor(dut, "o", dut.clk, sink_stall, layout=cfg.value_layout)
    blocks.extend(descriptors)
    driver.extend(beats)
    await drain_and_check(dut.clk, [blocks, driver], [monitor], [expected],
                          lambda: [monitor.received], "o", quiet_cycles=8 * cfg.width + 32)
    assert blocks.sent == descriptors and driver.sent == beats
    w, v = cfg.width, cfg.values_per_cycle
    got = [(b["data"] >> (k * w)) & ((1 << w) - 1) for b in monitor.received for k in range(v)]
    flat = [x for merged in values_out for x in merged + [0] * (-len(merged) % v)]
    assert got == flat


# -- LZ4 compressor ------------------------------------------------------------------------------

def gaussian_bitplanes(rng: np.random.Generator, count: int) -> bytes:
    """Bit planes of ``count`` Gaussian bf16 values (``2 * count`` bytes), KV-cache-like."""
    values = (rng.standard_normal(count) * 0.02).astype(np.float32)
    return bitplane_split((values.view(np.uint32) >> 16).astype(np.uint16), "bf16")


def compressor_blocks(cfg, seed: int) -> list[bytes]:
    """Random, all-zero, repetitive and Gaussian bit-plane blocks, a few short ones (no match
    searched below 13 bytes), the same block twice, and one packet past ``max_block_bytes``
    (split into two blocks)."""
    rng = random.Random(f"lz4c:{seed}")
    size = cfg.max_block_bytes
    n = min(size, 512)
    pattern = rng.randbytes(rng.randint(1, 9))
    words = b"".join(rng.choice([b"key ", b"value ", b"cache ", b"token "]) for _ in range(n))
    repeated = rng.randbytes(n)
    return [
        rng.randbytes(n),
        bytes(n),
        (pattern * n)[:n],
        words[:n],
        gaussian_bitplanes(np.random.default_rng(seed), n // 2),
        repeated,
        repeated,
        rng.randbytes(1),
        bytes(12),
        bytes(13),
        bytes([rng.randrange(4) for _ in range(40)]),
        (pattern * size)[:size + 40],
    ]


def compressor_expected(cfg, blocks: list[bytes]):
    """Raw chunks (packets split at ``max_block_bytes``), ``o`` beats and ``o_status``."""
    size = cfg.max_block_bytes
    chunks, beats, statuses = [], [], []
    for block in blocks:
        for start in range(0, len(block), size):
            chunk = block[start:start + size]
            out = lz4_compress_block(chunk, hash_bits=cfg.hash_bits, max_offset=cfg.max_offset)
            chunks.append(chunk)
            beats += [{"data": b, "first": int(j == 0), "last": int(j == len(out) - 1)}
                      for j, b in enumerate(out)]
            statuses.append({"compressed_length": len(out), "raw_length": len(chunk),
                             "split": int(start + size < len(block))})
    return chunks, beats, statuses


def byte_beats(blocks: list[bytes]) -> list[dict]:
    return [{"data": b, "first": int(j == 0), "last": int(j == len(block) - 1)}
            for block in blocks for j, b in enumerate(block)]


def packets_of(beats: list[dict]) -> list[bytes]:
    out, current = [], bytearray()
    for beat in beats:
        current.append(beat["data"])
        if beat["last"]:
            out.append(bytes(current))
            current = bytearray()
    assert not current, f"{len(current)} bytes after the last packet's end"
    return out


@parametrised(timeout_ms=50)
async def test_lz4_compressor(dut, seed, source, sink):
    """Blocks back to back → ``o`` == golden ``lz4_compress_block``, ``lz4`` decodes it back;
    ``o_status`` lengths and split flag right."""
    cfg = load_config()
    await start_clock_and_reset(dut, [dut.i__valid, dut.o__ready, dut.o_status__ready])
    blocks = compressor_blocks(cfg, seed)
    chunks, expected, statuses = compressor_expected(cfg, blocks)
    beats = byte_beats(blocks)
    layout = packet_layout(8)
    source_stall, sink_stall = patterns(source, sink, seed)
    _, status_stall = patterns(source, sink, seed, 1)
    driver = StreamDriver(dut, "i", dut.clk, source_stall, layout=layout, seed=seed)
    monitor = StreamMonitor(dut, "o", dut.clk, sink_stall, layout=layout)
    status = StreamMonitor(dut, "o_status", dut.clk, status_stall, layout=cfg.status_layout)
    driver.extend(beats)
    await drain_and_check(dut.clk, [driver], [monitor, status], [expected, statuses],
                          lambda: [monitor.received, status.received], "compressor",
                          quiet_cycles=200)
    assert driver.sent == beats
    outputs = packets_of(monitor.received)
    assert len(outputs) == len(chunks)
    for index, (chunk, out) in enumerate(zip(chunks, outputs, strict=True)):
        assert lz4.block.decompress(out, uncompressed_size=len(chunk)) == chunk, (
            f"block {index}: the lz4 library does not decode the output back")


# -- LZ4 decompressor ----------------------------------------------------------------------------

def decompressor_raw(seed: int) -> list[bytes]:
    """Uncompressed blocks: random, zero, short-period repeats (overlapping copies), text,
    Gaussian bit planes, short ones."""
    rng = random.Random(f"lz4d:{seed}")
    return [
        rng.randbytes(200),
        bytes(500),
        (rng.randbytes(3) * 60)[:173],
        (rng.randbytes(1) * 90),
        (rng.randbytes(7) * 40)[:250],
        b"the quick brown fox jumps over the lazy dog; " * 5 + rng.randbytes(9),
        gaussian_bitplanes(np.random.default_rng(seed), 192),
        b"",
        rng.randbytes(5),
        rng.randbytes(13),
    ]


def corrupt_blocks(max_output: int) -> dict[str, bytes]:
    """One crafted block per golden error kind (the error checked with the golden decoder)."""
    return {
        "truncated": b"\x1fa\x01\x00",                  # ends inside a match-length extension
        "literal_past_input": b"\x50abc",               # 5 literals announced, 3 sent
        "output_overflow": (b"\x1fa\x01\x00" + bytes([255]) * (max_output // 255) + b"\x00"
                            + b"\x10z"),                # a match past max_output
        "offset_zero": b"\x14a\x00\x00\x10b",
        "offset_before_start": b"\x14a\x02\x00\x10b",  # offset 2 with 1 byte produced
    }


def golden_verdict(block: bytes, max_output: int):
    try:
        return None, lz4_decompress_block(block, max_output)
    except LZ4FormatError as err:
        return err.kind, None


def decompressor_cases(cfg, seed: int):
    """``(compressed block, kind, expected output)``: library blocks (default and high
    compression modes), each corrupt block followed by a good one."""
    cases = []
    raw = decompressor_raw(seed)
    for index, block in enumerate(raw):
        mode = "high_compression" if (index + seed) % 2 else "default"
        cases.append((lz4.block.compress(block, store_size=False, mode=mode), None, block))
    for index, (kind, block) in enumerate(corrupt_blocks(cfg.max_block_bytes).items()):
        assert golden_verdict(block, cfg.max_block_bytes)[0] == kind
        # what is decoded before the bad field is out already: the literal "a"; of a literal
        # run that ends past the input, every byte the input holds, so "abc"
        cases.append((block, kind, b"abc" if kind == "literal_past_input" else b"a"))
        good = raw[(index + 2) % len(raw)]
        cases.append((lz4.block.compress(good, store_size=False, mode="high_compression"),
                      None, good))
    for block, kind, want in cases:
        if kind is None:
            assert golden_verdict(block, cfg.max_block_bytes) == (None, want)
    return cases


@parametrised(timeout_ms=50)
async def test_lz4_decompressor(dut, seed, source, sink):
    """``lz4`` library blocks → the original bytes; corrupt blocks → ``o_status`` error of the
    golden kind, and the next block decodes."""
    cfg = load_config()
    n = cfg.output_bytes_per_cycle
    await start_clock_and_reset(dut, [dut.i__valid, dut.o__ready, dut.o_status__ready])
    cases = decompressor_cases(cfg, seed)
    assert {kind for _, kind, _ in cases} == {None, *LZ4_ERRORS}
    blocks = [block for block, _, _ in cases]
    width = cfg.input_bytes_per_cycle
    beats = decompressor_beats(blocks, width, random.Random(seed))
    kind_codes = {name: code for code, name in enumerate((None, *LZ4_ERRORS))}
    expected_packets = [want for _, _, want in cases]
    expected_status = [{"error": int(kind is not None), "kind": kind_codes[kind],
                        "length": len(want)} for _, kind, want in cases]
    source_stall, sink_stall = patterns(source, sink, seed)
    _, status_stall = patterns(source, sink, seed, 1)
    driver = StreamDriver(dut, "i", dut.clk, source_stall, layout=cfg.input_layout, seed=seed)
    monitor = StreamMonitor(dut, "o", dut.clk, sink_stall, layout=cfg.output_layout)
    status = StreamMonitor(dut, "o_status", dut.clk, status_stall, layout=cfg.status_layout)
    driver.extend(beats)

    # the output compared byte by byte (every byte, then "end" for `last`), so the wait budget
    # of drain_and_check scales with the bytes, and a wrong byte fails at once
    expected_bytes = [item for want in expected_packets for item in [*want, "end"]]
    flat, seen, started = [], [0], [False]

    def collect():
        for beat in monitor.received[seen[0]:]:
            assert beat["first"] == int(not started[0]), f"first flag wrong on beat {beat}"
            assert 0 <= beat["count"] <= n, f"count out of range on {beat}"
            assert beat["data"] >> (8 * beat["count"]) == 0, f"lanes above count set: {beat}"
            flat.extend(beat["data"].to_bytes(n, "little")[:beat["count"]])
            if beat["last"]:
                flat.append("end")
            started[0] = not beat["last"]
        seen[0] = len(monitor.received)
        return [flat, status.received]

    await drain_and_check(dut.clk, [driver], [monitor, status],
                          [expected_bytes, expected_status], collect, "decompressor",
                          quiet_cycles=64)
    packets, current = [], bytearray()
    for item in flat:
        if item == "end":
            packets.append(bytes(current))
            current = bytearray()
        else:
            current.append(item)
    assert packets == expected_packets and not current
    assert driver.sent == beats



# -- the controller (with the DRAM model) and the controller with block RAM ---------------------

def controller_commands(cfg, seed: int) -> list[tuple]:
    """Writes of Gaussian, zero and random-bit blocks, reads at several precisions (one of an
    unmapped block), a rewrite and a short write packet: ``(block, write, precision,
    values)``."""
    rng = np.random.default_rng(seed)
    f = FORMATS[cfg.fmt]
    n = cfg.block_values
    gauss = (rng.normal(0, 0.02, n).astype(np.float32).view(np.uint32) >> 16).astype(f.dtype) \
        if f.width == 16 else rng.integers(0, 64, n).astype(f.dtype)
    kinds = [gauss, np.zeros(n, f.dtype), _random_values(cfg, rng, n)]
    mant = f.mant_bits
    commands = [(k, True, 0, v) for k, v in enumerate(kinds)]
    commands += [(0, False, mant, None), (1, False, 0, None), (2, False, mant, None),
                 (cfg.blocks - 1, False, 2, None), (0, False, 2, None)]
    commands += [(2, True, 0, gauss[:n // 2]), (2, False, mant, None), (0, False, mant, None)]
    return commands


async def _controller(dut, seed, source, sink, with_memory: bool):
    import cocotb

    from golden.camc.controller import ERRORS, ControllerModel
    from sim.cocotb_stream import serve_memory
    from sim.dram import DRAMModel, DRAMTiming

    cfg = load_config()
    inputs = [dut.i_cmd__valid, dut.i__valid, dut.o__ready, dut.o_status__ready]
    if with_memory:
        inputs += [dut.mem__cmd__ready, dut.mem__wdata__ready, dut.mem__rdata__valid]
    await start_clock_and_reset(dut, inputs)
    model = ControllerModel(cfg.fmt, cfg.block_values, cfg.groups, cfg.hash_bits,
                            blocks=cfg.blocks, memory_words=cfg.memory_words,
                            beat_bytes=cfg.mem_bytes)
    commands = controller_commands(cfg, seed)
    values_out, statuses = [], []
    for block, write, precision, values in commands:
        if write:
            status = model.write(block, values)
        else:
            got, status = model.read(block, precision)
            values_out += value_beats(cfg, got)
        statuses.append({"block": status.block, "write": int(status.write),
                         "error": ERRORS.index(status.error), "raw_bytes": status.raw_bytes,
                         "stored_bytes": status.stored_bytes})
    dram = None
    if with_memory:
        dram = DRAMModel(cfg.memory_port, DRAMTiming(latency=3 + seed, bytes_per_cycle=3.0),
                         words=cfg.memory_words)
        cocotb.start_soon(serve_memory(dut, dram, cfg.memory_port))
    cmd_stall, out_stall = patterns(source, sink, seed)
    value_stall, status_stall = patterns(source, sink, seed, 1)
    cmds = StreamDriver(dut, "i_cmd", dut.clk, cmd_stall, layout=cfg.command_layout, seed=seed)
    vals = StreamDriver(dut, "i", dut.clk, value_stall, layout=cfg.value_layout, seed=seed)
    out = StreamMonitor(dut, "o", dut.clk, out_stall, layout=cfg.value_layout)
    stat = StreamMonitor(dut, "o_status", dut.clk, status_stall, layout=cfg.status_layout)
    cmds.extend({"block": b, "write": int(w), "precision": p} for b, w, p, _ in commands)
    vals.extend(beat for b, w, p, v in commands if w for beat in value_beats(cfg, v))
    await drain_and_check(dut.clk, [cmds, vals], [out, stat], [values_out, statuses],
                          lambda: [out.received, stat.received], "camc", quiet_cycles=200)
    if dram is not None:
        for addr, word in model.memory.items():
            assert dram.storage.get(addr, 0) == word, f"memory word {addr}"


@parametrised(timeout_ms=200)
async def test_camc_controller(dut, seed, source, sink):
    """Commands through the controller and the DRAM model: values, statuses and the memory
    contents equal the golden model's."""
    await _controller(dut, seed, source, sink, with_memory=True)


@parametrised(timeout_ms=200)
async def test_camc(dut, seed, source, sink):
    """The same commands through the controller with its block RAM (the bitstream design)."""
    await _controller(dut, seed, source, sink, with_memory=False)
