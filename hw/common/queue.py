"""A stream FIFO on ``amaranth.lib.fifo``."""

from dataclasses import dataclass

from amaranth.hdl import Module, Shape
from amaranth.lib import fifo, stream, wiring
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
    """

    data_width: int = 8
    depth: int = 16
    buffered: bool = True
    payload: object = None

    def __post_init__(self):
        check_int("data_width", self.data_width, min=1, max=4096)
        check_int("depth", self.depth, min=1, max=1 << 16)
        if not isinstance(self.buffered, bool):
            raise ValueError(f"buffered must be a bool, not {self.buffered!r}")
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
        m = Module()
        fifo_class = fifo.SyncFIFOBuffered if self.cfg.buffered else fifo.SyncFIFO
        width = Shape.cast(self.cfg.payload_shape).width
        m.submodules.fifo = queue = fifo_class(width=width, depth=self.cfg.depth)
        wiring.connect(m, wiring.flipped(self.i), queue.w_stream)
        wiring.connect(m, queue.r_stream, wiring.flipped(self.o))
        m.d.comb += self.level.eq(queue.level)
        return m
