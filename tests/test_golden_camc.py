"""Golden model of the ``camc`` family, checked against the ``lz4`` and ``zstandard``
libraries and against hand cases."""

import struct

import lz4.block
import numpy as np
import pytest

from golden.camc import (
    DEFAULT_PLANE_GROUPS,
    FORMATS,
    LZ4_ERRORS,
    SCHEMES,
    BlockFormatError,
    LZ4FormatError,
    bitplane_merge,
    bitplane_split,
    byteplane_merge,
    byteplane_split,
    decode_block,
    encode_block,
    footprint,
    kv_from_channel_major,
    kv_to_channel_major,
    lz4_compress_block,
    lz4_decompress_block,
    lz4_hash,
    parse_header,
    plane_bytes,
    read_plan,
    truncate_mantissa,
)

# Patterns that must survive every transform: zeros, infinities, NaNs, subnormals, extremes.
EDGE = {
    "bf16": [0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0x7F81, 0xFFFF, 0x0001, 0x807F, 0x3F80,
             0x0080, 0x7F7F],
    "fp16": [0x0000, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0x7C01, 0xFFFF, 0x0001, 0x83FF, 0x3C00,
             0x0400, 0x7BFF],
    "fp8_e4m3": [0x00, 0x80, 0x7F, 0xFF, 0x01, 0x87, 0x38, 0x08, 0x7E, 0xFE],
}


def random_values(fmt, n, rng):
    f = FORMATS[fmt]
    values = rng.integers(0, 1 << f.width, n).astype(f.dtype)
    return np.concatenate([np.array(EDGE[fmt], dtype=f.dtype), values])


def gaussian_bf16(n, rng, scale=0.02):
    """BF16 patterns of Gaussian weights (round to nearest even from float32)."""
    bits = rng.normal(0, scale, n).astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


# --- bit planes ---------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("n", [0, 1, 7, 8, 13, 2048])
def test_bitplane_round_trip(fmt, n):
    rng = np.random.default_rng(n)
    values = random_values(fmt, n, rng)
    data = bitplane_split(values, fmt)
    assert len(data) == FORMATS[fmt].width * plane_bytes(values.size)
    np.testing.assert_array_equal(bitplane_merge(data, fmt, values.size), values)
    np.testing.assert_array_equal(byteplane_merge(byteplane_split(values, fmt), fmt,
                                                  values.size), values)


def test_bitplane_hand_case():
    # Value 0 in the MSB of each plane byte, planes MSB first, partial byte zero padded.
    values = np.array([0x8001, 0x0001, 0x0003, 0, 0, 0, 0, 0, 0xFFFF], dtype=np.uint16)
    data = bitplane_split(values, "bf16")
    planes = [data[2 * k:2 * k + 2] for k in range(16)]  # planes[0] is bit 15
    assert planes[0] == bytes([0b10000000, 0b10000000])
    assert planes[15] == bytes([0b11100000, 0b10000000])  # bit 0
    assert planes[14] == bytes([0b00100000, 0b10000000])  # bit 1
    assert all(plane == bytes([0, 0x80]) for plane in planes[1:14])
    for k in range(16):
        bits = np.unpackbits(np.frombuffer(planes[15 - k], np.uint8))[:9]
        np.testing.assert_array_equal(bits, (values >> k) & 1)
    assert byteplane_split(values[:2], "bf16") == bytes([0x80, 0x00, 0x01, 0x01])
    # Missing low planes read as zeros.
    np.testing.assert_array_equal(bitplane_merge(data[:2 * 9], "bf16", 9, planes=9),
                                  values & 0xFF80)


def test_truncate_mantissa():
    values = np.array([0x3FFF, 0xBF81, 0x7F81], dtype=np.uint16)
    assert truncate_mantissa(values, "bf16", 3).tolist() == [0x3FF0, 0xBF80, 0x7F80]
    assert truncate_mantissa(values, "bf16", None).tolist() == values.tolist()
    assert truncate_mantissa([0x7F], "fp8_e4m3", 0).tolist() == [0x78]


# --- LZ4 ----------------------------------------------------------------------------------

def reference_compress(data, hash_bits=12, max_offset=65535):
    """The module docstring's algorithm, written plainly (no strides, no precomputation)."""
    def hash4(p):
        word = int.from_bytes(data[p:p + 4], "little")
        return ((word * 2654435761) & 0xFFFFFFFF) >> (32 - hash_bits)

    def put_len(out, extra):
        out += b"\xff" * (extra // 255) + bytes([extra % 255])

    n, out, table, p, anchor = len(data), bytearray(), [0] * (1 << hash_bits), 0, 0
    while n >= 13 and p <= n - 12:
        c, table[hash4(p)] = table[hash4(p)], p
        if c < p and p - c <= max_offset and data[c:c + 4] == data[p:p + 4]:
            length = 4
            while p + length < n - 5 and data[c + length] == data[p + length]:
                length += 1
            lit = p - anchor
            out.append(min(lit, 15) << 4 | min(length - 4, 15))
            if lit >= 15:
                put_len(out, lit - 15)
            out += data[anchor:p] + (p - c).to_bytes(2, "little")
            if length >= 19:
                put_len(out, length - 19)
            for q in range(p + 1, min(p + length, n - 11)):
                table[hash4(q)] = q
            p = anchor = p + length
        else:
            p += 1
    lit = n - anchor
    out.append(min(lit, 15) << 4)
    if lit >= 15:
        put_len(out, lit - 15)
    return bytes(out + data[anchor:])


def sequences(block):
    """``(literal length, offset, match length)`` of every sequence of a valid LZ4 block."""
    seqs, ip = [], 0

    def length(ip, value):
        if value == 15:
            while True:
                value += block[ip]
                ip += 1
                if block[ip - 1] != 255:
                    break
        return ip, value

    while True:
        token = block[ip]
        ip, lit = length(ip + 1, token >> 4)
        ip += lit
        if ip == len(block):
            seqs.append((lit, 0, 0))
            return seqs
        offset = int.from_bytes(block[ip:ip + 2], "little")
        ip, match = length(ip + 2, token & 15)
        seqs.append((lit, offset, match + 4))


def lz4_corpus():
    rng = np.random.default_rng(7)
    corpus = {
        "zeros": bytes(4096),
        "random": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "small_alphabet": rng.integers(0, 3, 4096, dtype=np.uint8).tobytes(),
        "repetitive": (b"KV cache block " * 300)[:4096],
        "long_literals_then_run": rng.integers(0, 256, 700, dtype=np.uint8).tobytes()
        + bytes(600) + rng.integers(0, 256, 300, dtype=np.uint8).tobytes(),
        "far_repeat": (lambda x: x + x)(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()),
    }
    for n in range(21):
        corpus[f"short{n}"] = bytes(rng.integers(0, 2, n, dtype=np.uint8))
    planes = bitplane_split(gaussian_bf16(2048, rng), "bf16")
    corpus["bf16_planes"] = planes
    corpus["bf16_exponent_planes"] = planes[:9 * 256]
    return corpus


CORPUS = lz4_corpus()


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_lz4_golden_against_library(name):
    data = CORPUS[name]
    for hash_bits in (8, 12):
        block = lz4_compress_block(data, hash_bits=hash_bits)
        assert block == reference_compress(data, hash_bits)
        assert lz4.block.decompress(block, uncompressed_size=len(data)) == data
        assert lz4_decompress_block(block, len(data)) == data
    for mode in ("default", "high_compression"):
        block = lz4.block.compress(data, mode=mode, store_size=False)
        assert lz4_decompress_block(block, len(data)) == data


@pytest.mark.parametrize("name", ["zeros", "small_alphabet", "far_repeat", "bf16_planes",
                                  "short20"])
def test_lz4_golden_rules(name):
    data = CORPUS[name]
    for max_offset in (65535, 100):
        block = lz4_compress_block(data, max_offset=max_offset)
        assert block == reference_compress(data, max_offset=max_offset)
        seqs, pos = sequences(block), 0
        for lit, offset, match in seqs[:-1]:
            pos += lit
            assert 1 <= offset <= min(max_offset, pos) and match >= 4
            assert pos <= len(data) - 12  # the last match starts 12 bytes before the end
            pos += match
            assert pos <= len(data) - 5   # the last 5 bytes are literals
        assert seqs[-1][1:] == (0, 0) and pos + seqs[-1][0] == len(data)


def test_lz4_window():
    rng = np.random.default_rng(9)
    head = rng.integers(0, 256, 66000, dtype=np.uint8).tobytes()
    data = head + head[:200] + head[70000 - 65535 - 200:][:300] + bytes(20)
    block = lz4_compress_block(data)
    offsets = [offset for _, offset, _ in sequences(block)[:-1]]
    assert offsets and max(offsets) <= 65535 and 66000 not in offsets
    assert lz4.block.decompress(block, uncompressed_size=len(data)) == data
    assert lz4_decompress_block(block, len(data)) == data


def test_lz4_hand_cases():
    assert lz4_compress_block(b"") == b"\x00"
    assert lz4_compress_block(b"a" * 12) == b"\xc0" + b"a" * 12
    # p=1 finds p=0 (offset 1); the match stops 5 bytes before the end.
    assert lz4_compress_block(b"a" * 20) == b"\x1aa\x01\x00\x50aaaaa"
    # match of 294 = 4 + 15 + 255 + 20
    assert lz4_compress_block(b"a" * 300) == b"\x1fa\x01\x00\xff\x14\x50aaaaa"
    assert lz4_decompress_block(b"\x1aa\x01\x00\x50aaaaa", 20) == b"a" * 20
    assert lz4_hash(b"\x01\x00\x00\x00\x02", 12).tolist() == [2654435761 >> 20,
                                                              (2 << 24) * 2654435761
                                                              % 2**32 >> 20]


@pytest.mark.parametrize("block, max_output, kind", [
    (b"", 10, "truncated"),
    (b"\xf0", 100, "truncated"),                  # literal length extension missing
    (b"\xf0\xff", 1000, "truncated"),
    (b"\x10a\x01", 10, "truncated"),              # half an offset
    (b"\x10a\x01\x00", 10, "truncated"),          # a match cannot end the block
    (b"\x1fa\x01\x00", 100, "truncated"),         # match length extension missing
    (b"\x50ab", 10, "literal_past_input"),
    (b"\xf0\x05" + b"a" * 19, 100, "literal_past_input"),
    (b"\x30abc", 2, "output_overflow"),
    (b"\x10a\x01\x00\x00", 4, "output_overflow"),  # match of 4 after 1 literal
    (b"\x10a\x00\x00\x00", 10, "offset_zero"),
    (b"\x00\x01\x00\x00", 10, "offset_before_start"),
    (b"\x20ab\x03\x00\x00", 10, "offset_before_start"),
])
def test_lz4_corrupt(block, max_output, kind):
    with pytest.raises(LZ4FormatError) as info:
        lz4_decompress_block(block, max_output)
    assert info.value.kind == kind


def test_lz4_bounds_and_truncation():
    assert lz4_decompress_block(b"\x10a\x01\x00\x00", 5) == b"aaaaa"
    assert lz4_decompress_block(b"\x00", 0) == b""
    data = CORPUS["long_literals_then_run"]
    block = lz4_compress_block(data)
    for cut in range(len(block)):
        try:
            out = lz4_decompress_block(block[:cut], len(data))
        except LZ4FormatError as error:
            assert error.kind in ("truncated", "literal_past_input")
        else:
            assert data.startswith(out)
    for max_output in (0, 1, 699, 700, 1299, len(data) - 1):
        with pytest.raises(LZ4FormatError, match="output overflow"):
            lz4_decompress_block(block, max_output)
    rng = np.random.default_rng(3)
    seen = set()
    alphabet = [0x00, 0x01, 0x02, 0x10, 0x1F, 0x40, 0xF0, 0xFF, 0x61]
    for _ in range(400):
        junk = bytes(rng.choice(alphabet, int(rng.integers(1, 30))).tolist())
        try:
            assert len(lz4_decompress_block(junk, 8)) <= 8
        except LZ4FormatError as error:
            seen.add(error.kind)
    assert seen == set(LZ4_ERRORS)


def test_lz4_bad_parameters():
    for kwargs in ({"hash_bits": 3}, {"hash_bits": 21}, {"max_offset": 0},
                   {"max_offset": 65536}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            lz4_compress_block(b"abc", **kwargs)


# --- cross-token KV layout ----------------------------------------------------------------

@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("tokens, channels, group_tokens", [(16, 8, 4), (37, 5, 16), (3, 1, 8),
                                                             (0, 4, 2)])
def test_kv_round_trip(fmt, tokens, channels, group_tokens):
    rng = np.random.default_rng(tokens)
    values = random_values(fmt, tokens * channels, rng)[-tokens * channels:] if tokens else \
        np.zeros(0, FORMATS[fmt].dtype)
    values[:min(values.size, len(EDGE[fmt]))] = EDGE[fmt][:min(values.size, len(EDGE[fmt]))]
    kv = values.reshape(tokens, channels)
    words, bases = kv_to_channel_major(kv, group_tokens, fmt)
    assert words.size == kv.size and bases.shape == (-(-tokens // group_tokens), channels)
    np.testing.assert_array_equal(
        kv_from_channel_major(words, bases, channels, group_tokens, fmt), kv)


def test_kv_hand_case():
    # 2 tokens x 2 channels, bf16: 1.0 = 0x3F80 (exp 127), 4.0 = 0x4080 (exp 129),
    # -0.5 = 0xBF00 (exp 126), 0 (exp 0).
    kv = np.array([[0x3F80, 0xBF00], [0x4080, 0x0000]], dtype=np.uint16)
    words, bases = kv_to_channel_major(kv, 2)
    assert bases.tolist() == [[129, 126]]
    # channel 0: deltas 2, 0; channel 1: sign kept, delta 0; zero gets delta 126.
    assert words.tolist() == [2 << 7, 0, 0x8000, 126 << 7]


# --- block container and reduced-precision reads -----------------------------------------

def test_header_layout():
    values = np.zeros(24, dtype=np.uint16)
    block = encode_block(values, "bf16", codec="none")
    assert block[:8] == struct.pack("<BBBBI", 0xCA, 0, 0, 3, 24)
    assert block[8:23] == struct.pack("<BIBIBI", 9, 27 | 1 << 31, 4, 12 | 1 << 31,
                                      3, 9 | 1 << 31)
    assert len(block) == 23 + 48
    kv = encode_block(np.zeros((6, 4), np.uint8), "fp8_e4m3", [6, 2], "lz4", kv_layout=(4, 4))
    header = parse_header(kv)
    assert kv[:12] == struct.pack("<BBBBIHH", 0xCA, 0x12, 1, 2, 24, 4, 4)
    assert header.kv_layout == (4, 4) and header.size == 22 and header.payload_offset == 30


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("codec", ["lz4", "lz4-lib", "zstd", "none"])
@pytest.mark.parametrize("kv", [False, True])
def test_reduced_precision_reads(fmt, codec, kv):
    f = FORMATS[fmt]
    rng = np.random.default_rng(11)
    channels, tokens = 32, 64
    if fmt == "bf16":
        values = gaussian_bf16(tokens * channels, rng)
    else:  # small exponents and mantissas, so that some groups compress and some do not
        values = (rng.integers(0, 1 << f.width, tokens * channels) & ~f.dtype(0x60 << (
            f.width - 8))).astype(f.dtype)
    values[:len(EDGE[fmt])] = EDGE[fmt]
    block = encode_block(values, fmt, codec=codec, kv_layout=(channels, 16) if kv else None)
    header = parse_header(block)
    assert header.groups == DEFAULT_PLANE_GROUPS[fmt]
    assert len(block) == header.payload_offset + sum(header.stored)
    np.testing.assert_array_equal(decode_block(block, fmt=fmt), values)
    for precision in [None, *range(f.mant_bits + 1)]:
        fetched, groups = read_plan(header, precision)
        keep = 1 + f.exp_bits + (f.mant_bits if precision is None else precision)
        assert sum(header.groups[:len(groups) - 1]) < keep <= sum(header.groups[:len(groups)])
        assert groups == tuple(range(len(groups)))
        assert fetched == header.payload_offset + sum(header.stored[g] for g in groups)
        assert read_plan(block, precision) == (fetched, groups)
        result = decode_block(block[:fetched], precision)
        np.testing.assert_array_equal(result, truncate_mantissa(values, fmt, precision))
        if fetched > header.size:
            with pytest.raises(BlockFormatError):
                decode_block(block[:fetched - 1], precision)


def test_raw_stored_flag():
    rng = np.random.default_rng(5)
    noise = rng.integers(0, 1 << 16, 2048).astype(np.uint16)
    header = parse_header(encode_block(noise, "bf16"))
    assert header.raw == (True, True, True)
    assert header.stored == (9 * 256, 4 * 256, 3 * 256)
    zeros = encode_block(np.zeros(2048, np.uint16), "bf16")
    assert parse_header(zeros).raw == (False, False, False) and len(zeros) < 100
    incompressible = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    assert len(lz4_compress_block(incompressible)) > len(incompressible)


def test_block_errors():
    block = encode_block(gaussian_bf16(512, np.random.default_rng(1)), "bf16")
    with pytest.raises(BlockFormatError):
        decode_block(b"\xcb" + block[1:])
    with pytest.raises(BlockFormatError):
        decode_block(block[:12])
    header = parse_header(block)
    corrupt = bytearray(block)
    corrupt[header.size] ^= 0xFF  # first byte of the LZ4 sign+exponent group
    with pytest.raises(ValueError):  # LZ4FormatError or a length mismatch
        decode_block(bytes(corrupt))
    with pytest.raises(ValueError, match="groups"):
        encode_block(np.zeros(8, np.uint16), "bf16", groups=[8, 8])
    with pytest.raises(ValueError, match="precision"):
        decode_block(block, precision=8)
    with pytest.raises(ValueError, match="fmt"):
        encode_block(np.zeros(8, np.uint16), "fp32")


# --- footprint and ZSTD comparison --------------------------------------------------------

def test_footprint_schemes_and_codecs():
    rng = np.random.default_rng(2)
    weights = gaussian_bf16(4096, rng)
    ratios = {}
    for scheme in SCHEMES[:3]:
        for codec in ("none", "lz4", "lz4-lib", "zstd"):
            result = footprint(weights, "bf16", scheme, codec, block_bytes=4096)
            assert result.raw_bytes == 8192 and result.blocks == 2
            ratios[scheme, codec] = result.ratio
    assert ratios["raw", "none"] == 1.0
    assert ratios["bitplane", "lz4"] > 1.2 and ratios["bitplane", "zstd"] > 1.2
    assert ratios["bitplane", "lz4"] > ratios["raw", "lz4"]
    # KV cache: channels with their own scales, so cross-token exponent bases pay off.
    kv = gaussian_bf16(64 * 64, rng, 1.0).reshape(64, 64)
    scale = (rng.integers(-6, 6, 64) << 7).astype(np.int32)
    kv = np.where((kv & 0x7F80) != 0, (kv.astype(np.int32) + scale), kv).astype(np.uint16)
    cross = footprint(kv, "bf16", "bitplane+crosstoken", "zstd", block_bytes=2048)
    assert cross.blocks == 4 and cross.ratio > footprint(kv, "bf16", "bitplane", "zstd").ratio
    with pytest.raises(ValueError, match="scheme"):
        footprint(weights, "bf16", "planes")
