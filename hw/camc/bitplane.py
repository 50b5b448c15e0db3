"""Bit-plane split and merge: the transpose between values and bit planes, block by block.

The byte layout is the golden model's (:mod:`golden.camc.bitplane`): for a block of ``count``
values of a ``width``-bit format, plane ``k`` holds bit ``k`` of every value, a plane is
``ceil(count / 8)`` bytes, byte ``j`` holds values ``8j .. 8j+7`` with value ``8j`` in its most
significant bit, a partial last byte is padded with zero bits, and planes go most
significant first.

Both units work on *tiles* of ``values_per_cycle * width`` values. One plane of one tile is a
*plane word* of ``values_per_cycle * width`` bits = ``bytes_per_beat`` bytes (byte ``j`` of
the word in bits ``8j .. 8j+7``). A tile arrives in ``width`` beats of values and leaves as
``width`` plane words (or the reverse), so both sides run at the same rate. Plane words live in
one block RAM of ``2 * width * tiles`` words (two block buffers, ping-pong), address
``buffer * width * tiles + slot * tiles + tile`` where slot ``s`` holds plane ``width-1-s``.
The transposes themselves are wiring between a ``width``-word register file and a shift
register.
"""

from dataclasses import dataclass

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.camc.bitplane import FORMATS

from ..common.bram import PipelinedRAM, PipelinedRAMConfig
from ..common.skid_buffer import SkidBuffer, SkidBufferConfig
from ..common.validate import check_choice, check_int, packet_layout

__all__ = ["BitplaneConfig", "BitplaneSplit", "BitplaneMerge", "PRESETS"]


@dataclass(frozen=True)
class BitplaneConfig:
    """Configuration of :class:`BitplaneSplit` and :class:`BitplaneMerge`.

    Parameters
    ----------
    fmt : str
        Number format: ``"bf16"``, ``"fp16"`` or ``"fp8_e4m3"`` (raw bit patterns).
    block_values : int
        Values per block (2048 = 4 KiB of BF16); a multiple of 8 and of
        ``values_per_cycle``, from 8 to 65536.
    values_per_cycle : int
        Values per beat on the value side: 1, 2, 4 or 8. The plane side moves the same number
        of bits per beat (``bytes_per_beat = values_per_cycle * width / 8``).
    """

    fmt: str = "bf16"
    block_values: int = 2048
    values_per_cycle: int = 2

    def __post_init__(self):
        check_choice("fmt", self.fmt, tuple(FORMATS))
        check_choice("values_per_cycle", self.values_per_cycle, (1, 2, 4, 8))
        check_int("block_values", self.block_values, min=8, max=1 << 16)
        if self.block_values % 8 or self.block_values % self.values_per_cycle:
            raise ValueError(f"block_values must be a multiple of 8 and of values_per_cycle "
                             f"({self.values_per_cycle}), not {self.block_values!r}")

    @property
    def width(self) -> int:
        """Bits per value (= number of planes)."""
        return FORMATS[self.fmt].width

    @property
    def word_width(self) -> int:
        """Bits in one beat on either side: ``values_per_cycle * width``."""
        return self.values_per_cycle * self.width

    @property
    def bytes_per_beat(self) -> int:
        return self.word_width // 8

    @property
    def tiles(self) -> int:
        """Tiles of ``word_width`` values in a full block (the last may be partial)."""
        return -(-self.block_values // self.word_width)

    @property
    def memory_depth(self) -> int:
        """Plane words in the block RAM: two buffers of ``width * tiles``."""
        return 2 * self.width * self.tiles

    @property
    def memory_bits(self) -> int:
        return self.memory_depth * self.word_width

    @property
    def value_layout(self) -> data.StructLayout:
        """Value side: ``data`` (lane ``l``, the ``l``-th value of the beat, in bits
        ``l*width .. (l+1)*width-1``), ``first``, ``last``."""
        return packet_layout(self.word_width)

    @property
    def plane_layout(self) -> data.StructLayout:
        """Plane side: ``data`` (``bytes_per_beat`` bytes, byte ``j`` in bits ``8j..8j+7``),
        ``count`` (bytes valid, from byte 0), ``plane`` (bit index, ``width-1`` first),
        ``first``, ``last`` (of the block)."""
        return data.StructLayout({
            "data": self.word_width,
            "count": range(self.bytes_per_beat + 1),
            "plane": range(self.width),
            "first": 1,
            "last": 1,
        })

    @property
    def block_layout(self) -> data.StructLayout:
        """Merge block descriptor: ``count`` values (1 to ``block_values``), ``planes`` sent
        (0 to ``width``, the top ones)."""
        return data.StructLayout({
            "count": range(self.block_values + 1),
            "planes": range(self.width + 1),
        })


PRESETS: dict[str, BitplaneConfig] = {
    "default": BitplaneConfig(),
    "fp16": BitplaneConfig(fmt="fp16"),
    "fp8": BitplaneConfig(fmt="fp8_e4m3", block_values=4096, values_per_cycle=4),
    "bf16_wide": BitplaneConfig(values_per_cycle=8),
}


def _bit_in_word(q: int) -> int:
    """Bit of a plane word holding value ``q`` of the tile (value ``8j`` is the MSB of byte
    ``j``). The mapping is its own inverse."""
    return 8 * (q // 8) + 7 - q % 8


def _bytes_for_rows(rows, values_per_cycle: int):
    """Bytes of one plane of a tile holding ``rows`` beats of values (zero-padded byte)."""
    return (rows * values_per_cycle + 7) >> 3


def _select(flag, value):
    return Mux(flag, value, 0)


class BitplaneSplit(wiring.Component):
    """Values in, bit planes out: each block leaves as ``width`` planes, MSB plane first.

    A block is ``block_values`` values, or fewer when ``i.payload.last`` comes early. Every
    lane of every beat is a value, so a block holds a multiple of ``values_per_cycle`` values;
    its planes are ``ceil(count / 8)`` bytes each and the output, concatenated over the block,
    is ``golden.camc.bitplane_split(values, fmt)``. (A sender with a count that is not a
    multiple of ``values_per_cycle`` fills the spare lanes of its last beat with zeros: zero
    values below the next multiple of 8 are exactly the golden padding bits, and bytes beyond
    ``ceil(count / 8)`` are never sent.) ``i.payload.first`` is not used.

    Each output beat carries bytes of one plane only: a plane is ``ceil(count/8)`` bytes in
    beats of ``bytes_per_beat``, the last beat of a plane carrying ``count`` bytes (fewer than
    ``bytes_per_beat`` only in a short block, or when ``block_values`` is not a multiple of
    ``values_per_cycle * width``).

    Parameters
    ----------
    cfg : BitplaneConfig

    Members
    -------
    i : In(stream.Signature(cfg.value_layout))
        Values, ``values_per_cycle`` per beat, earliest in lane 0.
    o : Out(stream.Signature(cfg.plane_layout))
        Plane bytes: ``data``, ``count`` valid bytes, ``plane``, ``first``/``last`` of the
        block.

    Latency
    -------
    The first beat of a block is offered ``width + 4`` cycles after its last value beat is
    taken (the whole block must be in before the MSB plane is complete; the plane words are
    read through the block RAM's read latch and output register).

    Throughput
    ----------
    ``values_per_cycle`` values per cycle in and out, sustained over back-to-back blocks (two
    block buffers), when ``block_values`` is a multiple of ``values_per_cycle * width`` (all
    presets). A tile always takes ``width`` cycles to write and to read out, so a partial
    tile (the end of a short block, or of a block of another size) costs as much as a full
    one: a block takes ``max(block_values / values_per_cycle, width * tiles)`` cycles.

    Resources
    ---------
    Block RAM: ``2 * width * block_values`` bits (``cfg.memory_bits``, rounded up to whole
    tiles) as one memory of ``word_width``-bit words: 4 DP16KD on ECP5 for the default
    preset (64 Kbit). Registers: about ``2 * width * word_width`` bits (value tile and plane
    shift register).
    """

    def __init__(self, cfg: BitplaneConfig):
        self.cfg = cfg
        super().__init__({
            "i": In(stream.Signature(cfg.value_layout)),
            "o": Out(stream.Signature(cfg.plane_layout)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        W, V, G = cfg.width, cfg.values_per_cycle, cfg.tiles
        word = cfg.word_width
        rows_in_block = cfg.block_values // V
        rows_in_last_tile = rows_in_block - (G - 1) * W

        m.submodules.planes = ram = PipelinedRAM(PipelinedRAMConfig(word, cfg.memory_depth))

        full = Signal(2)        # buffer holds a complete block not yet read out
        tiles_m1 = Array(Signal(range(G), name=f"tiles_m1_{b}") for b in range(2))
        last_rows = Array(Signal(range(W + 1), name=f"last_rows_{b}") for b in range(2))

        # tile of values: row r holds beat r of the tile
        gather = [Signal(word, name=f"gather_{r}") for r in range(W)]
        row = Signal(range(W))
        tile = Signal(range(G))
        pending = Signal()          # `gather` holds a complete tile for the shift register
        pending_tile = Signal(range(G))
        pending_rows = Signal(range(W + 1))
        pending_end = Signal()

        # plane words of one tile, slot 0 (MSB plane) first, written to memory one per cycle
        planes = [Signal(word, name=f"planes_{s}") for s in range(W)]
        planes_left = Signal(range(W + 1))
        slot = Signal(range(W))
        planes_tile = Signal(range(G))
        planes_rows = Signal(range(W + 1))
        planes_end = Signal()

        # `planes_left == 0` and `== 1` as registers beside it, so a tile's move starts from
        # flags rather than from a compare of the count
        p_zero = Signal(init=1)
        p_one = Signal()
        wb = Signal()
        write_now = ~p_zero & ~full.bit_select(wb, 1)
        shift_free = p_zero | (p_one & write_now)
        move_now = pending & shift_free
        # `i.ready` sees only registers, not the memory write's `full` check: `last_write` is
        # set when the write of the second-to-last plane word happens, and then the last one
        # happens in the next cycle (only this side sets `full[wb]`, and only at that last
        # write), so the shift register is free after it; if that write is blocked, the tile
        # waits for an empty shift register instead
        last_write = Signal()
        m.d.sync += last_write.eq((planes_left == 2) & write_now)
        m.d.comb += self.i.ready.eq(~pending | p_zero | last_write)

        m.d.comb += [
            ram.w_en.eq(write_now),
            ram.w_addr.eq(wb * (W * G) + slot * G + planes_tile),
            ram.w_data.eq(planes[0]),
        ]
        with m.If(write_now):
            m.d.sync += [planes[s].eq(planes[s + 1]) for s in range(W - 1)]
            m.d.sync += [planes_left.eq(planes_left - 1), slot.eq(slot + 1),
                         p_zero.eq(p_one), p_one.eq(planes_left == 2)]
            with m.If(p_one & planes_end):
                m.d.sync += [
                    full.bit_select(wb, 1).eq(1),
                    tiles_m1[wb].eq(planes_tile),
                    last_rows[wb].eq(planes_rows),
                    wb.eq(~wb),
                ]

        # A taken beat waits a cycle in stage S (registers beside the input) before it is
        # written into `gather`, whose rows are spread wide: the take then reaches only S's
        # enables. A tile may move while its last beat is still in S: the move reads each row
        # through S (the beat in S, or zero for a row that S's row 0 clears), and at a move S
        # holds nothing or a beat of the moving tile (`i.ready` takes the next tile's first
        # beat only in the cycle of the move or after it).
        s_valid = Signal()
        s_data = Signal(word)
        s_row = Signal(range(W))
        rows = [Mux(s_valid & (s_row == r), s_data,
                    Mux(s_valid & (s_row == 0), 0, gather[r])) for r in range(W)]
        with m.If(move_now):
            for s in range(W):
                plane = W - 1 - s
                bits = []
                for b in range(word):
                    q = _bit_in_word(b)
                    bits.append(rows[q // V][(q % V) * W + plane])
                m.d.sync += planes[s].eq(Cat(*bits))
            m.d.sync += [
                planes_left.eq(W),
                p_zero.eq(0),
                p_one.eq(W == 1),
                slot.eq(0),
                planes_tile.eq(pending_tile),
                planes_rows.eq(pending_rows),
                planes_end.eq(pending_end),
                pending.eq(0),
            ]

        # `row == W - 1` and the block's last row as registers, updated with `row` and `tile`
        row_last = Signal(init=int(W == 1))
        at_block_end = Signal(init=int(G == 1 and rows_in_last_tile == 1))
        block_end = self.i.payload.last | at_block_end
        tile_done = row_last | block_end
        take = self.i.valid & self.i.ready
        m.d.sync += s_valid.eq(take)
        with m.If(take):
            m.d.sync += [s_data.eq(self.i.payload.data), s_row.eq(row)]
        with m.If(s_valid):
            # row 0 clears the rest, so a short tile reads zeros past its last beat
            for r in range(W):
                with m.If(s_row == r):
                    m.d.sync += gather[r].eq(s_data)
                with m.Elif(s_row == 0):
                    m.d.sync += gather[r].eq(0)
        with m.If(take):
            with m.If(tile_done):
                next_tile = Mux(block_end, 0, tile + 1)
                m.d.sync += [
                    row.eq(0),
                    tile.eq(next_tile),
                    row_last.eq(W == 1),
                    at_block_end.eq((next_tile == G - 1) & (rows_in_last_tile == 1)),
                    pending.eq(1),
                    pending_tile.eq(tile),
                    pending_rows.eq(row + 1),
                    pending_end.eq(block_end),
                ]
            with m.Else():
                m.d.sync += [row.eq(row + 1), row_last.eq(row == W - 2),
                             at_block_end.eq((tile == G - 1) & (row == rows_in_last_tile - 2))]

        # read side: a plane word goes into the RAM's read latch (stage L, its companions in
        # `l_*`), then into the RAM's output register, which is `o.payload.data`
        rb = Signal()
        rd_slot = Signal(range(W))
        rd_tile = Signal(range(G))
        o = self.o
        l_valid = Signal()
        l_info = Signal.like(o.payload)
        advance_o = ~o.valid | o.ready
        advance = ~l_valid | advance_o
        full_rb = full.bit_select(rb, 1)
        tile_last = rd_tile == tiles_m1[rb]
        m.d.comb += [
            ram.r_en.eq(advance), ram.r_oe.eq(advance_o),
            ram.r_addr.eq(rb * (W * G) + rd_slot * G + rd_tile),
        ]
        with m.If(advance_o):
            m.d.sync += [o.valid.eq(l_valid), o.payload.count.eq(l_info.count),
                         o.payload.plane.eq(l_info.plane), o.payload.first.eq(l_info.first),
                         o.payload.last.eq(l_info.last)]
        m.d.comb += o.payload.data.eq(ram.r_data)
        with m.If(advance):
            m.d.sync += l_valid.eq(full_rb)
            with m.If(full_rb):
                m.d.sync += [
                    l_info.count.eq(Mux(tile_last, _bytes_for_rows(last_rows[rb], V),
                                        cfg.bytes_per_beat)),
                    l_info.plane.eq(W - 1 - rd_slot),
                    l_info.first.eq((rd_slot == 0) & (rd_tile == 0)),
                    l_info.last.eq((rd_slot == W - 1) & tile_last),
                ]
                with m.If(tile_last):
                    m.d.sync += rd_tile.eq(0)
                    with m.If(rd_slot == W - 1):
                        m.d.sync += [
                            rd_slot.eq(0),
                            full.bit_select(rb, 1).eq(0),
                            rb.eq(~rb),
                        ]
                    with m.Else():
                        m.d.sync += rd_slot.eq(rd_slot + 1)
                with m.Else():
                    m.d.sync += rd_tile.eq(rd_tile + 1)
        return m


class BitplaneMerge(wiring.Component):
    """Bit planes in, values out: the inverse of :class:`BitplaneSplit`, at reduced precision.

    Each block starts with a descriptor on ``i_block``: ``count`` values (1 to
    ``block_values``) and ``planes``, the number of top planes that follow on ``i`` (0 to
    ``width``; ``planes_for_precision`` of the golden model gives it for a mantissa
    precision). The missing low planes read as zero bits. ``i`` then carries, MSB plane first,
    ``planes`` planes of ``ceil(count / 8)`` bytes each, every plane starting on a new beat in
    byte 0, exactly as :class:`BitplaneSplit` sends them, so ``o`` of a split connects to
    ``i`` of a merge. Beats are counted from the descriptor: the ``count``, ``plane``,
    ``first`` and ``last`` fields of ``i`` are not used, nor are the bytes past the end of a
    plane in its last beat. Descriptors go into a two-entry skid buffer (so up to two may be
    taken ahead of their planes); the merge is done with one at its block's last plane beat.

    ``o`` carries ``ceil(count / values_per_cycle)`` beats per block, ``first``/``last``
    marking the block; lanes past ``count`` in the last beat are zero. The values equal
    ``golden.camc.bitplane_merge(data, fmt, count, planes)``.

    Parameters
    ----------
    cfg : BitplaneConfig

    Members
    -------
    i_block : In(stream.Signature(cfg.block_layout))
        One descriptor per block: ``count``, ``planes``.
    i : In(stream.Signature(cfg.plane_layout))
        Plane bytes (only ``data`` is used).
    o : Out(stream.Signature(cfg.value_layout))
        Values, ``values_per_cycle`` per beat, earliest in lane 0.

    Latency
    -------
    The first values of a block are offered ``width + 4`` cycles after its last plane beat
    is taken (the block RAM's output register holds the plane word before the transposing
    shift register takes it). A block's plane beats are taken from the cycle after its
    descriptor is (the descriptor's skid buffer).

    Throughput
    ----------
    ``values_per_cycle`` values per cycle out, sustained over back-to-back blocks, whatever
    ``planes`` is (a reduced-precision block takes fewer input beats), when ``block_values``
    is a multiple of ``values_per_cycle * width``. A tile is read as ``width`` plane words in
    ``width`` cycles, so a partial tile costs as much as a full one, as in the split.

    Resources
    ---------
    As :class:`BitplaneSplit`: ``cfg.memory_bits`` of block RAM, about
    ``2 * width * word_width`` register bits.
    """

    def __init__(self, cfg: BitplaneConfig):
        self.cfg = cfg
        super().__init__({
            "i_block": In(stream.Signature(cfg.block_layout)),
            "i": In(stream.Signature(cfg.plane_layout)),
            "o": Out(stream.Signature(cfg.value_layout)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        W, V, G = cfg.width, cfg.values_per_cycle, cfg.tiles
        word = cfg.word_width
        log2_v = V.bit_length() - 1
        log2_w = W.bit_length() - 1

        # block RAM with its output register: stage R below is that register
        m.submodules.planes = ram = PipelinedRAM(PipelinedRAMConfig(word, cfg.memory_depth))

        full = Signal(2)
        tiles_m1 = Array(Signal(range(G), name=f"tiles_m1_{b}") for b in range(2))
        last_rows = Array(Signal(range(W + 1), name=f"last_rows_{b}") for b in range(2))
        last_lanes = Array(Signal(range(V + 1), name=f"last_lanes_{b}") for b in range(2))
        planes_sent = Array(Signal(range(W + 1), name=f"planes_sent_{b}") for b in range(2))

        # write side: plane words go straight into memory. The descriptor passes a skid
        # buffer first, with the quantities derived from it computed on the way in: the
        # write side's decisions then start from registers, not from subtractors and compares
        # on the sender's payload
        count = self.i_block.payload.count
        rows_m1 = ((count + V - 1) >> log2_v) - 1
        desc_layout = data.StructLayout({
            "planes": range(W + 1), "none": 1, "planes_m1": range(W), "tiles_m1": range(G),
            "last_rows": range(W + 1), "last_lanes": range(V + 1)})
        m.submodules.desc = desc = SkidBuffer(SkidBufferConfig(payload=desc_layout))
        m.d.comb += [
            desc.i.valid.eq(self.i_block.valid), self.i_block.ready.eq(desc.i.ready),
            desc.i.payload.planes.eq(self.i_block.payload.planes),
            desc.i.payload.none.eq(self.i_block.payload.planes == 0),
            desc.i.payload.planes_m1.eq(self.i_block.payload.planes - 1),
            desc.i.payload.tiles_m1.eq(rows_m1 >> log2_w),
            desc.i.payload.last_rows.eq((rows_m1 & (W - 1)) + 1),
            desc.i.payload.last_lanes.eq(((count - 1) & (V - 1)) + 1),
        ]
        blk = desc.o
        n_planes = blk.payload.planes
        in_tiles_m1 = blk.payload.tiles_m1
        in_last_rows = blk.payload.last_rows
        in_last_lanes = blk.payload.last_lanes

        wb = Signal()
        w_slot = Signal(range(W))
        w_tile = Signal(range(G))
        open_block = blk.valid & ~full.bit_select(wb, 1)
        plane_done = w_tile == in_tiles_m1
        last_beat = (w_slot == blk.payload.planes_m1) & plane_done
        finish = open_block & (blk.payload.none | (self.i.valid & last_beat))
        m.d.comb += [
            self.i.ready.eq(open_block & ~blk.payload.none),
            blk.ready.eq(finish),
            ram.w_en.eq(self.i.valid & self.i.ready),
            ram.w_addr.eq(wb * (W * G) + w_slot * G + w_tile),
            ram.w_data.eq(self.i.payload.data),
        ]
        with m.If(self.i.valid & self.i.ready):
            with m.If(plane_done):
                m.d.sync += [w_tile.eq(0), w_slot.eq(Mux(last_beat, 0, w_slot + 1))]
            with m.Else():
                m.d.sync += w_tile.eq(w_tile + 1)
        with m.If(finish):
            m.d.sync += [
                full.bit_select(wb, 1).eq(1),
                tiles_m1[wb].eq(in_tiles_m1),
                last_rows[wb].eq(in_last_rows),
                last_lanes[wb].eq(in_last_lanes),
                planes_sent[wb].eq(n_planes),
                wb.eq(~wb),
            ]

        # read side: `width` plane words per tile into a shift register, transposed into the
        # output tile, which leaves one beat of values per cycle
        planes = [Signal(word, name=f"planes_{s}") for s in range(W)]
        planes_full = Signal()
        planes_first = Signal()
        planes_tile_last = Signal()
        planes_rows = Signal(range(W + 1))
        planes_lanes = Signal(range(V + 1))

        out = [Signal(word, name=f"out_{r}") for r in range(W)]
        out_left = Signal(range(W + 1))
        # `out_left == 0` and `out_left == 1` kept as flags beside it: the read pipeline's
        # advance decision (which enables wide registers and the block RAM) starts from them
        out_empty = Signal(init=1)
        out_one = Signal()
        out_first = Signal()
        out_tile_last = Signal()
        out_lanes = Signal(range(V + 1))

        rb = Signal()
        rd_slot = Signal(range(W))
        rd_tile = Signal(range(G))
        rd_valid = Signal()
        rd_zero = Signal()          # plane not sent: reads as zero
        rd_slot_last = Signal()
        rd_first = Signal()
        rd_tile_last = Signal()
        rd_rows = Signal(range(W + 1))
        rd_lanes = Signal(range(V + 1))

        # stage R: the plane word read in the block RAM's output register (`ram.r_data`),
        # its companions in flip-flops
        r_valid = Signal()
        r_data = ram.r_data
        r_zero = Signal()
        r_slot_last = Signal()
        r_first = Signal()
        r_tile_last = Signal()
        r_rows = Signal(range(W + 1))
        r_lanes = Signal(range(V + 1))

        o = self.o
        out_free = out_empty | (out_one & o.ready)
        move_now = planes_full & out_free
        consume = r_valid & (~planes_full | move_now)
        advance_r = ~r_valid | consume
        advance = ~rd_valid | advance_r
        with m.If(advance_r):
            m.d.sync += [r_valid.eq(rd_valid), r_zero.eq(rd_zero),
                         r_slot_last.eq(rd_slot_last), r_first.eq(rd_first),
                         r_tile_last.eq(rd_tile_last), r_rows.eq(rd_rows),
                         r_lanes.eq(rd_lanes)]
        full_rb = full.bit_select(rb, 1)
        tile_last = rd_tile == tiles_m1[rb]

        m.d.comb += [
            ram.r_en.eq(advance), ram.r_oe.eq(advance_r),
            ram.r_addr.eq(rb * (W * G) + rd_slot * G + rd_tile),
        ]
        with m.If(advance):
            m.d.sync += rd_valid.eq(full_rb)
            with m.If(full_rb):
                m.d.sync += [
                    rd_zero.eq(rd_slot >= planes_sent[rb]),
                    rd_slot_last.eq(rd_slot == W - 1),
                    rd_first.eq(rd_tile == 0),
                    rd_tile_last.eq(tile_last),
                    rd_rows.eq(Mux(tile_last, last_rows[rb], W)),
                    rd_lanes.eq(last_lanes[rb]),
                ]
                with m.If(rd_slot == W - 1):
                    m.d.sync += rd_slot.eq(0)
                    with m.If(tile_last):
                        m.d.sync += [
                            rd_tile.eq(0),
                            full.bit_select(rb, 1).eq(0),
                            rb.eq(~rb),
                        ]
                    with m.Else():
                        m.d.sync += rd_tile.eq(rd_tile + 1)
                with m.Else():
                    m.d.sync += rd_slot.eq(rd_slot + 1)

        with m.If(o.valid & o.ready):
            m.d.sync += [out[r].eq(out[r + 1]) for r in range(W - 1)]
            m.d.sync += [out_left.eq(out_left - 1), out_first.eq(0),
                         out_empty.eq(out_one), out_one.eq(out_left == 2)]
        # a move in the same cycle (then out_left == 1) overrides the shift above
        with m.If(move_now):
            for r in range(W):
                bits = []
                for lane in range(V):
                    b = _bit_in_word(r * V + lane)
                    bits += [planes[W - 1 - k][b] for k in range(W)]
                m.d.sync += out[r].eq(Cat(*bits))
            m.d.sync += [
                out_left.eq(planes_rows),
                out_empty.eq(planes_rows == 0),
                out_one.eq(planes_rows == 1),
                out_first.eq(planes_first),
                out_tile_last.eq(planes_tile_last),
                out_lanes.eq(planes_lanes),
                planes_full.eq(0),
            ]
        with m.If(consume):
            m.d.sync += [planes[s].eq(planes[s + 1]) for s in range(W - 1)]
            m.d.sync += planes[W - 1].eq(_select(~r_zero, r_data))
            with m.If(r_slot_last):
                m.d.sync += [
                    planes_full.eq(1),
                    planes_first.eq(r_first),
                    planes_tile_last.eq(r_tile_last),
                    planes_rows.eq(r_rows),
                    planes_lanes.eq(r_lanes),
                ]

        last_out = out_one & out_tile_last
        lanes = []
        for lane in range(V):
            keep = ~last_out | (out_lanes > lane)
            lanes.append(_select(keep, out[0][lane * W:(lane + 1) * W]))
        m.d.comb += [
            o.valid.eq(~out_empty),
            o.payload.data.eq(Cat(*lanes)),
            o.payload.first.eq(out_first),
            o.payload.last.eq(last_out),
        ]
        return m

