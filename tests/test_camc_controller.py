"""The camc controller (``hw.camc.controller``) in ``amaranth.sim`` against
``golden.camc.controller.ControllerModel``, with the DRAM model behind its memory port.

Every test compares, command by command, the values read (``==``), the status entries, the
counters and the memory contents the RTL wrote with the golden model's, and checks that no
output is left over. The stored groups are also decoded with the ``lz4`` library.
"""

import dataclasses
import random

import lz4.block
import numpy as np
import pytest

from golden.camc import plane_bytes
from golden.camc.controller import ERRORS, ControllerModel
from hw.camc.controller import PRESETS, CAMCConfig
from sim.bench.camc_rtl import run_controller
from sim.dram import DRAMTiming


def model_for(cfg: CAMCConfig) -> ControllerModel:
    return ControllerModel(cfg.fmt, cfg.block_values, cfg.groups, cfg.hash_bits,
                           blocks=cfg.blocks, memory_words=cfg.memory_words,
                           beat_bytes=cfg.mem_bytes)


def gaussian_values(cfg, rng, n=None, scale=0.02):
    n = cfg.block_values if n is None else n
    x = rng.normal(0, scale, n).astype(np.float32)
    if cfg.fmt == "bf16":
        return (x.view(np.uint32) >> 16).astype(np.uint16)
    if cfg.fmt == "fp16":
        return x.astype(np.float16).view(np.uint16)
    # fp8 e4m3: sign, 4 exponent bits around the bias, 3 mantissa bits
    return rng.integers(0, 256, n, dtype=np.uint8) & np.uint8(0xBF)


def block_kinds(cfg, rng):
    """Values that exercise every path: random bits (raw groups), zeros, Gaussian."""
    width = cfg.width
    dtype = np.uint16 if width == 16 else np.uint8
    return [gaussian_values(cfg, rng),
            np.zeros(cfg.block_values, dtype),
            rng.integers(0, 1 << width, cfg.block_values).astype(dtype),
            gaussian_values(cfg, rng, scale=1.0)]


def check_run(cfg, commands, run, model=None):
    """Replay ``commands`` on the golden model and compare everything ``run`` measured."""
    model = model or model_for(cfg)
    reads = iter(run["reads"])
    for (block, write, precision, values), status in zip(commands, run["statuses"],
                                                         strict=True):
        if write:
            expect = model.write(block, values)
        else:
            want, expect = model.read(block, precision)
            got = np.array(next(reads), dtype=model.format.dtype)
            if want is not None:
                np.testing.assert_array_equal(got, want, err_msg=f"read of block {block}")
        assert status == {"block": expect.block, "write": int(expect.write),
                          "error": ERRORS.index(expect.error), "raw_bytes": expect.raw_bytes,
                          "stored_bytes": expect.stored_bytes}, (block, write, precision)
    assert run["counters"] == model.counters
    assert not run["left_over"]
    dram = run["dram"]
    for addr, word in model.memory.items():
        assert dram.storage.get(addr, 0) == word, f"memory word {addr}"
    return model


def random_commands(cfg, rng, count, write_share=0.5):
    kinds = block_kinds(cfg, rng)
    mant = {"bf16": 7, "fp16": 10, "fp8_e4m3": 3}[cfg.fmt]
    commands, written = [], []
    for _ in range(count):
        if not written or rng.random() < write_share:
            block = int(rng.integers(cfg.blocks))
            commands.append((block, True, 0, kinds[int(rng.integers(len(kinds)))]))
            written.append(block)
        else:
            block = int(rng.choice(written)) if rng.random() < 0.9 else \
                int(rng.integers(cfg.blocks))
            commands.append((block, False, int(rng.integers(mant + 1)), None))
    return commands


# (preset, stall patterns on inputs / o / o_status, seed): every preset once with stalls,
# the 1-lane one also without
RANDOM_CASES = [("small", ("none", "none", "none"), 1),
                ("small", ("random", "bursty", "heavy"), 2),
                ("small2", ("heavy", "random", "bursty"), 3),
                ("fp16", ("bursty", "heavy", "random"), 4),
                ("fp8", ("random", "random", "random"), 5)]


@pytest.mark.parametrize(("preset", "stalls", "seed"), RANDOM_CASES,
                         ids=[f"{p}-{s[0]}-{n}" for p, s, n in RANDOM_CASES])
def test_random_commands_match_golden(preset, stalls, seed):
    cfg = PRESETS[preset]
    rng = np.random.default_rng(seed)
    commands = random_commands(cfg, rng, 8)
    timing = DRAMTiming(latency=int(rng.integers(1, 30)),
                        bytes_per_cycle=float(rng.choice([1.0, 4.0, 8.0])))
    run = run_controller(cfg, commands, stalls=stalls, seed=seed, timing=timing)
    check_run(cfg, commands, run)


def test_reduced_precision_fetches_fewer_bytes():
    cfg = PRESETS["small"]
    rng = np.random.default_rng(5)
    values = gaussian_values(cfg, rng)
    commands = [(1, True, 0, values)] + [(1, False, p, None) for p in range(8)]
    run = run_controller(cfg, commands)
    model = check_run(cfg, commands, run)
    fetched = [s["stored_bytes"] for s in run["statuses"][1:]]
    assert fetched == sorted(fetched) and fetched[0] < fetched[-1]
    # precision 0 keeps sign and exponent only: every mantissa bit is zero
    assert not any(v & 0x7F for v in run["reads"][0])
    assert model.block_map[1].stored_bytes == sum(model.block_map[1].stored)


def test_stored_groups_decode_with_the_lz4_library():
    cfg = PRESETS["small"]
    rng = np.random.default_rng(9)
    kinds = block_kinds(cfg, rng)
    commands = [(k, True, 0, v) for k, v in enumerate(kinds)]
    run = run_controller(cfg, commands)
    model = check_run(cfg, commands, run)
    dram = run["dram"]
    compressed = 0
    for block, values in enumerate(kinds):
        entry = model.block_map[block]
        words = dram.dump(entry.addr, -(-entry.stored_bytes // cfg.mem_bytes))
        stored = b"".join(w.to_bytes(cfg.mem_bytes, "little") for w in words)
        from golden.camc import bitplane_split
        planes = bitplane_split(values, cfg.fmt)
        pos = raw_pos = 0
        for g, planes_in_group in enumerate(cfg.plane_groups):
            size = planes_in_group * plane_bytes(cfg.block_values)
            group = stored[pos:pos + entry.stored[g]]
            pos += entry.stored[g]
            want = planes[raw_pos:raw_pos + size]
            raw_pos += size
            if entry.raw[g]:
                assert group == want
            else:
                compressed += 1
                assert len(group) < size
                assert lz4.block.decompress(group, uncompressed_size=size) == want
    assert compressed >= 3


@pytest.mark.parametrize("preset", ["small", "small2"])
def test_real_weights_and_kv_cache_round_trip(preset, smollm2_tensors):
    """Real BF16 weights and a real KV cache, written and read back at full and reduced
    precision."""
    cfg = PRESETS[preset]
    weights, kv = smollm2_tensors
    n = cfg.block_values
    blocks = [weights[k * n:(k + 1) * n] for k in range(3)] + \
             [kv[k * n:(k + 1) * n] for k in range(3)]
    commands = [(k, True, 0, v) for k, v in enumerate(blocks)]
    commands += [(k, False, p, None) for k in range(len(blocks)) for p in (7, 3)]
    run = run_controller(cfg, commands, stalls=("random", "random", "random"), seed=3)
    check_run(cfg, commands, run)
    for k, values in enumerate(blocks):
        np.testing.assert_array_equal(np.array(run["reads"][2 * k], np.uint16), values)
    assert run["counters"]["stored_written"] < run["counters"]["raw_written"]


@pytest.fixture(scope="module")
def smollm2_tensors():
    from golden.camc.estimate import kv_cache_values, weight_values

    weights = weight_values("smollm2", 1 << 13)
    kv = kv_cache_values(tokens=32)[0]     # layer 0 keys, [tokens][channels]
    return (np.asarray(weights, np.uint16).reshape(-1),
            np.asarray(kv, np.uint16).reshape(-1))


def _corrupt(rng, stored: bytearray, kind: str) -> None:
    if kind == "flip":
        for _ in range(3):
            stored[int(rng.integers(len(stored)))] ^= 1 << int(rng.integers(8))
    elif kind == "truncate":  # a token that promises more literals than the group holds
        stored[-6] = 0xF0
        stored[-5] = 0xFF
    elif kind == "offset":  # a match reaching before the block start
        stored[0] = 0x10
        stored[2] = 0xFF
        stored[3] = 0xFF
    elif kind == "zeros":
        stored[:] = bytes(len(stored))


@pytest.mark.parametrize("seed", range(2))
def test_corrupt_memory_raises_the_error_and_the_lane_recovers(seed):
    """Blocks damaged in memory behind the controller's back: the read reports ``corrupt``
    exactly when the golden decoder fails, still returns one whole packet, and the good block
    read after it is exact."""
    cfg = PRESETS["small"] if seed % 2 == 0 else PRESETS["small2"]
    rng = np.random.default_rng(seed)
    good = gaussian_values(cfg, rng)
    model = model_for(cfg)
    commands = [(k, True, 0, good) for k in range(4)]
    for k in range(4):
        model.write(k, good)
    kinds = [["flip", "truncate", "offset"], ["truncate", "offset", "zeros"]][seed]

    def corrupt(dram):
        # damage the first (compressed) group of blocks 0-2; block 3 stays good
        for block, kind in zip(range(3), kinds, strict=True):
            entry = model.block_map[block]
            assert not entry.raw[0]
            blob = bytearray(model.read_bytes(entry.addr, entry.stored_bytes))
            group = blob[:entry.stored[0]]
            _corrupt(rng, group, kind)
            blob[:entry.stored[0]] = group
            model.write_bytes(entry.addr, bytes(blob))
            for k in range(-(-entry.stored_bytes // cfg.mem_bytes)):
                dram.storage[entry.addr + k] = model.memory[entry.addr + k]

    reads = [(k, False, 7, None) for k in (0, 3, 1, 3, 2, 3)]
    run = run_controller(cfg, commands + reads, stalls=("random", "random", "random"),
                         seed=seed, timing=DRAMTiming(latency=4), pause_after=4,
                         on_pause=corrupt)
    replay = model_for(cfg)
    for k in range(4):
        replay.write(k, good)
    replay.memory = dict(model.memory)
    # the writes' statuses were checked against `model` before the damage
    run_reads = dict(run, statuses=run["statuses"][4:])
    check_run(cfg, reads, run_reads, replay)
    errors = [s["error"] for s in run["statuses"][4:]]
    assert errors[1::2] == [0, 0, 0]
    assert ERRORS.index("corrupt") in errors[0::2]
    for k in (1, 3, 5):
        np.testing.assert_array_equal(np.array(run["reads"][k], np.uint16), good)


def test_unmapped_read_and_full_memory():
    cfg = dataclasses.replace(PRESETS["small"], memory_words=160)
    rng = np.random.default_rng(4)
    noise = rng.integers(0, 1 << 16, cfg.block_values).astype(np.uint16)
    commands = [(2, False, 7, None), (0, True, 0, noise), (1, True, 0, noise),
                (0, False, 7, None), (1, False, 7, None), (5, False, 3, None)]
    run = run_controller(cfg, commands)
    check_run(cfg, commands, run)
    errors = [ERRORS[s["error"]] for s in run["statuses"]]
    assert errors == ["unmapped", "none", "full", "none", "unmapped", "unmapped"]


def test_write_packets_of_the_wrong_length():
    cfg = PRESETS["small2"]
    rng = np.random.default_rng(6)
    values = gaussian_values(cfg, rng)
    short = values[:100]
    long = np.concatenate([values, values[:64]])
    commands = [(0, True, 0, short), (1, True, 0, long), (2, True, 0, values),
                (0, False, 7, None), (1, False, 7, None), (2, False, 7, None)]
    run = run_controller(cfg, commands, stalls=("bursty", "random", "none"), seed=2)
    check_run(cfg, commands, run)
    assert [ERRORS[s["error"]] for s in run["statuses"][:3]] == ["length", "length", "none"]


@pytest.mark.parametrize(("field", "value"), [
    ("lanes", 0), ("lanes", 9), ("fmt", "fp32"), ("block_values", 100),
    ("values_per_cycle", 3), ("groups", (8, 8, 1)), ("blocks", 12), ("hash_bits", 3),
    ("mem_data_width", 24), ("memory_words", 1 << 20), ("output_bytes_per_cycle", 3)])
def test_bad_config_names_the_parameter(field, value):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(CAMCConfig(), **{field: value})


def test_random_lengths_model_agrees_with_itself():
    """The golden model's fetch plan is the shortest group prefix covering the precision."""
    cfg = PRESETS["small"]
    model = model_for(cfg)
    rng = random.Random(1)
    model.write(0, gaussian_values(cfg, np.random.default_rng(1)))
    for precision in range(8):
        groups, nbytes = model.fetch_plan(0, precision)
        assert cfg.read_plan(precision)[0] == groups
        assert nbytes == sum(model.block_map[0].stored[:groups])
    assert rng
