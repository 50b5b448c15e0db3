"""Stream helpers for ``amaranth.sim`` testbenches, with seeded stalls and back-pressure."""

import itertools
from collections.abc import Iterable, Iterator

from amaranth.lib import data

__all__ = ["as_plain", "stream_put", "stream_get", "simulate"]


def as_plain(value):
    """A sampled value as plain Python: ``dict`` for structs, ``list`` for arrays, else ``int``."""
    if isinstance(value, data.Const):
        layout = value.shape()
        if isinstance(layout, data.ArrayLayout):
            return [as_plain(value[k]) for k in range(layout.length)]
        return {name: as_plain(value[name]) for name, _ in layout}
    if hasattr(value, "value") and not isinstance(value, int):
        return value.value
    return int(value)


async def stream_put(ctx, stream, payloads: Iterable, *, stall: Iterator[bool] | None = None):
    """Send ``payloads`` on ``stream`` (a stream the design takes in), keeping the contract.

    Before each payload, ``stall`` is drawn once per cycle; while it says ``True`` the source
    shows no ``valid``. Once ``valid`` is up it stays up, with the payload unchanged, until the
    design takes it.
    """
    stall = stall if stall is not None else itertools.repeat(False)
    for payload in payloads:
        while next(stall):
            ctx.set(stream.valid, 0)
            await ctx.tick()
        ctx.set(stream.payload, payload)
        ctx.set(stream.valid, 1)
        await ctx.tick().until(stream.ready)
        ctx.set(stream.valid, 0)


async def stream_get(ctx, stream, count: int, *, backpressure: Iterator[bool] | None = None,
                     timeout: int = 20_000) -> list:
    """Take ``count`` payloads from ``stream`` (a stream the design sends), as plain Python.

    ``backpressure`` is drawn once per cycle; ``True`` holds ``ready`` low. Fails if the design
    breaks the stream contract (drops ``valid`` or changes the payload before the transfer), or
    if ``timeout`` cycles pass without the ``count`` payloads.
    """
    backpressure = backpressure if backpressure is not None else itertools.repeat(False)
    received = []
    held = None
    for _ in range(timeout):
        if len(received) == count:
            break
        ready = not next(backpressure)
        ctx.set(stream.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(stream.valid, stream.payload)
        payload = as_plain(payload) if valid else None
        if held is not None:
            assert valid, f"{stream!r}: valid dropped before the transfer of {held!r}"
            assert payload == held, f"{stream!r}: payload changed from {held!r} to {payload!r} " \
                "before the transfer"
        if valid and ready:
            received.append(payload)
            held = None
        elif valid:
            held = payload
    else:
        raise AssertionError(
            f"{stream!r}: got {len(received)} of {count} payloads in {timeout} cycles")
    ctx.set(stream.ready, 0)
    return received


def simulate(dut, *testbenches, background=(), clock_period: float = 1e-8,
             vcd: str | None = None) -> None:
    """Run ``testbenches`` (async functions of ``ctx``) on ``dut`` with one ``sync`` clock.

    ``background`` testbenches (e.g. :meth:`sim.dram.DRAMModel.process`) run until the others
    finish. ``vcd`` names a waveform file to write.
    """
    from amaranth.hdl import ClockDomain, Module
    from amaranth.sim import Simulator

    # a top that owns the `sync` domain, so purely combinational blocks can be clocked too
    top = Module()
    top.domains.sync = ClockDomain("sync")
    top.submodules.dut = dut
    sim = Simulator(top)
    sim.add_clock(clock_period)
    for testbench in testbenches:
        sim.add_testbench(testbench)
    for testbench in background:
        sim.add_testbench(testbench, background=True)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
