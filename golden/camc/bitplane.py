"""Number formats, bit-plane and byte-plane disaggregation, plane groups.

Values are raw bit patterns (``uint16`` for BF16/FP16, ``uint8`` for FP8-E4M3): the memory
controller never does arithmetic on them.

Bit-plane layout
----------------
For a block of ``count`` values of a ``width``-bit format, plane ``k`` (``k = width-1 .. 0``)
holds bit ``k`` of every value. A plane is ``ceil(count / 8)`` bytes: byte ``j`` holds values
``8j .. 8j+7``, value ``8j`` in its most significant bit (``np.packbits`` big-endian bit
order); a partial last byte is padded with zero bits. Planes are stored most significant
first: plane ``width-1`` (the sign) at offset 0, plane ``k`` at offset
``(width-1-k) * ceil(count/8)``.

Byte-plane layout
-----------------
For 16-bit formats, the high bytes of all values, then the low bytes; FP8 is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "FloatFormat", "FORMATS", "DEFAULT_PLANE_GROUPS", "get_format", "check_values",
    "plane_bytes", "bitplane_split", "bitplane_merge", "byteplane_split", "byteplane_merge",
    "plane_groups", "planes_for_precision", "truncate_mantissa",
]


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format: ``sign | exponent | mantissa``, MSB first."""

    name: str
    code: int
    sign_bits: int
    exp_bits: int
    mant_bits: int

    @property
    def width(self) -> int:
        return self.sign_bits + self.exp_bits + self.mant_bits

    @property
    def dtype(self) -> type:
        return np.uint16 if self.width == 16 else np.uint8

    @property
    def bytes_per_value(self) -> int:
        return self.width // 8

    @property
    def exp_mask(self) -> int:
        return ((1 << self.exp_bits) - 1) << self.mant_bits


FORMATS: dict[str, FloatFormat] = {
    "bf16": FloatFormat("bf16", 0, 1, 8, 7),
    "fp16": FloatFormat("fp16", 1, 1, 5, 10),
    "fp8_e4m3": FloatFormat("fp8_e4m3", 2, 1, 4, 3),
}

#: Planes per group, most significant group first: sign+exponent, then mantissa slices.
DEFAULT_PLANE_GROUPS: dict[str, tuple[int, ...]] = {
    "bf16": (9, 4, 3),
    "fp16": (6, 5, 5),
    "fp8_e4m3": (5, 3),
}


def get_format(fmt: str | FloatFormat) -> FloatFormat:
    if isinstance(fmt, FloatFormat):
        return fmt
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {sorted(FORMATS)}, not {fmt!r}")
    return FORMATS[fmt]


def check_values(values, fmt: str | FloatFormat) -> np.ndarray:
    """``values`` as a 1-D array of the format's raw dtype; out-of-range patterns raise."""
    f = get_format(fmt)
    arr = np.asarray(values)
    if arr.dtype.kind not in "ui":
        raise ValueError(f"values must be raw integer bit patterns, not dtype {arr.dtype}")
    arr = arr.reshape(-1)
    if arr.size and (arr.min() < 0 or arr.max() >= (1 << f.width)):
        raise ValueError(f"values must be {f.width}-bit patterns for {f.name}")
    return arr.astype(f.dtype)


def plane_bytes(count: int) -> int:
    """Bytes in one bit plane of ``count`` values."""
    return (count + 7) // 8


def bitplane_split(values, fmt: str | FloatFormat) -> bytes:
    """All bit planes of ``values``, MSB plane first (layout in the module docstring)."""
    f = get_format(fmt)
    arr = check_values(values, fmt)
    shifts = np.arange(f.width - 1, -1, -1, dtype=f.dtype)[:, None]
    bits = ((arr[None, :] >> shifts) & 1).astype(np.uint8)
    return np.packbits(bits, axis=1, bitorder="big").tobytes()


def bitplane_merge(data: bytes, fmt: str | FloatFormat, count: int,
                   planes: int | None = None) -> np.ndarray:
    """Inverse of :func:`bitplane_split`. With ``planes`` given, ``data`` holds only the top
    ``planes`` planes and the missing low planes read as zero bits."""
    f = get_format(fmt)
    planes = f.width if planes is None else planes
    if not 0 <= planes <= f.width:
        raise ValueError(f"planes must be from 0 to {f.width}, not {planes!r}")
    pb = plane_bytes(count)
    if len(data) != planes * pb:
        raise ValueError(f"{planes} planes of {count} values are {planes * pb} bytes, "
                         f"not {len(data)}")
    packed = np.frombuffer(bytes(data), dtype=np.uint8).reshape(planes, pb)
    bits = np.unpackbits(packed, axis=1, count=count, bitorder="big").astype(f.dtype)
    out = np.zeros(count, dtype=f.dtype)
    for row in range(planes):
        out |= bits[row] << f.dtype(f.width - 1 - row)
    return out


def byteplane_split(values, fmt: str | FloatFormat) -> bytes:
    """High bytes of all values, then low bytes (16-bit formats); FP8 values unchanged."""
    f = get_format(fmt)
    arr = check_values(values, fmt)
    if f.width == 8:
        return arr.tobytes()
    return (arr >> 8).astype(np.uint8).tobytes() + (arr & 0xFF).astype(np.uint8).tobytes()


def byteplane_merge(data: bytes, fmt: str | FloatFormat, count: int) -> np.ndarray:
    """Inverse of :func:`byteplane_split`."""
    f = get_format(fmt)
    buf = np.frombuffer(bytes(data), dtype=np.uint8)
    if len(buf) != count * f.bytes_per_value:
        raise ValueError(f"{count} {f.name} values are {count * f.bytes_per_value} bytes, "
                         f"not {len(buf)}")
    if f.width == 8:
        return buf.copy()
    return (buf[:count].astype(np.uint16) << 8) | buf[count:].astype(np.uint16)


def plane_groups(fmt: str | FloatFormat, groups=None) -> tuple[int, ...]:
    """Validated planes-per-group tuple (default :data:`DEFAULT_PLANE_GROUPS`).

    Groups are MSB first and cover every plane; the first group holds at least the sign and
    the exponent, so every read fetches them.
    """
    f = get_format(fmt)
    groups = DEFAULT_PLANE_GROUPS[f.name] if groups is None else tuple(groups)
    if (not groups or len(groups) > 16 or any(not isinstance(g, int) or g < 1 for g in groups)
            or sum(groups) != f.width or groups[0] < f.sign_bits + f.exp_bits):
        raise ValueError(f"groups must be 1 to 16 positive plane counts summing to {f.width}, "
                         f"the first at least {f.sign_bits + f.exp_bits} (sign and exponent), "
                         f"not {groups!r}")
    return groups


def planes_for_precision(fmt: str | FloatFormat, precision: int | None) -> int:
    """Planes a read at ``precision`` mantissa bits needs (``None``: all)."""
    f = get_format(fmt)
    if precision is None:
        return f.width
    if not isinstance(precision, int) or not 0 <= precision <= f.mant_bits:
        raise ValueError(f"precision must be a number of mantissa bits from 0 to "
                         f"{f.mant_bits} for {f.name}, or None, not {precision!r}")
    return f.sign_bits + f.exp_bits + precision


def truncate_mantissa(values, fmt: str | FloatFormat, precision: int | None) -> np.ndarray:
    """``values`` with all but the top ``precision`` mantissa bits cleared (round toward zero).

    Truncation acts on bit patterns only: a BF16/FP16 NaN whose payload lies only in the
    cleared bits becomes an infinity of the same sign, and the FP8-E4M3 NaN (``S.1111.111``)
    becomes ``S.1111.000`` (+-256) unless all 3 mantissa bits are kept.
    """
    f = get_format(fmt)
    arr = check_values(values, fmt)
    keep = planes_for_precision(f, precision)
    mask = ((1 << f.width) - 1) ^ ((1 << (f.width - keep)) - 1)
    return arr & f.dtype(mask)
