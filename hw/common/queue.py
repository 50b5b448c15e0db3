"""A stream FIFO on ``amaranth.lib.fifo``."""

from dataclasses import dataclass

from amaranth.hdl import Module, Mux, Shape, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .validate import check_int, check_shape, packet_layout

__all__ = ["QueueConfig", "Queue"]


@dataclass(frozen=True)
class QueueConfig:
    """Configuration of :class:`Queue`.

    Parameters
    ----------
    data_width : int
        Width of the ``data`` field of the default packet payload (``data``, ``first``, ``last``).
    depth : int
        Number of entries.
    buffered : bool
        ``True``: the read side is a register (``SyncFIFOBuffered``, better timing, one more
        cycle of latency); ``False``: ``SyncFIFO`` with a combinational read side.
    payload : shape or layout, optional
        Payload shape to carry instead of the default packet layout (not settable from the CLI).
    eager_write : bool
        Only with ``buffered=False``: ``i.payload`` is written into the next free entry in
        every cycle the queue is not full, pushed or not (that entry is not read before it
        is pushed), so ``i.valid`` reaches only the write pointer and the level, not the
        storage's write enables: for a producer whose ``valid`` is a late decision.
    """

    data_width: int = 8
    depth: int = 16
    buffered: bool = True
    payload: object = None
    eager_write: bool = False

    def __post_init__(self):
        check_int("data_width", self.data_width, min=1, max=4096)
        check_int("depth", self.depth, min=1, max=1 << 16)
        if not isinstance(self.buffered, bool):
            raise ValueError(f"buffered must be a bool, not {self.buffered!r}")
        if not isinstance(self.eager_write, bool):
            raise ValueError(f"eager_write must be a bool, not {self.eager_write!r}")
        if self.eager_write and self.buffered:
            raise ValueError("eager_write needs buffered=False (a combinational read side)")
        check_shape("payload", self.payload)

    @property
    def payload_shape(self):
        return self.payload if self.payload is not None else packet_layout(self.data_width)


class Queue(wiring.Component):
    """First-in first-out stream buffer.

    Parameters
    ----------
    cfg : QueueConfig

    Members
    -------
    i : In(stream.Signature(cfg.payload_shape))
        Entries in.
    o : Out(stream.Signature(cfg.payload_shape))
        Entries out, in the order they came in.
    level : Out(range(cfg.depth + 1))
        Number of entries held.

    Latency
    -------
    2 cycles from ``i`` to ``o`` when buffered, 1 otherwise.

    Throughput
    ----------
    One entry per cycle in and out.
    """

    def __init__(self, cfg: QueueConfig):
        self.cfg = cfg
        super().__init__({
            "i": In(stream.Signature(cfg.payload_shape)),
            "o": Out(stream.Signature(cfg.payload_shape)),
            "level": Out(range(cfg.depth + 1)),
        })

    def elaborate(self, platform):
        if self.cfg.eager_write:
            return self._elaborate_eager()
        m = Module()
        fifo_class = fifo.SyncFIFOBuffered if self.cfg.buffered else fifo.SyncFIFO
        width = Shape.cast(self.cfg.payload_shape).width
        m.submodules.fifo = queue = fifo_class(width=width, depth=self.cfg.depth)
        wiring.connect(m, wiring.flipped(self.i), queue.w_stream)
        wiring.connect(m, queue.r_stream, wiring.flipped(self.o))
        m.d.comb += self.level.eq(queue.level)
        return m

    def _elaborate_eager(self):
        m = Module()
        depth = self.cfg.depth
        m.submodules.storage = storage = Memory(shape=self.cfg.payload_shape, depth=depth,
                                                init=[])
        w_port = storage.write_port()
        r_port = storage.read_port(domain="comb")
        produce = Signal(range(depth))
        consume = Signal(range(depth))
        level = Signal(range(depth + 1))
        full = Signal()
        m.d.comb += [full.eq(level == depth),
                     w_port.addr.eq(produce), w_port.data.eq(self.i.payload),
                     w_port.en.eq(~full),
                     r_port.addr.eq(consume), self.o.payload.eq(r_port.data),
                     self.i.ready.eq(~full), self.o.valid.eq(level != 0),
                     self.level.eq(level)]
        push = self.i.valid & ~full
        pop = self.o.valid & self.o.ready
        with m.If(push):
            m.d.sync += produce.eq(Mux(produce == depth - 1, 0, produce + 1))
        with m.If(pop):
            m.d.sync += consume.eq(Mux(consume == depth - 1, 0, consume + 1))
        with m.If(push & ~pop):
            m.d.sync += level.eq(level + 1)
        with m.Elif(pop & ~push):
            m.d.sync += level.eq(level - 1)
        return m
