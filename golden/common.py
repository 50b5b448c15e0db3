"""Reference behaviour of the common stream blocks (``hw/common``), as plain Python."""

__all__ = ["width_up", "width_down", "split_packets", "memory_reads"]


def width_up(beats: list[dict], narrow_width: int, ratio: int) -> list[dict]:
    """Wide beats :class:`hw.common.WidthUpConverter` makes of narrow ``beats``.

    A wide beat closes after ``ratio`` beats or at a beat with ``last``; unused lanes are zero.
    """
    out, lanes, first = [], [], 0
    for beat in beats:
        if not lanes:
            first = beat["first"]
        lanes.append(beat["data"])
        if beat["last"] or len(lanes) == ratio:
            word = sum(value << (k * narrow_width) for k, value in enumerate(lanes))
            out.append({"data": word, "count": len(lanes), "first": first, "last": beat["last"]})
            lanes = []
    return out


def width_down(words: list[dict], narrow_width: int, ratio: int) -> list[dict]:
    """Narrow beats :class:`hw.common.WidthDownConverter` makes of wide ``words``."""
    out = []
    mask = (1 << narrow_width) - 1
    for word in words:
        count = min(max(word["count"], 1), ratio)
        for k in range(count):
            out.append({"data": (word["data"] >> (k * narrow_width)) & mask,
                        "first": int(word["first"] and k == 0),
                        "last": int(word["last"] and k == count - 1)})
    return out


def split_packets(beats: list[dict]) -> list[list[dict]]:
    """Beats grouped into packets, each ending at a beat with ``last``."""
    packets, current = [], []
    for beat in beats:
        current.append(beat)
        if beat["last"]:
            packets.append(current)
            current = []
    if current:
        packets.append(current)
    return packets


def memory_reads(commands: list[dict], write_data: list[dict], words: int, *,
                 unwritten: int | None = 0) -> list[dict]:
    """Read beats ``{data, last}`` a memory of ``words`` words returns for ``commands``.

    Commands ``{addr, length, write}`` are served in order; write commands take their beats
    from ``write_data`` in order; addresses wrap modulo ``words``; a word not written reads
    as ``unwritten`` (``None`` when the test cannot know it).
    """
    memory, reads, beats = {}, [], iter(write_data)
    for command in commands:
        for k in range(command["length"]):
            addr = (command["addr"] + k) % words
            if command["write"]:
                memory[addr] = next(beats)["data"]
            else:
                reads.append({"data": memory.get(addr, unwritten),
                              "last": int(k == command["length"] - 1)})
    return reads
