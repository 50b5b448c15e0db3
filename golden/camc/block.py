"""Compressed block container, reduced-precision read plans and footprint estimates.

Block byte layout (all multi-byte fields little-endian)
-------------------------------------------------------
========  ======  ==========================================================================
offset    bytes   field
========  ======  ==========================================================================
0         1       magic ``0xCA``
1         1       bits 0-3: format code (0 ``bf16``, 1 ``fp16``, 2 ``fp8_e4m3``);
                  bit 4: cross-token KV layout; bits 5-7: zero
2         1       codec: 0 none, 1 LZ4 block, 2 ZSTD frame
3         1       number of plane groups ``G`` (1 to 16)
4         4       number of values ``N`` (u32)
8         4       KV layout only: channels ``C`` (u16), tokens per group ``T`` (u16)
next      5 G     per group, MSB group first: planes (u8); then a u32 whose bit 31 is the
                  *raw* flag (group stored uncompressed) and bits 0-30 the stored length
next      B       KV layout only: ``B = ceil(N / C / T) * C`` exponent bases, ``[group][channel]``
next              the groups' stored bytes, in group order
========  ======  ==========================================================================

Group ``g`` holds planes ``width-1-s .. width-s-planes_g`` (``s`` = planes of the groups
before it) of the block's words, laid out by :func:`~.bitplane.bitplane_split`: raw size
``planes_g * ceil(N / 8)`` bytes. A group whose compressed form is not shorter than its raw
size is stored raw. With the KV layout, the words are those of
:func:`~.layout.kv_to_channel_major` of the ``[N / C][C]`` values, and decoding returns the
values in their original token-major order.

Reduced-precision reads
-----------------------
``precision`` is the number of mantissa bits kept (``None``: all). A read needs the top
``1 + exp_bits + precision`` planes, so it fetches the shortest prefix of groups that covers
them: the header, the bases (KV layout) and those groups' stored bytes, and nothing else.
The result is the input with every mantissa bit below the top ``precision`` cleared
(:func:`~.bitplane.truncate_mantissa`), even where a fetched group holds more planes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import lz4.block
import numpy as np
import zstandard

from .bitplane import (
    FORMATS,
    bitplane_merge,
    bitplane_split,
    byteplane_split,
    check_values,
    get_format,
    plane_bytes,
    plane_groups,
    planes_for_precision,
)
from .layout import kv_from_channel_major, kv_to_channel_major, token_groups
from .lz4 import MAX_OFFSET, lz4_compress_block, lz4_decompress_block

__all__ = [
    "BLOCK_MAGIC", "CODECS", "SCHEMES", "BlockFormatError", "BlockHeader", "compress_bytes",
    "store_groups",
    "encode_block", "parse_header", "read_plan", "decode_block", "Footprint", "footprint",
]

BLOCK_MAGIC = 0xCA
#: Codec names and the code the header stores; ``lz4-lib`` (the ``lz4`` library's compressor)
#: writes the same LZ4 block format as the golden ``lz4``.
CODECS = {"none": 0, "lz4": 1, "lz4-lib": 1, "zstd": 2}
SCHEMES = ("raw", "byteplane", "bitplane", "bitplane+crosstoken")
_KV_FLAG = 0x10
ZSTD_LEVEL = 3


class BlockFormatError(ValueError):
    """A malformed or truncated compressed block."""


@dataclass(frozen=True)
class BlockHeader:
    """The parsed header of a block; ``size`` is its length in bytes, without the bases."""

    fmt: str
    codec: int
    count: int
    groups: tuple[int, ...]
    stored: tuple[int, ...]
    raw: tuple[bool, ...]
    kv_layout: tuple[int, int] | None
    size: int

    @property
    def bases_bytes(self) -> int:
        if self.kv_layout is None:
            return 0
        channels, group_tokens = self.kv_layout
        return len(token_groups(self.count // channels, group_tokens)) * channels

    @property
    def payload_offset(self) -> int:
        return self.size + self.bases_bytes


def _check_codec(codec: str) -> None:
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {sorted(CODECS)}, not {codec!r}")


def compress_bytes(raw: bytes, codec: str = "lz4", hash_bits: int = 12,
                   max_offset: int = MAX_OFFSET) -> bytes:
    """``raw`` compressed with ``codec`` (LZ4 block without size prefix, or a ZSTD frame)."""
    _check_codec(codec)
    if codec == "none":
        return bytes(raw)
    if codec == "lz4":
        return lz4_compress_block(raw, hash_bits, max_offset)
    if codec == "lz4-lib":
        return lz4.block.compress(bytes(raw), store_size=False)
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(bytes(raw))


def _decompress(payload: bytes, codec: int, size: int) -> bytes:
    if codec == 1:
        out = lz4_decompress_block(payload, size)
    elif codec == 2:
        try:
            out = zstandard.ZstdDecompressor().decompress(payload, max_output_size=size)
        except zstandard.ZstdError as error:
            raise BlockFormatError(f"bad ZSTD group: {error}") from error
    else:
        raise BlockFormatError(f"codec {codec} stores no compressed groups")
    if len(out) != size:
        raise BlockFormatError(f"a group decompressed to {len(out)} bytes, not {size}")
    return out


def store_groups(planes: bytes, count: int, groups, codec: str = "lz4", hash_bits: int = 12,
                 max_offset: int = MAX_OFFSET) -> list[tuple[bytes, bool]]:
    """Each plane group of ``planes`` (a block of ``count`` values, MSB plane first) as it is
    stored: ``(bytes, raw)``, compressed, or raw when compression does not shrink it."""
    pb = plane_bytes(count)
    out, start = [], 0
    for planes_in_group in groups:
        raw = planes[start * pb:(start + planes_in_group) * pb]
        start += planes_in_group
        packed = compress_bytes(raw, codec, hash_bits, max_offset)
        out.append((raw, True) if len(packed) >= len(raw) else (packed, False))
    return out


def encode_block(values, fmt: str = "bf16", groups=None, codec: str = "lz4",
                 hash_bits: int = 12, kv_layout: tuple[int, int] | None = None,
                 max_offset: int = MAX_OFFSET) -> bytes:
    """One compressed block of ``values`` (layout in the module docstring).

    ``kv_layout = (channels, group_tokens)`` applies the cross-token KV layout to ``values``
    taken as ``[tokens][channels]`` (2-D, or 1-D token-major).
    """
    f = get_format(fmt)
    groups = plane_groups(f, groups)
    _check_codec(codec)
    flags = f.code
    extra = b""
    bases = b""
    if kv_layout is not None:
        channels, group_tokens = kv_layout
        if not all(isinstance(x, int) and 1 <= x <= 0xFFFF for x in kv_layout):
            raise ValueError(f"kv_layout must be (channels, group_tokens), each 1 to 65535, "
                             f"not {kv_layout!r}")
        arr = np.asarray(values)
        if arr.ndim != 2 and arr.size % channels:
            raise ValueError(f"{arr.size} values are not a whole number of tokens of "
                             f"{channels} channels")
        kv = arr if arr.ndim == 2 else check_values(arr, f).reshape(-1, channels)
        if kv.shape[1] != channels:
            raise ValueError(f"values have {kv.shape[1]} channels, kv_layout says {channels}")
        words, base_array = kv_to_channel_major(kv, group_tokens, f)
        bases = base_array.tobytes()
        flags |= _KV_FLAG
        extra = struct.pack("<HH", channels, group_tokens)
    else:
        words = check_values(values, f)
    count = words.size
    if count >= 1 << 32:
        raise ValueError(f"a block holds fewer than 2**32 values, not {count}")
    table, payload = b"", b""
    for planes_in_group, (stored, is_raw) in zip(
            groups, store_groups(bitplane_split(words, f), count, groups, codec, hash_bits,
                                 max_offset), strict=True):
        table += struct.pack("<BI", planes_in_group, len(stored) | (is_raw << 31))
        payload += stored
    header = struct.pack("<BBBBI", BLOCK_MAGIC, flags, CODECS[codec], len(groups), count)
    return header + extra + table + bases + payload


def parse_header(data: bytes) -> BlockHeader:
    """The header at the start of ``data`` (``data`` may stop right after it)."""
    data = bytes(data)
    if len(data) < 8:
        raise BlockFormatError(f"a block header is at least 8 bytes, got {len(data)}")
    magic, flags, codec, n_groups, count = struct.unpack_from("<BBBBI", data)
    names = {f.code: name for name, f in FORMATS.items()}
    if magic != BLOCK_MAGIC or flags & 0xE0 or flags & 0x0F not in names or codec > 2:
        raise BlockFormatError(f"not a camc block header: {data[:4].hex()}")
    fmt = names[flags & 0x0F]
    pos, kv_layout = 8, None
    if flags & _KV_FLAG:
        if len(data) < 12:
            raise BlockFormatError("block header truncated in the KV layout fields")
        kv_layout = struct.unpack_from("<HH", data, 8)
        if 0 in kv_layout or count % kv_layout[0]:
            raise BlockFormatError(f"bad KV layout {kv_layout} for {count} values")
        pos = 12
    if len(data) < pos + 5 * n_groups:
        raise BlockFormatError("block header truncated in the group table")
    entries = [struct.unpack_from("<BI", data, pos + 5 * g) for g in range(n_groups)]
    groups = tuple(planes for planes, _ in entries)
    try:
        plane_groups(fmt, groups)
    except ValueError as error:
        raise BlockFormatError(str(error)) from error
    raw = tuple(bool(word >> 31) for _, word in entries)
    stored = tuple(word & 0x7FFFFFFF for _, word in entries)
    for planes, length, is_raw in zip(groups, stored, raw, strict=True):
        if (is_raw or codec == 0) and (not is_raw or length != planes * plane_bytes(count)):
            raise BlockFormatError("a raw group's length is not its raw size")
    return BlockHeader(fmt, codec, count, groups, stored, raw,
                       tuple(kv_layout) if kv_layout else None, pos + 5 * n_groups)


def read_plan(header: BlockHeader | bytes, precision: int | None = None) -> tuple[int, tuple]:
    """``(bytes fetched, group indices)`` of a read at ``precision`` mantissa bits.

    The bytes are the prefix of the block a read fetches: header, bases, needed groups.
    """
    if not isinstance(header, BlockHeader):
        header = parse_header(header)
    need = planes_for_precision(header.fmt, precision)
    fetched, covered = [], 0
    for index, planes in enumerate(header.groups):
        if covered >= need:
            break
        fetched.append(index)
        covered += planes
    return header.payload_offset + sum(header.stored[g] for g in fetched), tuple(fetched)


def decode_block(data: bytes, precision: int | None = None, fmt: str | None = None) -> np.ndarray:
    """Values of a block read at ``precision`` mantissa bits (``None``: all, lossless).

    ``data`` may be just the prefix :func:`read_plan` names. Returns a 1-D array of the
    format's dtype, in the order given to :func:`encode_block`.
    """
    data = bytes(data)
    header = parse_header(data)
    if fmt is not None and get_format(fmt).name != header.fmt:
        raise ValueError(f"block holds {header.fmt} values, not {fmt!r}")
    f = FORMATS[header.fmt]
    fetched_bytes, fetched = read_plan(header, precision)
    if len(data) < fetched_bytes:
        raise BlockFormatError(f"the read needs {fetched_bytes} bytes, the block has "
                               f"{len(data)}")
    pb = plane_bytes(header.count)
    planes, pos = b"", header.payload_offset
    for g in fetched:
        stored = data[pos:pos + header.stored[g]]
        pos += header.stored[g]
        size = header.groups[g] * pb
        planes += stored if header.raw[g] else _decompress(stored, header.codec, size)
    n_planes = sum(header.groups[g] for g in fetched)
    words = bitplane_merge(planes, f, header.count, planes=n_planes)
    keep = planes_for_precision(f, precision)
    words &= f.dtype(((1 << f.width) - 1) ^ ((1 << (f.width - keep)) - 1))
    if header.kv_layout is None:
        return words
    channels, group_tokens = header.kv_layout
    bases = np.frombuffer(data[header.size:header.payload_offset], dtype=np.uint8)
    try:
        kv = kv_from_channel_major(words, bases, channels, group_tokens, f)
    except ValueError as error:
        raise BlockFormatError(str(error)) from error
    return kv.reshape(-1)


@dataclass(frozen=True)
class Footprint:
    """Bytes before and after compression; ``ratio = raw_bytes / stored_bytes``."""

    scheme: str
    codec: str
    raw_bytes: int
    stored_bytes: int
    blocks: int

    @property
    def ratio(self) -> float:
        return self.raw_bytes / self.stored_bytes if self.stored_bytes else 1.0


def footprint(raw_values, fmt: str = "bf16", scheme: str = "bitplane", codec: str = "lz4",
              block_bytes: int = 4096, hash_bits: int = 12, groups=None,
              group_tokens: int | None = None) -> Footprint:
    """Memory footprint of ``raw_values`` stored in blocks of ``block_bytes`` raw bytes.

    Schemes: ``raw`` (the values' little-endian bytes), ``byteplane`` and ``bitplane`` (the
    block rearranged), ``bitplane+crosstoken`` (``raw_values`` is ``[tokens][channels]``;
    a block is one group of ``group_tokens`` tokens, by default as many as fit
    ``block_bytes``). ``raw`` and ``byteplane`` blocks are compressed whole and stored raw if
    that does not shrink them (no header counted); the ``bitplane`` schemes count whole
    :func:`encode_block` blocks, header and bases included.
    """
    f = get_format(fmt)
    _check_codec(codec)
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {list(SCHEMES)}, not {scheme!r}")
    if not isinstance(block_bytes, int) or block_bytes < f.bytes_per_value:
        raise ValueError(f"block_bytes must be an integer of at least {f.bytes_per_value}, "
                         f"not {block_bytes!r}")
    arr = np.asarray(raw_values)
    if scheme == "bitplane+crosstoken":
        if arr.ndim != 2:
            raise ValueError("bitplane+crosstoken needs raw_values as [tokens][channels]")
        kv = check_values(arr, f).reshape(arr.shape)
        channels = kv.shape[1]
        tokens = group_tokens or max(1, block_bytes // (channels * f.bytes_per_value))
        stored = [len(encode_block(kv[a:b], f, groups, codec, hash_bits, (channels, tokens)))
                  for a, b in token_groups(kv.shape[0], tokens)]
        return Footprint(scheme, codec, kv.size * f.bytes_per_value, sum(stored), len(stored))
    flat = check_values(arr, f)
    per_block = block_bytes // f.bytes_per_value
    stored = []
    for start in range(0, flat.size, per_block):
        chunk = flat[start:start + per_block]
        if scheme == "bitplane":
            stored.append(len(encode_block(chunk, f, groups, codec, hash_bits)))
            continue
        if scheme == "raw":
            raw = chunk.astype(np.dtype(f.dtype).newbyteorder("<")).tobytes()
        else:
            raw = byteplane_split(chunk, f)
        stored.append(min(len(compress_bytes(raw, codec, hash_bits)), len(raw)))
    return Footprint(scheme, codec, flat.size * f.bytes_per_value, sum(stored), len(stored))
