"""WILU: the weight unpacking / index look-up unit. It reads the packet stream of
:func:`golden.meadow.pack_weights` (as :func:`golden.meadow.packed_bits` lays it out) and
sends the weight chunks back, one chunk per cycle, by looking each ID up in a table of the
unique chunks held in block RAM."""

from dataclasses import dataclass

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..common.validate import check_choice, check_int, check_power_of_two

__all__ = ["WILUConfig", "WILU", "PRESETS", "ID_WIDTH_BITS"]

#: Bits of the per-packet ID-width header (golden.meadow.ID_WIDTH_BITS).
ID_WIDTH_BITS = 5


@dataclass(frozen=True)
class WILUConfig:
    """Configuration of :class:`WILU`.

    Parameters
    ----------
    chunk : int
        Weights per chunk (1..8): bytes per output beat.
    max_unique : int
        Entries of the unique-chunk table, a power of two (2..65536); IDs are up to
        ``log2(max_unique)`` bits.
    packet : int
        IDs per packet (1..4096), as packed.
    word_bits : int
        Bits per input word of the packet stream (32 or 64).
    """

    chunk: int = 2
    max_unique: int = 65536
    packet: int = 64
    word_bits: int = 32

    def __post_init__(self):
        check_int("chunk", self.chunk, min=1, max=8)
        check_power_of_two("max_unique", self.max_unique, min=2, max=65536)
        check_int("packet", self.packet, min=1, max=4096)
        check_choice("word_bits", self.word_bits, (32, 64))

    @property
    def id_bits(self) -> int:
        return (self.max_unique - 1).bit_length()

    @property
    def chunk_layout(self) -> data.StructLayout:
        """Output: ``data`` (``chunk`` int8 weights, weight ``c`` in bits ``8c .. 8c+7``),
        ``first``/``last`` of the matrix."""
        return data.StructLayout({"data": 8 * self.chunk, "first": 1, "last": 1})

    @property
    def table_layout(self) -> data.StructLayout:
        """Table load: ``data`` (one unique chunk), ``first`` (this is entry 0)."""
        return data.StructLayout({"data": 8 * self.chunk, "first": 1})


PRESETS = {
    "default": WILUConfig(),
    "small": WILUConfig(chunk=2, max_unique=512, packet=16),
    "chunk4": WILUConfig(chunk=4, max_unique=4096, packet=32),
}


class WILU(wiring.Component):
    """Weight unpacking / index look-up unit.

    Parameters
    ----------
    cfg : WILUConfig

    Members
    -------
    i_table : In(stream.Signature(cfg.table_layout))
        Unique chunks, in ID order; ``first`` restarts at entry 0. Always ready. Load the
        table before the job that uses it.
    i_job : In(stream.Signature({"ids": 24}))
        IDs in the next matrix (its rows × chunks per row).
    i : In(stream.Signature({"data": cfg.word_bits}))
        The packet stream, least significant bit first: per packet a 5-bit ID width ``b``,
        then ``min(packet, IDs left)`` IDs of ``b`` bits. Bits after a job's last ID up to
        the end of its last word are padding and are dropped.
    o : Out(stream.Signature(cfg.chunk_layout))
        One chunk per ID: ``table[id]``.

    Latency
    -------
    A chunk is on ``o`` 1 cycle after its ID's bits are in the unpacking register (2 cycles
    after the word holding them is taken).

    Throughput
    ----------
    One chunk per cycle inside a packet; a packet header costs one cycle, so
    ``packet / (packet + 1)`` chunks per cycle while words arrive (IDs ≤ 16 bits need at
    most one new word per cycle).
    """

    def __init__(self, cfg: WILUConfig):
        self.cfg = cfg
        super().__init__({
            "i_table": In(stream.Signature(cfg.table_layout)),
            "i_job": In(stream.Signature(data.StructLayout({"ids": 24}))),
            "i": In(stream.Signature(data.StructLayout({"data": cfg.word_bits}))),
            "o": Out(stream.Signature(cfg.chunk_layout)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        W = cfg.word_bits
        m.submodules.table = table = Memory(shape=8 * cfg.chunk, depth=cfg.max_unique, init=[])
        wr, rd = table.write_port(), table.read_port()

        # table load
        entry = Signal(range(cfg.max_unique))
        m.d.comb += [self.i_table.ready.eq(1),
                     wr.addr.eq(Mux(self.i_table.payload.first, 0, entry)),
                     wr.data.eq(self.i_table.payload.data), wr.en.eq(self.i_table.valid)]
        with m.If(self.i_table.valid):
            m.d.sync += entry.eq(wr.addr + 1)

        running = Signal()
        ids_left = Signal(24)
        emitted_any = Signal()
        packet_left = Signal(range(cfg.packet + 1))
        width = Signal(ID_WIDTH_BITS)
        buf = Signal(W + 32)
        have = Signal(range(W + 33))
        out_valid = Signal()
        out_first = Signal()
        out_last = Signal()

        m.d.comb += self.i_job.ready.eq(~running)
        with m.If(self.i_job.valid & ~running & (self.i_job.payload.ids != 0)):
            m.d.sync += [running.eq(1), ids_left.eq(self.i_job.payload.ids),
                         packet_left.eq(0), emitted_any.eq(0)]

        advance = ~out_valid | self.o.ready
        need_header = running & (packet_left == 0)
        header_ok = need_header & (have >= ID_WIDTH_BITS)
        id_ok = running & (packet_left != 0) & (have >= width)
        emit = id_ok & advance
        used = Mux(header_ok, ID_WIDTH_BITS, Mux(emit, width, 0))
        rest = Signal.like(have)
        m.d.comb += rest.eq(have - used)

        # what the next cycle needs, to fetch a word only when this job still needs one
        next_ids = Signal(24)
        next_packet = Signal.like(packet_left)
        next_width = Signal.like(width)
        m.d.comb += [next_ids.eq(Mux(emit, ids_left - 1, ids_left)),
                     next_width.eq(Mux(header_ok, buf[:ID_WIDTH_BITS], width))]
        with m.If(header_ok):
            m.d.comb += next_packet.eq(Mux(ids_left > cfg.packet, cfg.packet, ids_left))
        with m.Elif(emit):
            m.d.comb += next_packet.eq(packet_left - 1)
        with m.Else():
            m.d.comb += next_packet.eq(packet_left)
        need_next = Mux(next_ids == 0, 0, Mux(next_packet == 0, ID_WIDTH_BITS, next_width))
        take = running & (rest < need_next)
        m.d.comb += self.i.ready.eq(take)
        fetched = take & self.i.valid

        shifted = buf >> used
        m.d.sync += [buf.eq(shifted | Mux(fetched, self.i.payload.data << rest, 0)),
                     have.eq(rest + Mux(fetched, W, 0))]
        with m.If(header_ok):
            m.d.sync += width.eq(buf[:ID_WIDTH_BITS])
        m.d.sync += packet_left.eq(next_packet)

        id_mask = (Const(1, cfg.id_bits + 1) << width) - 1
        m.d.comb += [rd.addr.eq(buf[:cfg.id_bits] & id_mask), rd.en.eq(advance),
                     self.o.valid.eq(out_valid), self.o.payload.data.eq(rd.data),
                     self.o.payload.first.eq(out_first), self.o.payload.last.eq(out_last)]
        with m.If(advance):
            m.d.sync += out_valid.eq(emit)
        with m.If(emit):
            m.d.sync += [ids_left.eq(ids_left - 1), out_first.eq(~emitted_any),
                         out_last.eq(ids_left == 1), emitted_any.eq(1)]
            with m.If(ids_left == 1):
                # the job is done: drop the padding after its last ID
                m.d.sync += [running.eq(0), have.eq(0), buf.eq(0)]
        return m
