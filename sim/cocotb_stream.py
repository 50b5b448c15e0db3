"""cocotb drivers and monitors for ``amaranth.lib.stream`` ports of generated Verilog.

``amaranth.back.verilog.convert`` flattens a stream port ``i`` into ``i__payload``,
``i__valid`` and ``i__ready`` (``i__0__payload``... for arrays, ``mem__cmd__payload`` for
nested signatures). :class:`StreamDriver` and :class:`StreamMonitor` take that prefix.

Timing model, shared by every helper here so they stay in step: each cycle a helper wakes on
the falling clock edge, drives its outputs, then samples in the ``ReadOnly`` phase. What it
samples is what the DUT sees at the next rising edge, so ``valid & ready`` there is a transfer.
Sampling before the rising edge, not after it, makes the result the same on Icarus and on
Verilator, whatever order each simulator applies register updates and VPI callbacks in.
A purely combinational DUT has no ``clk``: pass ``clock=None`` and the helpers step on a
10 ns time grid instead.

Payloads are ints on the wire; give a ``layout`` (an ``amaranth.lib.data`` layout) and the
helpers speak in field dicts, packed lowest bit first in declaration order like Amaranth.
"""

import itertools
import random
from collections import deque
from collections.abc import Callable, Iterable, Iterator

import cocotb
from amaranth.hdl import Shape
from amaranth.lib import data
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge, Timer
from cocotb.utils import get_sim_steps

__all__ = [
    "pack", "unpack", "layout_width",
    "StreamDriver", "StreamMonitor",
    "start_clock_and_reset", "next_cycle", "wait_until", "run_cycles",
]

# Period of the clock the helpers start, and of the time grid used when there is no clock.
CLOCK_PERIOD_NS = 10


def layout_width(layout) -> int:
    """Bits of a shape or layout."""
    return Shape.cast(layout).width


def _mask(width: int) -> int:
    return (1 << width) - 1


def pack(layout, value) -> int:
    """Pack a field dict (nested dicts, lists for array layouts) into an int.

    Parameters
    ----------
    layout : amaranth shape or ``data.Layout``
        ``StructLayout`` takes a dict with exactly its field names, ``ArrayLayout`` a list,
        ``UnionLayout`` a dict with one of its fields; any other shape takes an int.
    value : dict, list or int
        An int is taken as already packed, whatever the layout.
    """
    if isinstance(value, int):
        return value & _mask(layout_width(layout))
    if isinstance(layout, data.Layout):
        fields = dict(layout)
        if isinstance(layout, data.ArrayLayout):
            keys = list(range(len(value)))
        else:
            keys = list(value)
        if isinstance(layout, data.StructLayout) and set(keys) != set(fields):
            raise ValueError(f"payload fields {sorted(keys)} do not match the layout's "
                             f"{sorted(fields)}")
        packed = 0
        for key in keys:
            if key not in fields:
                raise ValueError(f"field {key!r} is not in layout {layout!r}")
            field = fields[key]
            packed |= (pack(field.shape, value[key]) & _mask(field.width)) << field.offset
        return packed
    if hasattr(value, "value"):  # enum members
        value = value.value
    return int(value) & _mask(layout_width(layout))


def unpack(layout, value: int):
    """The inverse of :func:`pack`: a field dict (list for array layouts), or an int."""
    value = int(value)
    if isinstance(layout, data.Layout):
        items = {key: unpack(field.shape, (value >> field.offset) & _mask(field.width))
                 for key, field in layout}
        if isinstance(layout, data.ArrayLayout):
            return [items[k] for k in range(len(items))]
        return items
    shape = Shape.cast(layout)
    value &= _mask(shape.width)
    if shape.signed and value >> (shape.width - 1):
        value -= 1 << shape.width
    return value


async def next_cycle(clock) -> None:
    """Wait for the drive point of the next cycle (falling edge, or the next 10 ns step)."""
    if clock is not None:
        await FallingEdge(clock)
    else:
        # align to the grid so helpers started at different times still agree on cycles;
        # integer steps, as nanoseconds in floating point do not divide exactly
        period = get_sim_steps(CLOCK_PERIOD_NS, "ns")
        await Timer(period - get_sim_time("step") % period, unit="step")


async def run_cycles(clock, cycles: int) -> None:
    """Let ``cycles`` cycles pass."""
    for _ in range(cycles):
        await next_cycle(clock)


async def wait_until(clock, condition: Callable[[], bool], max_cycles: int,
                     what: str | Callable[[], str]) -> int:
    """Wait until ``condition()`` holds; fail naming ``what`` after ``max_cycles`` cycles.

    ``what`` may be a function, called on failure so the message shows the state then.
    Returns the number of cycles waited.
    """
    for cycle in range(max_cycles):
        if condition():
            return cycle
        await next_cycle(clock)
    if condition():
        return max_cycles
    raise AssertionError(f"timed out after {max_cycles} cycles waiting for "
                         f"{what() if callable(what) else what}")


async def start_clock_and_reset(dut, inputs: Iterable = (), cycles: int = 3) -> None:
    """Start a clock on ``dut.clk`` and pulse ``dut.rst``, with ``inputs`` held at 0.

    A DUT without ``clk`` (purely combinational) only gets its inputs cleared.
    """
    for handle in inputs:
        handle.value = 0
    if not hasattr(dut, "clk"):
        await Timer(CLOCK_PERIOD_NS, unit="ns")
        return
    Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns").start(start_high=False)
    if hasattr(dut, "rst"):
        dut.rst.value = 1
        for _ in range(cycles):
            await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        dut.rst.value = 0
    await FallingEdge(dut.clk)


def _resolve(value, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise AssertionError(f"{what} is not a defined value: {value}") from None


class StreamDriver:
    """Sends payloads into a DUT's stream input, keeping the stream contract.

    Once ``valid`` is raised it stays high with an unchanged payload until ``ready``; a
    stall only ever delays raising ``valid``. While idle the payload carries random bits, so
    a DUT that reads the payload without ``valid`` shows up as wrong data.

    Parameters
    ----------
    dut : cocotb handle
    prefix : str
        ``"i"`` for ``i__payload``/``i__valid``/``i__ready``.
    clock : cocotb handle or None
        ``dut.clk``, or ``None`` for a combinational DUT (see the module docstring).
    stall : iterator of bool, optional
        One value per cycle (``sim.stalls.stall_pattern``); ``True`` holds ``valid`` low.
    layout : amaranth layout, optional
        Lets :meth:`send` take field dicts.
    seed : int
        Seeds the idle payload bits.

    Members
    -------
    sent : list
        Payloads (as given) whose transfer has happened, in order.
    """

    def __init__(self, dut, prefix: str, clock, stall: Iterator[bool] | None = None, *,
                 layout=None, seed: int = 0):
        self.payload = getattr(dut, f"{prefix}__payload")
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.prefix = prefix
        self.clock = clock
        self.stall = stall if stall is not None else itertools.repeat(False)
        self.layout = layout
        self.width = len(self.payload)
        self.sent = []
        self.cycles = 0
        self._pending = deque()
        self._current = None
        self._rng = random.Random(f"idle:{prefix}:{seed}")
        self.valid.value = 0
        self._task = cocotb.start_soon(self._run())

    def send(self, payload) -> None:
        """Queue one payload (an int, or a field dict when a layout was given)."""
        self._pending.append(payload)

    def extend(self, payloads: Iterable) -> None:
        for payload in payloads:
            self.send(payload)

    @property
    def pending(self) -> int:
        """Payloads not transferred yet (queued or on the wires)."""
        return len(self._pending) + (self._current is not None)

    @property
    def idle(self) -> bool:
        """No payload waiting or on the wires."""
        return not self._pending and self._current is None

    def _encode(self, payload) -> int:
        if self.layout is not None:
            return pack(self.layout, payload)
        return int(payload) & _mask(self.width)

    async def _run(self):
        while True:
            await next_cycle(self.clock)
            self.cycles += 1
            hold_off = next(self.stall)
            if self._current is None and self._pending and not hold_off:
                self._current = self._pending.popleft()
                self.payload.value = self._encode(self._current)
                self.valid.value = 1
            elif self._current is None:
                self.valid.value = 0
                self.payload.value = self._rng.getrandbits(self.width)
            await ReadOnly()
            if self._current is not None and _resolve(self.ready.value, f"{self.prefix} ready"):
                self.sent.append(self._current)
                self._current = None


class StreamMonitor:
    """Takes payloads from a DUT's stream output, with back-pressure, and checks the contract.

    The contract checked: once the DUT raises ``valid`` it keeps ``valid`` high and the payload
    unchanged until the cycle ``ready`` is high. A violation fails the running cocotb test.

    Parameters
    ----------
    dut : cocotb handle
    prefix : str
        ``"o"`` for ``o__payload``/``o__valid``/``o__ready``.
    clock : cocotb handle or None
    backpressure : iterator of bool, optional
        One value per cycle; ``True`` holds ``ready`` low. Settable later (e.g. to drain).
    layout : amaranth layout, optional
        Received payloads are unpacked to field dicts.

    Members
    -------
    received : list
        Payloads transferred, in order (ints, or dicts with a layout).
    """

    def __init__(self, dut, prefix: str, clock, backpressure: Iterator[bool] | None = None, *,
                 layout=None):
        self.payload = getattr(dut, f"{prefix}__payload")
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.prefix = prefix
        self.clock = clock
        self.backpressure = backpressure if backpressure is not None else itertools.repeat(False)
        self.layout = layout
        self.received = []
        self.cycles = 0
        self.ready.value = 0
        self._task = cocotb.start_soon(self._run())

    async def _run(self):
        # (payload) of a beat offered but not taken last cycle: it must be offered again
        waiting = None
        while True:
            await next_cycle(self.clock)
            self.cycles += 1
            ready = not next(self.backpressure)
            self.ready.value = int(ready)
            await ReadOnly()
            valid = _resolve(self.valid.value, f"{self.prefix} valid")
            if waiting is not None:
                if not valid:
                    raise AssertionError(
                        f"stream contract: {self.prefix}.valid dropped before ready "
                        f"(cycle {self.cycles}, payload {self._show(waiting)})")
                payload = _resolve(self.payload.value, f"{self.prefix} payload")
                if payload != waiting:
                    raise AssertionError(
                        f"stream contract: {self.prefix}.payload changed before ready "
                        f"(cycle {self.cycles}): {self._show(waiting)} -> "
                        f"{self._show(payload)}")
            if not valid:
                waiting = None
                continue
            payload = _resolve(self.payload.value, f"{self.prefix} payload")
            if ready:
                self.received.append(self._decode(payload))
                waiting = None
            else:
                waiting = payload

    def _decode(self, payload: int):
        return unpack(self.layout, payload) if self.layout is not None else payload

    def _show(self, payload: int):
        return self._decode(payload)


async def serve_memory(dut, dram, port, prefix: str = "mem") -> None:
    """Serve the DUT's memory port ``prefix`` from ``dram`` (:class:`sim.dram.DRAMModel` or
    anything with its ``outputs``/``clock`` interface) forever: drive the model's outputs
    after the clock edge, sample the DUT in ``ReadOnly`` and clock the model.

    ``port`` is the port's :class:`hw.common.memory_port.MemoryPortConfig`. Start it with
    ``cocotb.start_soon``.
    """
    def sig(name):
        return getattr(dut, f"{prefix}__{name}")

    while True:
        await next_cycle(dut.clk)
        out = dram.outputs()
        sig("cmd__ready").value = int(out["cmd_ready"])
        sig("wdata__ready").value = int(out["wdata_ready"])
        sig("rdata__valid").value = int(out["rdata_valid"])
        sig("rdata__payload").value = pack(port.read_layout, out["rdata_payload"])
        await ReadOnly()
        cmd_valid = int(sig("cmd__valid").value)
        wdata_valid = int(sig("wdata__valid").value)
        cmd = unpack(port.command_layout, int(sig("cmd__payload").value)) if cmd_valid else {}
        wdata = unpack(port.write_layout, int(sig("wdata__payload").value)) \
            if wdata_valid else {}
        dram.clock(out, bool(cmd_valid), cmd, bool(wdata_valid), wdata,
                   bool(int(sig("rdata__ready").value)))
