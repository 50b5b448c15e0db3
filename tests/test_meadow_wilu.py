"""amaranth.sim tests of the WILU: real SmolLM2 int8 weights packed by golden.meadow come back
exactly, under stalls on every port; throughput one chunk per cycle within packets."""

import numpy as np
import pytest
from amaranth.back import verilog

from golden.meadow import pack_weights, packed_bits, quantize_int8
from hw.meadow.wilu import PRESETS, WILU, WILUConfig
from sim.stalls import stall_pattern
from sim.stream import simulate, stream_get, stream_put

SMALL = PRESETS["small"]
STALLS = [("none", "none"), ("random", "heavy"), ("bursty", "alternate"),
          ("heavy", "none")]


@pytest.fixture(scope="module")
def real_int8():
    from golden.models.weights import load_smollm2

    _, weights = load_smollm2()
    return {name: quantize_int8(weights[name]) for name in
            ("blk.0.attn_v.weight", "blk.7.ffn_down.weight")}


def chunk_word(chunk) -> int:
    return sum((int(v) & 0xFF) << (8 * c) for c, v in enumerate(chunk))


def run_wilu(cfg, matrices, *, stalls=("none", "none"), seed=0):
    """Load each packed matrix's table, then its packet stream; returns the chunks received
    per matrix and the cycles of each transfer on ``o``."""
    dut = WILU(cfg)
    packed = [pack_weights(w, cfg.chunk, cfg.packet) for w in matrices]
    for p in packed:
        assert len(p.table) <= cfg.max_unique
    received, cycles, loaded = [], [], []

    async def tables_and_jobs(ctx):
        for p in packed:
            # the table may be rewritten only once the previous matrix has come out
            while len(received) < sum(x.ids.size for x in packed[:len(loaded)]):
                await ctx.tick()
            table = [{"data": chunk_word(c), "first": int(k == 0)}
                     for k, c in enumerate(p.table)]
            await stream_put(ctx, dut.i_table, table, stall=stall_pattern(stalls[0], seed))
            await stream_put(ctx, dut.i_job, [{"ids": int(p.ids.size)}])
            loaded.append(p)

    async def words(ctx):
        for k, p in enumerate(packed):
            while len(loaded) <= k:
                await ctx.tick()
            beats = [{"data": w} for w in packed_bits(p, cfg.word_bits)]
            await stream_put(ctx, dut.i, beats, stall=stall_pattern(stalls[0], seed + 1))

    async def sink(ctx):
        for p in packed:
            received.extend(await stream_get(ctx, dut.o, int(p.ids.size), timeout=50_000,
                                             backpressure=stall_pattern(stalls[1], seed + 2)))
        for _ in range(20):
            ctx.set(dut.o.ready, 1)
            assert not ctx.get(dut.o.valid), "WILU sent more chunks than IDs"
            await ctx.tick()

    async def watch(ctx):
        cycle = 0
        async for _, _, valid, ready in ctx.tick().sample(dut.o.valid, dut.o.ready):
            if valid and ready:
                cycles.append(cycle)
            cycle += 1

    simulate(dut, tables_and_jobs, words, sink, background=[watch])
    return packed, received, cycles


def expected(cfg, packed):
    out = []
    for p in packed:
        chunks = p.table[p.ids.reshape(-1)]
        n = len(chunks)
        out += [{"data": chunk_word(c), "first": int(k == 0), "last": int(k == n - 1)}
                for k, c in enumerate(chunks)]
    return out


def test_config_validation():
    with pytest.raises(ValueError, match="max_unique must be a power of two, not 300"):
        WILUConfig(max_unique=300)
    with pytest.raises(ValueError, match="chunk must be at most 8"):
        WILUConfig(chunk=9)
    with pytest.raises(ValueError, match="word_bits must be one of"):
        WILUConfig(word_bits=48)
    assert WILUConfig().id_bits == 16


@pytest.mark.parametrize("stalls", STALLS, ids="-".join)
def test_round_trip_real_weights(real_int8, stalls):
    """Two real int8 weight tiles (different tables) back to back, plus an all-zero tile whose
    packets have 0-bit IDs."""
    a = real_int8["blk.0.attn_v.weight"][:5, :48]
    b = real_int8["blk.7.ffn_down.weight"][3:6, :64]
    zeros = np.zeros((2, 40), np.int8)
    for seed in (0, 1):
        packed, received, _ = run_wilu(SMALL, [a, b, zeros], stalls=stalls, seed=seed)
        assert received == expected(SMALL, packed)
        assert packed[2].id_widths.tolist() == [0] * len(packed[2].id_widths)
        # and back to the weights themselves
        got = [np.array([(r["data"] >> (8 * c)) & 0xFF for c in range(SMALL.chunk)],
                        np.uint8).view(np.int8) for r in received[:a.size // SMALL.chunk]]
        assert (np.concatenate(got).reshape(a.shape) == a).all()


@pytest.mark.parametrize("cfg", [SMALL, WILUConfig(chunk=4, max_unique=256, packet=8,
                                                    word_bits=64)], ids=["small", "c4w64"])
def test_throughput_one_chunk_per_cycle_in_packets(real_int8, cfg):
    w = real_int8["blk.0.attn_v.weight"][:4, :64]
    packed, received, cycles = run_wilu(cfg, [w])
    assert received == expected(cfg, packed)
    span = cycles[-1] - cycles[0] + 1
    packets = len(packed[0].id_widths)
    # one cycle per ID plus one per packet header (the first header is before the span)
    assert span <= len(received) + packets


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_convert(preset):
    text = verilog.convert(WILU(PRESETS[preset]), name="meadow_wilu")
    assert "o__payload" in text
