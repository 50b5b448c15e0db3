"""Cross-token KV-cache layout with a per-channel exponent base.

A KV cache is ``kv[token][channel]`` raw bit patterns of one format. Tokens are cut into
groups of ``group_tokens`` consecutive tokens (the last group may be shorter). For each group:

- the group is transposed to channel-major order, ``[channel][token]``;
- each channel's *base* is the largest exponent field among its values in the group,
  stored once (one byte per channel, the exponent in the low ``exp_bits`` bits);
- every value's exponent field is replaced by ``base - exponent`` (an unsigned integer that
  fits the exponent field, since ``0 <= exponent <= base``); the sign bit and the mantissa
  keep their positions, so the transformed word is ``sign | (base - exp) | mantissa`` with the
  same field widths as the format and goes through :func:`~.bitplane.bitplane_split` as is.

The words of all groups are concatenated, group after group (group 0's channel 0 tokens,
channel 1 tokens, ...); the bases form an array ``[group][channel]``. The transform works on
exponent fields as integers, so zeros, subnormals, infinities and NaNs are all lossless.
Values that share an exponent range across tokens turn into small deltas, so the high
exponent planes become mostly zero.
"""

from __future__ import annotations

import numpy as np

from .bitplane import FloatFormat, check_values, get_format

__all__ = ["token_groups", "kv_to_channel_major", "kv_from_channel_major"]


def token_groups(tokens: int, group_tokens: int) -> list[tuple[int, int]]:
    """``(first, end)`` token ranges of the groups."""
    if not isinstance(group_tokens, int) or group_tokens < 1:
        raise ValueError(f"group_tokens must be a positive integer, not {group_tokens!r}")
    return [(t, min(t + group_tokens, tokens)) for t in range(0, tokens, group_tokens)]


def _as_kv(kv, fmt: FloatFormat, channels: int | None = None) -> np.ndarray:
    arr = np.asarray(kv)
    if arr.ndim == 1 and channels:
        if arr.size % channels:
            raise ValueError(f"{arr.size} values are not a whole number of tokens of "
                             f"{channels} channels")
        arr = arr.reshape(-1, channels)
    if arr.ndim != 2:
        raise ValueError(f"kv must be a 2-D [tokens][channels] array, not shape {arr.shape}")
    return check_values(arr, fmt).reshape(arr.shape)


def kv_to_channel_major(kv, group_tokens: int,
                        fmt: str | FloatFormat = "bf16") -> tuple[np.ndarray, np.ndarray]:
    """``(words, bases)`` of the layout above for ``kv[token][channel]``.

    ``words`` is 1-D (``tokens * channels`` values of the format's dtype); ``bases`` is a
    ``uint8`` array ``[group][channel]``.
    """
    f = get_format(fmt)
    arr = _as_kv(kv, f)
    tokens, channels = arr.shape
    exp_field = f.dtype(f.exp_mask)
    words, bases = [], []
    for first, end in token_groups(tokens, group_tokens):
        block = arr[first:end].T
        exps = (block & exp_field) >> f.mant_bits
        base = exps.max(axis=1)
        delta = (base[:, None] - exps).astype(f.dtype)
        words.append(((block & f.dtype(~f.exp_mask & ((1 << f.width) - 1)))
                      | (delta << f.dtype(f.mant_bits))).reshape(-1))
        bases.append(base.astype(np.uint8))
    flat = np.concatenate(words) if words else np.zeros(0, dtype=f.dtype)
    return flat.astype(f.dtype), np.array(bases, dtype=np.uint8).reshape(-1, channels)


def kv_from_channel_major(words, bases, channels: int, group_tokens: int,
                          fmt: str | FloatFormat = "bf16") -> np.ndarray:
    """Inverse of :func:`kv_to_channel_major`: ``kv[token][channel]``."""
    f = get_format(fmt)
    flat = check_values(words, f)
    if not isinstance(channels, int) or channels < 1 or flat.size % channels:
        raise ValueError(f"channels must be a positive integer dividing {flat.size}, "
                         f"not {channels!r}")
    tokens = flat.size // channels
    ranges = token_groups(tokens, group_tokens)
    bases = np.asarray(bases).reshape(-1, channels) if len(ranges) else np.zeros((0, channels))
    if bases.shape[0] != len(ranges):
        raise ValueError(f"{len(ranges)} token groups need {len(ranges)} rows of bases, "
                         f"not {bases.shape[0]}")
    if bases.size and int(bases.max()) >= (1 << f.exp_bits):
        raise ValueError(f"bases must fit {f.exp_bits} exponent bits")
    kv = np.empty((tokens, channels), dtype=f.dtype)
    exp_field = f.dtype(f.exp_mask)
    pos = 0
    for g, (first, end) in enumerate(ranges):
        block = flat[pos:pos + channels * (end - first)].reshape(channels, end - first)
        pos += block.size
        delta = (block & exp_field) >> f.mant_bits
        base = bases[g].astype(np.int64)[:, None]
        exps = base - delta.astype(np.int64)
        if (exps < 0).any():
            raise ValueError(f"token group {g}: an exponent delta exceeds its channel base")
        kv[first:end] = ((block & f.dtype(~f.exp_mask & ((1 << f.width) - 1)))
                         | (exps.astype(f.dtype) << f.dtype(f.mant_bits))).T
    return kv
