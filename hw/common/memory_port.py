"""The memory port every block that touches DRAM uses, and a block-RAM memory behind it."""

from dataclasses import dataclass

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .bram import PipelinedRAM, PipelinedRAMConfig
from .validate import check_int

__all__ = ["MemoryPortConfig", "MemoryPortSignature", "BlockRAMConfig", "BlockRAMMemory"]


@dataclass(frozen=True)
class MemoryPortConfig:
    """Shape of a memory port.

    Parameters
    ----------
    addr_width : int
        Bits of a word address (a word is ``data_width`` bits).
    data_width : int
        Bits per data beat; a multiple of 8.
    length_width : int
        Bits of a command's burst length, counted in beats.
    """

    addr_width: int = 16
    data_width: int = 32
    length_width: int = 8

    def __post_init__(self):
        check_int("addr_width", self.addr_width, min=1, max=48)
        check_int("data_width", self.data_width, min=8, max=1024)
        if self.data_width % 8:
            raise ValueError(f"data_width must be a multiple of 8, not {self.data_width!r}")
        check_int("length_width", self.length_width, min=1, max=16)

    @property
    def bytes_per_beat(self) -> int:
        return self.data_width // 8

    @property
    def command_layout(self):
        return data.StructLayout({
            "addr": self.addr_width,
            "length": self.length_width,
            "write": 1,
        })

    @property
    def write_layout(self):
        return data.StructLayout({"data": self.data_width})

    @property
    def read_layout(self):
        return data.StructLayout({"data": self.data_width, "last": 1})


class MemoryPortSignature(wiring.Signature):
    """A memory port, seen from the side that issues commands.

    Members
    -------
    cmd : Out(stream.Signature(cfg.command_layout))
        ``addr`` (word address), ``length`` (beats; 0 moves no data), ``write`` (1: write).
        Commands are served in order.
    wdata : Out(stream.Signature(cfg.write_layout))
        ``length`` beats for each write command, in command order.
    rdata : In(stream.Signature(cfg.read_layout))
        ``length`` beats for each read command, in command order; ``last`` on the final one.

    A memory implements ``MemoryPortSignature(cfg).flip()``.
    """

    def __init__(self, cfg: MemoryPortConfig):
        self.cfg = cfg
        super().__init__({
            "cmd": Out(stream.Signature(cfg.command_layout)),
            "wdata": Out(stream.Signature(cfg.write_layout)),
            "rdata": In(stream.Signature(cfg.read_layout)),
        })

    def __eq__(self, other):
        return type(other) is type(self) and other.cfg == self.cfg

    def __repr__(self):
        return f"MemoryPortSignature({self.cfg!r})"


@dataclass(frozen=True)
class BlockRAMConfig:
    """Configuration of :class:`BlockRAMMemory`.

    Parameters
    ----------
    addr_width, data_width, length_width : int
        Port shape, as in :class:`MemoryPortConfig`.
    depth : int
        Words of storage; addresses wrap modulo ``depth``.
    """

    addr_width: int = 16
    data_width: int = 32
    length_width: int = 8
    depth: int = 1024

    def __post_init__(self):
        MemoryPortConfig(self.addr_width, self.data_width, self.length_width)
        check_int("depth", self.depth, min=2, max=1 << 20)
        if self.depth & (self.depth - 1):
            raise ValueError(f"depth must be a power of two, not {self.depth!r}")
        if self.depth > (1 << self.addr_width):
            raise ValueError(
                f"depth must be at most 2**addr_width = {1 << self.addr_width}, not {self.depth!r}"
            )

    @property
    def port(self) -> MemoryPortConfig:
        return MemoryPortConfig(self.addr_width, self.data_width, self.length_width)


class BlockRAMMemory(wiring.Component):
    """On-chip memory (block RAM) serving a memory port, one command at a time.

    Parameters
    ----------
    cfg : BlockRAMConfig

    Members
    -------
    mem : In(MemoryPortSignature(cfg.port))
        The port served.

    Latency
    -------
    A read's first beat is valid 3 cycles after its command transfers (the storage is a
    :class:`~hw.common.bram.PipelinedRAM`: a read latch, then the block RAM's own output
    register, which drives ``rdata.payload.data``).

    Throughput
    ----------
    One beat per cycle within a burst; one idle cycle between commands.
    """

    def __init__(self, cfg: BlockRAMConfig):
        self.cfg = cfg
        super().__init__({"mem": In(MemoryPortSignature(cfg.port))})

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        m.submodules.storage = storage = PipelinedRAM(PipelinedRAMConfig(cfg.data_width,
                                                                         cfg.depth))
        addr = Signal(range(cfg.depth))
        remaining = Signal(cfg.length_width)
        cmd, wdata, rdata = self.mem.cmd, self.mem.wdata, self.mem.rdata

        # read pipeline: a beat in the RAM's read latch (stage 1), then in its output register
        # (stage 2, on `rdata`); each stage moves when the one after it has room
        latch_valid, latch_last = Signal(), Signal()
        out_valid, out_last = Signal(), Signal()
        advance_out = ~out_valid | rdata.ready
        advance_latch = ~latch_valid | advance_out
        issue = Signal()                # a read of `addr` enters the latch
        m.d.comb += [
            storage.w_addr.eq(addr),
            storage.w_data.eq(wdata.payload.data),
            storage.r_addr.eq(addr),
            storage.r_en.eq(issue),
            storage.r_oe.eq(advance_out),
            rdata.valid.eq(out_valid),
            rdata.payload.data.eq(storage.r_data),
            rdata.payload.last.eq(out_last),
        ]
        with m.If(advance_latch):
            m.d.sync += [latch_valid.eq(issue), latch_last.eq(remaining == 1)]
        with m.If(advance_out):
            m.d.sync += [out_valid.eq(latch_valid), out_last.eq(latch_last)]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += cmd.ready.eq(1)
                with m.If(cmd.valid):
                    m.d.sync += [
                        addr.eq(cmd.payload.addr),
                        remaining.eq(cmd.payload.length),
                    ]
                    with m.If(cmd.payload.length == 0):
                        pass
                    with m.Elif(cmd.payload.write):
                        m.next = "WRITE"
                    with m.Else():
                        m.next = "READ"
            with m.State("WRITE"):
                m.d.comb += [
                    wdata.ready.eq(1),
                    storage.w_en.eq(wdata.valid),
                ]
                with m.If(wdata.valid):
                    m.d.sync += [addr.eq(addr + 1), remaining.eq(remaining - 1)]
                    with m.If(remaining == 1):
                        m.next = "IDLE"
            with m.State("READ"):
                m.d.comb += issue.eq(advance_latch)
                with m.If(issue):
                    m.d.sync += [addr.eq(addr + 1), remaining.eq(remaining - 1)]
                    with m.If(remaining == 1):
                        m.next = "IDLE"
        return m
