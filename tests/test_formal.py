"""Bounded proofs of the stream contract (``sim.formal``), and proof that they can fail.

Each proof in :data:`sim.formal.PROOFS` must pass on the real block. Each broken variant below
differs from a real block by one plausible mistake; its proof must fail on the property the
mistake breaks, which shows the harnesses are not vacuous.
"""

from dataclasses import replace

import pytest
from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring

from hw.common import (
    Queue,
    RoundRobinArbiter,
    SkidBuffer,
    StreamDemux,
    WidthDownConverter,
    WidthUpConverter,
)
from sim.formal import PROOFS
from sim.formal.runner import DEFAULT_BUILD_DIR

pytestmark = pytest.mark.formal

# apart from `python -m sim.formal`'s folders, so a test run keeps the last `make formal` intact
BUILD_DIR = DEFAULT_BUILD_DIR / "pytest"


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.xfail(reason=proof.xfail, strict=False))
    if proof.xfail else name
    for name, proof in PROOFS.items()
])
def test_proof_passes(name):
    result = PROOFS[name].run(build_dir=BUILD_DIR)
    assert result.passed, f"{name}: {result.status} {result.tasks}\n" + "\n".join(result.detail)


class SkidBufferDropsSkid(SkidBuffer):
    """Catches the entry that arrives while ``o`` stalls, then forgets it."""

    def elaborate(self, platform):
        m = Module()
        skid_valid = Signal()
        m.d.comb += self.i.ready.eq(~skid_valid)
        with m.If(self.o.ready | ~self.o.valid):
            m.d.sync += [
                self.o.payload.eq(self.i.payload),
                self.o.valid.eq(self.i.valid & ~skid_valid),
                skid_valid.eq(0),
            ]
        with m.Elif(self.i.valid & self.i.ready):
            m.d.sync += skid_valid.eq(1)
        return m


class QueueRepeatsPacketStart(Queue):
    """Sends every entry that has ``first`` set twice."""

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = Queue(self.cfg)
        wiring.connect(m, wiring.flipped(self.i), inner.i)
        repeat = Signal()
        repeated = Signal.like(self.o.payload)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += [repeat.eq(~repeat & inner.o.payload.first), repeated.eq(self.o.payload)]
        m.d.comb += [
            self.o.valid.eq(repeat | inner.o.valid),
            self.o.payload.eq(Mux(repeat, repeated, inner.o.payload)),
            inner.o.ready.eq(self.o.ready & ~repeat),
            self.level.eq(inner.level),
        ]
        return m


class ArbiterSwitchesWhileStalled(RoundRobinArbiter):
    """Round robin that re-arbitrates every cycle instead of holding a stalled grant."""

    def elaborate(self, platform):
        m = Module()
        n = self.cfg.ports
        grant = Signal(range(n), init=n - 1)
        select = Signal(range(n))
        for offset in reversed(range(1, n + 1)):
            with m.Switch(grant):
                for g in range(n):
                    with m.Case(g), m.If(self.i[(g + offset) % n].valid):
                        m.d.comb += select.eq((g + offset) % n)
        with m.Switch(select):
            for k in range(n):
                with m.Case(k):
                    m.d.comb += [
                        self.o.valid.eq(self.i[k].valid),
                        self.o.payload.payload.eq(self.i[k].payload),
                        self.i[k].ready.eq(self.o.ready),
                    ]
        m.d.comb += self.o.payload.port.eq(select)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += grant.eq(select)
        return m


class ArbiterIgnoresPackets(RoundRobinArbiter):
    """Configured with ``packets=True`` but releases the grant after every beat."""

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = RoundRobinArbiter(replace(self.cfg, packets=False))
        for k in range(self.cfg.ports):
            wiring.connect(m, wiring.flipped(self.i[k]), inner.i[k])
        wiring.connect(m, inner.o, wiring.flipped(self.o))
        return m


class WidthUpLosesFirst(WidthUpConverter):
    """Never sets ``first`` on a wide beat."""

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = WidthUpConverter(self.cfg)
        wiring.connect(m, wiring.flipped(self.i), inner.i)
        m.d.comb += [
            self.o.valid.eq(inner.o.valid),
            self.o.payload.eq(inner.o.payload),
            self.o.payload.first.eq(0),
            inner.o.ready.eq(self.o.ready),
        ]
        return m


class WidthDownSwapsLanes(WidthDownConverter):
    """Sends lane 1 of each wide beat before lane 0."""

    def elaborate(self, platform):
        m = Module()
        w = self.cfg.narrow_width
        m.submodules.inner = inner = WidthDownConverter(self.cfg)
        m.d.comb += [
            inner.i.valid.eq(self.i.valid),
            inner.i.payload.eq(self.i.payload),
            inner.i.payload.data[:w].eq(self.i.payload.data[w:2 * w]),
            inner.i.payload.data[w:2 * w].eq(self.i.payload.data[:w]),
            self.i.ready.eq(inner.i.ready),
        ]
        wiring.connect(m, inner.o, wiring.flipped(self.o))
        return m


class DemuxListensToPortZero(StreamDemux):
    """Takes ``i.ready`` from output 0 whatever port the entry is for."""

    def elaborate(self, platform):
        m = Module()
        for k in range(self.cfg.ports):
            m.d.comb += [
                self.o[k].payload.eq(self.i.payload.payload),
                self.o[k].valid.eq(self.i.valid & (self.i.payload.port == k)),
            ]
        m.d.comb += self.i.ready.eq(self.o[0].ready)
        return m


# proof, broken variant, and pieces of the assertions that may be reported as failed (the
# shortest counterexample decides which of them the solver hits first)
BROKEN = {
    "skid_drops_entry": ("skid_buffer", SkidBufferDropsSkid,
                         ["sink.payload == expected", "ripe <= order.out_count"]),
    "queue_duplicates": ("queue_buffered", QueueRepeatsPacketStart,
                         ["sink.payload == expected", "<= in_count"]),
    "arbiter_switches_stalled": ("arbiter_beats", ArbiterSwitchesWhileStalled,
                                 ["_held_stable"]),
    "arbiter_interleaves_packets": ("arbiter_packets", ArbiterIgnoresPackets,
                                    ["o.port == packet_port"]),
    "width_up_loses_first": ("width_up", WidthUpLosesFirst, ["o.first == rec.first"]),
    "width_down_swaps_lanes": ("width_down", WidthDownSwapsLanes, ["rec.data.word_select"]),
    "demux_wrong_ready": ("demux", DemuxListensToPortZero,
                          ["<= in_count", "recorded_valid | capturing", "_held_stable"]),
}


@pytest.mark.parametrize("variant", list(BROKEN))
def test_broken_variant_fails(variant):
    name, broken_class, expected_failures = BROKEN[variant]
    proof = PROOFS[name]
    result = proof.run(dut=broken_class(proof.cfg), name=f"broken_{variant}", build_dir=BUILD_DIR)
    assert result.status == "FAIL", f"{variant}: {result.status} {result.tasks}"
    assert result.tasks["bmc"] == "FAIL"
    failures = [line for line in result.detail if "failed assertion" in line]
    assert any(expected in line for line in failures for expected in expected_failures), \
        "\n".join(result.detail)
