"""A two-entry skid buffer: registers the forward (valid/payload) and backward (ready) paths."""

from dataclasses import dataclass

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .validate import check_int, check_shape, packet_layout

__all__ = ["SkidBufferConfig", "SkidBuffer"]


@dataclass(frozen=True)
class SkidBufferConfig:
    """Configuration of :class:`SkidBuffer`.

    Parameters
    ----------
    data_width : int
        Width of the ``data`` field of the default packet payload.
    payload : shape or layout, optional
        Payload shape to carry instead of the default packet layout.
    """

    data_width: int = 8
    payload: object = None

    def __post_init__(self):
        check_int("data_width", self.data_width, min=1, max=4096)
        check_shape("payload", self.payload)

    @property
    def payload_shape(self):
        return self.payload if self.payload is not None else packet_layout(self.data_width)


class SkidBuffer(wiring.Component):
    """Pipeline register for a stream that cuts every combinational path between its sides.

    ``i.ready`` is a register output, and so are ``o.valid`` and ``o.payload``; a second
    ("skid") register catches the entry that arrives in the cycle ``o`` stalls.

    Parameters
    ----------
    cfg : SkidBufferConfig

    Members
    -------
    i : In(stream.Signature(cfg.payload_shape))
    o : Out(stream.Signature(cfg.payload_shape))

    Latency
    -------
    1 cycle.

    Throughput
    ----------
    One entry per cycle.
    """

    def __init__(self, cfg: SkidBufferConfig):
        self.cfg = cfg
        super().__init__({
            "i": In(stream.Signature(cfg.payload_shape)),
            "o": Out(stream.Signature(cfg.payload_shape)),
        })

    def elaborate(self, platform):
        m = Module()
        skid_valid = Signal()
        skid_payload = Signal.like(self.i.payload)

        m.d.comb += self.i.ready.eq(~skid_valid)
        with m.If(self.o.ready | ~self.o.valid):
            with m.If(skid_valid):
                m.d.sync += [
                    self.o.payload.eq(skid_payload),
                    self.o.valid.eq(1),
                    skid_valid.eq(0),
                ]
            with m.Else():
                m.d.sync += [
                    self.o.payload.eq(self.i.payload),
                    self.o.valid.eq(self.i.valid),
                ]
        with m.Elif(self.i.valid & self.i.ready):
            m.d.sync += [
                skid_payload.eq(self.i.payload),
                skid_valid.eq(1),
            ]
        return m
