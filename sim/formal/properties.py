"""Reusable pieces of the formal harnesses: free inputs, the stream contract, transfer order.

Every helper adds statements to a harness ``Module`` whose ``sync`` domain starts from the
registers' initial values, so "the past" of a helper register is all zeros in step 0.

A stream end is passed as an :class:`Endpoint` (``valid``, ``ready``, ``payload`` values) rather
than a ``stream.Interface`` so that harnesses can narrow a stream, e.g. to the output transfers
tagged with one arbiter port.
"""

from dataclasses import dataclass

from amaranth.asserts import AnyConst, AnySeq
from amaranth.hdl import Assert, Assume, Module, Mux, Signal, Value

__all__ = [
    "Endpoint", "endpoint", "drive_freely", "assume_source_contract", "assert_sink_contract",
    "InOrderCheck", "check_in_order", "symbolic_constant", "delayed",
]


@dataclass(frozen=True)
class Endpoint:
    """One side of a stream as plain values.

    Attributes
    ----------
    valid, ready : Value
        Handshake; a transfer happens in a cycle where both are high.
    payload : Value
        The payload, flattened to bits.
    """

    valid: Value
    ready: Value
    payload: Value

    @property
    def fire(self) -> Value:
        return self.valid & self.ready


def endpoint(interface) -> Endpoint:
    """The :class:`Endpoint` of a ``stream.Interface`` (payload flattened)."""
    return Endpoint(interface.valid, interface.ready, Value.cast(interface.payload))


def drive_freely(m: Module, *values) -> None:
    """Let the solver choose each value anew in every cycle."""
    for value in values:
        value = Value.cast(value)
        m.d.comb += value.eq(AnySeq(len(value)))


def symbolic_constant(m: Module, shape, *, name: str) -> Signal:
    """A signal the solver picks once and keeps for the whole trace."""
    value = Signal(shape, name=name)
    m.d.comb += value.eq(AnyConst(len(value)))
    return value


def delayed(m: Module, value: Value, cycles: int, *, name: str) -> Value:
    """``value`` as it was ``cycles`` cycles ago (its initial value before that)."""
    for k in range(cycles):
        past = Signal.like(value, name=f"{name}_past{k + 1}")
        m.d.sync += past.eq(value)
        value = past
    return value


def _held_stable(m: Module, end: Endpoint, *, name: str) -> Value:
    """High when the previous cycle stalled and this cycle still offers the same payload."""
    stalled = Signal(name=f"{name}_stalled")
    held_payload = Signal(len(end.payload), name=f"{name}_held_payload")
    m.d.sync += [
        stalled.eq(end.valid & ~end.ready),
        held_payload.eq(end.payload),
    ]
    return ~stalled | (end.valid & (end.payload == held_payload))


def assume_source_contract(m: Module, end: Endpoint, *, name: str) -> None:
    """Assume the source of ``end`` keeps ``valid`` and ``payload`` until the transfer."""
    m.d.comb += Assume(_held_stable(m, end, name=name))


def assert_sink_contract(m: Module, end: Endpoint, *, name: str) -> None:
    """Assert the block driving ``end`` keeps ``valid`` and ``payload`` until the transfer."""
    m.d.comb += Assert(_held_stable(m, end, name=name))


@dataclass(frozen=True)
class InOrderCheck:
    """Counters made by :func:`check_in_order`, for covers and further assertions."""

    index: Signal
    in_count: Signal
    out_count: Signal


def check_in_order(m: Module, source: Endpoint, sink: Endpoint, *, max_transfers: int,
                   name: str) -> InOrderCheck:
    """Assert the transfers on ``sink`` are those on ``source``, none lost, added or reordered.

    The solver picks one index ``N``; the payload of the ``N``-th transfer into ``source`` is
    recorded and the ``N``-th transfer out of ``sink`` must carry it. Because ``N`` is free,
    this covers every transfer of the trace. The ``N``-th output may leave in the same cycle as
    the ``N``-th input (combinational blocks), but never before it, and the number of outputs
    never exceeds the number of inputs.

    Parameters
    ----------
    max_transfers : int
        Upper bound on the transfers in a trace (the proof depth): sizes the counters so they
        cannot wrap.
    """
    width = max_transfers.bit_length()
    index = symbolic_constant(m, width, name=f"{name}_index")
    in_count = Signal(width, name=f"{name}_in_count")
    out_count = Signal(width, name=f"{name}_out_count")
    recorded = Signal(len(source.payload), name=f"{name}_recorded")
    recorded_valid = Signal(name=f"{name}_recorded_valid")

    capturing = source.fire & (in_count == index)
    with m.If(source.fire):
        m.d.sync += in_count.eq(in_count + 1)
    with m.If(capturing):
        m.d.sync += [recorded.eq(source.payload), recorded_valid.eq(1)]
    with m.If(sink.fire):
        m.d.sync += out_count.eq(out_count + 1)

    expected = Mux(recorded_valid, recorded, source.payload)
    with m.If(sink.fire & (out_count == index)):
        m.d.comb += [
            Assert(recorded_valid | capturing),
            Assert(sink.payload == expected),
        ]
    m.d.comb += Assert(out_count + sink.fire <= in_count + source.fire)
    return InOrderCheck(index, in_count, out_count)
