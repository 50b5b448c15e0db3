"""Stream width converters: N narrow beats ⇄ one wide beat, packets kept with first/last."""

from dataclasses import dataclass

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .validate import check_int, packet_layout

__all__ = ["WidthConverterConfig", "WidthUpConverter", "WidthDownConverter"]


@dataclass(frozen=True)
class WidthConverterConfig:
    """Configuration of :class:`WidthUpConverter` and :class:`WidthDownConverter`.

    Parameters
    ----------
    narrow_width : int
        Bits per narrow beat.
    ratio : int
        Narrow beats per wide beat (≥ 2).

    The narrow payload is ``{data: narrow_width, first, last}``. The wide payload is
    ``{data: narrow_width*ratio, count, first, last}``: lane ``k`` of ``data`` is bits
    ``[k*narrow_width, (k+1)*narrow_width)``, lanes fill from lane 0, and ``count`` (1..ratio)
    says how many lanes hold data (fewer than ``ratio`` only on the last beat of a packet whose
    length is not a multiple of ``ratio``). Lanes at and above ``count`` are zero.
    """

    narrow_width: int = 8
    ratio: int = 4

    def __post_init__(self):
        check_int("narrow_width", self.narrow_width, min=1, max=1024)
        check_int("ratio", self.ratio, min=2, max=256)

    @property
    def wide_width(self) -> int:
        return self.narrow_width * self.ratio

    @property
    def narrow_layout(self):
        return packet_layout(self.narrow_width)

    @property
    def wide_layout(self):
        return data.StructLayout({
            "data": self.wide_width,
            "count": range(self.ratio + 1),
            "first": 1,
            "last": 1,
        })


class WidthUpConverter(wiring.Component):
    """Gathers ``ratio`` narrow beats into one wide beat.

    A wide beat is sent when ``ratio`` beats are gathered or when a beat with ``last`` arrives,
    so a packet never shares a wide beat with the next. ``first`` of a wide beat is ``first`` of
    its lane 0.

    Parameters
    ----------
    cfg : WidthConverterConfig

    Members
    -------
    i : In(stream.Signature(cfg.narrow_layout))
    o : Out(stream.Signature(cfg.wide_layout))

    Latency
    -------
    1 cycle after the beat that completes a wide beat.

    Throughput
    ----------
    One narrow beat per cycle.
    """

    def __init__(self, cfg: WidthConverterConfig):
        self.cfg = cfg
        super().__init__({
            "i": In(stream.Signature(cfg.narrow_layout)),
            "o": Out(stream.Signature(cfg.wide_layout)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        lane_index = Signal(range(cfg.ratio))
        lanes = self.o.payload.data

        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.If(self.i.valid & self.i.ready):
            lane = lane_index
            with m.If(lane_index == 0):
                m.d.sync += [
                    lanes.eq(self.i.payload.data),
                    self.o.payload.first.eq(self.i.payload.first),
                ]
            with m.Else():
                with m.Switch(lane):
                    for k in range(1, cfg.ratio):
                        with m.Case(k):
                            w = cfg.narrow_width
                            m.d.sync += lanes[k * w:(k + 1) * w].eq(self.i.payload.data)
            with m.If(self.i.payload.last | (lane == cfg.ratio - 1)):
                m.d.sync += [
                    self.o.valid.eq(1),
                    self.o.payload.count.eq(lane + 1),
                    self.o.payload.last.eq(self.i.payload.last),
                    lane_index.eq(0),
                ]
            with m.Else():
                m.d.sync += lane_index.eq(lane + 1)
        return m


class WidthDownConverter(wiring.Component):
    """Splits each wide beat into ``count`` narrow beats, lane 0 first.

    ``first`` goes on the first narrow beat of a wide beat with ``first``; ``last`` on the final
    narrow beat of a wide beat with ``last``. A ``count`` of 0 is sent as one lane, one above
    ``ratio`` as ``ratio`` lanes.

    Parameters
    ----------
    cfg : WidthConverterConfig

    Members
    -------
    i : In(stream.Signature(cfg.wide_layout))
    o : Out(stream.Signature(cfg.narrow_layout))

    Latency
    -------
    1 cycle.

    Throughput
    ----------
    One narrow beat per cycle (a new wide beat is taken in the cycle the last lane leaves).
    """

    def __init__(self, cfg: WidthConverterConfig):
        self.cfg = cfg
        super().__init__({
            "i": In(stream.Signature(cfg.wide_layout)),
            "o": Out(stream.Signature(cfg.narrow_layout)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        w = cfg.narrow_width
        held = Signal(cfg.wide_layout)
        lane_index = Signal(range(cfg.ratio))
        final_lane = Signal(range(cfg.ratio))
        at_final = Signal()

        m.d.comb += [
            at_final.eq(lane_index == final_lane),
            self.o.payload.data.eq(held.data.word_select(lane_index, w)),
            self.o.payload.first.eq(held.first & (lane_index == 0)),
            self.o.payload.last.eq(held.last & at_final),
            self.i.ready.eq(~self.o.valid | (self.o.ready & at_final)),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += lane_index.eq(lane_index + 1)
            with m.If(at_final):
                m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            count = self.i.payload.count
            m.d.sync += [
                held.eq(self.i.payload),
                lane_index.eq(0),
                self.o.valid.eq(1),
            ]
            with m.If(count == 0):
                m.d.sync += final_lane.eq(0)
            with m.Elif(count > cfg.ratio):
                m.d.sync += final_lane.eq(cfg.ratio - 1)
            with m.Else():
                m.d.sync += final_lane.eq(count - 1)
        return m
