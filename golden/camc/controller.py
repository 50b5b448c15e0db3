"""Golden model of the ``camc`` controller: block map, physical layout, reads and writes.

The controller stores each logical block (``block_values`` values of one format) as its
plane groups (:func:`~.bitplane.plane_groups`), each LZ4-compressed on its own
(:func:`~.lz4.lz4_compress_block`) or stored raw when that does not shrink it, back to back
from a physical word address. A block's stored bytes are padded with zero bytes to whole
memory words of ``beat_bytes``. The block map keeps, per logical block, the word address and
every group's stored length and raw flag; it is on chip, so the memory holds only the groups'
bytes (no header: the container of :mod:`.block` is the software format).

Physical space is handed out in write order from word 0 (a log): a rewritten block gets new
words and the old ones are not reused. A write that does not fit in ``memory_words`` is not
stored and reports ``full``.

A read at ``precision`` mantissa bits fetches the words that hold the shortest prefix of
groups covering ``1 + exp_bits + precision`` planes (``None`` or ``precision >= mantissa
bits``: all groups), decompresses them with the validating decoder, merges the planes and
clears the mantissa bits below ``precision``. Decoding errors:

``corrupt``
    a compressed group fails the validating decoder (:data:`~.lz4.LZ4_ERRORS`) or decodes to
    a length other than its raw size. The read still returns exactly ``block_values`` values,
    but they are not defined (the hardware keeps what the bad group decoded, at most its raw
    size, and pads with zero bytes); :meth:`ControllerModel.read` returns ``None`` for them.
``unmapped``
    the block was never written: no memory access, all values zero.
``length``
    a write packet with fewer or more than ``block_values`` values: short packets are
    padded with zero values, values past ``block_values`` are dropped, and the block is
    stored (the error is reported, nothing is silently shifted into the next block).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .bitplane import (
    bitplane_merge,
    bitplane_split,
    check_values,
    get_format,
    plane_bytes,
    plane_groups,
    planes_for_precision,
)
from .block import store_groups
from .lz4 import MAX_OFFSET, LZ4FormatError, lz4_decompress_block

__all__ = ["ERRORS", "MapEntry", "Status", "ControllerModel"]

#: Error kinds of the controller's status, in the order of their hardware code.
ERRORS = ("none", "corrupt", "unmapped", "full", "length")


@dataclass(frozen=True)
class MapEntry:
    """Where a block lives: first word, per-group stored bytes and raw flags."""

    addr: int
    stored: tuple[int, ...]
    raw: tuple[bool, ...]

    @property
    def stored_bytes(self) -> int:
        return sum(self.stored)


@dataclass(frozen=True)
class Status:
    """One per command. ``raw_bytes``: bytes of values moved at the user side; ``stored_bytes``:
    bytes moved at the memory side (whole words)."""

    block: int
    write: bool
    error: str
    raw_bytes: int
    stored_bytes: int


@dataclass
class ControllerModel:
    """The controller's behaviour, command by command.

    Parameters
    ----------
    fmt : str
        ``bf16``, ``fp16`` or ``fp8_e4m3``.
    block_values : int
        Values per block.
    groups : tuple of int, optional
        Planes per group, MSB first (default: the format's default groups).
    hash_bits, max_offset : int
        Of the LZ4 compressor.
    blocks : int
        Entries of the block map.
    memory_words : int
        Words of physical memory.
    beat_bytes : int
        Bytes per memory word.
    """

    fmt: str = "bf16"
    block_values: int = 2048
    groups: tuple[int, ...] | None = None
    hash_bits: int = 12
    max_offset: int = MAX_OFFSET
    blocks: int = 64
    memory_words: int = 1 << 16
    beat_bytes: int = 4
    memory: dict[int, int] = field(default_factory=dict)
    block_map: dict[int, MapEntry] = field(default_factory=dict)
    alloc: int = 0
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("raw_written", "stored_written", "raw_read", "stored_read"), 0))

    def __post_init__(self):
        self.format = get_format(self.fmt)
        self.groups = plane_groups(self.format, self.groups)

    @property
    def block_bytes(self) -> int:
        return self.block_values * self.format.bytes_per_value

    def group_raw_bytes(self, g: int) -> int:
        return self.groups[g] * plane_bytes(self.block_values)

    def _words(self, nbytes: int) -> int:
        return -(-nbytes // self.beat_bytes)

    # -- memory as bytes -----------------------------------------------------------------
    def write_bytes(self, addr: int, payload: bytes) -> None:
        payload = bytes(payload) + bytes(-len(payload) % self.beat_bytes)
        for k in range(len(payload) // self.beat_bytes):
            word = payload[k * self.beat_bytes:(k + 1) * self.beat_bytes]
            self.memory[(addr + k) % self.memory_words] = int.from_bytes(word, "little")

    def read_bytes(self, addr: int, nbytes: int) -> bytes:
        words = [self.memory.get((addr + k) % self.memory_words, 0)
                 for k in range(self._words(nbytes))]
        return b"".join(w.to_bytes(self.beat_bytes, "little") for w in words)[:nbytes]

    # -- commands ------------------------------------------------------------------------
    def encode(self, values) -> tuple[bytes, tuple[int, ...], tuple[bool, ...]]:
        """Stored bytes of one block, and per group the stored length and raw flag."""
        words = check_values(values, self.format)
        if words.size != self.block_values:
            raise ValueError(f"a block holds {self.block_values} values, not {words.size}")
        groups = store_groups(bitplane_split(words, self.format), words.size, self.groups,
                              "lz4", self.hash_bits, self.max_offset)
        return (b"".join(data for data, _ in groups), tuple(len(data) for data, _ in groups),
                tuple(raw for _, raw in groups))

    def write(self, block: int, values) -> Status:
        """Store ``values`` (any length: see ``length`` in the module docstring)."""
        self._check_block(block)
        words = check_values(values, self.format)
        error = "none" if words.size == self.block_values else "length"
        words = np.concatenate([words[:self.block_values],
                                np.zeros(max(0, self.block_values - words.size), words.dtype)])
        payload, stored, raw = self.encode(words)
        beats = self._words(len(payload))
        if self.alloc + beats > self.memory_words:
            return Status(block, True, "full", self.block_bytes, 0)
        self.write_bytes(self.alloc, payload)
        self.block_map[block] = MapEntry(self.alloc, stored, raw)
        self.alloc += beats
        self.counters["raw_written"] += self.block_bytes
        self.counters["stored_written"] += beats * self.beat_bytes
        return Status(block, True, error, self.block_bytes, beats * self.beat_bytes)

    def fetch_plan(self, block: int, precision: int | None) -> tuple[int, int]:
        """``(groups fetched, bytes fetched)`` of a read of a mapped block."""
        need = planes_for_precision(self.format, self._clamp(precision))
        entry = self.block_map[block]
        fetched, covered = 0, 0
        while covered < need:
            covered += self.groups[fetched]
            fetched += 1
        return fetched, sum(entry.stored[:fetched])

    def read(self, block: int, precision: int | None = None) -> tuple[np.ndarray | None, Status]:
        """Values of ``block`` at ``precision`` mantissa bits (``None`` after ``corrupt``),
        and the status."""
        self._check_block(block)
        precision = self._clamp(precision)
        if block not in self.block_map:
            return (np.zeros(self.block_values, self.format.dtype),
                    Status(block, False, "unmapped", self.block_bytes, 0))
        entry = self.block_map[block]
        fetched, nbytes = self.fetch_plan(block, precision)
        data = self.read_bytes(entry.addr, nbytes)
        planes, pos, error = b"", 0, "none"
        for g in range(fetched):
            stored = data[pos:pos + entry.stored[g]]
            pos += entry.stored[g]
            size = self.group_raw_bytes(g)
            if entry.raw[g]:
                planes += stored
                continue
            try:
                got = lz4_decompress_block(stored, size)
            except LZ4FormatError:
                got = b""
            if len(got) != size:
                error = "corrupt"
            planes += got[:size] + bytes(max(0, size - len(got)))
        beats = self._words(nbytes)
        self.counters["raw_read"] += self.block_bytes
        self.counters["stored_read"] += beats * self.beat_bytes
        status = Status(block, False, error, self.block_bytes, beats * self.beat_bytes)
        if error != "none":
            return None, status
        n_planes = sum(self.groups[:fetched])
        words = bitplane_merge(planes, self.format, self.block_values, planes=n_planes)
        keep = planes_for_precision(self.format, precision)
        width = self.format.width
        words &= self.format.dtype(((1 << width) - 1) ^ ((1 << (width - keep)) - 1))
        return words, status

    def _clamp(self, precision: int | None) -> int | None:
        if precision is None or precision >= self.format.mant_bits:
            return None
        return precision

    def _check_block(self, block: int) -> None:
        if not isinstance(block, int) or not 0 <= block < self.blocks:
            raise ValueError(f"block must be an integer from 0 to {self.blocks - 1}, "
                             f"not {block!r}")
