"""LZ4 block compressor, byte-identical to :func:`golden.camc.lz4_compress_block`.

The algorithm (hash of 4 bytes, one table write per position, greedy forward matching,
``MINMATCH``/``LASTLITERALS``/``MFLIMIT``, ``max_offset``) is specified in the docstring of
:mod:`golden.camc.lz4`; this module is a pipelined implementation of exactly that.
"""

from dataclasses import dataclass

from amaranth.hdl import Array, Cat, Module, Mux, Shape, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..common.validate import check_int, check_power_of_two, packet_layout

__all__ = ["LZ4CompressorConfig", "LZ4Compressor", "PRESETS", "measure_throughput"]

# the constants of golden.camc.lz4 (kept here so the gateware does not import the golden model)
MINMATCH = 4
LASTLITERALS = 5
MFLIMIT = 12
HASH_MULTIPLIER = 2654435761


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

    Pipeline: the match finder issues one position per cycle (4-byte word from four byte banks
    -> multiplicative hash, registered -> hash table read and write in the same cycle, read
    before write -> candidate word read -> compare). At most three positions are in flight
    behind the one being decided, all inside the minimum match, so on a match they are exactly
    the insertions the algorithm makes; the extension then compares one byte per cycle while
    the position walker keeps inserting the positions it has proven to lie inside the match.
    Each match pushes a sequence ``(anchor, literal count, offset, match length)`` into a
    queue (``sequence_depth`` entries); the sequence encoder pops it and writes token, length
    extensions, literals (read back from the buffer), offset and match-length extension, one
    byte per cycle. The buffer has two halves, so the encoder sends the literals of one block
    while the next block arrives and is searched.

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
        the controller compares the two lengths to choose raw storage. A block's last byte
        waits on ``o`` until the status of the block before has been taken.

    Latency
    -------
    The first ``o`` byte (the token) leaves once the first match has been extended, or for a
    block without matches, a few cycles after ``last``; about 20 cycles after ``last`` for
    incompressible data. A new block is accepted 2 cycles after the match finder has
    queued the last sequence of the one before, if the encoder has finished the block
    before that (the buffer holds two blocks).

    Throughput
    ----------
    Up to one input byte per cycle: every position costs one cycle of the finder and every
    output byte one cycle of the encoder, which run concurrently (the encoder on the block
    before); a match adds about five cycles (pipeline refill). Measured without stalls on
    back-to-back 1 KiB blocks (``hash_bits=10``), in steady state: random 1.01, all-zero 1.01,
    Gaussian bf16 bit planes 1.04 cycles per input byte. ``measure_throughput`` counts them.

    Resources
    ---------
    Block RAM: the two-block buffer with three read ports (``3 x 2 x max_block_bytes``
    bytes), the four banks with two read ports (``2 x max_block_bytes`` bytes), the table
    (``2**hash_bits x log2(max_block_bytes)`` bits) and the sequence queue
    (``sequence_depth x ~(4 log2(max_block_bytes) + 24)`` bits).
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
        m.submodules.buffer = buffer = Memory(shape=8, depth=2 * size, init=[])
        buf_wr = buffer.write_port()
        ext_c_rd = buffer.read_port()
        ext_p_rd = buffer.read_port()
        lit_rd = buffer.read_port()
        # a second copy in four byte banks serves 4-byte words at any address in one read
        banks_wr, walk_rd, verify_rd = [], [], []
        for k in range(4):
            bank = Memory(shape=8, depth=size // 4, init=[])
            m.submodules[f"bank{k}"] = bank
            banks_wr.append(bank.write_port())
            walk_rd.append(bank.read_port())
            verify_rd.append(bank.read_port())
        m.submodules.table = table = Memory(shape=aw, depth=1 << cfg.hash_bits,
                                            init=[])
        table_wr = table.write_port()
        table_rd = table.read_port()  # not transparent: read before write

        seq_layout = data.StructLayout({
            "lit_start": aw + 1, "lit_len": pos_shape, "offset": 16, "match_len": pos_shape,
            "last": 1, "raw_length": pos_shape, "split": 1,
        })
        m.submodules.seq_fifo = seq_fifo = fifo.SyncFIFOBuffered(
            width=Shape.cast(seq_layout).width, depth=cfg.sequence_depth)
        seq_in = Signal(seq_layout)
        m.d.comb += seq_fifo.w_data.eq(seq_in)

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
        with m.If(self.i.valid & self.i.ready):
            m.d.comb += [buf_wr.addr.eq(Cat(rx_count[:aw], half)),
                         buf_wr.data.eq(self.i.payload.data), buf_wr.en.eq(1)]
            for k in range(4):
                m.d.comb += [banks_wr[k].addr.eq(rx_count[2:aw]),
                             banks_wr[k].data.eq(self.i.payload.data),
                             banks_wr[k].en.eq(rx_count[:2] == k)]
            m.d.sync += rx_count.eq(rx_count + 1)
            with m.If(self.i.payload.last | (rx_count == size - 1)):
                m.d.sync += [rx_done.eq(1), split.eq(~self.i.payload.last)]

        # ---- match finder --------------------------------------------------------------------
        # positions q with q + MFLIMIT <= rx_count are <= n - MFLIMIT whatever n turns out to be
        next_pos = Signal(pos_shape)   # next position the walker issues
        in_match = Signal()            # walker inserts (inside a match) instead of looking up
        extending = Signal()
        match_pos = Signal(pos_shape)
        match_cand = Signal(pos_shape)
        match_len = Signal(pos_shape)  # proven length so far; final once `extending` drops
        anchor = Signal(pos_shape)
        match_end = match_pos + match_len

        # stage 1: word at q from the banks; stage 2: hash -> table; stage 3: candidate ->
        # banks; stage 4: compare. `lookup` marks positions whose candidate is to be checked.
        valid1, lookup1, pos1 = Signal(), Signal(), Signal(pos_shape)
        valid2, lookup2, pos2 = Signal(), Signal(), Signal(pos_shape)
        word2, hash2 = Signal(32), Signal(cfg.hash_bits)
        lookup3, pos3, word3 = Signal(), Signal(pos_shape), Signal(32)
        lookup4, pos4, word4, cand4 = Signal(), Signal(pos_shape), Signal(32), Signal(pos_shape)

        found = Signal()
        cand_word = _bank_word([port.data for port in verify_rd], cand4[:2])
        m.d.comb += found.eq(lookup4 & (cand4 < pos4) & (pos4 - cand4 <= cfg.max_offset)
                             & (cand_word == word4))

        issue = Signal()
        m.d.comb += issue.eq(in_block & (next_pos + MFLIMIT <= rx_count)
                             & (~in_match | (next_pos < match_end)) & ~found)
        for port, addr in zip(walk_rd, _bank_addrs(next_pos, aw), strict=True):
            m.d.comb += port.addr.eq(addr)
        with m.If(issue):
            m.d.sync += next_pos.eq(next_pos + 1)
        m.d.sync += [valid1.eq(issue), lookup1.eq(issue & ~in_match), pos1.eq(next_pos)]

        word1 = _bank_word([port.data for port in walk_rd], pos1[:2])
        m.d.sync += [valid2.eq(valid1), lookup2.eq(lookup1 & ~found), pos2.eq(pos1),
                     word2.eq(word1),
                     hash2.eq((word1 * HASH_MULTIPLIER)[32 - cfg.hash_bits:32])]

        m.d.comb += table_rd.addr.eq(hash2)
        with m.If(in_block):
            m.d.comb += [table_wr.addr.eq(hash2), table_wr.data.eq(pos2),
                         table_wr.en.eq(valid2)]
        m.d.sync += [lookup3.eq(lookup2 & ~found), pos3.eq(pos2), word3.eq(word2)]

        cand3 = Signal(pos_shape)
        m.d.comb += cand3.eq(table_rd.data)
        for port, addr in zip(verify_rd, _bank_addrs(cand3, aw), strict=True):
            m.d.comb += port.addr.eq(addr)
        m.d.sync += [lookup4.eq(lookup3 & ~found), pos4.eq(pos3), word4.eq(word3),
                     cand4.eq(cand3)]

        # extension: one byte per cycle; the byte at offset match_len is compared once it is
        # known to lie before n - LASTLITERALS
        room = Signal()
        same = Signal()
        grow = Signal()
        ext_stop = Signal()
        ext_done = Signal()
        m.d.comb += [
            room.eq(match_end + LASTLITERALS < rx_count),
            same.eq(ext_c_rd.data == ext_p_rd.data),
            grow.eq(extending & room & same),
            ext_stop.eq(extending & Mux(room, ~same, rx_done)),
            ext_done.eq(ext_stop & seq_fifo.w_rdy),
        ]
        with m.If(extending):
            m.d.comb += [ext_c_rd.addr.eq(Cat((match_cand + match_len + grow)[:aw], half)),
                         ext_p_rd.addr.eq(Cat((match_pos + match_len + grow)[:aw], half))]
        with m.Else():
            m.d.comb += [ext_c_rd.addr.eq(Cat((cand4 + MINMATCH)[:aw], half)),
                         ext_p_rd.addr.eq(Cat((pos4 + MINMATCH)[:aw], half))]
        with m.If(grow):
            m.d.sync += match_len.eq(match_len + 1)
        with m.If(found):
            m.d.sync += [in_match.eq(1), extending.eq(1), match_pos.eq(pos4),
                         match_cand.eq(cand4), match_len.eq(MINMATCH)]
        with m.If(ext_done):
            m.d.sync += [extending.eq(0), anchor.eq(match_end)]
            m.d.comb += [seq_in.lit_start.eq(Cat(anchor[:aw], half)),
                         seq_in.lit_len.eq(match_pos - anchor),
                         seq_in.offset.eq(match_pos - match_cand),
                         seq_in.match_len.eq(match_len), seq_fifo.w_en.eq(1)]
        # back to lookups at the match end once every inside position has been inserted
        with m.If(in_match & (~extending | ext_done)
                  & ((next_pos == match_end) | (rx_done & (next_pos + MFLIMIT > rx_count)))):
            m.d.sync += [in_match.eq(0), next_pos.eq(match_end)]

        # the last sequence: literals from the anchor to the end, once no lookup is pending
        with m.If(in_block & rx_done & ~in_match
                  & (next_pos + MFLIMIT > rx_count)
                  & ~(lookup1 | lookup2 | lookup3 | lookup4) & seq_fifo.w_rdy):
            m.d.comb += [seq_in.lit_start.eq(Cat(anchor[:aw], half)),
                         seq_in.lit_len.eq(rx_count - anchor), seq_in.last.eq(1),
                         seq_in.raw_length.eq(rx_count), seq_in.split.eq(split),
                         seq_fifo.w_en.eq(1), final_push.eq(1)]

        # ---- sequence encoder ----------------------------------------------------------------
        # the generator offers one byte per cycle (a constant, or a literal address); the
        # output register holds it while `o` stalls, and the literal read port with it
        seq_head = Signal(seq_layout)
        m.d.comb += seq_head.eq(seq_fifo.r_data)
        seq = Signal(seq_layout)
        run_left = Signal(pos_shape)  # length-extension bytes still to code (minus 15 or 19)
        lit_left = Signal(pos_shape)
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
        first_pending = Signal(init=1)
        status_valid = Signal()
        status = Signal(cfg.status_layout)
        m.d.comb += [self.o_status.valid.eq(status_valid), self.o_status.payload.eq(status)]
        with m.If(self.o_status.valid & self.o_status.ready):
            m.d.sync += status_valid.eq(0)
        out_count = Signal(range(cfg.max_compressed_bytes + 1))

        advance = Signal()
        take = Signal()
        # a block's last byte waits until the status of the block before has been taken
        offer = Signal()
        m.d.comb += offer.eq(item_valid & ~(item_last & (status_valid | (out_valid & out_last))))
        m.d.comb += [advance.eq(~out_valid | self.o.ready), take.eq(offer & advance),
                     lit_rd.addr.eq(lit_addr), lit_rd.en.eq(advance)]
        run_byte = Mux(run_left >= 255, 255, run_left)

        def after_literals(last):
            with m.If(last):
                m.next = "TOKEN"
            with m.Else():
                m.next = "OFFSET_LOW"

        with m.FSM(name="encoder"):
            with m.State("TOKEN"):
                head = seq_head
                match_code = Mux(head.last, 0, Mux(head.match_len >= MINMATCH + 15, 15,
                                                   head.match_len - MINMATCH))
                m.d.comb += [item_valid.eq(seq_fifo.r_rdy),
                             item_byte.eq(Cat(match_code[:4],
                                              Mux(head.lit_len >= 15, 15, head.lit_len)[:4])),
                             item_last.eq(head.last & (head.lit_len == 0))]
                with m.If(take):
                    m.d.comb += seq_fifo.r_en.eq(1)
                    m.d.sync += [seq.eq(head), run_left.eq(head.lit_len - 15),
                                 lit_left.eq(head.lit_len), lit_addr.eq(head.lit_start)]
                    with m.If(head.lit_len >= 15):
                        m.next = "LITERAL_RUN"
                    with m.Elif(head.lit_len != 0):
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
                             item_last.eq(seq.last & (lit_left == 1))]
                with m.If(take):
                    m.d.sync += [lit_addr.eq(lit_addr + 1), lit_left.eq(lit_left - 1)]
                    with m.If(lit_left == 1):
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
                         out_first.eq(first_pending)]
        with m.If(take):
            m.d.sync += first_pending.eq(item_last)
        m.d.comb += [self.o.valid.eq(out_valid),
                     self.o.payload.data.eq(Mux(out_literal, lit_rd.data, out_byte)),
                     self.o.payload.first.eq(out_first), self.o.payload.last.eq(out_last)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += out_count.eq(out_count + 1)
            with m.If(out_last):
                m.d.comb += block_out.eq(1)
                m.d.sync += [status_valid.eq(1), status.compressed_length.eq(out_count + 1),
                             status.raw_length.eq(seq.raw_length), status.split.eq(seq.split),
                             out_count.eq(0)]

        with m.If(restart):
            m.d.sync += [
                rx_count.eq(0), rx_done.eq(0), split.eq(0), next_pos.eq(0), in_match.eq(0),
                extending.eq(0), anchor.eq(0), valid1.eq(0), lookup1.eq(0),
            ]
        return m


def measure_throughput(cfg: LZ4CompressorConfig, blocks, *, stalls=("none", "none"),
                       status_stalls: str | None = None, seed: int = 0) -> dict:
    """Compress ``blocks`` (a list of non-empty ``bytes``, one packet each) back to back in
    ``amaranth.sim`` under the named ``stalls`` (input, output; see :mod:`sim.stalls`) and count
    cycles (``status_stalls`` names the back-pressure on ``o_status``, by default the one on
    ``o``). A packet longer than ``cfg.max_block_bytes`` comes out as several blocks.

    Returns ``{"input_bytes", "output_bytes", "cycles", "cycles_per_input_byte",
    "input_bytes_per_cycle", "outputs", "statuses", "left_over"}``: cycles run from the first
    accepted input byte to the last status entry;
    ``outputs`` are the compressed blocks and ``statuses`` the ``o_status`` entries, in order;
    ``left_over`` is true if ``o`` or ``o_status`` offered anything in the 32 cycles after.
    The stream helpers check that ``o`` and ``o_status`` keep the stream contract.
    """
    from sim.stalls import stall_pattern
    from sim.stream import simulate, stream_get, stream_put

    dut = LZ4Compressor(cfg)
    sent = [{"data": b, "first": int(k == 0), "last": int(k == len(block) - 1)}
            for block in blocks for k, b in enumerate(block)]
    outputs, statuses, times = [], [], {}
    counter = {"cycle": 0}
    expected = sum(-(-len(block) // cfg.max_block_bytes) for block in blocks)
    timeout = 50 * (cfg.max_block_bytes + (1 << cfg.hash_bits)) + 1000

    async def clock(ctx):
        while True:
            _, _, valid, ready = await ctx.tick().sample(dut.i.valid, dut.i.ready)
            counter["cycle"] += 1
            if "start" not in times and valid and ready:
                times["start"] = counter["cycle"]

    async def source(ctx):
        await stream_put(ctx, dut.i, sent, stall=stall_pattern(stalls[0], seed))

    async def sink(ctx):
        backpressure = stall_pattern(stalls[1], seed + 100)
        for _ in range(expected):
            payload = []
            while not payload or not payload[-1]["last"]:
                payload += await stream_get(ctx, dut.o, 1, backpressure=backpressure,
                                            timeout=timeout)
            outputs.append(bytes(p["data"] for p in payload))
        times["o_end"] = counter["cycle"]

    async def status_sink(ctx):
        # its own back-pressure: a block's last byte must wait for the status before it
        backpressure = stall_pattern(status_stalls or stalls[1], seed + 200)
        statuses.extend(await stream_get(ctx, dut.o_status, expected, backpressure=backpressure,
                                         timeout=timeout * expected))
        while "o_end" not in times:
            await ctx.tick()
        times["end"] = counter["cycle"]
        for _ in range(32):
            _, _, valid, status_valid = await ctx.tick().sample(dut.o.valid, dut.o_status.valid)
            times["left_over"] = times.get("left_over", False) or bool(valid or status_valid)

    simulate(dut, source, sink, status_sink, background=[clock])
    cycles = times["end"] - times["start"] + 1
    n_in = sum(map(len, blocks))
    return {"input_bytes": n_in, "output_bytes": sum(map(len, outputs)), "cycles": cycles,
            "cycles_per_input_byte": cycles / max(n_in, 1),
            "input_bytes_per_cycle": n_in / cycles, "outputs": outputs, "statuses": statuses,
            "left_over": times["left_over"]}
