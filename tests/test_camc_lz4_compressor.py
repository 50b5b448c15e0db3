"""amaranth.sim tests of the LZ4 block compressor: byte-identical to the golden model
``golden.camc.lz4_compress_block`` and accepted by the reference ``lz4`` decoder, under input
stalls and output back-pressure, several blocks back to back per simulation."""

import random

import lz4.block
import numpy as np
import pytest
from amaranth.back import verilog

from golden.camc import bitplane_split, lz4_compress_block, lz4_hash
from hw.camc.lz4_compressor import (
    PRESETS,
    LZ4Compressor,
    LZ4CompressorConfig,
)
from sim.bench.camc_rtl import compressor_throughput

CONFIGS = {
    # small table: many hash collisions; a 2-entry sequence queue: the match finder often
    # waits for the encoder
    "h8": LZ4CompressorConfig(hash_bits=8, max_block_bytes=1024, sequence_depth=2),
    # short window: candidates further than 100 bytes back must be refused
    "h10_w100": LZ4CompressorConfig(hash_bits=10, max_block_bytes=1024, max_offset=100),
}
# (seed, (input stalls, output back-pressure))
RUNS = [(0, ("none", "none")), (1, ("random", "heavy")), (2, ("bursty", "random")),
        (3, ("heavy", "alternate"))]


# ---- stimulus ----------------------------------------------------------------------------------

def random_bytes(rng, n):
    return bytes(rng.randrange(256) for _ in range(n))


def small_alphabet(rng, n):
    return bytes(rng.choice(b"abcd") for _ in range(n))


def periodic(rng, n, period):
    pattern = random_bytes(rng, period)
    return (pattern * (n // period + 1))[:n]


def words(rng, n):
    vocab = [b"the ", b"key ", b"value ", b"cache ", b"token ", b"attention ", b"head "]
    out = b""
    while len(out) < n:
        out += rng.choice(vocab)
    return out[:n]


def repeated_far(rng, n):
    """A random chunk of 150 bytes repeated: every match is 150 bytes back."""
    return periodic(rng, n, 150)


def gaussian_bitplanes(seed, count):
    """Bit planes of ``count`` Gaussian bf16 values (``2 * count`` bytes)."""
    values = np.random.default_rng(seed).standard_normal(count).astype(np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype(np.uint16)
    return bitplane_split(bf16, "bf16")


def mixed_blocks(seed):
    rng = random.Random(seed)
    alphabet = small_alphabet(rng, 400)
    return [
        random_bytes(rng, 300),          # incompressible, literal-length extension
        bytes(300),                      # one long overlapping match, match-length extension
        alphabet,
        periodic(rng, 150, rng.randint(1, 7)),
        gaussian_bitplanes(seed, 256),   # 512 bytes
        words(rng, 300),
        alphabet,                        # the same block again: the table must be reset
        repeated_far(rng, 400),
        periodic(rng, 13, 1),
        periodic(rng, 12, 1),
    ]


# ---- checks ------------------------------------------------------------------------------------

def check(cfg, blocks, stalls=("none", "none"), seed=0, status_stalls=None):
    """Run ``blocks`` through the RTL and compare every output with the golden model."""
    result = compressor_throughput(cfg, blocks, stalls=stalls, seed=seed,
                                status_stalls=status_stalls)
    size = cfg.max_block_bytes
    chunks, splits = [], []
    for block in blocks:
        for start in range(0, len(block), size):
            chunks.append(block[start:start + size])
            splits.append(int(start + size < len(block)))
    assert len(result["outputs"]) == len(chunks)
    for k, (chunk, out, status, split) in enumerate(
            zip(chunks, result["outputs"], result["statuses"], splits, strict=True)):
        golden = lz4_compress_block(chunk, hash_bits=cfg.hash_bits, max_offset=cfg.max_offset)
        assert out == golden, f"block {k} ({len(chunk)} bytes): RTL {out.hex()} != {golden.hex()}"
        assert lz4.block.decompress(out, uncompressed_size=len(chunk)) == chunk
        assert status == {"compressed_length": len(out), "raw_length": len(chunk),
                          "split": split}, f"block {k}"
    assert not result["left_over"], "output after the last block"
    return result


def compress_with_table(data, hash_bits, max_offset, table):
    """The golden algorithm, but starting from ``table`` instead of a table of zeros."""
    n, table, out = len(data), list(table), bytearray()
    hashes = lz4_hash(data, hash_bits).tolist()
    sequences, anchor, p = [], 0, 0
    while p <= n - 12 and n >= 13:
        c, table[hashes[p]] = table[hashes[p]], p
        if c < p and p - c <= max_offset and data[c:c + 4] == data[p:p + 4]:
            length = 4
            while p + length < n - 5 and data[c + length] == data[p + length]:
                length += 1
            sequences.append((anchor, p, p - c, length))
            for q in range(p + 1, min(p + length, n - 12 + 1)):
                table[hashes[q]] = q
            p += length
            anchor = p
        else:
            p += 1
    for start, end, offset, length in sequences:
        out += golden_sequence(data[start:end], offset, length)
    return bytes(out + golden_sequence(data[anchor:]))


def length_run(extra):
    return bytes([255] * (extra // 255) + [extra % 255])


def golden_sequence(literals, offset=0, length=0):
    """One sequence in the LZ4 block format (the last one has no match)."""
    code = length - 4 if length else 0
    out = bytes([(min(len(literals), 15) << 4) | min(code, 15)])
    out += length_run(len(literals) - 15) if len(literals) >= 15 else b""
    out += literals
    if length:
        out += offset.to_bytes(2, "little") + (length_run(code - 15) if code >= 15 else b"")
    return out


def test_table_needs_no_reset_between_blocks():
    # the RTL never clears its hash table: any stale content must give the golden output
    rng = random.Random(4)
    kinds = [random_bytes, small_alphabet, words, lambda r, n: periodic(r, n, r.randint(1, 9)),
             lambda r, n: bytes(n)]
    for trial in range(300):
        hash_bits = rng.choice([4, 6, 8])
        data = rng.choice(kinds)(rng, rng.randint(1, 300))
        max_offset = rng.choice([1, 7, 100, 65535])
        golden = lz4_compress_block(data, hash_bits=hash_bits, max_offset=max_offset)
        assert compress_with_table(data, hash_bits, max_offset, [0] * (1 << hash_bits)) == golden
        garbage = [rng.randrange(1024) for _ in range(1 << hash_bits)]
        assert compress_with_table(data, hash_bits, max_offset, garbage) == golden, trial


@pytest.mark.parametrize("seed,stalls", RUNS, ids=[f"{s}-{'-'.join(st)}" for s, st in RUNS])
@pytest.mark.parametrize("name", CONFIGS)
def test_matches_golden_on_mixed_blocks(name, seed, stalls):
    check(CONFIGS[name], mixed_blocks(seed), stalls, seed)


@pytest.mark.parametrize("name", CONFIGS)
def test_short_blocks(name):
    # 1..20 bytes: no search below 13 bytes, the 12/13 boundary, the last 5 bytes literal
    rng = random.Random(7)
    blocks = []
    for n in range(1, 21):
        blocks += [bytes(n), small_alphabet(rng, n), periodic(rng, n, 2)]
    # slow status sink: a block's last byte must wait until the status before it is taken
    check(CONFIGS[name], blocks, ("random", "random"), seed=5, status_stalls="bursty")


def test_offset_limit_is_exercised():
    rng = random.Random(3)
    block = repeated_far(rng, 400)
    limited = lz4_compress_block(block, hash_bits=10, max_offset=100)
    assert limited != lz4_compress_block(block, hash_bits=10)
    assert len(limited) > len(block)  # no match within 100 bytes
    # offset exactly 100 is allowed, 101 is not
    edge = [periodic(rng, 250, 100), periodic(rng, 250, 101)]
    assert [len(lz4_compress_block(b, 10, 100)) < 250 for b in edge] == [True, False]
    check(CONFIGS["h10_w100"], [block, block[:200], *edge], ("every_fourth", "none"))


def test_back_to_back_short_matches():
    # matches of exactly MINMATCH that end where the next one starts, and matches whose end
    # is still in the candidate pipeline when they are found: the positions after a match
    # must be looked up from the table the golden model sees (tiny preset: 256-byte blocks)
    rng = random.Random(9)
    grams = [random_bytes(rng, 4) for _ in range(6)]
    blocks = [b"".join(rng.choice(grams) + random_bytes(rng, rng.randint(0, 2))
                       for _ in range(60)) for _ in range(3)]
    blocks.append(b"".join(rng.choice(grams) for _ in range(64)))
    check(PRESETS["tiny"], blocks, ("random", "random"), seed=4)


def test_long_packets_are_split_into_blocks():
    cfg = LZ4CompressorConfig(hash_bits=6, max_block_bytes=64)
    rng = random.Random(11)
    blocks = [bytes(64), small_alphabet(rng, 65), words(rng, 150), bytes(128), b"x",
              random_bytes(rng, 70)]
    check(cfg, blocks, ("random", "random"), seed=2)


# Three full blocks without stalls. The encoder sends a block's last literals while the next
# block arrives, so the last block's tail (up to a block of literals) is not hidden: about 1.0
# cycle per byte in a long run, 1.1-1.45 over three blocks.
@pytest.mark.parametrize("kind,bound", [("random", 1.5), ("zeros", 1.1), ("bitplanes", 1.3)])
def test_throughput(kind, bound):
    rng = random.Random(1)
    make = {"random": lambda k: random_bytes(rng, 1024), "zeros": lambda k: bytes(1024),
            "bitplanes": lambda k: gaussian_bitplanes(k, 512)}[kind]
    result = check(CONFIGS["h10_w100"], [make(k) for k in range(3)])
    assert result["cycles_per_input_byte"] < bound


def test_config_is_validated():
    with pytest.raises(ValueError, match=r"hash_bits must be at most 16, not 20"):
        LZ4CompressorConfig(hash_bits=20)
    with pytest.raises(ValueError, match=r"max_block_bytes must be a power of two, not 1000"):
        LZ4CompressorConfig(max_block_bytes=1000)
    with pytest.raises(ValueError, match=r"max_offset must be at least 1, not 0"):
        LZ4CompressorConfig(max_offset=0)
    with pytest.raises(ValueError, match=r"max_offset must be at most 65535"):
        LZ4CompressorConfig(max_offset=70000)
    with pytest.raises(ValueError, match=r"sequence_depth must be at least 2, not 1"):
        LZ4CompressorConfig(sequence_depth=1)


@pytest.mark.parametrize("preset", PRESETS)
def test_verilog_export(preset):
    text = verilog.convert(LZ4Compressor(PRESETS[preset]), name="lz4_compressor")
    assert "module lz4_compressor" in text
    for port in ("i__payload", "o__payload", "o_status__payload", "o_status__ready"):
        assert port in text
