"""Seeded stall and back-pressure patterns, shared by amaranth.sim and cocotb testbenches.

A pattern is an endless iterator of booleans, one per cycle: ``True`` means "hold off this
cycle" (a source keeps ``valid`` low, a sink keeps ``ready`` low).
"""

import itertools
import random
from collections.abc import Iterator

__all__ = ["PATTERNS", "stall_pattern"]

PATTERNS = ("none", "random", "heavy", "bursty", "alternate", "every_fourth")


def stall_pattern(name: str, seed: int = 0) -> Iterator[bool]:
    """The named pattern, reproducible from ``seed``.

    ``none``: never stall. ``random``: stall 30% of cycles. ``heavy``: stall 70%.
    ``bursty``: runs of 1-16 free cycles then 1-16 stalled ones. ``alternate``: stall every
    other cycle. ``every_fourth``: stall one cycle in four (the ``cycle([1,1,1,0])`` pattern).
    """
    rng = random.Random(f"{name}:{seed}")
    if name == "none":
        return itertools.repeat(False)
    if name == "random":
        return (rng.random() < 0.3 for _ in itertools.count())
    if name == "heavy":
        return (rng.random() < 0.7 for _ in itertools.count())
    if name == "bursty":
        def bursty():
            while True:
                yield from itertools.repeat(False, rng.randint(1, 16))
                yield from itertools.repeat(True, rng.randint(1, 16))
        return bursty()
    if name == "alternate":
        return itertools.cycle([False, True])
    if name == "every_fourth":
        return itertools.cycle([False, False, False, True])
    raise ValueError(f"unknown stall pattern {name!r}; choose one of: {', '.join(PATTERNS)}")
