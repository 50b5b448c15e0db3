"""A DRAM model behind the memory port, with configurable latency and bytes per cycle."""

from collections import deque
from dataclasses import dataclass

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.common.memory_port import MemoryPortConfig, MemoryPortSignature
from hw.common.validate import check_int

from .stream import as_plain

__all__ = ["DRAMTiming", "DRAMModel", "MemoryPortWires"]


@dataclass(frozen=True)
class DRAMTiming:
    """Timing of :class:`DRAMModel`.

    Parameters
    ----------
    latency : int
        Cycles from a read command's transfer to its first data beat being valid (≥ 1).
    bytes_per_cycle : float
        Sustained bandwidth shared by reads and writes. A beat moves when the model has
        earned ``data_width/8`` bytes of credit; credit is capped at one beat (or one cycle's
        worth, if larger), so idle cycles do not bank a burst.
    queue_depth : int
        Commands accepted ahead of the one being served.
    """

    latency: int = 20
    bytes_per_cycle: float = 4.0
    queue_depth: int = 4

    def __post_init__(self):
        check_int("latency", self.latency, min=1, max=1 << 20)
        if not isinstance(self.bytes_per_cycle, (int, float)) or not self.bytes_per_cycle > 0:
            raise ValueError(f"bytes_per_cycle must be a positive number, "
                             f"not {self.bytes_per_cycle!r}")
        check_int("queue_depth", self.queue_depth, min=1, max=1 << 10)


class DRAMModel:
    """Cycle model of a DRAM serving a memory port, in order, one command at a time.

    The model is a Moore machine: :meth:`outputs` gives what it drives in the current cycle,
    :meth:`clock` takes what it sampled at the clock edge. :meth:`process` runs it as an
    ``amaranth.sim`` testbench on a memory-port interface (the side that serves commands).

    Parameters
    ----------
    cfg : MemoryPortConfig
    timing : DRAMTiming
    words : int
        Words of storage; addresses wrap modulo ``words``.

    Attributes
    ----------
    bytes_read, bytes_written, cycles, busy_cycles : int
        Counters for bandwidth figures.
    """

    def __init__(self, cfg: MemoryPortConfig, timing: DRAMTiming = DRAMTiming(), *,
                 words: int = 1 << 16):
        check_int("words", words, min=1)
        self.cfg = cfg
        self.timing = timing
        self.words = words
        self.storage: dict[int, int] = {}
        self.commands: deque = deque()
        self.cycle = 0
        self.credit = 0.0
        self.presenting = None      # read beat shown on rdata, held until taken
        self.bytes_read = 0
        self.bytes_written = 0
        self.busy_cycles = 0

    @property
    def cycles(self) -> int:
        return self.cycle

    # -- storage -------------------------------------------------------------------------
    def load(self, addr: int, values) -> None:
        mask = (1 << self.cfg.data_width) - 1
        for k, value in enumerate(values):
            self.storage[(addr + k) % self.words] = int(value) & mask

    def dump(self, addr: int, count: int) -> list[int]:
        return [self.storage.get((addr + k) % self.words, 0) for k in range(count)]

    # -- cycle behaviour -----------------------------------------------------------------
    def _head(self):
        while self.commands and self.commands[0]["remaining"] == 0:
            self.commands.popleft()
        return self.commands[0] if self.commands else None

    def outputs(self) -> dict:
        beat = self.cfg.bytes_per_beat
        head = self._head()
        if self.presenting is None and head is not None and not head["write"]:
            if self.cycle >= head["accepted"] + self.timing.latency and self.credit >= beat:
                self.credit -= beat
                addr = head["addr"]
                self.presenting = {"data": self.storage.get(addr % self.words, 0),
                                   "last": int(head["remaining"] == 1)}
                head["addr"] += 1
                head["remaining"] -= 1
        write_ready = (head is not None and head["write"] and self.presenting is None
                       and self.credit >= beat)
        return {
            "cmd_ready": len(self.commands) < self.timing.queue_depth,
            "wdata_ready": write_ready,
            "rdata_valid": self.presenting is not None,
            "rdata_payload": self.presenting or {"data": 0, "last": 0},
        }

    def clock(self, outputs: dict, cmd_valid: bool, cmd_payload: dict, wdata_valid: bool,
              wdata_payload: dict, rdata_ready: bool) -> None:
        beat = self.cfg.bytes_per_beat
        if outputs["rdata_valid"] and rdata_ready:
            self.presenting = None
            self.bytes_read += beat
        if outputs["wdata_ready"] and wdata_valid:
            head = self._head()
            mask = (1 << self.cfg.data_width) - 1
            self.storage[head["addr"] % self.words] = wdata_payload["data"] & mask
            head["addr"] += 1
            head["remaining"] -= 1
            self.credit -= beat
            self.bytes_written += beat
        if outputs["cmd_ready"] and cmd_valid:
            self.commands.append({"addr": cmd_payload["addr"], "remaining": cmd_payload["length"],
                                  "write": bool(cmd_payload["write"]), "accepted": self.cycle})
        if self.commands or self.presenting is not None:
            self.busy_cycles += 1
        cap = max(beat, self.timing.bytes_per_cycle)
        self.credit = min(cap, self.credit + self.timing.bytes_per_cycle)
        self.cycle += 1

    async def process(self, ctx, port) -> None:
        """``amaranth.sim`` testbench serving ``port`` forever (add it with ``background=True``).

        ``port`` is the memory-port interface of the design under test (the side that issues
        commands); the model drives its ``cmd.ready``, ``wdata.ready``, ``rdata.valid`` and
        ``rdata.payload``.
        """
        while True:
            out = self.outputs()
            ctx.set(port.cmd.ready, out["cmd_ready"])
            ctx.set(port.wdata.ready, out["wdata_ready"])
            ctx.set(port.rdata.valid, out["rdata_valid"])
            ctx.set(port.rdata.payload, out["rdata_payload"])
            _, _, cmd_valid, cmd_payload, wdata_valid, wdata_payload, rdata_ready = \
                await ctx.tick().sample(port.cmd.valid, port.cmd.payload, port.wdata.valid,
                                        port.wdata.payload, port.rdata.ready)
            self.clock(out, bool(cmd_valid), as_plain(cmd_payload), bool(wdata_valid),
                       as_plain(wdata_payload), bool(rdata_ready))


class MemoryPortWires(wiring.Component):
    """Connects a memory port straight through: ``host`` (commands in) to ``mem`` (out)."""

    def __init__(self, cfg: MemoryPortConfig):
        super().__init__({"host": In(MemoryPortSignature(cfg)),
                          "mem": Out(MemoryPortSignature(cfg))})

    def elaborate(self, platform):
        m = Module()
        for name in ("cmd", "wdata"):
            src, dst = getattr(self.host, name), getattr(self.mem, name)
            m.d.comb += [dst.payload.eq(src.payload), dst.valid.eq(src.valid),
                         src.ready.eq(dst.ready)]
        m.d.comb += [self.host.rdata.payload.eq(self.mem.rdata.payload),
                     self.host.rdata.valid.eq(self.mem.rdata.valid),
                     self.mem.rdata.ready.eq(self.host.rdata.ready)]
        return m
