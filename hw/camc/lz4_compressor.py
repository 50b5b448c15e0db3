"""LZ4 block compressor, byte-identical to :func:`golden.camc.lz4_compress_block`.

The algorithm (hash of 4 bytes, one table write per position, greedy forward matching,
``MINMATCH``/``LASTLITERALS``/``MFLIMIT``, ``max_offset``) is specified in the docstring of
:mod:`golden.camc.lz4`; this module is a pipelined implementation of exactly that.
"""

from dataclasses import dataclass

from amaranth.hdl import Array, Cat, Module, Mux, Shape, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..common.bram import PipelinedRAM, PipelinedRAMConfig, RAMQueue, RAMQueueConfig
from ..common.skid_buffer import SkidBuffer, SkidBufferConfig
from ..common.validate import check_int, check_power_of_two, packet_layout

__all__ = ["LZ4CompressorConfig", "LZ4Compressor", "PRESETS"]

# the constants of golden.camc.lz4 (kept here so the gateware does not import the golden model)
MINMATCH = 4
LASTLITERALS = 5
MFLIMIT = 12
HASH_MULTIPLIER = 2654435761
# entries of the queue between candidate unit and matcher: covers the pipeline's round trip
CANDIDATE_DEPTH = 20


@dataclass(frozen=True)
class LZ4CompressorConfig:
    """Configuration of :class:`LZ4Compressor`.

    Parameters
    ----------
    hash_bits : int
        ``H``: the hash table has ``2**H`` entries (4..16).
    max_block_bytes : int
        Largest block, a power of two (16..65536); the block is buffered on chip.
    max_offset : int
        ``W``: matches reach at most this many bytes back (1..65535).
    sequence_depth : int
        Entries of the queue of found sequences between match finder and encoder (2..4096):
        the finder runs ahead on the next block while the encoder still sends the literals
        of this one, and stalls when the queue is full.
    """

    hash_bits: int = 12
    max_block_bytes: int = 4096
    max_offset: int = 65535
    sequence_depth: int = 64

    def __post_init__(self):
        check_int("hash_bits", self.hash_bits, min=4, max=16)
        check_power_of_two("max_block_bytes", self.max_block_bytes, min=16, max=65536)
        check_int("max_offset", self.max_offset, min=1, max=65535)
        check_int("sequence_depth", self.sequence_depth, min=2, max=4096)

    @property
    def addr_width(self) -> int:
        return self.max_block_bytes.bit_length() - 1

    @property
    def max_compressed_bytes(self) -> int:
        """Longest output for a ``max_block_bytes`` block (all literals)."""
        n = self.max_block_bytes
        return n + (n - 15) // 255 + 2

    @property
    def status_layout(self) -> data.StructLayout:
        return data.StructLayout({
            "compressed_length": range(self.max_compressed_bytes + 1),
            "raw_length": range(self.max_block_bytes + 1),
            "split": 1,
        })


PRESETS = {
    "default": LZ4CompressorConfig(),
    "small": LZ4CompressorConfig(hash_bits=10, max_block_bytes=1024),
    "tiny": LZ4CompressorConfig(hash_bits=8, max_block_bytes=256, max_offset=255),
}


def _bank_addrs(addr, addr_width):
    """Word address in each of the four byte banks for the 4 bytes at ``addr``."""
    return [(addr + (k - addr[:2])[:2])[2:addr_width] for k in range(4)]


def _bank_word(bank_data, lsb):
    """The 4 bytes read from the banks, as the little-endian word at an address ``= lsb mod 4``."""
    return Array([Cat(*(bank_data[(s + j) % 4] for j in range(4))) for s in range(4)])[lsb]


class LZ4Compressor(wiring.Component):
    """LZ4 block compressor whose output is byte-identical to
    ``golden.camc.lz4_compress_block(block, hash_bits, max_offset)``.

    A block is one packet on ``i`` (ended by ``last``; ``first`` is ignored). The block is
    written to an on-chip buffer while the match finder follows ``MFLIMIT`` bytes behind the
    write pointer (the end-of-block rules only need ``n`` near the end, so matching overlaps
    reception). A packet longer than ``max_block_bytes`` is *split*: every ``max_block_bytes``
    bytes close a block of their own (compressed independently, ``split = 1`` in its status),
    and the rest of the packet starts the next block. An empty block cannot be sent on a byte
    stream, so every block has ``n >= 1``.

    Pipeline. Every block RAM output goes straight into a register (the ECP5 block RAM's
    clock-to-out takes more than half of a 10 ns cycle). The *candidate unit* issues every
    position ``q <= n - MFLIMIT`` in order, one per cycle, and never looks at the matcher's
    decisions: 4-byte word from four byte banks (raw bytes registered, then aligned) -> the
    word again, in a register that feeds only the multipliers -> three 16x16 partial
    products of the hash multiply, registered, and registered again (the DSP blocks sit in a
    few columns of the die, so the routes to and from them are paths of their own) -> their
    sum, the hash, registered -> hash table read and write of ``q`` in the same cycle, read
    before write -> candidate ``c(q)`` registered -> range check and candidate word read from
    the banks -> candidate bytes registered -> ``hit(q)`` (``c(q) < q``, ``q - c(q) <= W``,
    ``u32(c(q)) == u32(q)``) registered -> a 20-entry queue of ``(q, c(q), hit(q))``, whose
    free entries are counted as credits before a position is issued (fourteen stages in
    flight, and the queue's own; 20 credits keep one position per cycle).

    Why this is exact, however deep the pipeline: the specification writes
    ``table[hash(q)] = q`` for every ``q <= n - MFLIMIT`` exactly once and in increasing order,
    whether ``q`` is looked up or inserted inside a match, and reads before writing. So the
    table the specification reads at a looked-up position ``q`` is the table after the writes
    of all positions before ``q``, which is what the candidate unit reads at ``q``: ``c(q)``
    and ``hit(q)`` depend on the data alone, not on where matches were found. The *matcher*
    pops the positions in order and keeps only the lookups the specification makes: a
    position before ``match_end`` (the end of the current match, proven so far, or the
    anchor) lies inside a match and is dropped unseen (its table write has been made, as the
    specification's insertion); the first position at or after the anchor with ``hit`` starts
    a match, and its later positions wait until the extension has either proven them inside
    the match or ended it. No lookup is squashed or replayed, and nothing is ever flushed.

    The extension reads one byte pair per cycle from two read ports of the buffer, three
    cycles ahead of the registered compare, and discards the reads in flight when a compare
    fails; the matcher
    drops the inside positions while it extends. Each match registers a sequence ``(anchor,
    literal count, offset, match length)`` and queues it with its token
    (``sequence_depth`` entries); the sequence encoder takes it through a register and a skid
    buffer and writes token, length extensions, literals (read back from the buffer), offset
    and match-length extension, one byte per cycle, through two output registers. The buffer
    has two halves, so the encoder sends the literals of one block while the next block
    arrives and is searched.

    The hash table is never cleared, yet the output is the one the specification's per-block
    reset to 0 gives. Both tables see the same writes in the block, so they differ at
    ``hash(p)`` only if no position before ``p`` with that hash has been inserted in this
    block (the entry is stale, or power-up garbage). Then the specification's ``c = 0``
    fails verification (position 0 is always inserted first, so ``u32(0)`` hashes
    elsewhere, or ``p = 0`` and ``c < p`` fails), and so does any stale ``c``: either
    ``c >= p``, or ``c < p`` was inserted in this block with the hash of its ``u32(c)``,
    which is therefore not ``hash(p)``, so ``u32(c) != u32(p)``. No clearing cycles are
    spent between blocks or after reset; the tests check this against the golden model.

    Parameters
    ----------
    cfg : LZ4CompressorConfig

    Members
    -------
    i : In(stream.Signature({data: 8, first: 1, last: 1}))
        Raw bytes; ``last`` ends the block.
    o : Out(stream.Signature({data: 8, first: 1, last: 1}))
        The compressed block: ``first`` on its first byte, ``last`` on its final one.
    o_status : Out(stream.Signature(cfg.status_layout))
        One entry per block, after its last ``o`` byte: ``compressed_length`` (bytes sent on
        ``o``), ``raw_length`` (``n``) and ``split`` (the block was closed at
        ``max_block_bytes`` without ``last``).
        The controller compares the two lengths to choose raw storage. A block's last byte
        waits on ``o`` until the status of the block before has been taken.

    Latency
    -------
    Position ``q`` is issued once byte ``q + 11`` has arrived and reaches the matcher 16 cycles
    later, so an extension trails reception by about 22 bytes. The first ``o`` byte (the
    token) leaves about 6 cycles after the first sequence has been queued: about 25 cycles
    after ``last`` for a block without matches, about 32 for an all-zero block (one match up
    to the end). A new block is accepted 2 cycles after the match finder has queued the last
    sequence of the one before, if the encoder has finished the block before that (the
    buffer holds two blocks).

    Throughput
    ----------
    Up to one input byte per cycle: every position costs one cycle of the finder and every
    output byte one cycle of the encoder, which run concurrently (the encoder on the block
    before); a match adds about one cycle (the extension's read-ahead), a block about 15
    (the candidate pipeline drains before the next block starts). Measured without stalls on
    back-to-back 1 KiB blocks (``hash_bits=10``), in steady state (the cycles of 9 blocks
    minus those of 3): random 1.019, all-zero 1.026, Gaussian bf16 bit planes 1.059 cycles
    per input byte. ``sim.bench.camc_rtl.compressor_throughput`` counts them.

    Resources
    ---------
    Block RAM: the two-block buffer with three read ports (``3 x 2 x max_block_bytes``
    bytes), the four banks with two read ports (``2 x max_block_bytes`` bytes), the table
    (``2**hash_bits x log2(max_block_bytes)`` bits) and the sequence queue
    (``sequence_depth x ~(4 log2(max_block_bytes) + 35)`` bits). Three multipliers (the hash).
    The default preset on an LFE5U-85F: about 1870 LUTs, 1630 flip-flops, 26 block RAMs,
    3 MULT18X18D, above 100 MHz.
    """

    def __init__(self, cfg: LZ4CompressorConfig):
        self.cfg = cfg
        super().__init__({
            "i": In(stream.Signature(packet_layout(8))),
            "o": Out(stream.Signature(packet_layout(8))),
            "o_status": Out(stream.Signature(cfg.status_layout)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        size = cfg.max_block_bytes
        aw = cfg.addr_width
        pos_shape = range(size + 1)

        # ---- storage -------------------------------------------------------------------------
        # two halves: the encoder reads literals of one block while the next one arrives
        # Every copy is a block RAM with its own output register (PipelinedRAM): a read's data
        # is a register two cycles after its address, which is where the pipeline below
        # registered it anyway. One copy per read port, all written together.
        def ram(name, depth):
            block = PipelinedRAM(PipelinedRAMConfig(8, depth))
            m.submodules[name] = block
            return block

        ext_c_rd, ext_p_rd, lit_rd = (ram(name, 2 * size)
                                      for name in ("ext_c_buffer", "ext_p_buffer", "lit_buffer"))
        # a second copy in four byte banks serves 4-byte words at any address in one read
        walk_rd = [ram(f"walk_bank{k}", size // 4) for k in range(4)]
        verify_rd = [ram(f"verify_bank{k}", size // 4) for k in range(4)]
        for block in (ext_c_rd, ext_p_rd, *walk_rd, *verify_rd):
            m.d.comb += [block.r_en.eq(1), block.r_oe.eq(1)]
        m.submodules.table = table = PipelinedRAM(PipelinedRAMConfig(aw, 1 << cfg.hash_bits))

        seq_layout = data.StructLayout({
            "lit_start": aw + 1, "lit_len": pos_shape, "offset": 16, "match_len": pos_shape,
            "last": 1, "raw_length": pos_shape, "split": 1,
            # decided when queued, so the encoder reads them from registers
            "token": 8, "lit_run": 1, "no_literals": 1,
        })
        m.submodules.seq_fifo = seq_fifo = RAMQueue(RAMQueueConfig(
            Shape.cast(seq_layout).width, cfg.sequence_depth))
        # a sequence is registered (`staged`) before it is queued with its token
        seq_in = Signal(seq_layout)
        seq_push = Signal()
        seq_room = Signal()
        staged = Signal(seq_layout)
        staged_valid = Signal()
        m.d.comb += seq_room.eq(~staged_valid | seq_fifo.i.ready)
        with m.If(seq_push):
            m.d.sync += [staged.eq(seq_in), staged_valid.eq(1)]
        with m.Elif(seq_fifo.i.ready):
            m.d.sync += staged_valid.eq(0)
        seq_entry = Signal(seq_layout)
        match_code = Mux(staged.last, 0, Mux(staged.match_len >= MINMATCH + 15, 15,
                                             staged.match_len - MINMATCH))
        m.d.comb += [seq_entry.eq(staged),
                     seq_entry.token.eq(Cat(match_code[:4], Mux(staged.lit_len >= 15, 15,
                                                                staged.lit_len)[:4])),
                     seq_entry.lit_run.eq(staged.lit_len >= 15),
                     seq_entry.no_literals.eq(staged.lit_len == 0),
                     seq_fifo.i.payload.eq(seq_entry), seq_fifo.i.valid.eq(staged_valid)]
        # the queue's read data is the block RAM's output register; a skid buffer cuts the
        # encoder's `take` from the queue's read enables
        m.submodules.seq_skid = seq_skid = SkidBuffer(SkidBufferConfig(payload=seq_layout))
        m.d.comb += [seq_skid.i.valid.eq(seq_fifo.o.valid),
                     seq_skid.i.payload.eq(seq_fifo.o.payload),
                     seq_fifo.o.ready.eq(seq_skid.i.ready)]

        # ---- block control (front end: reception and match finder) ---------------------------
        in_block = Signal()
        restart = Signal()      # clears the per-block front-end state (last assignments win)
        half = Signal()         # buffer half the front end writes
        final_push = Signal()
        block_out = Signal()    # the last byte of a block leaves on `o`
        in_encoder = Signal(range(3))  # blocks whose last sequence is queued but not yet sent
        with m.If(final_push & ~block_out):
            m.d.sync += in_encoder.eq(in_encoder + 1)
        with m.Elif(~final_push & block_out):
            m.d.sync += in_encoder.eq(in_encoder - 1)

        with m.FSM(name="block"):
            with m.State("NEXT"):
                # the half about to be written must be free of the block before last
                with m.If(in_encoder <= 1):
                    m.d.comb += restart.eq(1)
                    m.d.sync += half.eq(~half)
                    m.next = "BLOCK"
            with m.State("BLOCK"):
                m.d.comb += in_block.eq(1)
                with m.If(final_push):
                    m.next = "NEXT"

        # ---- reception -----------------------------------------------------------------------
        rx_count = Signal(pos_shape)   # bytes received; n once rx_done
        rx_done = Signal()
        split = Signal()
        m.d.comb += self.i.ready.eq(in_block & ~rx_done)
        # a received byte is written to the eleven block RAM copies from registers, a cycle
        # later (the copies sit all over the die; the sender's `valid` reaches only these
        # registers). Every read of the copies trails the byte count by more than a cycle.
        wr_addr = Signal(aw + 1)
        wr_data = Signal(8)
        wr_buffer = Signal()
        wr_bank = Signal(4)
        m.d.sync += [wr_buffer.eq(0), wr_bank.eq(0)]
        for block in (ext_c_rd, ext_p_rd, lit_rd):
            m.d.comb += [block.w_addr.eq(wr_addr), block.w_data.eq(wr_data),
                         block.w_en.eq(wr_buffer)]
        for k in range(4):
            for block in (walk_rd[k], verify_rd[k]):
                m.d.comb += [block.w_addr.eq(wr_addr[2:aw]), block.w_data.eq(wr_data),
                             block.w_en.eq(wr_bank[k])]
        rx_take = self.i.valid & self.i.ready
        with m.If(rx_take):
            m.d.sync += [wr_addr.eq(Cat(rx_count[:aw], half)), wr_data.eq(self.i.payload.data),
                         wr_buffer.eq(1), wr_bank.eq(1 << rx_count[:2])]
            m.d.sync += rx_count.eq(rx_count + 1)
            with m.If(self.i.payload.last | (rx_count == size - 1)):
                m.d.sync += [rx_done.eq(1), split.eq(~self.i.payload.last)]

        # ---- match finder --------------------------------------------------------------------
        # The candidate unit issues every position q (q + MFLIMIT <= rx_count, so q <= n - MFLIMIT
        # whatever n turns out to be) in order, one per cycle, whatever the matcher decides:
        # every q does its table read and write, so c(q) and hit(q) are functions of the data
        # alone. The matcher pops (q, c(q), hit(q)) in order and ignores the positions inside a
        # match. Stages (registers): raw bank bytes, word, multiplier input, partial products
        # (twice), hash, table read/write, candidate, registered candidate and range check,
        # candidate bank bytes, candidate word, hit.
        next_pos = Signal(pos_shape)   # next position the candidate unit issues
        cand_layout = data.StructLayout({"pos": pos_shape, "cand": pos_shape, "hit": 1})
        m.submodules.cand_fifo = cand_fifo = fifo.SyncFIFOBuffered(
            width=Shape.cast(cand_layout).width, depth=CANDIDATE_DEPTH)
        credits = Signal(range(CANDIDATE_DEPTH + 1), init=CANDIDATE_DEPTH)  # free entries
        cand_pop = Signal()
        issue = Signal()
        # `issue` from registers only: `gap = rx_count - next_pos` with the flag `pos_ok`
        # (`gap >= MFLIMIT`), and `credits != 0`, each worked out for the next cycle from
        # compares of the current register against constants
        gap = Signal(pos_shape)
        pos_ok = Signal()
        credits_nz = Signal(init=1)
        m.d.comb += issue.eq(in_block & pos_ok & credits_nz)
        m.d.sync += credits.eq(credits - issue + cand_pop)
        gap_up, gap_down = rx_take & ~issue, issue & ~rx_take
        m.d.sync += [
            gap.eq(Mux(gap_up, gap + 1, Mux(gap_down, gap - 1, gap))),
            pos_ok.eq(Mux(gap_up, gap >= MFLIMIT - 1,
                          Mux(gap_down, gap >= MFLIMIT + 1, gap >= MFLIMIT))),
            credits_nz.eq(Mux(issue & ~cand_pop, credits != 1,
                              Mux(cand_pop & ~issue, 1, credits != 0))),
        ]
        with m.If(issue):
            m.d.sync += next_pos.eq(next_pos + 1)
        for port, addr in zip(walk_rd, _bank_addrs(next_pos, aw), strict=True):
            m.d.comb += port.r_addr.eq(addr)

        def stage(name, value, shape=None):
            reg = Signal(shape if shape is not None else value.shape(), name=name)
            m.d.sync += reg.eq(value)
            return reg

        v1, pos1 = stage("v1", issue), stage("pos1", next_pos)
        v2, pos2 = stage("v2", v1), stage("pos2", pos1)
        raw2 = Cat(*(port.r_data for port in walk_rd))           # the banks' output registers
        v3, pos3 = stage("v3", v2), stage("pos3", pos2)
        word3 = stage("word3", _bank_word([raw2[8 * k:8 * k + 8] for k in range(4)], pos2[:2]))
        # (u32 * K) mod 2**32 from three 16x16 products; only the top hash_bits are kept
        k_lo, k_hi = HASH_MULTIPLIER & 0xFFFF, HASH_MULTIPLIER >> 16
        # The multipliers (DSP blocks, in a few columns of the die) get a register stage on
        # each side with no other load, so the long routes to and from a DSP are each a
        # register-to-register path of their own: word3 -> mul4 -> DSP -> prod5 -> prod6
        v4, pos4, word4 = stage("v4", v3), stage("pos4", pos3), stage("word4", word3)
        mul4 = stage("mul4", word3)
        v5, pos5, word5 = stage("v5", v4), stage("pos5", pos4), stage("word5", word4)
        prod_ll5 = stage("prod_ll5", mul4[:16] * k_lo, 32)
        prod_lh5 = stage("prod_lh5", (mul4[:16] * k_hi)[:16], 16)
        prod_hl5 = stage("prod_hl5", (mul4[16:] * k_lo)[:16], 16)
        v6, pos6, word6 = stage("v6", v5), stage("pos6", pos5), stage("word6", word5)
        prod_ll6, prod_lh6, prod_hl6 = (stage("prod_ll6", prod_ll5), stage("prod_lh6", prod_lh5),
                                        stage("prod_hl6", prod_hl5))
        v7, pos7, word7 = stage("v7", v6), stage("pos7", pos6), stage("word7", word6)
        hash7 = stage("hash7", (prod_ll6[16:] + prod_lh6 + prod_hl6)[16 - cfg.hash_bits:16],
                      cfg.hash_bits)
        # Position q reads the table at its hash, then writes its own position there. The
        # write is made a cycle later, from stage 8, so it never meets a read in the block
        # RAM (a same-address read and write on DP16KD's two ports is undefined): when q+1
        # reads the hash q is writing, q's position is forwarded instead of the read data.
        v8, pos8, word8 = stage("v8", v7), stage("pos8", pos7), stage("word8", word7)
        hash8 = stage("hash8", hash7)
        m.d.comb += [table.r_addr.eq(hash7), table.r_en.eq(1), table.r_oe.eq(1),
                     table.w_addr.eq(hash8), table.w_data.eq(pos8), table.w_en.eq(v8)]
        forward8 = stage("forward8", v8 & (hash7 == hash8))
        v9, pos9, word9 = stage("v9", v8), stage("pos9", pos8), stage("word9", word8)
        forward9 = stage("forward9", forward8)
        pos10 = Signal(pos_shape, name="pos10")
        cand9 = Signal(pos_shape, name="cand9")
        m.d.comb += cand9.eq(Mux(forward9, pos10[:aw], table.r_data))
        m.d.sync += pos10.eq(pos9)
        # the candidate (from the table's output register, maybe far away) is registered
        # before it addresses the verify banks
        v10, word10, cand10 = stage("v10", v9), stage("word10", word9), stage("cand10", cand9)
        in_range10 = stage("in_range10", (cand9 < pos9) & (pos9 - cand9 <= cfg.max_offset))
        for port, addr in zip(verify_rd, _bank_addrs(cand10, aw), strict=True):
            m.d.comb += port.r_addr.eq(addr)
        v11, pos11, word11, cand11 = (stage("v11", v10), stage("pos11", pos10),
                                      stage("word11", word10), stage("cand11", cand10))
        in_range11 = stage("in_range11", in_range10)
        v12, pos12, cand12 = stage("v12", v11), stage("pos12", pos11), stage("cand12", cand11)
        word12, in_range12 = stage("word12", word11), stage("in_range12", in_range11)
        raw12 = Cat(*(port.r_data for port in verify_rd))       # the banks' output registers
        # the candidate's word is aligned into a register before the compare (the banks may
        # sit far from this logic)
        cand_word13 = stage("cand_word13",
                            _bank_word([raw12[8 * k:8 * k + 8] for k in range(4)], cand12[:2]))
        v13, pos13, cand13 = stage("v13", v12), stage("pos13", pos12), stage("cand13", cand12)
        word13, in_range13 = stage("word13", word12), stage("in_range13", in_range12)
        v14, pos14, cand14 = stage("v14", v13), stage("pos14", pos13), stage("cand14", cand13)
        hit14 = stage("hit14", in_range13 & (cand_word13 == word13))
        cand_in = Signal(cand_layout)
        m.d.comb += [cand_in.pos.eq(pos14), cand_in.cand.eq(cand14), cand_in.hit.eq(hit14),
                     cand_fifo.w_data.eq(cand_in), cand_fifo.w_en.eq(v14)]

        # matcher: WALK pops candidates (a hit at or after the anchor starts a match), EXTEND
        # compares one byte per cycle (reads issued ahead, three cycles before their verdict),
        # PUSH queues the sequence. Positions before `match_end` (the proven end, final once
        # in PUSH) are popped without a look at their hit: they lie inside the match.
        head = Signal(cand_layout)
        m.d.comb += head.eq(cand_fifo.r_data)
        match_pos = Signal(pos_shape)
        match_cand = Signal(pos_shape)
        match_end = Signal(pos_shape)  # match_pos + proven length; equals `anchor` in WALK
        anchor = Signal(pos_shape)
        ext_p_addr = Signal(pos_shape)  # position of the next byte the extension reads
        ext_c_addr = Signal(pos_shape)
        ext_p_end = Signal(pos_shape)   # ext_p_addr + LASTLITERALS, kept beside it
        x1 = Signal()                   # a read is in the buffer
        x2 = Signal()                   # its bytes are in p_byte, c_byte
        x3 = Signal()                   # their comparison is in `same`
        p_byte, c_byte = Signal(8), Signal(8)
        same = Signal()
        inside = Signal()
        walking = Signal()
        m.d.comb += inside.eq(head.pos < match_end)
        m.d.comb += [ext_c_rd.r_addr.eq(Cat(ext_c_addr[:aw], half)),
                     ext_p_rd.r_addr.eq(Cat(ext_p_addr[:aw], half)),
                     p_byte.eq(ext_p_rd.r_data), c_byte.eq(ext_c_rd.r_data)]
        # the bytes come from the block RAMs' output registers, which may sit far away: they
        # are compared into a register before the matcher decides on the result
        m.d.sync += same.eq(c_byte == p_byte)
        m.d.comb += cand_pop.eq(cand_fifo.r_rdy & (inside | walking))
        m.d.comb += cand_fifo.r_en.eq(cand_pop)
        with m.FSM(name="matcher"):
            with m.State("WALK"):
                m.d.comb += walking.eq(1)
                with m.If(cand_fifo.r_rdy & ~inside & head.hit):
                    m.d.sync += [match_pos.eq(head.pos), match_cand.eq(head.cand),
                                 match_end.eq(head.pos + MINMATCH),
                                 ext_p_addr.eq(head.pos + MINMATCH),
                                 ext_p_end.eq(head.pos + MINMATCH + LASTLITERALS),
                                 ext_c_addr.eq(head.cand + MINMATCH)]
                    m.next = "EXTEND"
            with m.State("EXTEND"):
                # the byte at ext_p_addr is compared once it is known to lie before
                # n - LASTLITERALS; none is compared once rx_done says it does not
                # (from a register, not an adder: the compare drives the address enables)
                room = ext_p_end < rx_count
                stop = (x3 & ~same) | (~room & rx_done & ~x1 & ~x2 & ~x3)
                with m.If(room):
                    m.d.sync += [ext_p_addr.eq(ext_p_addr + 1), ext_c_addr.eq(ext_c_addr + 1),
                                 ext_p_end.eq(ext_p_end + 1)]
                m.d.sync += [x1.eq(room & ~stop), x2.eq(x1 & ~stop), x3.eq(x2 & ~stop)]
                with m.If(x3 & same):
                    m.d.sync += match_end.eq(match_end + 1)
                with m.If(stop):
                    m.next = "PUSH"
            with m.State("PUSH"):
                with m.If(seq_room):
                    m.d.comb += [seq_in.lit_start.eq(Cat(anchor[:aw], half)),
                                 seq_in.lit_len.eq(match_pos - anchor),
                                 seq_in.offset.eq(match_pos - match_cand),
                                 seq_in.match_len.eq(match_end - match_pos),
                                 seq_push.eq(1)]
                    m.d.sync += anchor.eq(match_end)
                    m.next = "WALK"

        # the last sequence: literals from the anchor to the end, once every position has
        # been issued and popped
        # (`issued_all` is a cycle late: it only rises once rx_done, and then stays high)
        issued_all = Signal()
        m.d.sync += issued_all.eq(rx_done & ~pos_ok)
        with m.If(in_block & issued_all & walking & (credits == CANDIDATE_DEPTH) & seq_room):
            m.d.comb += [seq_in.lit_start.eq(Cat(anchor[:aw], half)),
                         seq_in.lit_len.eq(rx_count - anchor), seq_in.last.eq(1),
                         seq_in.raw_length.eq(rx_count), seq_in.split.eq(split),
                         seq_push.eq(1), final_push.eq(1)]

        # ---- sequence encoder ----------------------------------------------------------------
        # the generator offers one byte per cycle (a constant, or a literal address); the
        # output register holds it while `o` stalls, and the literal read port with it
        seq_head = seq_skid.o.payload
        seq = Signal(seq_layout)
        run_left = Signal(pos_shape)  # length-extension bytes still to code (minus 15 or 19)
        lit_left = Signal(pos_shape)
        lit_one = Signal()            # lit_left == 1, registered: it decides `o.last`
        lit_addr = Signal(aw + 1)

        item_valid = Signal()
        item_literal = Signal()
        item_byte = Signal(8)
        item_last = Signal()
        out_valid = Signal()
        out_literal = Signal()
        out_byte = Signal(8)
        out_first = Signal()
        out_last = Signal()
        # a second register takes the literal from block RAM: `o` is driven from flip-flops
        o_valid, o_byte, o_first, o_last = Signal(), Signal(8), Signal(), Signal()
        o_literal = Signal()
        o_literal_byte = lit_rd.r_data          # the literal buffer's output register
        first_pending = Signal(init=1)
        status_valid = Signal()
        status = Signal(cfg.status_layout)
        m.d.comb += [self.o_status.valid.eq(status_valid), self.o_status.payload.eq(status)]
        with m.If(self.o_status.valid & self.o_status.ready):
            m.d.sync += status_valid.eq(0)
        out_count = Signal(range(cfg.max_compressed_bytes + 1))

        advance = Signal()
        in_token = Signal()
        take = Signal()
        # a block's last byte waits until the status of the block before has been taken
        offer = Signal()
        m.d.comb += offer.eq(item_valid & ~(item_last & (status_valid | (out_valid & out_last)
                                                         | (o_valid & o_last))))
        m.d.comb += [advance.eq(~o_valid | self.o.ready), take.eq(offer & advance),
                     lit_rd.r_addr.eq(lit_addr), lit_rd.r_en.eq(advance),
                     lit_rd.r_oe.eq(advance)]
        run_byte = Mux(run_left >= 255, 255, run_left)

        def after_literals(last):
            with m.If(last):
                m.next = "TOKEN"
            with m.Else():
                m.next = "OFFSET_LOW"

        with m.FSM(name="encoder"):
            with m.State("TOKEN"):
                head = seq_head
                m.d.comb += in_token.eq(1)
                m.d.comb += [item_valid.eq(seq_skid.o.valid), item_byte.eq(head.token),
                             item_last.eq(head.last & head.no_literals)]
                with m.If(take):
                    m.d.comb += seq_skid.o.ready.eq(1)
                    m.d.sync += [seq.eq(head), run_left.eq(head.lit_len - 15),
                                 lit_left.eq(head.lit_len), lit_one.eq(head.lit_len == 1),
                                 lit_addr.eq(head.lit_start)]
                    with m.If(head.lit_run):
                        m.next = "LITERAL_RUN"
                    with m.Elif(~head.no_literals):
                        m.next = "LITERALS"
                    with m.Else():
                        after_literals(head.last)
            with m.State("LITERAL_RUN"):
                m.d.comb += [item_valid.eq(1), item_byte.eq(run_byte)]
                with m.If(take):
                    m.d.sync += run_left.eq(run_left - 255)
                    with m.If(run_left < 255):
                        m.next = "LITERALS"
            with m.State("LITERALS"):
                m.d.comb += [item_valid.eq(1), item_literal.eq(1),
                             item_last.eq(seq.last & lit_one)]
                with m.If(take):
                    m.d.sync += [lit_addr.eq(lit_addr + 1), lit_left.eq(lit_left - 1),
                                 lit_one.eq(lit_left == 2)]
                    with m.If(lit_one):
                        after_literals(seq.last)
            with m.State("OFFSET_LOW"):
                m.d.comb += [item_valid.eq(1), item_byte.eq(seq.offset[:8])]
                with m.If(take):
                    m.next = "OFFSET_HIGH"
            with m.State("OFFSET_HIGH"):
                m.d.comb += [item_valid.eq(1), item_byte.eq(seq.offset[8:])]
                with m.If(take):
                    m.d.sync += run_left.eq(seq.match_len - (MINMATCH + 15))
                    with m.If(seq.match_len >= MINMATCH + 15):
                        m.next = "MATCH_RUN"
                    with m.Else():
                        m.next = "TOKEN"
            with m.State("MATCH_RUN"):
                m.d.comb += [item_valid.eq(1), item_byte.eq(run_byte)]
                with m.If(take):
                    m.d.sync += run_left.eq(run_left - 255)
                    with m.If(run_left < 255):
                        m.next = "TOKEN"

        with m.If(advance):
            m.d.sync += [out_valid.eq(offer), out_literal.eq(item_literal),
                         out_byte.eq(item_byte), out_last.eq(item_last),
                         out_first.eq(first_pending),
                         o_valid.eq(out_valid), o_byte.eq(out_byte), o_literal.eq(out_literal),
                         o_first.eq(out_first),
                         o_last.eq(out_last)]
        with m.If(take):
            m.d.sync += first_pending.eq(item_last)
        # the block's lengths, kept from its last item on (`seq` moves on to the next block)
        last_raw_length = Signal(pos_shape)
        last_split = Signal()
        with m.If(take & item_last):
            m.d.sync += [last_raw_length.eq(Mux(in_token, seq_head.raw_length, seq.raw_length)),
                         last_split.eq(Mux(in_token, seq_head.split, seq.split))]
        m.d.comb += [self.o.valid.eq(o_valid),
                     self.o.payload.data.eq(Mux(o_literal, o_literal_byte, o_byte)),
                     self.o.payload.first.eq(o_first), self.o.payload.last.eq(o_last)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += out_count.eq(out_count + 1)
            with m.If(o_last):
                m.d.comb += block_out.eq(1)
                m.d.sync += [status_valid.eq(1), status.compressed_length.eq(out_count + 1),
                             status.raw_length.eq(last_raw_length), status.split.eq(last_split),
                             out_count.eq(0)]

        with m.If(restart):
            m.d.sync += [
                rx_count.eq(0), rx_done.eq(0), split.eq(0), next_pos.eq(0), anchor.eq(0),
                match_end.eq(0), issued_all.eq(0), gap.eq(0), pos_ok.eq(0),
            ]
        return m
