"""amaranth.sim tests of the bit-plane split and merge units against golden.camc.bitplane."""

import dataclasses

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Fragment

from golden.camc.bitplane import FORMATS, bitplane_merge, bitplane_split, plane_bytes
from hw.camc.bitplane import PRESETS, BitplaneConfig, BitplaneMerge, BitplaneSplit
from sim.stalls import stall_pattern
from sim.stream import simulate, stream_get, stream_put

# (input stalls, output back-pressure)
STALLS = [("random", "heavy"), ("bursty", "random"), ("every_fourth", "alternate")]

CONFIGS = [
    BitplaneConfig("bf16", 64, 1),
    BitplaneConfig("bf16", 96, 4),      # 96 values: the last tile of a full block is partial
    BitplaneConfig("fp16", 64, 2),
    BitplaneConfig("fp8_e4m3", 64, 1),
    BitplaneConfig("fp8_e4m3", 128, 8),
]


# ---- stimulus and expected results ----------------------------------------------------------

def edge_values(fmt: str) -> list[int]:
    """0, -0, +-inf, NaNs, subnormals, largest finite, all ones."""
    f = FORMATS[fmt]
    sign = 1 << (f.width - 1)
    mant_max = (1 << f.mant_bits) - 1
    exp = f.exp_mask
    vals = [0, sign, exp, exp | sign, exp | 1, exp | mant_max, 1, mant_max, sign | 1,
            exp - (1 << f.mant_bits) | mant_max, (1 << f.width) - 1, sign | mant_max]
    return vals


def make_blocks(cfg: BitplaneConfig, rng: np.random.Generator) -> list[np.ndarray]:
    """Back-to-back blocks: full random, full of edge patterns, short, one beat, full."""
    f = FORMATS[cfg.fmt]
    n, v = cfg.block_values, cfg.values_per_cycle

    def rand(count):
        return rng.integers(0, 1 << f.width, count, dtype=np.int64).astype(f.dtype)

    edges = np.resize(np.array(edge_values(cfg.fmt), dtype=f.dtype), n)
    rng.shuffle(edges)
    short = 3 * v if v >= 4 else 13 * v      # not a multiple of 8 values (except v = 8)
    return [rand(n), edges, rand(short), rand(v), rand(n)]


def value_beats(cfg: BitplaneConfig, blocks, *, last_on_full=True) -> list[dict]:
    """Value-side beats of ``blocks``; ``last`` on each block's final beat (on full blocks
    only if ``last_on_full``: the unit also ends a block at ``block_values``)."""
    w, v = cfg.width, cfg.values_per_cycle
    beats = []
    for values in blocks:
        assert len(values) % v == 0
        rows = len(values) // v
        for r in range(rows):
            lanes = values[r * v:(r + 1) * v]
            last = r == rows - 1 and (last_on_full or len(values) < cfg.block_values)
            beats.append({"data": sum(int(x) << (k * w) for k, x in enumerate(lanes)),
                          "first": int(r == 0), "last": int(last)})
    return beats


def beats_to_values(cfg: BitplaneConfig, beats) -> list[int]:
    w, v = cfg.width, cfg.values_per_cycle
    return [(b["data"] >> (k * w)) & ((1 << w) - 1) for b in beats for k in range(v)]


def plane_beats(cfg: BitplaneConfig, blob: bytes, count: int, planes: int,
                rng: np.random.Generator | None = None) -> list[dict]:
    """Plane-side beats of ``planes`` planes of ``count`` values as the split sends them;
    with ``rng``, the bytes past the end of each plane are random (the merge ignores them)."""
    bpb, pb = cfg.bytes_per_beat, plane_bytes(count)
    beats = []
    for p in range(planes):
        plane = blob[p * pb:(p + 1) * pb]
        chunks = [plane[k:k + bpb] for k in range(0, pb, bpb)]
        for j, chunk in enumerate(chunks):
            pad = bpb - len(chunk)
            filler = bytes(rng.integers(0, 256, pad).tolist()) if rng is not None else bytes(pad)
            beats.append({
                "data": int.from_bytes(chunk + filler, "little"), "count": len(chunk),
                "plane": cfg.width - 1 - p,
                "first": int(p == 0 and j == 0),
                "last": int(p == planes - 1 and j == len(chunks) - 1)})
    return beats


def expected_split_beats(cfg: BitplaneConfig, blocks) -> list[dict]:
    return [beat for values in blocks
            for beat in plane_beats(cfg, bitplane_split(values, cfg.fmt), len(values),
                                    cfg.width)]


# ---- running the units ----------------------------------------------------------------------

class _Cycles:
    """Background testbench noting the cycle of every transfer on ``stream`` (and ``last``)."""

    def __init__(self, stream):
        self.stream, self.transfers, self.lasts = stream, [], []

    async def process(self, ctx):
        cycle = 0
        async for _, _, valid, ready, payload in ctx.tick().sample(
                self.stream.valid, self.stream.ready, self.stream.payload):
            if valid and ready:
                self.transfers.append(cycle)
                if payload.last:
                    self.lasts.append(cycle)
            cycle += 1


def run_split(cfg, blocks, *, seed=0, stalls=("none", "none"), last_on_full=True,
              timeout=20_000):
    dut = BitplaneSplit(cfg)
    sent = value_beats(cfg, blocks, last_on_full=last_on_full)
    count = sum(cfg.width * -(-plane_bytes(len(b)) // cfg.bytes_per_beat) for b in blocks)
    received = []
    cycles_in, cycles_out = _Cycles(dut.i), _Cycles(dut.o)

    done = []

    async def source(ctx):
        await stream_put(ctx, dut.i, sent, stall=stall_pattern(stalls[0], seed))
        done.append("i")

    async def sink(ctx):
        received.extend(await stream_get(ctx, dut.o, count, timeout=timeout,
                                         backpressure=stall_pattern(stalls[1], seed + 100)))
        # nothing more may come out, and every input beat must have been taken
        for _ in range(3 * cfg.width):
            ctx.set(dut.o.ready, 1)
            assert not ctx.get(dut.o.valid), "split sent more beats than the blocks hold"
            await ctx.tick()
        assert done == ["i"], "split did not take every value beat"

    simulate(dut, source, sink, background=[cycles_in.process, cycles_out.process])
    return received, cycles_in, cycles_out


def run_merge(cfg, requests, *, seed=0, stalls=("none", "none"), timeout=20_000):
    """``requests``: (values, planes) per block; the plane bytes come from the golden split."""
    dut = BitplaneMerge(cfg)
    rng = np.random.default_rng(seed)
    descriptors, sent = [], []
    for values, planes in requests:
        blob = bitplane_split(values, cfg.fmt)
        descriptors.append({"count": len(values), "planes": planes})
        sent += plane_beats(cfg, blob, len(values), planes, rng)
    count = sum(-(-len(values) // cfg.values_per_cycle) for values, _ in requests)
    received = []
    cycles_in, cycles_out = _Cycles(dut.i), _Cycles(dut.o)

    done = []

    async def block_source(ctx):
        await stream_put(ctx, dut.i_block, descriptors, stall=stall_pattern(stalls[0], seed + 7))
        done.append("i_block")

    async def source(ctx):
        await stream_put(ctx, dut.i, sent, stall=stall_pattern(stalls[0], seed))
        done.append("i")

    async def sink(ctx):
        received.extend(await stream_get(ctx, dut.o, count, timeout=timeout,
                                         backpressure=stall_pattern(stalls[1], seed + 100)))
        for _ in range(3 * cfg.width):
            ctx.set(dut.o.ready, 1)
            assert not ctx.get(dut.o.valid), "merge sent more beats than the blocks hold"
            await ctx.tick()
        assert sorted(done) == ["i", "i_block"], f"merge took only {done} to the end"

    simulate(dut, block_source, source, sink,
             background=[cycles_in.process, cycles_out.process])
    return received, cycles_in, cycles_out


def expected_merge_beats(cfg, requests) -> list[dict]:
    v, w = cfg.values_per_cycle, cfg.width
    beats = []
    for values, planes in requests:
        count = len(values)
        blob = bitplane_split(values, cfg.fmt)[:planes * plane_bytes(count)]
        out = bitplane_merge(blob, cfg.fmt, count, planes).tolist()
        out += [0] * (-count % v)
        rows = len(out) // v
        for r in range(rows):
            beats.append({"data": sum(x << (k * w) for k, x in enumerate(out[r * v:(r + 1) * v])),
                          "first": int(r == 0), "last": int(r == rows - 1)})
    return beats


def measure_throughput(cfg: BitplaneConfig, unit: str = "split", blocks: int = 4,
                       planes: int | None = None, stalls=("none", "none"), seed: int = 0) -> dict:
    """Sustained values per cycle of ``unit`` ("split" or "merge") over ``blocks`` full
    back-to-back random blocks: values of blocks 2..n over the cycles between the last output
    beat of block 1 and that of block n. Also the latency (cycles from a block's last input
    beat taken to its first output beat taken, without back-pressure)."""
    if blocks < 2:
        raise ValueError(f"blocks must be at least 2, not {blocks!r}")
    f = FORMATS[cfg.fmt]
    rng = np.random.default_rng(seed)
    data = [rng.integers(0, 1 << f.width, cfg.block_values).astype(f.dtype)
            for _ in range(blocks)]
    if unit == "split":
        received, cin, cout = run_split(cfg, data, seed=seed, stalls=stalls,
                                        timeout=100 * cfg.block_values * blocks)
        assert received == expected_split_beats(cfg, data)
    elif unit == "merge":
        planes = cfg.width if planes is None else planes
        requests = [(values, planes) for values in data]
        received, cin, cout = run_merge(cfg, requests, seed=seed, stalls=stalls,
                                        timeout=100 * cfg.block_values * blocks)
        assert received == expected_merge_beats(cfg, requests)
    else:
        raise ValueError(f"unit must be 'split' or 'merge', not {unit!r}")
    ends = cout.lasts
    first_out = [cout.transfers[0]] + [t for t in cout.transfers if t - 1 in ends]
    cycles = ends[-1] - ends[0]
    return {
        "unit": unit, "cfg": dataclasses.asdict(cfg), "planes": planes,
        "values_per_cycle": cfg.block_values * (blocks - 1) / cycles,
        "cycles_per_block": cycles / (blocks - 1),
        "latency": first_out[0] - cin.lasts[0],
    }


# ---- tests ----------------------------------------------------------------------------------

def test_config_validation():
    with pytest.raises(ValueError, match="fmt must be one of .* not 'fp32'"):
        BitplaneConfig(fmt="fp32")
    with pytest.raises(ValueError, match="values_per_cycle must be one of .* not 3"):
        BitplaneConfig(values_per_cycle=3)
    with pytest.raises(ValueError, match="block_values must be a multiple of 8.* not 100"):
        BitplaneConfig(block_values=100)
    with pytest.raises(ValueError, match="block_values must be at least 8"):
        BitplaneConfig(block_values=0)
    assert set(PRESETS) >= {"default", "fp16", "fp8"}
    assert PRESETS["default"].fmt == "bf16"
    cfg = BitplaneConfig("bf16", 2048, 1)
    assert cfg.memory_bits == 2 * 16 * 2048 and cfg.bytes_per_beat == 2


@pytest.mark.parametrize("cfg", CONFIGS, ids=repr)
def test_split_matches_golden(cfg):
    blocks = make_blocks(cfg, np.random.default_rng(1))
    received, _, _ = run_split(cfg, blocks)
    expected = expected_split_beats(cfg, blocks)
    assert received == expected
    # and the bytes, concatenated per block, are the golden split
    k = 0
    for values in blocks:
        n = cfg.width * -(-plane_bytes(len(values)) // cfg.bytes_per_beat)
        got = b"".join(b["data"].to_bytes(cfg.bytes_per_beat, "little")[:b["count"]]
                       for b in received[k:k + n])
        assert got == bitplane_split(values, cfg.fmt)
        k += n
    assert k == len(received)


@pytest.mark.parametrize("cfg", CONFIGS, ids=repr)
def test_merge_matches_golden(cfg):
    rng = np.random.default_rng(2)
    blocks = make_blocks(cfg, rng)
    f = FORMATS[cfg.fmt]
    planes = [cfg.width, cfg.width, f.sign_bits + f.exp_bits, cfg.width, 1]
    requests = list(zip(blocks, planes, strict=True))
    # counts that are not a multiple of values_per_cycle (lanes past count come out zero)
    requests.append((blocks[0][:cfg.block_values - 3], cfg.width))
    requests.append((blocks[1][:5], cfg.width - 2))
    received, _, _ = run_merge(cfg, requests)
    assert received == expected_merge_beats(cfg, requests)
    full_values = [v for v, p in requests if p == cfg.width]
    got = beats_to_values(cfg, received)
    assert got[:cfg.block_values] == full_values[0].tolist()


@pytest.mark.parametrize("cfg", [CONFIGS[0], CONFIGS[2]], ids=repr)
def test_merge_every_plane_count(cfg):
    rng = np.random.default_rng(3)
    f = FORMATS[cfg.fmt]
    values = rng.integers(0, 1 << f.width, 40).astype(f.dtype)
    requests = [(values, p) for p in range(cfg.width, -1, -1)]
    received, _, _ = run_merge(cfg, requests)
    assert received == expected_merge_beats(cfg, requests)


@pytest.mark.parametrize("stalls", STALLS, ids="-".join)
@pytest.mark.parametrize("cfg", [CONFIGS[0], CONFIGS[1], CONFIGS[4]], ids=repr)
def test_split_under_stalls(cfg, stalls):
    for seed in (0, 1, 2):
        blocks = make_blocks(cfg, np.random.default_rng(10 + seed))
        received, _, _ = run_split(cfg, blocks, seed=seed, stalls=stalls, last_on_full=False)
        assert received == expected_split_beats(cfg, blocks)


@pytest.mark.parametrize("stalls", STALLS, ids="-".join)
@pytest.mark.parametrize("cfg", [CONFIGS[0], CONFIGS[2], CONFIGS[4]], ids=repr)
def test_merge_under_stalls(cfg, stalls):
    for seed in (0, 1, 2):
        rng = np.random.default_rng(20 + seed)
        blocks = make_blocks(cfg, rng)
        planes = rng.integers(1, cfg.width + 1, len(blocks)).tolist()
        requests = list(zip(blocks, planes, strict=True))
        received, _, _ = run_merge(cfg, requests, seed=seed, stalls=stalls)
        assert received == expected_merge_beats(cfg, requests)


def test_split_then_merge_round_trip_default_preset():
    """The larger smoke case: one full 4 KiB BF16 block through both units."""
    cfg = PRESETS["default"]
    f = FORMATS[cfg.fmt]
    values = np.random.default_rng(4).integers(0, 1 << f.width, cfg.block_values)
    values = values.astype(f.dtype)
    planes, _, _ = run_split(cfg, [values])
    merged, _, _ = run_merge(cfg, [(values, cfg.width)])
    assert b"".join(b["data"].to_bytes(cfg.bytes_per_beat, "little") for b in planes) == \
        bitplane_split(values, cfg.fmt)
    assert beats_to_values(cfg, merged) == values.tolist()


@pytest.mark.parametrize("cfg", [CONFIGS[0], CONFIGS[1], CONFIGS[4]], ids=repr)
def test_throughput_full_rate(cfg):
    split = measure_throughput(cfg, "split", blocks=3)
    merge = measure_throughput(cfg, "merge", blocks=3)
    reduced = measure_throughput(cfg, "merge", blocks=3, planes=FORMATS[cfg.fmt].exp_bits + 1)
    # a tile takes `width` cycles on the plane side even when the block ends it early
    rows = cfg.block_values // cfg.values_per_cycle
    expected = cfg.block_values / max(rows, cfg.width * cfg.tiles)
    for result in (split, merge, reduced):
        assert result["values_per_cycle"] == expected, result
        if cfg.block_values % cfg.word_width == 0:
            assert expected == cfg.values_per_cycle
            # documented: `width + 4` for both (the block RAM's output register on the read side)
            assert result["latency"] == cfg.width + 4, result


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_verilog_convert_presets(preset):
    cfg = PRESETS[preset]
    for cls in (BitplaneSplit, BitplaneMerge):
        text = verilog.convert(cls(cfg), name=f"bitplane_{cls.__name__.lower()}")
        assert "i__payload" in text and "o__payload" in text


def test_ports_are_stream_layouts():
    cfg = BitplaneConfig("bf16", 64, 2)
    split, merge = BitplaneSplit(cfg), BitplaneMerge(cfg)
    assert split.o.payload.shape() == merge.i.payload.shape() == cfg.plane_layout
    assert split.i.payload.shape() == merge.o.payload.shape() == cfg.value_layout
    assert merge.i_block.payload.shape() == cfg.block_layout
    for dut in (split, merge):
        Fragment.get(dut, None)     # elaborates (and marks as used)
