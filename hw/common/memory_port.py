"""The memory port every block that touches DRAM uses, and a block-RAM memory behind it."""

from dataclasses import dataclass

from amaranth.hdl import Module, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

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
    A read's first beat is valid 2 cycles after its command transfers.

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
        m.submodules.storage = storage = memory.Memory(
            shape=cfg.data_width, depth=cfg.depth, init=[])
        write_port = storage.write_port()
        read_port = storage.read_port()

        addr = Signal(range(cfg.depth))
        remaining = Signal(cfg.length_width)
        read_valid = Signal()
        read_last = Signal()
        cmd, wdata, rdata = self.mem.cmd, self.mem.wdata, self.mem.rdata

        m.d.comb += [
            # `en` is 1 by default; keep it low except where READ issues, so a beat waiting
            # on `rdata` is not overwritten
            read_port.en.eq(0),
            write_port.addr.eq(addr),
            write_port.data.eq(wdata.payload.data),
            read_port.addr.eq(addr),
            rdata.valid.eq(read_valid),
            rdata.payload.data.eq(read_port.data),
            rdata.payload.last.eq(read_last),
        ]
        with m.If(rdata.valid & rdata.ready):
            m.d.sync += read_valid.eq(0)

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
                    write_port.en.eq(wdata.valid),
                ]
                with m.If(wdata.valid):
                    m.d.sync += [addr.eq(addr + 1), remaining.eq(remaining - 1)]
                    with m.If(remaining == 1):
                        m.next = "IDLE"
            with m.State("READ"):
                # the read port's data register holds its word while `en` is low, so it is the
                # output register: read the next word only when the current one leaves
                issue = ~read_valid | rdata.ready
                m.d.comb += read_port.en.eq(issue)
                with m.If(issue):
                    m.d.sync += [
                        addr.eq(addr + 1),
                        remaining.eq(remaining - 1),
                        read_valid.eq(1),
                        read_last.eq(remaining == 1),
                    ]
                    with m.If(remaining == 1):
                        m.next = "IDLE"
        return m
