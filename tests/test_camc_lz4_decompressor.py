"""LZ4 block decompressor (``hw.camc.lz4_decompressor``) in ``amaranth.sim`` against the
golden decoder and the ``lz4`` library, with stalls, back-pressure and corrupt blocks."""

import random

import lz4.block
import numpy as np
import pytest
from amaranth.back import verilog

from golden.camc import (
    LZ4_ERRORS,
    LZ4FormatError,
    bitplane_split,
    lz4_compress_block,
    lz4_decompress_block,
)
from hw.camc.lz4_decompressor import (
    ERROR_NAMES,
    LITERAL_LATENCY,
    PRESETS,
    STATUS_LATENCY,
    LZ4Decompressor,
    LZ4DecompressorConfig,
)
from sim.bench.camc_rtl import decompressor_beats, decompressor_throughput
from sim.stalls import stall_pattern
from sim.stream import simulate, stream_get, stream_put

MAX = 1024


def gaussian_bf16(n, rng, scale=0.02):
    bits = rng.normal(0, scale, n).astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def sample_data(seed):
    """Uncompressed test blocks: random, zero, repeating with offsets 1-8, short, bit planes."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    blocks = {
        "random": rng.randbytes(300),
        "zeros": bytes(700),
        "bitplanes": bitplane_split(gaussian_bf16(256, nrng), "bf16"),
        "text": b"the quick brown fox jumps over the lazy dog; " * 6 + rng.randbytes(20),
    }
    for period in range(1, 9):
        blocks[f"period{period}"] = (rng.randbytes(period) * (150 // period + 1))[:150 + period]
    for length in (0, 1, 5, 12, 13, 20):
        blocks[f"short{length}"] = rng.randbytes(length)
    return blocks


def encodings(raw):
    yield "lz4", lz4.block.compress(raw, store_size=False)
    yield "lz4hc", lz4.block.compress(raw, store_size=False, mode="high_compression")
    yield "golden", lz4_compress_block(raw)


def golden_verdict(block, max_output=MAX):
    try:
        return None, lz4_decompress_block(block, max_output)
    except LZ4FormatError as err:
        return err.kind, None


def input_beats(cfg, blocks, seed=0, split="random"):
    """``i`` beats for ``blocks``: one byte each, or for ``input_bytes_per_cycle`` I > 1 runs
    of 1 to I bytes (``split="random"``, from ``seed``) or of I bytes (``"full"``)."""
    rng = random.Random(seed + 77) if split == "random" else None
    return decompressor_beats(blocks, cfg.input_bytes_per_cycle, rng)


def run(cfg, blocks, *, seed=0, i_stall="none", o_stall="none", s_stall="none",
        timeout=60_000, split="random"):
    """Send ``blocks`` back to back; returns ``[(kind, bytes), ...]`` per block plus the
    cycle of each input transfer (once per byte it carries) and of each status rise (for
    latency checks)."""
    dut = LZ4Decompressor(cfg)
    n = cfg.output_bytes_per_cycle
    width = cfg.input_bytes_per_cycle
    beats = input_beats(cfg, blocks, seed, split)
    packets, statuses, trace = [], [], {"taken": [], "status": [], "beats": [],
                                                 "counts": []}

    async def source(ctx):
        await stream_put(ctx, dut.i, beats, stall=stall_pattern(i_stall, seed))

    async def sink(ctx):
        pressure = stall_pattern(o_stall, seed + 1)
        current, started = bytearray(), False
        while len(packets) < len(blocks):
            (beat,) = await stream_get(ctx, dut.o, 1, backpressure=pressure, timeout=timeout)
            assert beat["first"] == (not started), f"first flag wrong on {beat}"
            assert 0 <= beat["count"] <= n
            assert beat["data"] >> (8 * beat["count"]) == 0, "lanes above count not zero"
            current += beat["data"].to_bytes(n, "little")[:beat["count"]]
            assert len(current) <= cfg.max_block_bytes, "more than max_block_bytes sent"
            started = True
            if beat["last"]:
                packets.append(bytes(current))
                current, started = bytearray(), False

    async def status(ctx):
        statuses.extend(await stream_get(ctx, dut.o_status, len(blocks),
                                         backpressure=stall_pattern(s_stall, seed + 2),
                                         timeout=timeout))

    async def monitor(ctx):
        cycle, was_valid = 0, False
        i_count = dut.i.payload.count if width > 1 else dut.i.valid
        async for _, _, i_valid, i_ready, s_valid, o_valid, o_ready, o_count, bytes_in in \
                ctx.tick().sample(dut.i.valid, dut.i.ready, dut.o_status.valid, dut.o.valid,
                                  dut.o.ready, dut.o.payload.count, i_count):
            if i_valid and i_ready:
                trace["taken"] += [cycle] * bytes_in
            if o_valid and o_ready and o_count:
                trace["beats"].append(cycle)
                trace["counts"].append(o_count)
            if s_valid and not was_valid:
                trace["status"].append(cycle)
            was_valid = s_valid
            cycle += 1

    simulate(dut, source, sink, status, background=[monitor])
    results = []
    for packet, st in zip(packets, statuses, strict=True):
        kind = ERROR_NAMES[st["kind"]]
        assert st["error"] == (kind is not None)
        assert st["length"] == len(packet), f"status length {st['length']} != {len(packet)}"
        results.append((kind, packet))
    return results, trace


def check_against_golden(cfg, blocks, results):
    for index, (block, (kind, packet)) in enumerate(zip(blocks, results, strict=True)):
        want_kind, want = golden_verdict(block, cfg.max_block_bytes)
        assert kind == want_kind, f"block {index}: verdict {kind} != golden {want_kind}"
        if kind is None:
            assert packet == want, f"block {index}: output differs from the golden decoder"
        else:
            assert len(packet) <= cfg.max_block_bytes


# --- good blocks ---------------------------------------------------------------------------

STALLS = ["none/none", "random/heavy", "bursty/alternate", "heavy/random"]   # i / o


@pytest.mark.parametrize("n,width,seed,stalls",
                         [(4, 1, seed, stalls) for seed, stalls in enumerate(STALLS)]
                         + [(n, 1, seed, STALLS[seed]) for n in (2, 1) for seed in (0, 1)]
                         + [(4, 4, seed, stalls) for seed, stalls in enumerate(STALLS)]
                         + [(4, 2, 1, STALLS[1]), (2, 2, 2, STALLS[2]), (4, 3, 3, STALLS[0])])
def test_decodes_library_and_golden_blocks(n, width, seed, stalls):
    cfg = LZ4DecompressorConfig(max_block_bytes=MAX, output_bytes_per_cycle=n,
                                input_bytes_per_cycle=width)
    raw, blocks = [], []
    data = sample_data(seed)
    for index, (name, block_raw) in enumerate(data.items()):
        for enc_index, (_, block) in enumerate(encodings(block_raw)):
            # spread the three encoders over the seeds to keep the run short
            if (index + enc_index + seed) % 3 == 0 or name.startswith(("period", "bitplanes")):
                raw.append(block_raw)
                blocks.append(block)
    i_stall, o_stall = stalls.split("/")
    results, _ = run(cfg, blocks, seed=seed, i_stall=i_stall, o_stall=o_stall, s_stall=o_stall)
    for want, (kind, packet) in zip(raw, results, strict=True):
        assert kind is None
        assert packet == want


@pytest.mark.parametrize("width", [1, 4])
def test_overlapping_offsets_all_lengths(width):
    """Every offset 1..9 with every match length 4..21, built by hand."""
    cfg = LZ4DecompressorConfig(max_block_bytes=256, output_bytes_per_cycle=4,
                                input_bytes_per_cycle=width)
    raw, blocks = [], []
    rng = random.Random(7)
    for offset in range(1, 10):
        seed_bytes = rng.randbytes(offset)
        block = bytearray()
        out = bytearray()
        for match_len in range(4, 22, 3):
            literals = seed_bytes if not out else rng.randbytes(rng.randint(0, 2))
            token_ml = match_len - 4
            block.append((len(literals) << 4) | min(token_ml, 15))
            block += literals
            out += literals
            block += offset.to_bytes(2, "little")
            if token_ml >= 15:
                block.append(token_ml - 15)
            start = len(out) - offset
            for k in range(match_len):
                out.append(out[start + k])
        block += bytes([0x30]) + b"end"
        out += b"end"
        assert lz4_decompress_block(bytes(block), 256) == bytes(out)
        raw.append(bytes(out))
        blocks.append(bytes(block))
    results, _ = run(cfg, blocks, i_stall="random", o_stall="bursty")
    assert [packet for _, packet in results] == raw
    assert all(kind is None for kind, _ in results)


@pytest.mark.parametrize("width,seed", [(1, 0), (4, 1)])
def test_output_exactly_max_block_bytes(width, seed):
    """A block of exactly ``max_block_bytes`` decodes; one byte more overflows."""
    cfg = LZ4DecompressorConfig(max_block_bytes=64, output_bytes_per_cycle=4,
                                input_bytes_per_cycle=width)
    rng = random.Random(3)
    raws = [bytes(64), rng.randbytes(64), b"ab" * 32, bytes(65), rng.randbytes(65)]
    blocks = [lz4.block.compress(raw, store_size=False) for raw in raws]
    results, _ = run(cfg, blocks, seed=seed, i_stall="every_fourth", o_stall="random")
    assert results[:3] == [(None, raw) for raw in raws[:3]]
    assert [kind for kind, _ in results[3:]] == ["output_overflow"] * 2
    check_against_golden(cfg, blocks, results)


# --- corrupt blocks ------------------------------------------------------------------------

def deciding_byte(block, max_output):
    """Index of the input byte whose arrival decides the golden verdict (mirror of the golden
    parse: the bad field's final byte; for a literal overflow, the run's final byte)."""
    kind, _ = golden_verdict(block, max_output)
    try:
        lz4_decompress_block(block, max_output)
    except LZ4FormatError as err:
        if kind in ("truncated", "literal_past_input"):
            return len(block) - 1
        if kind in ("offset_zero", "offset_before_start"):
            return err.position + 1
        # output_overflow: a match is decided by its last length byte; a literal run by its
        # final byte (the golden decoder checks the input first)
        if _is_literal_overflow(block, err.position, max_output):
            return err.position + _literal_length_before(block, err.position) - 1
        return err.position - 1
    return len(block) - 1


def _walk(block):
    """(kind, field_end, length) for each literal run / match of a well-formed prefix."""
    ip, end = 0, len(block)
    while ip < end:
        token = block[ip]
        ip += 1
        lit = token >> 4
        if lit == 15:
            while ip < end:
                lit += block[ip]
                ip += 1
                if block[ip - 1] != 255:
                    break
        yield "literal", ip, lit
        ip += lit
        if ip >= end:
            return
        ip += 2
        ml = token & 15
        if ml == 15:
            while ip < end:
                ml += block[ip]
                ip += 1
                if block[ip - 1] != 255:
                    break
        yield "match", ip, ml + 4


def _is_literal_overflow(block, position, max_output):
    return any(kind == "literal" and ip == position for kind, ip, _ in _walk(block))


def _literal_length_before(block, position):
    return next(n for kind, ip, n in _walk(block) if kind == "literal" and ip == position)


def crafted_errors(max_output):
    big_literals = bytes([0xF0]) + bytes([255]) * (max_output // 255) + bytes([10])
    return {
        "truncated": [b"\xf0", b"\x1fa\x01\x00", b"\x14a\x01\x00", b"\x10a\x01",
                      bytes([0xF0, 255])],
        "literal_past_input": [b"\x50abc", bytes([0xF0, 3]) + b"x" * 17, b"\x30"],
        "output_overflow": [big_literals + b"y" * (max_output + 40) + b"\x00",
                            b"\x1fa\x01\x00" + bytes([255]) * (max_output // 255) + b"\x00"
                            + b"\x10z"],
        "offset_zero": [b"\x14a\x00\x00\x10b"],
        "offset_before_start": [b"\x14a\x02\x00\x10b", b"\x04\x01\x00\x10b"],
    }


def check_status_bound(cfg, blocks, trace, max_output, parser_waits=False):
    """Every verdict is on ``o_status`` after the transfer of its deciding byte, and before
    the transfer of the next block's first byte. With byte beats it comes exactly
    STATUS_LATENCY cycles after (a byte is taken when it is read); with wide beats at most
    ``cfg.status_bound`` cycles after, unless the parser waits (``parser_waits``: the output
    or the status is stalled, so the command queue may fill and the window hold bytes)."""
    starts = np.cumsum([0] + [len(b) for b in blocks])
    assert len(trace["taken"]) == starts[-1], "input not all taken"
    for index, block in enumerate(blocks):
        decided = trace["taken"][starts[index] + deciding_byte(block, max_output)]
        late = trace["status"][index] - decided
        assert late > 0, f"block {index}: verdict {late} cycles after its byte"
        if cfg.input_bytes_per_cycle == 1:
            assert late == STATUS_LATENCY, f"block {index}: verdict {late} cycles after its byte"
        elif not parser_waits:
            assert late <= cfg.status_bound, \
                f"block {index}: verdict {late} cycles after its byte"
        if index + 1 < len(blocks):
            assert trace["status"][index] <= trace["taken"][starts[index + 1]], \
                f"block {index}: verdict after the next block's first byte was taken"


@pytest.mark.parametrize("width,split", [(1, "random"), (4, "random"), (4, "full")])
def test_crafted_errors_flag_bound_and_recover(width, split):
    cfg = LZ4DecompressorConfig(max_block_bytes=256, output_bytes_per_cycle=4,
                                input_bytes_per_cycle=width)
    good_raw = b"recovered block " * 4
    good = lz4.block.compress(good_raw, store_size=False)
    cases = [(kind, block) for kind, blocks in crafted_errors(256).items() for block in blocks]
    assert {kind for kind, _ in cases} == set(LZ4_ERRORS)
    blocks = []
    for _, block in cases:
        blocks += [block, good]
    results, trace = run(cfg, blocks, split=split)
    check_status_bound(cfg, blocks, trace, 256)
    for index, (kind, block) in enumerate(cases):
        assert golden_verdict(block, 256)[0] == kind
        got_kind, packet = results[2 * index]
        assert got_kind == kind, f"{block!r}: {got_kind} != {kind}"
        assert len(packet) <= 256
        if kind == "literal_past_input" and block[0] >> 4 != 15:
            # the run's bytes that the input holds are out, then the packet ends
            assert packet == block[1:], f"{block!r}: sent {packet!r}"
        assert results[2 * index + 1] == (None, good_raw)


def test_literal_latency():
    """With no stalls a literal byte leaves on ``o`` exactly LITERAL_LATENCY cycles after it
    is taken (a literal-only block: one input byte per output beat)."""
    cfg = LZ4DecompressorConfig(max_block_bytes=MAX, output_bytes_per_cycle=4)
    raw = b"fourteen bytes"
    block = bytes([len(raw) << 4]) + raw
    results, trace = run(cfg, [block])
    assert results == [(None, raw)]
    assert [o - i for i, o in zip(trace["taken"][1:], trace["beats"], strict=True)] \
        == [LITERAL_LATENCY] * len(raw)


def test_wide_literal_latency():
    """With 4-byte beats a literal byte leaves ``cfg.literal_latency`` cycles after its ``i``
    beat is taken when the parser reads it the cycle after (the input window adds one cycle
    to LITERAL_LATENCY), never sooner; the 14-byte run leaves in 4 beats on consecutive
    cycles."""
    cfg = LZ4DecompressorConfig(max_block_bytes=MAX, output_bytes_per_cycle=4,
                                input_bytes_per_cycle=4)
    assert cfg.literal_latency == LITERAL_LATENCY + 1
    raw = b"fourteen bytes"
    block = bytes([len(raw) << 4]) + raw
    results, trace = run(cfg, [block], split="full")
    assert results == [(None, raw)]
    beats = trace["beats"]
    assert beats == list(range(beats[0], beats[0] + 4)), beats
    # the cycle each output byte left: a beat carries up to 4 bytes, in order
    counts = trace["counts"]
    left = [cycle for cycle, count in zip(beats, counts, strict=True) for _ in range(count)]
    latency = [o - i for i, o in zip(trace["taken"][1:], left, strict=True)]
    assert min(latency) == cfg.literal_latency, latency


@pytest.mark.parametrize("width", [1, 4])
def test_status_bound_on_good_blocks(width):
    cfg = LZ4DecompressorConfig(max_block_bytes=MAX, output_bytes_per_cycle=4,
                                input_bytes_per_cycle=width)
    blocks = [lz4.block.compress(b"abcd" * 50 + bytes(range(40)), store_size=False), b"\x00",
              lz4_compress_block(bytes(300))]
    _, trace = run(cfg, blocks)
    check_status_bound(cfg, blocks, trace, MAX)


@pytest.mark.parametrize("seed,width", [(0, 1), (1, 1), (2, 4), (3, 2)])
def test_random_corruption_matches_golden(seed, width):
    rng = random.Random(seed)
    n = 4 if seed % 2 == 0 else 2
    cfg = LZ4DecompressorConfig(max_block_bytes=256, output_bytes_per_cycle=n,
                                input_bytes_per_cycle=width)
    sources = [rng.randbytes(60), bytes(200), b"xyz" * 60, rng.randbytes(10) * 20,
               (b"hello " * 30)[:rng.randint(50, 180)]]
    blocks = []
    for _ in range(30):
        raw = rng.choice(sources)
        block = bytearray(rng.choice([lz4.block.compress(raw, store_size=False),
                                      lz4_compress_block(raw)]))
        action = rng.random()
        if action < 0.6:
            for _ in range(rng.randint(1, 3)):
                block[rng.randrange(len(block))] = rng.randrange(256)
        elif action < 0.8 and len(block) > 1:
            del block[rng.randrange(1, len(block)):]
        elif action < 0.9:
            block[0] |= 0x0F     # long match lengths: overflows
        blocks.append(bytes(block))
    kinds = {golden_verdict(b, 256)[0] for b in blocks}
    assert len(kinds) >= 3, f"fuzz too narrow: {kinds}"
    results, trace = run(cfg, blocks, seed=seed, i_stall="random", o_stall="random",
                         s_stall="alternate")
    check_against_golden(cfg, blocks, results)
    check_status_bound(cfg, blocks, trace, 256, parser_waits=True)


# --- throughput and Verilog ----------------------------------------------------------------

def throughput_figures(n=4, seed=0, width=1):
    rng = np.random.default_rng(seed)
    kinds = {
        "zeros": bytes(1024),
        "random": rng.integers(0, 256, 1024, dtype=np.uint8).tobytes(),
        "bitplanes": bitplane_split(gaussian_bf16(512, rng), "bf16"),
    }
    cfg = LZ4DecompressorConfig(max_block_bytes=1024, output_bytes_per_cycle=n,
                                input_bytes_per_cycle=width)
    return {name: decompressor_throughput(cfg, [lz4.block.compress(raw, store_size=False)])
            for name, raw in kinds.items()}


@pytest.mark.parametrize("width", [1, 4])
def test_throughput(capsys, width):
    figures = throughput_figures(width=width)
    with capsys.disabled():
        for name, fig in figures.items():
            print(f"\nlz4 decompressor N=4 I={width} {name}: {fig['bytes_per_cycle']:.2f} "
                  f"bytes/cycle ({fig['input_bytes']} -> {fig['output_bytes']} bytes, "
                  f"{fig['cycles']} cycles)")
    assert all(fig["output_bytes"] == 1024 for fig in figures.values())
    assert figures["zeros"]["bytes_per_cycle"] > 1
    if width > 1:
        # literal runs (random data stored as literals, bit planes) go faster than a byte
        # per cycle only with wide beats
        assert figures["random"]["bytes_per_cycle"] > 1
        assert figures["bitplanes"]["bytes_per_cycle"] > 1


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_verilog_and_config(preset):
    text = verilog.convert(LZ4Decompressor(PRESETS[preset]), name="lz4_decompressor")
    assert "module lz4_decompressor" in text
    assert "o_status__payload" in text


@pytest.mark.parametrize("field,value", [("max_block_bytes", 1000), ("max_block_bytes", 8),
                                         ("output_bytes_per_cycle", 3),
                                         ("command_depth", 1),
                                         ("input_bytes_per_cycle", 0),
                                         ("input_bytes_per_cycle", 5)])
def test_config_rejects(field, value):
    with pytest.raises(ValueError, match=field):
        LZ4DecompressorConfig(**{field: value})
