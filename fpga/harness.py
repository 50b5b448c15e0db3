"""A self-checking wrapper that runs any stream component on an FPGA with no host attached.

The harness drives every input of the wrapped component from an on-chip pseudo-random
generator, folds every output into a running checksum, and after a fixed number of cycles
compares the checksum with the value the same harness reached in ``amaranth.sim``. A lit
``passed`` LED therefore says the silicon behaved cycle for cycle like the simulation.
"""

import dataclasses
import functools
import itertools
import operator
import random

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import Flow
from amaranth.sim import Simulator

__all__ = ["SelfCheckHarness", "PortInfo", "discover_ports", "CRC32_POLY"]

# The checksum register advances as a Galois LFSR with the CRC-32 polynomial, so every folded
# word keeps influencing all later states instead of cancelling out like a plain XOR would.
CRC32_POLY = 0x04C1_1DB7
CHECKSUM_WIDTH = 32
_RNG_WIDTH = 32


@dataclasses.dataclass
class PortInfo:
    """One port of the wrapped component as the harness sees it.

    Parameters
    ----------
    path : str
        Dotted name, with array indices, e.g. ``mem.cmd`` or ``i[2]``.
    kind : str
        ``"stream"`` for a ``stream.Signature`` interface, ``"signal"`` for a plain port.
    into_component : bool
        ``True`` when data flows into the component (a stream whose ``valid`` is an input,
        or an ``In`` signal).
    value : object
        The stream interface or the signal.
    """

    path: str
    kind: str
    into_component: bool
    value: object

    @property
    def width(self) -> int:
        if self.kind == "stream":
            return len(Value.cast(self.value.payload))
        return len(Value.cast(self.value))


def _indexed(value, dimensions):
    """Yield ``(suffix, element)`` for every element of a (possibly nested) port array."""
    for index in itertools.product(*(range(d) for d in dimensions)):
        element = value
        for k in index:
            element = element[k]
        yield "".join(f"[{k}]" for k in index), element


def discover_ports(component: wiring.Component) -> list[PortInfo]:
    """Every port of ``component``, streams kept whole, in signature order.

    Streams are recognised with ``isinstance(member.signature, stream.Signature)``, which holds
    for flipped stream signatures too; any other sub-signature (a memory port, a custom bus) is
    walked recursively, so the harness needs to know nothing about the component.
    """
    ports = []

    def walk(signature, obj, prefix):
        for name, member in signature.members.items():
            for suffix, value in _indexed(getattr(obj, name), member.dimensions):
                path = f"{prefix}{name}{suffix}"
                if member.is_port:
                    ports.append(PortInfo(path, "signal", member.flow == Flow.In, value))
                elif isinstance(member.signature, stream.Signature):
                    # `member.signature` already carries the flips of the enclosing members,
                    # so the flow of `valid` says which side produces the data
                    valid_flow = member.signature.members["valid"].flow
                    ports.append(PortInfo(path, "stream", valid_flow == Flow.In, value))
                else:
                    walk(member.signature, value, path + ".")

    walk(component.signature, component, "")
    return ports


def _is_const(value) -> bool:
    return isinstance(value, Const)


def _xorshift32(x: Value) -> Value:
    """One step of Marsaglia's xorshift32 (full period over nonzero states, ~3 XORs a bit)."""
    x = x ^ (x << 13)[:32]
    x = x ^ (x >> 17)
    return x ^ (x << 5)[:32]


class SelfCheckHarness(Elaboratable):
    """Drives a component with seeded random stimulus and checks its outputs against simulation.

    Parameters
    ----------
    component : wiring.Component
        Any component; its ports are found with :func:`discover_ports`.
    check_cycles : int
        Cycles after reset during which outputs are folded into the checksum; then the checksum
        freezes and is compared with ``expected``.
    seed : int
        Seed of the on-chip generator and of the per-port choices of duty cycle and taps.
    expected : int, optional
        Checksum the silicon must reach; :meth:`compute_expected` fills it in by simulation.
        Left at ``None`` the comparison is against 0 and ``passed`` is meaningless.

    Members
    -------
    checksum : Signal(32)
        Running checksum; frozen once ``done``.
    done : Signal()
        High from ``check_cycles`` cycles after reset on (the checksum has then taken
        ``check_cycles`` updates).
    passed : Signal()
        ``done`` and the checksum equals ``expected``.

    Stimulus
    --------
    Each stream into the component has a source whose ``valid`` rises at random and, once high,
    stays high with its payload unchanged until ``ready`` (the stream contract); the payload
    only changes after a transfer. Each stream out of the component sees a random ``ready``.
    Plain input signals take a new random value about one cycle in sixteen. Every signal the
    harness drives comes from a register, so the component's timing paths start at flip-flops.

    Checking
    --------
    Every cycle the harness captures all outputs: payloads of output streams masked by their
    transfer, ``valid`` of output streams, ``ready`` of input streams, and plain outputs, so
    nothing the component computes can be optimised away. The capture register sits one LUT
    (the mask) behind the component's outputs; it is XOR-folded to 32 bits through a pipeline
    of registered 4-input XORs (one LUT level each, so the checker does not set Fmax) and folded
    into a CRC-32 LFSR. Since all state is reset and memories start at zero in both simulation
    and bitstream, the hardware reaches the simulated checksum whatever the board's reset
    length and clock frequency.

    Cost: about one flip-flop and one LUT per input payload bit and per output bit, plus
    about 150 LUTs and 150 flip-flops of generator, counters, fold and checksum.
    """

    def __init__(self, component: wiring.Component, *, check_cycles: int = 4096,
                 seed: int = 0x5EED_1234, expected: int | None = None):
        if not isinstance(check_cycles, int) or check_cycles < 2:
            raise ValueError(f"check_cycles must be an integer of at least 2, not {check_cycles!r}")
        if not isinstance(seed, int) or not 0 < seed % (1 << _RNG_WIDTH):
            raise ValueError(f"seed must be an integer that is nonzero modulo 2**32, not {seed!r}")
        self.component = component
        self.check_cycles = check_cycles
        self.seed = seed
        self.expected = expected
        self.ports = discover_ports(component)
        self.checksum = Signal(CHECKSUM_WIDTH)
        self.done = Signal()
        self.passed = Signal()

    # -- stimulus --------------------------------------------------------------------------

    @staticmethod
    def _duty(rng: Value, picks: list[int]) -> Value:
        return functools.reduce(operator.or_, (rng[k] for k in picks))

    @staticmethod
    def _tile(rng: Value, width: int, offset: int) -> Value:
        # a different stride per port so two equally wide sources do not see the same bits
        return Cat(rng[(offset + 7 * i) % _RNG_WIDTH] for i in range(width))

    def _source(self, m, port, rng, choose):
        """Random stream source into the component that keeps the stream contract."""
        intf = port.value
        payload = Value.cast(intf.payload)
        width = len(payload)
        data = Signal(width, name=f"src_{port.path}_data",
                      init=choose.getrandbits(width) if width else 0)
        valid = Signal(name=f"src_{port.path}_valid")
        if _is_const(intf.valid):
            # always_valid stream: the source offers every cycle
            m.d.comb += valid.eq(intf.valid)
        else:
            offer = self._duty(rng, choose.sample(range(_RNG_WIDTH), choose.choice([1, 2, 2, 3])))
            with m.If(~valid | intf.ready):
                m.d.sync += valid.eq(offer)
            m.d.comb += intf.valid.eq(valid)
        if width:
            with m.If(valid & intf.ready):
                rotated = Cat(data[-1], data[:-1]) if width > 1 else data
                m.d.sync += data.eq(rotated ^ self._tile(rng, width, choose.randrange(32)))
            m.d.comb += payload.eq(data)
        # `ready` is the component's answer; capture it raw every cycle
        return [intf.ready] if not _is_const(intf.ready) else []

    def _sink(self, m, port, rng, choose):
        """Random-ready sink of a stream out of the component; returns the words to capture."""
        intf = port.value
        payload = Value.cast(intf.payload)
        ready = Signal(name=f"snk_{port.path}_ready")
        if _is_const(intf.ready):
            m.d.comb += ready.eq(intf.ready)
        else:
            accept = self._duty(rng, choose.sample(range(_RNG_WIDTH), choose.choice([1, 2, 2, 3])))
            m.d.sync += ready.eq(accept)
            m.d.comb += intf.ready.eq(ready)
        transfer = intf.valid & ready
        captured = [payload & transfer.replicate(len(payload))] if len(payload) else []
        if not _is_const(intf.valid):
            captured.append(intf.valid)
        return captured

    def _plain_input(self, m, port, rng, choose):
        signal = Value.cast(port.value)
        width = len(signal)
        held = Signal(width, name=f"in_{port.path}", init=choose.getrandbits(width) if width else 0)
        # change rarely: plain inputs are usually modes or enables, not per-cycle data
        with m.If(rng[:4] == choose.randrange(16)):
            m.d.sync += held.eq(self._tile(rng, width, choose.randrange(32)))
        m.d.comb += signal.eq(held)

    # -- checking --------------------------------------------------------------------------

    @staticmethod
    def _fold(m, capture: Value) -> Value:
        """Registered XOR tree from ``capture`` down to 32 bits, four words per LUT level."""
        words = [capture[i:i + CHECKSUM_WIDTH] for i in range(0, len(capture), CHECKSUM_WIDTH)]
        level = 0
        while len(words) > 1:
            folded = []
            for g in range(0, len(words), 4):
                word = Signal(CHECKSUM_WIDTH, name=f"fold{level}_{g // 4}")
                m.d.sync += word.eq(functools.reduce(operator.xor, words[g:g + 4]))
                folded.append(word)
            words = folded
            level += 1
        return words[0] if words else Const(0, CHECKSUM_WIDTH)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self.component
        choose = random.Random(self.seed)

        rng = Signal(_RNG_WIDTH, init=self.seed % (1 << _RNG_WIDTH))
        m.d.sync += rng.eq(_xorshift32(rng))

        outputs = []
        for port in self.ports:
            if port.kind == "stream" and port.into_component:
                outputs += self._source(m, port, rng, choose)
            elif port.kind == "stream":
                outputs += self._sink(m, port, rng, choose)
            elif port.into_component:
                self._plain_input(m, port, rng, choose)
            else:
                outputs.append(Value.cast(port.value))

        # first stage: register the raw capture so component paths end at flip-flops
        capture = Signal(max(1, sum(len(Value.cast(v)) for v in outputs)), name="capture")
        if outputs:
            m.d.sync += capture.eq(Cat(*outputs))
        word = self._fold(m, capture)

        # `done` is a register fed by a registered compare, so the wide equality does not sit in
        # front of the checksum's clock enable (on small designs it set the Fmax on iCE40)
        cycles = Signal(range(self.check_cycles + 1))
        almost = Signal()
        m.d.sync += [
            almost.eq(cycles == self.check_cycles - 2),
            self.done.eq(self.done | almost),
        ]
        with m.If(~self.done):
            m.d.sync += [
                cycles.eq(cycles + 1),
                self.checksum.eq(
                    Cat(Const(0, 1), self.checksum[:-1])
                    ^ Mux(self.checksum[-1], CRC32_POLY, 0)
                    ^ word),
            ]
        expected = 0 if self.expected is None else self.expected
        m.d.sync += self.passed.eq(self.done & (self.checksum == expected))
        return m

    # -- simulation ------------------------------------------------------------------------

    def simulate(self) -> int:
        """Checksum the harness reaches in ``amaranth.sim`` after ``check_cycles`` cycles."""
        sim = Simulator(self)
        sim.add_clock(1e-8)
        result = {}

        async def bench(ctx):
            await ctx.tick().until(self.done)
            result["checksum"] = ctx.get(self.checksum)

        sim.add_testbench(bench)
        sim.run()
        return result["checksum"]

    def compute_expected(self) -> int:
        """Simulate the harness and store the checksum as the value the silicon must match."""
        self.expected = self.simulate()
        return self.expected
