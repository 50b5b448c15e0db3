"""The Λ-shaped KV cache manager: slot and address generation for sink + window attention.

The cache holds ``sink + window`` entries of ``entry_words`` words from ``base``: slots
``0 .. sink-1`` keep positions ``0 .. sink-1`` for good, slots ``sink .. sink+window-1`` are a
ring for the rest (position ``p`` in slot ``sink + (p - sink) % window``), so the append of
position ``p >= sink + window`` overwrites, and evicts, position ``p - window``. A read lists
exactly the keys Λ-shaped attention keeps for the newest query: the sinks, then the window from
its oldest position. The address sequences are :class:`golden.accllm.LambdaKVManager`'s.
"""

from dataclasses import dataclass

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..common.validate import check_int, check_power_of_two

__all__ = ["KVManagerConfig", "LambdaKVManager", "OPS", "PRESETS"]

#: Command encoding of ``i.payload.op`` (3 is a no-op).
OPS = {"append": 0, "read": 1, "clear": 2}


@dataclass(frozen=True)
class KVManagerConfig:
    """Configuration of :class:`LambdaKVManager`.

    Parameters
    ----------
    sink : int
        Attention-sink positions kept for good (0 to 1024).
    window : int
        Most recent positions kept (1 to 65536).
    entry_words : int
        Words per cache entry (a power of two, up to 2**16): ``addr = base + slot *
        entry_words``.
    base : int
        Address of slot 0 (below ``2**addr_width``).
    addr_width : int
        Address bits (8 to 32); addresses wrap modulo ``2**addr_width``.
    pos_width : int
        Position bits (8 to 32); positions (and the evicted one) are reported modulo
        ``2**pos_width``.
    """

    sink: int = 4
    window: int = 128
    entry_words: int = 4
    base: int = 0
    addr_width: int = 16
    pos_width: int = 16

    def __post_init__(self):
        check_int("sink", self.sink, min=0, max=1024)
        check_int("window", self.window, min=1, max=1 << 16)
        check_power_of_two("entry_words", self.entry_words, max=1 << 16)
        check_int("addr_width", self.addr_width, min=8, max=32)
        check_int("pos_width", self.pos_width, min=8, max=32)
        check_int("base", self.base, min=0, max=(1 << self.addr_width) - 1)
        if (self.sink + self.window) * self.entry_words > 1 << self.addr_width:
            raise ValueError(f"addr_width {self.addr_width} cannot address "
                             f"{self.sink + self.window} slots of {self.entry_words} words")

    @property
    def slots(self) -> int:
        return self.sink + self.window

    @property
    def command_layout(self) -> data.StructLayout:
        """``op``: 0 append, 1 read, 2 clear, 3 no-op."""
        return data.StructLayout({"op": 2})

    @property
    def output_layout(self) -> data.StructLayout:
        """``addr``, ``slot``, ``pos``, ``write`` (1 for an append), ``evict`` and ``evicted``
        (the position an append overwrites), ``first``/``last`` of a read (both 1 on an
        append)."""
        return data.StructLayout({
            "addr": self.addr_width,
            "slot": range(max(self.slots, 2)),
            "pos": self.pos_width,
            "write": 1,
            "evict": 1,
            "evicted": self.pos_width,
            "first": 1,
            "last": 1,
        })


PRESETS: dict[str, KVManagerConfig] = {
    "default": KVManagerConfig(),
    "tiny": KVManagerConfig(sink=2, window=5, entry_words=2, base=16, addr_width=8,
                            pos_width=8),
    "smollm2": KVManagerConfig(sink=4, window=128, entry_words=8, addr_width=16),
}


class LambdaKVManager(wiring.Component):
    """Slot and address generator of the bounded Λ-shaped KV cache.

    Parameters
    ----------
    cfg : KVManagerConfig

    Members
    -------
    i : In(stream.Signature(cfg.command_layout))
        Commands: append (one output beat: where the new position's K/V goes and what it
        evicts), read (one beat per held position, sinks then window, oldest first; none
        before the first append), clear (start a new sequence; no beat), no-op.
    o : Out(stream.Signature(cfg.output_layout))

    Latency
    -------
    The first beat of a command is offered the cycle after the command is taken.

    Throughput
    ----------
    One output beat per cycle during a read; one command per cycle for appends and clears
    (a command is taken once the previous one has sent its last beat).
    """

    def __init__(self, cfg: KVManagerConfig):
        self.cfg = cfg
        super().__init__({
            "i": In(stream.Signature(cfg.command_layout)),
            "o": Out(stream.Signature(cfg.output_layout)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        S, W = cfg.sink, cfg.window
        shift = cfg.entry_words.bit_length() - 1
        slot_shape = range(max(cfg.slots, 2))

        count = Signal(cfg.pos_width)          # next position to append
        sinks_held = Signal(range(S + 1))
        window_held = Signal(range(W + 1))
        ring = Signal(slot_shape, init=S)      # slot of the next window append = oldest

        # read iterator
        reading = Signal()
        it_pos = Signal(cfg.pos_width)
        it_slot = Signal(slot_shape)
        it_sinks = Signal(range(S + 1))        # sink beats still to send
        it_window = Signal(range(W + 1))       # window beats still to send
        it_first = Signal()

        o = self.o.payload
        free = ~self.o.valid | self.o.ready
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        m.d.comb += self.i.ready.eq(~reading & free)

        def emit(pos, slot, write, evict, evicted, first, last):
            m.d.sync += [self.o.valid.eq(1), o.pos.eq(pos), o.slot.eq(slot),
                         o.addr.eq(cfg.base + (slot << shift)), o.write.eq(write),
                         o.evict.eq(evict), o.evicted.eq(evicted), o.first.eq(first),
                         o.last.eq(last)]

        window_start = Mux(window_held == W, ring, S)
        with m.If(self.i.valid & self.i.ready):
            with m.Switch(self.i.payload.op):
                with m.Case(OPS["append"]):
                    in_sinks = sinks_held < S if S else Const(0, 1)
                    full = window_held == W
                    emit(count, Mux(in_sinks, sinks_held, ring), 1, ~in_sinks & full,
                         Mux(~in_sinks & full, count - W, 0), 1, 1)
                    m.d.sync += count.eq(count + 1)
                    with m.If(in_sinks):
                        m.d.sync += sinks_held.eq(sinks_held + 1)
                    with m.Else():
                        m.d.sync += ring.eq(Mux(ring == cfg.slots - 1, S, ring + 1))
                        with m.If(~full):
                            m.d.sync += window_held.eq(window_held + 1)
                with m.Case(OPS["read"]):
                    with m.If((sinks_held != 0) | (window_held != 0)):
                        m.d.sync += [reading.eq(1), it_sinks.eq(sinks_held),
                                     it_window.eq(window_held), it_first.eq(1),
                                     it_pos.eq(Mux(sinks_held != 0, 0, count - window_held)),
                                     it_slot.eq(Mux(sinks_held != 0, 0, window_start))]
                with m.Case(OPS["clear"]):
                    m.d.sync += [count.eq(0), sinks_held.eq(0), window_held.eq(0), ring.eq(S)]

        with m.If(reading & free):
            in_sinks = it_sinks != 0
            remaining = it_sinks + it_window
            emit(it_pos, it_slot, 0, 0, 0, it_first, remaining == 1)
            m.d.sync += it_first.eq(0)
            with m.If(remaining == 1):
                m.d.sync += reading.eq(0)
            with m.If(in_sinks):
                m.d.sync += it_sinks.eq(it_sinks - 1)
                with m.If(it_sinks == 1):
                    # on to the window
                    m.d.sync += [it_pos.eq(count - window_held), it_slot.eq(window_start)]
                with m.Else():
                    m.d.sync += [it_pos.eq(it_pos + 1), it_slot.eq(it_slot + 1)]
            with m.Else():
                m.d.sync += [it_window.eq(it_window - 1), it_pos.eq(it_pos + 1),
                             it_slot.eq(Mux(it_slot == cfg.slots - 1, S, it_slot + 1))]
        return m
