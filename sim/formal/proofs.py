"""Harnesses and the registry of bounded proofs of the stream contract for ``hw.common``.

Each harness wraps one block in a small configuration, drives its inputs freely, assumes the
sources keep the stream contract (``valid`` and ``payload`` held until the transfer) and asserts:

1. the outputs keep the same contract;
2. no transfer is lost, duplicated or reordered, checked on a symbolic transfer index (for the
   width converters the index maps narrow beats to wide lanes; for the arbiter and the demux it
   runs per port, with packet locking and round-robin fairness for the arbiter), and the output
   count never runs ahead of the input count;
3. progress within the documented latency (an accepted entry is on offer in time; the arbiter
   and demux never sit idle while they could pass an entry), so an entry cannot vanish at the
   end of a trace unnoticed;
4. ``Cover`` statements that reach real traffic (a full queue, a wrap, a partial wide beat...),
   checked by a separate ``cover`` task, so the assumptions cannot make the proof vacuous.

The sync domain has no reset: registers start from their initial values, which is the state
reset puts them in.
"""

from dataclasses import dataclass

from amaranth.hdl import (
    Assert,
    Assume,
    Cat,
    ClockDomain,
    Cover,
    Elaboratable,
    Module,
    Mux,
    ResetSignal,
    Signal,
    Value,
)
from amaranth.lib import wiring

from hw.common import (
    ArbiterConfig,
    Queue,
    QueueConfig,
    RoundRobinArbiter,
    SkidBuffer,
    SkidBufferConfig,
    StreamDemux,
    WidthConverterConfig,
    WidthDownConverter,
    WidthUpConverter,
)

from .properties import (
    Endpoint,
    assert_sink_contract,
    assume_source_contract,
    check_in_order,
    delayed,
    drive_freely,
    endpoint,
    symbolic_constant,
)
from .runner import ProofResult, run_proof

__all__ = [
    "Proof", "PROOFS", "proof_names", "get_proof",
    "StreamHarness", "QueueHarness", "WidthUpHarness", "WidthDownHarness", "ArbiterHarness",
    "DemuxHarness",
]


class _Harness(Elaboratable):
    """Common top: a reset-less sync domain and the design under test as ``dut``.

    Parameters
    ----------
    dut : wiring.Component
        The block, or a deliberately broken variant with the same ports and ``cfg``.
    depth : int
        Proof depth in cycles; sizes the harness counters so they cannot wrap.
    """

    def __init__(self, dut: wiring.Component, depth: int):
        self.dut = dut
        self.depth = depth

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain()
        # initial values are the reset state; a free reset would need the checkers reset too
        m.d.comb += ResetSignal().eq(0)
        m.submodules.dut = self.dut
        self.check(m, self.dut)
        return m

    def check(self, m: Module, dut) -> None:
        raise NotImplementedError


class StreamHarness(_Harness):
    """One stream in, the same stream out, in order (skid buffer, queue).

    Besides order, the documented latency is a bound: an entry accepted ``latency`` cycles ago
    or earlier and not yet sent must be on offer, so an entry cannot vanish quietly at the end
    of a trace either.
    """

    def latency(self, dut) -> int:
        return 1

    def check(self, m, dut):
        drive_freely(m, dut.i.valid, dut.i.payload, dut.o.ready)
        assume_source_contract(m, endpoint(dut.i), name="i")
        assert_sink_contract(m, endpoint(dut.o), name="o")
        order = check_in_order(m, endpoint(dut.i), endpoint(dut.o), max_transfers=self.depth,
                               name="order")
        # in_count of (latency - 1) cycles ago counts the entries accepted `latency` cycles ago
        ripe = delayed(m, order.in_count, self.latency(dut) - 1, name="ripe")
        m.d.comb += Assert(dut.o.valid | (ripe <= order.out_count))
        # enough traffic to have refilled the block and seen back-pressure
        m.d.comb += [
            Cover(dut.o.valid & dut.o.ready & (order.out_count == 4)),
            Cover(dut.o.valid & ~dut.o.ready & dut.i.valid & ~dut.i.ready),
        ]
        return order


class QueueHarness(StreamHarness):
    """:class:`StreamHarness` plus ``level`` bookkeeping, a full queue and a pointer wrap."""

    def latency(self, dut) -> int:
        return 2 if dut.cfg.buffered else 1

    def check(self, m, dut):
        order = super().check(m, dut)
        depth = dut.cfg.depth
        m.d.comb += [
            Assert(dut.level == order.in_count - order.out_count),
            Cover(dut.level == depth),
            # the memory pointers have wrapped twice and the queue then filled up again
            Cover((order.out_count >= 2 * depth) & (dut.level == depth)),
        ]


class WidthUpHarness(_Harness):
    """Narrow beats in, wide beats out: each narrow beat lands in the lane the packet rules say.

    A reference position (wide beat, lane) runs beside the converter: the lane advances on each
    narrow beat and a wide beat closes after lane ``ratio - 1`` or a beat with ``last``.
    """

    def check(self, m, dut):
        cfg = dut.cfg
        w = cfg.narrow_width
        drive_freely(m, dut.i.valid, dut.i.payload, dut.o.ready)
        assume_source_contract(m, endpoint(dut.i), name="i")
        assert_sink_contract(m, endpoint(dut.o), name="o")

        width = self.depth.bit_length()
        index = symbolic_constant(m, width, name="index")
        in_count = Signal(width)
        out_count = Signal(width)
        lane = Signal(range(cfg.ratio))
        group = Signal(width)
        closing = Signal()
        rec = Signal(cfg.narrow_layout)
        rec_lane = Signal(range(cfg.ratio))
        rec_group = Signal(width)
        rec_closing = Signal()
        rec_valid = Signal()

        i_fire = dut.i.valid & dut.i.ready
        o_fire = dut.o.valid & dut.o.ready
        m.d.comb += closing.eq(dut.i.payload.last | (lane == cfg.ratio - 1))
        with m.If(i_fire):
            m.d.sync += in_count.eq(in_count + 1)
            with m.If(closing):
                m.d.sync += [lane.eq(0), group.eq(group + 1)]
            with m.Else():
                m.d.sync += lane.eq(lane + 1)
            with m.If(in_count == index):
                m.d.sync += [
                    rec.eq(dut.i.payload), rec_lane.eq(lane), rec_group.eq(group),
                    rec_closing.eq(closing), rec_valid.eq(1),
                ]
        with m.If(o_fire):
            m.d.sync += out_count.eq(out_count + 1)

        o = dut.o.payload
        with m.If(o_fire & rec_valid & (out_count == rec_group)):
            m.d.comb += [
                Assert(o.data.word_select(rec_lane, w) == rec.data),
                Assert(o.count > rec_lane),
            ]
            with m.If(rec_lane == 0):
                m.d.comb += Assert(o.first == rec.first)
            with m.If(rec_closing):
                m.d.comb += [Assert(o.count == rec_lane + 1), Assert(o.last == rec.last)]
        with m.If(dut.o.valid):
            m.d.comb += Assert((o.count >= 1) & (o.count <= cfg.ratio))
            # lanes at and above `count` are zero, as the payload layout promises
            for k in range(1, cfg.ratio):
                with m.If(o.count <= k):
                    m.d.comb += Assert(o.data.word_select(k, w) == 0)
        # only closed wide beats leave, no earlier than the cycle after they closed, and a closed
        # wide beat is on offer from that cycle on (latency 1)
        m.d.comb += [
            Assert(out_count + o_fire <= group),
            Assert(dut.o.valid | (out_count == group)),
        ]

        m.d.comb += [
            Cover(o_fire & (o.count == cfg.ratio) & (out_count == 1)),
            Cover(o_fire & (o.count < cfg.ratio) & o.last & (out_count == 2)),
            Cover(dut.o.valid & ~dut.o.ready & dut.i.valid),
        ]


class WidthDownHarness(_Harness):
    """Wide beats in, narrow beats out: wide beat ``N`` becomes the next ``count`` narrow beats.

    A count of 0 is sent as one lane and one above ``ratio`` as ``ratio`` lanes (the documented
    behaviour), so ``count`` is left free.
    """

    def check(self, m, dut):
        cfg = dut.cfg
        w = cfg.narrow_width
        drive_freely(m, dut.i.valid, dut.i.payload, dut.o.ready)
        assume_source_contract(m, endpoint(dut.i), name="i")
        assert_sink_contract(m, endpoint(dut.o), name="o")

        # narrow beats: at most one per cycle; promised narrow beats: up to `ratio` per wide beat
        width = (self.depth * cfg.ratio).bit_length()
        index = symbolic_constant(m, width, name="index")
        in_count = Signal(width)
        promised = Signal(width)
        out_count = Signal(width)
        lanes = Signal(range(cfg.ratio + 1))
        rec = Signal(cfg.wide_layout)
        rec_base = Signal(width)
        rec_lanes = Signal(range(cfg.ratio + 1))
        rec_valid = Signal()

        count = dut.i.payload.count
        with m.If(count == 0):
            m.d.comb += lanes.eq(1)
        with m.Elif(count > cfg.ratio):
            m.d.comb += lanes.eq(cfg.ratio)
        with m.Else():
            m.d.comb += lanes.eq(count)

        i_fire = dut.i.valid & dut.i.ready
        o_fire = dut.o.valid & dut.o.ready
        with m.If(i_fire):
            m.d.sync += [in_count.eq(in_count + 1), promised.eq(promised + lanes)]
            with m.If(in_count == index):
                m.d.sync += [
                    rec.eq(dut.i.payload), rec_base.eq(promised), rec_lanes.eq(lanes),
                    rec_valid.eq(1),
                ]
        with m.If(o_fire):
            m.d.sync += out_count.eq(out_count + 1)

        lane = Signal(range(cfg.ratio))
        in_recorded = rec_valid & (out_count >= rec_base) & (out_count < rec_base + rec_lanes)
        m.d.comb += lane.eq(out_count - rec_base)
        o = dut.o.payload
        with m.If(o_fire & in_recorded):
            m.d.comb += [
                Assert(o.data == rec.data.word_select(lane, w)),
                Assert(o.first == (rec.first & (lane == 0))),
                Assert(o.last == (rec.last & (lane == rec_lanes - 1))),
            ]
        # never more narrow beats than promised, and a narrow beat on offer whenever some are
        # owed (latency 1, no bubble between the lanes of a wide beat)
        m.d.comb += [
            Assert(out_count + o_fire <= promised),
            Assert(dut.o.valid | (out_count == promised)),
        ]

        m.d.comb += [
            Cover(o_fire & o.last & (out_count == 4)),
            Cover(i_fire & (count == 0) & (in_count == 2)),
            Cover(dut.o.valid & ~dut.o.ready & dut.i.valid),
        ]


class ArbiterHarness(_Harness):
    """N streams merged into one tagged stream.

    Per port (a symbolic port ``P``): the transfers from ``i[P]`` come out in order, tagged
    ``port == P``. With ``packets``: once a packet has started on ``o`` no other port shows until
    its ``last`` beat. Round-robin: while a port waits, other ports complete at most
    ``ports - 1`` grants (transfers, or packets with ``packets``).
    """

    def check(self, m, dut):
        cfg = dut.cfg
        n = cfg.ports
        for k in range(n):
            drive_freely(m, dut.i[k].valid, dut.i[k].payload)
            assume_source_contract(m, endpoint(dut.i[k]), name=f"i{k}")
        drive_freely(m, dut.o.ready)
        assert_sink_contract(m, endpoint(dut.o), name="o")

        o = dut.o.payload
        o_fire = dut.o.valid & dut.o.ready
        m.d.comb += Assert(~dut.o.valid | (o.port < n))

        port = symbolic_constant(m, range(n), name="port")
        m.d.comb += Assume(port < n)
        source_valid = Signal()
        source_ready = Signal()
        source_payload = Signal(cfg.payload_shape)
        for k in range(n):
            with m.If(port == k):
                m.d.comb += [
                    source_valid.eq(dut.i[k].valid),
                    source_ready.eq(dut.i[k].ready),
                    source_payload.eq(dut.i[k].payload),
                ]
        sink = Endpoint(dut.o.valid & (o.port == port), dut.o.ready, Value.cast(o.payload))
        order = check_in_order(m, Endpoint(source_valid, source_ready, Value.cast(source_payload)),
                               sink, max_transfers=self.depth, name="order")

        # work-conserving: a valid input that may be served is offered (a packet in progress
        # reserves `o` for its own port)
        any_valid = Cat(*(dut.i[k].valid for k in range(n))).any()
        if cfg.packets:
            in_packet = Signal()
            packet_port = Signal(range(n))
            packet_port_valid = Signal()
            with m.If(o_fire):
                m.d.sync += [in_packet.eq(~o.payload.last), packet_port.eq(o.port)]
            with m.If(in_packet & dut.o.valid):
                m.d.comb += Assert(o.port == packet_port)
            for k in range(n):
                with m.If(packet_port == k):
                    m.d.comb += packet_port_valid.eq(dut.i[k].valid)
            m.d.comb += Assert(dut.o.valid | ~Mux(in_packet, packet_port_valid, any_valid))
        else:
            m.d.comb += Assert(dut.o.valid == any_valid)

        # a grant ends with a transfer, or with the last beat of a packet
        grant_done = o_fire & (o.payload.last if cfg.packets else 1)
        for k in range(n):
            waited = Signal(range(n + 1), name=f"waited{k}")
            with m.If(dut.i[k].valid & dut.i[k].ready):
                m.d.sync += waited.eq(0)
            with m.Elif(dut.i[k].valid & grant_done & (o.port != k)):
                m.d.sync += waited.eq(waited + 1)
            m.d.comb += Assert(waited <= n - 1)

        m.d.comb += [
            Cover(o_fire & (o.port == n - 1) & (order.out_count == 2)),
            Cover(o_fire & (order.in_count == 3) & (order.out_count == 3)),
        ]
        # every port has been served while the others kept asking
        served = Signal(n)
        for k in range(n):
            with m.If(o_fire & (o.port == k)):
                m.d.sync += served[k].eq(1)
        m.d.comb += Cover((served == (1 << n) - 1) & dut.i[0].valid & dut.i[n - 1].valid)
        if cfg.packets:
            m.d.comb += Cover(o_fire & ~o.payload.last & (order.out_count == 1))


class DemuxHarness(_Harness):
    """One tagged stream in, N streams out: the transfers tagged ``P`` leave on ``o[P]`` in order.

    The source is assumed to name an existing port (``port < ports``).
    """

    def check(self, m, dut):
        cfg = dut.cfg
        n = cfg.ports
        drive_freely(m, dut.i.valid, dut.i.payload)
        assume_source_contract(m, endpoint(dut.i), name="i")
        m.d.comb += Assume(~dut.i.valid | (dut.i.payload.port < n))
        for k in range(n):
            drive_freely(m, dut.o[k].ready)
            assert_sink_contract(m, endpoint(dut.o[k]), name=f"o{k}")

        port = symbolic_constant(m, range(n), name="port")
        m.d.comb += Assume(port < n)
        sink_valid = Signal()
        sink_ready = Signal()
        sink_payload = Signal(cfg.payload_shape)
        for k in range(n):
            with m.If(port == k):
                m.d.comb += [
                    sink_valid.eq(dut.o[k].valid),
                    sink_ready.eq(dut.o[k].ready),
                    sink_payload.eq(dut.o[k].payload),
                ]
        source = Endpoint(dut.i.valid & (dut.i.payload.port == port), dut.i.ready,
                          Value.cast(dut.i.payload.payload))
        order = check_in_order(m, source,
                               Endpoint(sink_valid, sink_ready, Value.cast(sink_payload)),
                               max_transfers=self.depth, name="order")
        # an entry is taken whenever the output it names is ready
        m.d.comb += Assert(~(source.valid & sink_ready) | dut.i.ready)
        m.d.comb += [
            Cover(sink_valid & sink_ready & (port == n - 1) & (order.out_count == 3)),
            Cover(dut.i.valid & ~dut.i.ready),
        ]


@dataclass(frozen=True)
class Proof:
    """One bounded proof: a block in a small configuration inside its harness.

    Attributes
    ----------
    name : str
        Proof name, also its folder under ``build/formal``.
    block : str
        Registry name of the block in ``hw.common``.
    component : type
        The block's class, instantiated as ``component(cfg)``.
    cfg : object
        Its (small) configuration; tests build a broken variant from it and pass it as ``dut=``.
    harness : type
        Harness class, called as ``harness(dut, depth)``.
    depth : int
        Cycles the ``bmc`` task checks from reset.
    cover_depth : int
        Cycles the ``cover`` task may use to reach every ``Cover``.
    description : str
        One line for ``--list``.
    xfail : str
        Non-empty when the proof is known to fail: the reason (a bug not yet fixed).
    """

    name: str
    block: str
    component: type
    cfg: object
    harness: type
    depth: int
    cover_depth: int
    description: str
    xfail: str = ""

    def run(self, *, dut: wiring.Component | None = None, name: str | None = None,
            build_dir=None) -> ProofResult:
        """Run the proof, on ``dut`` instead of the real block when given."""
        dut = self.component(self.cfg) if dut is None else dut
        return run_proof(name or self.name, self.harness(dut, self.depth), depth=self.depth,
                         cover_depth=self.cover_depth, build_dir=build_dir)


_QUEUE_BUFFERED = QueueConfig(data_width=3, depth=4, buffered=True)
_QUEUE_UNBUFFERED = QueueConfig(data_width=3, depth=3, buffered=False)
_QUEUE_EAGER = QueueConfig(data_width=3, depth=3, buffered=False, eager_write=True)
_WIDTH = WidthConverterConfig(narrow_width=2, ratio=3)
_ARBITER_PACKETS = ArbiterConfig(ports=3, data_width=3, packets=True)
_ARBITER_BEATS = ArbiterConfig(ports=3, data_width=3, packets=False)
_DEMUX = ArbiterConfig(ports=3, data_width=3)

PROOFS: dict[str, Proof] = {proof.name: proof for proof in [
    Proof("skid_buffer", "skid_buffer", SkidBuffer, SkidBufferConfig(data_width=3),
          StreamHarness, depth=16, cover_depth=16,
          description="skid buffer, data_width 3: contract, order, back-pressure"),
    Proof("queue_buffered", "queue", Queue, _QUEUE_BUFFERED,
          QueueHarness, depth=16, cover_depth=16,
          description="SyncFIFOBuffered queue, depth 4: contract, order, level, full, wrap"),
    Proof("queue_unbuffered", "queue", Queue, _QUEUE_UNBUFFERED,
          QueueHarness, depth=16, cover_depth=16,
          description="SyncFIFO queue, depth 3: contract, order, level, full, wrap"),
    Proof("queue_eager", "queue", Queue, _QUEUE_EAGER,
          QueueHarness, depth=16, cover_depth=16,
          description="eager-write queue, depth 3: contract, order, level, full, wrap"),
    Proof("width_up", "width_up", WidthUpConverter, _WIDTH,
          WidthUpHarness, depth=16, cover_depth=16,
          description="3 x 2-bit beats -> 6-bit beat: contract, lane order, count, first/last"),
    Proof("width_down", "width_down", WidthDownConverter, _WIDTH,
          WidthDownHarness, depth=16, cover_depth=16,
          description="6-bit beat -> 3 x 2-bit beats: contract, lane order, count, first/last"),
    Proof("arbiter_packets", "arbiter", RoundRobinArbiter, _ARBITER_PACKETS,
          ArbiterHarness, depth=16, cover_depth=16,
          description="3-port arbiter, packets: contract, per-port order, no interleave, fair"),
    Proof("arbiter_beats", "arbiter", RoundRobinArbiter, _ARBITER_BEATS,
          ArbiterHarness, depth=16, cover_depth=16,
          description="3-port arbiter, beats: contract, per-port order, round-robin bound"),
    Proof("demux", "demux", StreamDemux, _DEMUX,
          DemuxHarness, depth=12, cover_depth=12,
          description="3-port demux: contract per output, per-port order"),
]}


def proof_names() -> list[str]:
    return list(PROOFS)


def get_proof(name: str) -> Proof:
    try:
        return PROOFS[name]
    except KeyError:
        raise ValueError(
            f"unknown proof {name!r}; choose from: {', '.join(PROOFS)}") from None
