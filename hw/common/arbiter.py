"""Round-robin stream arbiter (N → 1) and stream demultiplexer (1 → N)."""

from dataclasses import dataclass

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .validate import check_int, check_shape, packet_layout

__all__ = ["ArbiterConfig", "RoundRobinArbiter", "StreamDemux"]


@dataclass(frozen=True)
class ArbiterConfig:
    """Configuration of :class:`RoundRobinArbiter` and :class:`StreamDemux`.

    Parameters
    ----------
    ports : int
        Number of streams on the wide side (≥ 2).
    data_width : int
        Width of the ``data`` field of the default packet payload.
    packets : bool
        Arbiter only: hold the grant from a packet's first beat until the beat with ``last``, so
        packets are never interleaved. Needs a payload with a ``last`` field.
    payload : shape or layout, optional
        Payload shape to carry instead of the default packet layout.
    """

    ports: int = 4
    data_width: int = 8
    packets: bool = True
    payload: object = None

    def __post_init__(self):
        check_int("ports", self.ports, min=2, max=64)
        check_int("data_width", self.data_width, min=1, max=4096)
        if not isinstance(self.packets, bool):
            raise ValueError(f"packets must be a bool, not {self.packets!r}")
        check_shape("payload", self.payload)
        if self.packets and self.payload is not None:
            fields = getattr(self.payload, "members", None) or {}
            if "last" not in fields:
                raise ValueError(
                    "packets=True needs a payload layout with a 'last' field; "
                    f"payload is {self.payload!r}"
                )

    @property
    def payload_shape(self):
        return self.payload if self.payload is not None else packet_layout(self.data_width)

    @property
    def tagged_layout(self):
        """Payload of the single-stream side: the port index and the payload."""
        return data.StructLayout({"port": range(self.ports), "payload": self.payload_shape})


class RoundRobinArbiter(wiring.Component):
    """Merges ``ports`` streams into one, taking turns.

    After each transfer (or, with ``packets``, each packet) the port after the one just served
    has the highest priority. Once ``o.valid`` is high its port is held until the transfer, so
    ``o`` keeps the stream contract even when a higher-priority port becomes valid meanwhile.

    Parameters
    ----------
    cfg : ArbiterConfig

    Members
    -------
    i : In(stream.Signature(cfg.payload_shape)).array(cfg.ports)
    o : Out(stream.Signature(cfg.tagged_layout))
        ``o.payload.port`` names the input the entry came from.

    Latency
    -------
    0 cycles (combinational; put a :class:`SkidBuffer` after it to register the path).

    Throughput
    ----------
    One entry per cycle.
    """

    def __init__(self, cfg: ArbiterConfig):
        self.cfg = cfg
        super().__init__({
            "i": In(stream.Signature(cfg.payload_shape)).array(cfg.ports),
            "o": Out(stream.Signature(cfg.tagged_layout)),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.cfg.ports
        grant = Signal(range(n), init=n - 1)
        locked = Signal()
        select = Signal(range(n))

        with m.If(locked):
            m.d.comb += select.eq(grant)
        with m.Else():
            # first valid port after `grant`, wrapping around; later assignments win,
            # so walk the candidates from lowest to highest priority
            for offset in reversed(range(1, n + 1)):
                with m.Switch(grant):
                    for g in range(n):
                        with m.Case(g):
                            port = (g + offset) % n
                            with m.If(self.i[port].valid):
                                m.d.comb += select.eq(port)

        with m.Switch(select):
            for k in range(n):
                with m.Case(k):
                    m.d.comb += [
                        self.o.valid.eq(self.i[k].valid),
                        self.o.payload.payload.eq(self.i[k].payload),
                        self.i[k].ready.eq(self.o.ready),
                    ]
        m.d.comb += self.o.payload.port.eq(select)

        with m.If(self.o.valid):
            m.d.sync += grant.eq(select)
            with m.If(self.o.ready):
                if self.cfg.packets:
                    m.d.sync += locked.eq(~self.o.payload.payload.last)
                else:
                    m.d.sync += locked.eq(0)
            with m.Else():
                m.d.sync += locked.eq(1)
        return m


class StreamDemux(wiring.Component):
    """Sends each entry to the output stream its ``port`` field names.

    Parameters
    ----------
    cfg : ArbiterConfig

    Members
    -------
    i : In(stream.Signature(cfg.tagged_layout))
    o : Out(stream.Signature(cfg.payload_shape)).array(cfg.ports)

    Latency
    -------
    0 cycles (combinational).

    Throughput
    ----------
    One entry per cycle.
    """

    def __init__(self, cfg: ArbiterConfig):
        self.cfg = cfg
        super().__init__({
            "i": In(stream.Signature(cfg.tagged_layout)),
            "o": Out(stream.Signature(cfg.payload_shape)).array(cfg.ports),
        })

    def elaborate(self, platform):
        m = Module()
        for k in range(self.cfg.ports):
            m.d.comb += [
                self.o[k].payload.eq(self.i.payload.payload),
                self.o[k].valid.eq(self.i.valid & (self.i.payload.port == k)),
            ]
        with m.Switch(self.i.payload.port):
            for k in range(self.cfg.ports):
                with m.Case(k):
                    m.d.comb += self.i.ready.eq(self.o[k].ready)
        return m
