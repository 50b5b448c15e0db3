"""amaranth.sim tests of the Λ-shaped KV cache manager against golden.accllm.LambdaKVManager."""

import pytest

from golden import accllm as g
from hw.accllm.kv_manager import OPS, PRESETS, KVManagerConfig, LambdaKVManager
from sim.stalls import stall_pattern
from sim.stream import simulate, stream_get, stream_put

STALLS = [("none", "none"), ("random", "heavy"), ("bursty", "alternate")]
CONFIGS = [PRESETS["tiny"], KVManagerConfig(sink=0, window=3, entry_words=1, addr_width=8,
                                           pos_width=8),
           KVManagerConfig(sink=3, window=1, entry_words=8, base=200, addr_width=8,
                           pos_width=8)]


def golden_of(cfg: KVManagerConfig) -> g.LambdaKVManager:
    return g.LambdaKVManager(cfg.sink, cfg.window, cfg.entry_words, cfg.base, cfg.addr_width,
                             cfg.pos_width)


def run_manager(cfg, ops, *, stalls=("none", "none"), seed=0):
    dut = LambdaKVManager(cfg)
    model = golden_of(cfg)
    expected = [b for op in ops if op != "noop" for b in model.command(op)]
    commands = [{"op": OPS.get(op, 3)} for op in ops]
    done, received = [], []

    async def source(ctx):
        await stream_put(ctx, dut.i, commands, stall=stall_pattern(stalls[0], seed))
        done.append(True)

    async def sink(ctx):
        received.extend(await stream_get(ctx, dut.o, len(expected), timeout=100_000,
                                         backpressure=stall_pattern(stalls[1], seed + 3)))
        for _ in range(8):
            ctx.set(dut.o.ready, 1)
            assert not ctx.get(dut.o.valid), "manager sent more beats than the commands ask"
            await ctx.tick()
        assert done, "manager did not take every command"

    simulate(dut, source, sink)
    return received, expected


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"s{c.sink}w{c.window}")
@pytest.mark.parametrize("stalls", STALLS, ids=lambda s: f"{s[0]}-{s[1]}")
def test_manager_matches_golden(cfg, stalls):
    ops = g.kv_command_sequence(0)
    received, expected = run_manager(cfg, ops, stalls=stalls, seed=1)
    assert received == expected
    assert any(b["evict"] for b in expected)


def test_smollm2_preset_window_wraps():
    cfg = PRESETS["smollm2"]
    ops = ["append"] * 140 + ["read"] + ["append"] * 3 + ["read"]
    received, expected = run_manager(cfg, ops, stalls=("random", "random"))
    assert received == expected
    assert len(expected) == 143 + 2 * (cfg.sink + cfg.window)


def test_config_validation():
    with pytest.raises(ValueError, match="window"):
        KVManagerConfig(window=0)
    with pytest.raises(ValueError, match="entry_words"):
        KVManagerConfig(entry_words=3)
    with pytest.raises(ValueError, match="addr_width"):
        KVManagerConfig(sink=4, window=128, entry_words=4, addr_width=8)
    with pytest.raises(ValueError, match="base"):
        KVManagerConfig(base=1 << 16)
