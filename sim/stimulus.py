"""Seeded random stimulus for stream and memory-port testbenches (amaranth.sim and cocotb)."""

import random

__all__ = ["random_packets", "random_commands"]


def random_packets(rng: random.Random, beats: int, data_width: int, max_length: int = 9):
    """At least ``beats`` beats ``{data, first, last}`` in packets of 1..``max_length`` beats."""
    out = []
    while len(out) < beats:
        length = rng.randint(1, max_length)
        for k in range(length):
            out.append({"data": rng.getrandbits(data_width), "first": int(k == 0),
                        "last": int(k == length - 1)})
    return out


def random_commands(rng: random.Random, cfg, count: int, span: int):
    """``count`` memory-port commands (reads and writes, length 0 included) below ``span``.

    ``cfg`` is a :class:`hw.common.MemoryPortConfig` (or anything with ``length_width``).
    """
    commands = []
    for _ in range(count):
        length = rng.choice([0, 1, 2, rng.randint(1, (1 << cfg.length_width) - 1)])
        commands.append({"addr": rng.randrange(span), "length": min(length, span),
                         "write": rng.getrandbits(1)})
    return commands
