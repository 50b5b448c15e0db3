"""LZ4 *block* format codec: the exact algorithm the ``camc`` compression lanes run.

Compressor (:func:`lz4_compress_block`), bit-exact specification
-----------------------------------------------------------------
Input ``data`` of ``n`` bytes; parameters ``hash_bits`` (H) and ``max_offset`` (W).

Constants: ``MINMATCH = 4``, ``LASTLITERALS = 5``, ``MFLIMIT = 12``.

1. ``u32(p)`` is the little-endian 32-bit word ``data[p:p+4]``;
   ``hash(p) = ((u32(p) * 2654435761) mod 2**32) >> (32 - H)`` (Knuth's multiplicative
   hash, the one LZ4 uses). The hash table has ``2**H`` entries of ``ceil(log2(n))`` bits,
   all reset to 0 at the start of every block (no valid bits: the stale or reset entry is a
   *candidate* that is always verified).
2. Positions that may start a match are ``0 <= p <= n - MFLIMIT`` (a match starts at least
   12 bytes before the end). If ``n < MFLIMIT + 1`` no match is searched.
3. ``p = 0``, ``anchor = 0``. While ``p <= n - MFLIMIT``:

   - ``c = table[hash(p)]``; ``table[hash(p)] = p`` (read before write).
   - *Match* iff ``c < p`` and ``p - c <= W`` and ``u32(c) == u32(p)``. Otherwise ``p += 1``.
   - On a match, the length ``L`` starts at 4 and grows while ``p + L < n - LASTLITERALS``
     and ``data[c + L] == data[p + L]`` (greedy, forward only: no backward extension, no lazy
     matching, the match may overlap its own output). So the last 5 bytes are always literals.
   - Emit the sequence ``(literals data[anchor:p], offset p - c, match length L)``.
   - Every position ``q`` with ``p < q < p + L`` and ``q <= n - MFLIMIT`` is inserted in
     order (``table[hash(q)] = q``) without a lookup: the table sees every candidate position
     exactly once, so a streaming hash unit updates one entry per byte.
   - ``p += L``; ``anchor = p``.
4. Emit the last sequence: literals ``data[anchor:n]`` and no match (this is emitted even if
   it is empty, so an empty input encodes to the single byte ``0x00``).

A sequence is encoded as in the LZ4 block format: a token byte (high nibble
``min(literal length, 15)``, low nibble ``min(match length - 4, 15)``, low nibble 0 for the last
sequence); if the literal length is ``>= 15``, ``literal length - 15`` as a run of ``0xFF``
bytes and one final byte ``< 0xFF``; the literals; a 2-byte little-endian offset; if the match
length is ``>= 19``, ``match length - 19`` coded the same way. The output is accepted by the
reference decoder (``lz4.block.decompress``).

Decompressor (:func:`lz4_decompress_block`), error cases
--------------------------------------------------------
The decoder reads sequences until the input ends right after a literal run. It raises
:class:`LZ4FormatError` whose ``kind`` is one of :data:`LZ4_ERRORS`; the hardware raises its
error flag in the same cases, and stops. Checks happen in stream order, each as soon as
its field is read: token and literal-length extension (``truncated``), literal run
(``literal_past_input``, then ``output_overflow``), offset (``truncated``, ``offset_zero``,
``offset_before_start``), match-length extension (``truncated``), match (``output_overflow``).
The error's ``position`` is the input offset of the field being checked (for a literal run
or a match, the offset just after its length fields).

``truncated``
    the input is empty, or ends where a token, a length-extension byte or an offset byte is
    due (this includes an input that ends right after a match: the last sequence of a block
    must be a literal-only sequence).
``literal_past_input``
    a literal run is longer than the input that remains.
``output_overflow``
    a literal run or a match would make the output longer than ``max_output``. Nothing beyond
    ``max_output`` is ever produced.
``offset_zero``
    a match offset is 0.
``offset_before_start``
    a match offset is larger than the number of bytes produced so far.

The decoder does not enforce the encoder-side end-of-block rules (last 5 bytes literals,
last match 12 bytes before the end): it accepts every stream the reference decoder accepts,
and a few more.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "MINMATCH", "LASTLITERALS", "MFLIMIT", "MAX_OFFSET", "LZ4_ERRORS",
    "LZ4FormatError", "lz4_hash", "lz4_compress_block", "lz4_decompress_block",
]

MINMATCH = 4
LASTLITERALS = 5
MFLIMIT = 12
MAX_OFFSET = 65535
HASH_MULTIPLIER = 2654435761
LZ4_ERRORS = ("truncated", "literal_past_input", "output_overflow", "offset_zero",
              "offset_before_start")


class LZ4FormatError(ValueError):
    """A malformed LZ4 block; ``kind`` is one of :data:`LZ4_ERRORS`, ``position`` the input
    offset at which the decoder found it."""

    def __init__(self, kind: str, position: int, detail: str = ""):
        assert kind in LZ4_ERRORS, kind
        self.kind = kind
        self.position = position
        super().__init__(f"LZ4 block {kind.replace('_', ' ')} at input byte {position}"
                         + (f": {detail}" if detail else ""))


def _check_params(hash_bits: int, max_offset: int) -> None:
    if not isinstance(hash_bits, int) or not 4 <= hash_bits <= 20:
        raise ValueError(f"hash_bits must be an integer from 4 to 20, not {hash_bits!r}")
    if not isinstance(max_offset, int) or not 1 <= max_offset <= MAX_OFFSET:
        raise ValueError(f"max_offset must be an integer from 1 to {MAX_OFFSET}, "
                         f"not {max_offset!r}")


def lz4_hash(data: bytes, hash_bits: int = 12) -> np.ndarray:
    """``hash(p)`` for every ``p`` in ``0 .. len(data) - 4`` (int64 array)."""
    buf = np.frombuffer(bytes(data), dtype=np.uint8).astype(np.uint64)
    if len(buf) < 4:
        return np.zeros(0, dtype=np.int64)
    words = buf[:-3] | (buf[1:-2] << 8) | (buf[2:-1] << 16) | (buf[3:] << 24)
    hashed = (words * np.uint64(HASH_MULTIPLIER)) & np.uint64(0xFFFFFFFF)
    return (hashed >> np.uint64(32 - hash_bits)).astype(np.int64)


def _put_length(out: bytearray, extra: int) -> None:
    while extra >= 255:
        out.append(255)
        extra -= 255
    out.append(extra)


def _put_sequence(out: bytearray, literals: bytes, offset: int = 0, match_len: int = 0) -> None:
    lit_len = len(literals)
    ml_code = match_len - MINMATCH if match_len else 0
    out.append((min(lit_len, 15) << 4) | min(ml_code, 15))
    if lit_len >= 15:
        _put_length(out, lit_len - 15)
    out += literals
    if match_len:
        out += offset.to_bytes(2, "little")
        if ml_code >= 15:
            _put_length(out, ml_code - 15)


def lz4_compress_block(data: bytes, hash_bits: int = 12, max_offset: int = MAX_OFFSET) -> bytes:
    """Compress ``data`` to one LZ4 block (no size prefix) with the algorithm in the module
    docstring: a ``2**hash_bits``-entry table of positions, greedy matching, minimum match 4,
    matches at most ``max_offset`` bytes back."""
    _check_params(hash_bits, max_offset)
    data = bytes(data)
    n = len(data)
    out = bytearray()
    anchor = 0
    if n >= MFLIMIT + 1:
        hashes = lz4_hash(data, hash_bits).tolist()
        table = [0] * (1 << hash_bits)
        last_start = n - MFLIMIT
        match_end_limit = n - LASTLITERALS
        p = 0
        while p <= last_start:
            h = hashes[p]
            c = table[h]
            table[h] = p
            if c < p and p - c <= max_offset and data[c:c + 4] == data[p:p + 4]:
                length = MINMATCH
                # 16-byte strides first only to save Python time; the result is the byte rule
                while (p + length + 16 <= match_end_limit
                       and data[c + length:c + length + 16] == data[p + length:p + length + 16]):
                    length += 16
                while p + length < match_end_limit and data[c + length] == data[p + length]:
                    length += 1
                _put_sequence(out, data[anchor:p], p - c, length)
                for q in range(p + 1, min(p + length, last_start + 1)):
                    table[hashes[q]] = q
                p += length
                anchor = p
            else:
                p += 1
    _put_sequence(out, data[anchor:])
    return bytes(out)


def lz4_decompress_block(data: bytes, max_output: int) -> bytes:
    """Decode one LZ4 block (no size prefix) of at most ``max_output`` bytes; raises
    :class:`LZ4FormatError` on the cases listed in the module docstring."""
    if not isinstance(max_output, int) or max_output < 0:
        raise ValueError(f"max_output must be a non-negative integer, not {max_output!r}")
    src = bytes(data)
    end = len(src)
    out = bytearray()
    ip = 0
    if end == 0:
        raise LZ4FormatError("truncated", 0, "empty input")

    def read_length(ip: int, length: int) -> tuple[int, int]:
        if length != 15:
            return ip, length
        while True:
            if ip >= end:
                raise LZ4FormatError("truncated", ip, "inside a length extension")
            byte = src[ip]
            ip += 1
            length += byte
            if byte != 255:
                return ip, length

    while True:
        if ip >= end:
            raise LZ4FormatError("truncated", ip, "a token is due")
        token = src[ip]
        ip += 1
        ip, lit_len = read_length(ip, token >> 4)
        if ip + lit_len > end:
            raise LZ4FormatError("literal_past_input", ip,
                                 f"{lit_len} literals, {end - ip} bytes left")
        if len(out) + lit_len > max_output:
            raise LZ4FormatError("output_overflow", ip,
                                 f"{len(out) + lit_len} bytes > max_output {max_output}")
        out += src[ip:ip + lit_len]
        ip += lit_len
        if ip == end:
            return bytes(out)
        if ip + 2 > end:
            raise LZ4FormatError("truncated", ip, "inside a match offset")
        offset = src[ip] | (src[ip + 1] << 8)
        if offset == 0:
            raise LZ4FormatError("offset_zero", ip)
        if offset > len(out):
            raise LZ4FormatError("offset_before_start", ip,
                                 f"offset {offset}, {len(out)} bytes produced")
        ip += 2
        ip, match_len = read_length(ip, token & 15)
        match_len += MINMATCH
        if len(out) + match_len > max_output:
            raise LZ4FormatError("output_overflow", ip,
                                 f"{len(out) + match_len} bytes > max_output {max_output}")
        start = len(out) - offset
        if offset >= match_len:
            out += out[start:start + match_len]
        else:  # overlapping copy: the pattern of the last `offset` bytes repeats
            pattern = bytes(out[start:])
            reps, rest = divmod(match_len, offset)
            out += pattern * reps + pattern[:rest]
