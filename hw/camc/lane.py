"""One lane of the ``camc`` controller: a write path and a read path that run independently.

Write path: values -> framer (exactly ``block_values`` per block) -> :class:`BitplaneSplit`
-> bytes -> :class:`LZ4Compressor` (one LZ4 block per plane group) and, beside it, the raw
group bytes; a group that does not shrink is stored raw. A writer then reads each group's
stored bytes from the raw or the compressed buffer into whole memory words, queued until the
controller grants the memory port.

Read path: memory words of a fetched prefix of groups -> bytes -> per group either the
:class:`LZ4Decompressor` or straight through -> :class:`PlaneAssembler` (exactly the group's
raw size, zero-padded after a bad group) -> :class:`BitplaneMerge` -> mantissa mask -> values.

The controller (:mod:`.controller`) owns the block map and the memory port; see its docstring
for the ports, latency and throughput of the whole.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..common.bram import PipelinedRAM, PipelinedRAMConfig, RAMQueue, RAMQueueConfig
from ..common.skid_buffer import SkidBuffer, SkidBufferConfig
from ..common.width_converter import (
    WidthConverterConfig,
    WidthDownConverter,
    WidthUpConverter,
)
from .bitplane import BitplaneMerge, BitplaneSplit
from .countdown import Countdown
from .lz4_compressor import LZ4Compressor
from .lz4_decompressor import LZ4Decompressor

__all__ = ["PlaneAssembler", "CAMCLane"]


class PlaneAssembler(wiring.Component):
    """Byte chunks of a block's groups in, plane words of exactly the right length out.

    For each fetched group ``g`` the assembler takes bytes from one source: ``i_raw`` (a raw
    group: up to ``in_bytes`` bytes per beat, exactly its raw size in all), ``i_lz4`` (the
    decompressor's output packet for a compressed group) or none (an unmapped block: zero
    bytes). It passes exactly
    ``raw_bytes[g]`` bytes on: a decompressed packet that ends early is padded with zero
    bytes, bytes past the raw size are dropped up to the packet's ``last``, and either case,
    or an error on ``i_lz4_status``, sets the block's error flag. So a corrupt group can
    neither shift later groups nor write past the block.

    Parameters
    ----------
    group_raw_bytes : tuple of int
        Raw bytes of each group (multiples of ``out_bytes``).
    in_bytes : int
        Lanes of ``i_lz4`` beats.
    out_bytes : int
        Bytes per output word.
    job_layout : data.StructLayout
        Layout of ``i_job``; the assembler uses its ``raw``, ``fetched`` and ``unmapped``
        fields.

    Members
    -------
    i_job : In(stream.Signature(job_layout))
        One per block; taken after the block's last word.
    i_raw : In(stream.Signature({data: 8*in_bytes, count, last}))
    i_lz4 : In(stream.Signature({data: 8*in_bytes, count, first, last}))
    i_lz4_status : In(stream.Signature({error, ...}))
        One entry per compressed group.
    o : Out(stream.Signature(out_bytes * 8))
        Plane words.
    o_done : Out(stream.Signature({error}))
        One per block, after its last word.
    """

    def __init__(self, group_raw_bytes, in_bytes, out_bytes, job_layout, lz4_layout,
                 status_layout):
        self.group_raw_bytes = tuple(group_raw_bytes)
        self.in_bytes = in_bytes
        self.out_bytes = out_bytes
        super().__init__({
            "i_job": In(stream.Signature(job_layout)),
            "i_raw": In(stream.Signature(data.StructLayout({
                "data": 8 * in_bytes, "count": range(in_bytes + 1), "last": 1}))),
            "i_lz4": In(stream.Signature(lz4_layout)),
            "i_lz4_status": In(stream.Signature(status_layout)),
            "o": Out(stream.Signature(out_bytes * 8)),
            "o_done": Out(stream.Signature(data.StructLayout({"error": 1}))),
        })

    def elaborate(self, platform):
        m = Module()
        n, b = self.in_bytes, self.out_bytes
        groups = len(self.group_raw_bytes)
        # room for two output words besides a chunk: a chunk goes in while `level <= 2b`,
        # decided from registers only (not from `o.ready`), and full chunks still go in every
        # cycle while words go out
        cap = n + 2 * b
        job = self.i_job.payload
        raw_sizes = Array(Const(x, range(max(self.group_raw_bytes) + 1))
                          for x in self.group_raw_bytes)

        buf = Signal(8 * cap)
        level = Signal(range(cap + 1))
        group = Signal(range(groups + 1))
        error = Signal()
        started = Signal()          # `rest` loaded for `group`
        mode = Signal(2)            # 0 take from the source, 1 pad with zeros, 2 drain, 3 status

        is_raw = Signal()           # registered at the start of each group
        all_sent = self.i_job.valid & (group == job.fetched)
        # how many bytes of the group are still to come (`rest.small`, `rest.fits` registered)
        rest = Countdown(m, "rest", max(self.group_raw_bytes), n)
        rem_small, rem_fits = rest.small, rest.fits

        # stage A: one trimmed chunk (bytes of the current group only, or zero padding) in a
        # register; stage B packs chunks into output words
        c_valid = Signal()
        c_data = Signal(8 * n)
        c_count = Signal(range(n + 1))
        out_fire = self.o.valid & self.o.ready
        room_ok = Signal(init=1)    # `level <= 2b`, as a register
        c_take = c_valid & room_ok
        m.d.comb += [self.o.valid.eq(level >= b), self.o.payload.eq(buf[:8 * b])]
        shifted = Mux(out_fire, buf >> (8 * b), buf)
        base = Mux(out_fire, level - b, level)
        with m.If(c_take):
            placed = Array(c_data << (8 * k) for k in range(2 * b + 1))[base]
            m.d.sync += [buf.eq(shifted | placed),
                         level.eq(base + c_count), room_ok.eq(base + c_count <= 2 * b)]
        with m.Elif(out_fire):
            m.d.sync += [buf.eq(shifted), level.eq(level - b), room_ok.eq(level - b <= 2 * b)]

        chunk = Signal(8 * n)
        chunk_count = Signal(range(n + 1))
        chunk_last = Signal()
        take = Signal()     # a chunk is accepted this cycle
        free = ~c_valid | c_take
        # `started` is only set for a group of a valid job (which stays until `o_done`)
        active = started
        # the chunk on offer, chosen by registers only (mode and source), whether or not it
        # is taken: the take decision then reaches only enables, not the data path below
        with m.If(mode == 1):
            m.d.comb += [chunk.eq(0), chunk_count.eq(n)]
        with m.Elif(is_raw):
            m.d.comb += [chunk.eq(self.i_raw.payload.data),
                         chunk_count.eq(self.i_raw.payload.count),
                         chunk_last.eq(self.i_raw.payload.last)]
        with m.Else():
            m.d.comb += [chunk.eq(self.i_lz4.payload.data),
                         chunk_count.eq(self.i_lz4.payload.count),
                         chunk_last.eq(self.i_lz4.payload.last)]
        with m.If(active & free & (rem_small != 0) & (mode == 0)):
            with m.If(is_raw):
                m.d.comb += [self.i_raw.ready.eq(1), take.eq(self.i_raw.valid)]
            with m.Else():
                m.d.comb += [self.i_lz4.ready.eq(1), take.eq(self.i_lz4.valid)]
        with m.Elif(active & free & (rem_small != 0) & (mode == 1)):
            m.d.comb += take.eq(1)
        with m.Elif(active & (mode == 2)):
            # drop the rest of a decompressed packet that is longer than the group
            m.d.comb += self.i_lz4.ready.eq(1)
            with m.If(self.i_lz4.valid & self.i_lz4.payload.last):
                m.d.sync += mode.eq(3)
        with m.Elif(active & (mode == 3)):
            m.d.comb += self.i_lz4_status.ready.eq(1)
            with m.If(self.i_lz4_status.valid):
                m.d.sync += [error.eq(error | self.i_lz4_status.payload.error),
                             group.eq(group + 1), started.eq(0), mode.eq(0)]
        # the same group may also end in mode 0/1 when `rest` reaches zero (below)

        # `accepted = min(chunk_count, rem_small)`; tables indexed by it are read at both
        # (`rem_small` is a register) and picked by the compare, so the compare and the
        # count's mux do not reach an index
        accepted = Signal(range(n + 1))
        over = Signal()
        m.d.comb += [over.eq(chunk_count > rem_small),
                     accepted.eq(Mux(over, rem_small, chunk_count))]

        def by_accepted(table):
            table = Array(table)
            return Mux(over, table[rem_small], table[chunk_count])

        mask = Cat(*[Mux(k < accepted, Const(0xFF, 8), Const(0, 8)) for k in range(n)])
        with m.If(c_take):
            m.d.sync += c_valid.eq(0)
        with m.If(take):
            m.d.sync += [c_valid.eq(1), c_data.eq(chunk & mask), c_count.eq(accepted)]
            rest.take(by_accepted)
            done = rem_fits & ~(chunk_count < rem_small)
            with m.If(mode == 1):
                with m.If(done):
                    with m.If(is_raw | job.unmapped):
                        m.d.sync += [group.eq(group + 1), started.eq(0), mode.eq(0)]
                    with m.Else():
                        m.d.sync += mode.eq(3)
            with m.Elif(chunk_last):
                with m.If(~done):
                    # a short packet: pad the rest (a raw group is never short)
                    m.d.sync += [mode.eq(1), error.eq(1)]
                with m.Elif(is_raw):
                    m.d.sync += [group.eq(group + 1), started.eq(0)]
                with m.Else():
                    m.d.sync += [mode.eq(3), error.eq(error | over)]
            with m.Elif(done):
                # the group is complete but its packet goes on: too long
                m.d.sync += [mode.eq(2), error.eq(1)]

        with m.If(self.i_job.valid & ~started & (group < job.fetched)):
            rest.load(raw_sizes[group])
            m.d.sync += [started.eq(1),
                         is_raw.eq(job.raw.bit_select(group, 1)),
                         mode.eq(Mux(job.unmapped, 1, 0))]

        # block end: every group sent and every word out
        m.d.comb += [self.o_done.valid.eq(all_sent & (level == 0) & ~c_valid),
                     self.o_done.payload.error.eq(error)]
        with m.If(self.o_done.valid & self.o_done.ready):
            m.d.comb += self.i_job.ready.eq(1)
            m.d.sync += [group.eq(0), error.eq(0), started.eq(0), mode.eq(0)]
        return m


class CAMCLane(wiring.Component):
    """One compression lane; built by :class:`~.controller.CAMCController` (see there).

    Members
    -------
    i : In(values)
        One write packet per write command routed to this lane.
    o_wreq : Out({stored, raw, beats, length_error})
        A block ready to write: its ``beats`` words wait on ``o_wdata``.
    o_wdata : Out({data})
    i_job : In(read job)
    i_rdata : In({data})
        The words of this lane's read commands, in order.
    o : Out(values)
    o_status : Out({block, error, beats})
    """

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__({
            "i": In(stream.Signature(cfg.value_layout)),
            "o_wreq": Out(stream.Signature(cfg.wreq_layout)),
            "o_wdata": Out(stream.Signature(cfg.mem_data_width)),
            "i_job": In(stream.Signature(cfg.job_layout)),
            "i_rdata": In(stream.Signature(cfg.mem_data_width)),
            "o": Out(stream.Signature(cfg.value_layout)),
            "o_status": Out(stream.Signature(cfg.lane_status_layout)),
        })

    def elaborate(self, platform):
        m = Module()
        self._write_path(m)
        self._read_path(m)
        return m

    # -- write path ----------------------------------------------------------------------
    def _write_path(self, m):
        cfg = self.cfg
        groups = cfg.groups_count
        m.submodules.split = split = BitplaneSplit(cfg.bitplane)
        m.submodules.compressor = comp = LZ4Compressor(cfg.compressor)
        m.submodules.to_bytes = to_bytes = WidthDownConverter(
            WidthConverterConfig(8, cfg.plane_word_bytes))
        m.submodules.length_flags = flags = fifo.SyncFIFOBuffered(width=1, depth=4)

        # framer: exactly `block_beats` value beats per block
        beats = cfg.block_values // cfg.values_per_cycle
        count = Signal(range(beats))
        pad = Signal()
        drop = Signal()
        final = count == beats - 1
        sink = split.i
        m.d.comb += sink.payload.last.eq(final)
        with m.If(pad):
            m.d.comb += sink.valid.eq(flags.w_rdy)
        with m.Elif(drop):
            m.d.comb += self.i.ready.eq(1)
            with m.If(self.i.valid & self.i.payload.last):
                m.d.sync += drop.eq(0)
        with m.Else():
            m.d.comb += [sink.valid.eq(self.i.valid & flags.w_rdy),
                         sink.payload.data.eq(self.i.payload.data),
                         self.i.ready.eq(sink.ready & flags.w_rdy)]
        with m.If(sink.valid & sink.ready):
            m.d.sync += count.eq(Mux(final, 0, count + 1))
            with m.If(final):
                m.d.sync += pad.eq(0)
                m.d.comb += [flags.w_en.eq(1),
                             flags.w_data.eq(pad | ~self.i.payload.last)]
                with m.If(~pad & ~self.i.payload.last):
                    m.d.sync += drop.eq(1)
            with m.Elif(~pad & self.i.payload.last):
                m.d.sync += pad.eq(1)

        # plane words -> bytes, through a skid buffer: the compressor's back-pressure then
        # reaches only its registers, not the read enables of the split's block RAMs
        m.submodules.plane_skid = plane_skid = SkidBuffer(
            SkidBufferConfig(payload=split.o.payload.shape()))
        wiring.connect(m, split.o, plane_skid.i)
        planes = plane_skid.o
        m.d.comb += [to_bytes.i.valid.eq(planes.valid),
                     to_bytes.i.payload.data.eq(planes.payload.data),
                     to_bytes.i.payload.count.eq(planes.payload.count),
                     to_bytes.i.payload.first.eq(planes.payload.first),
                     to_bytes.i.payload.last.eq(planes.payload.last),
                     planes.ready.eq(to_bytes.i.ready)]

        # raw and compressed group buffers, same layout: group g at byte `group_offset[g]`
        block_bytes = cfg.block_bytes
        # two banks each (ping-pong): the next block is split and compressed into one while
        # the writer copies the other
        # (block RAMs with their output register: read every cycle, the read data is a
        # register two cycles after the address)
        m.submodules.raw_buf = raw_buf = PipelinedRAM(PipelinedRAMConfig(8, 2 * block_bytes))
        m.submodules.comp_buf = comp_buf = PipelinedRAM(PipelinedRAMConfig(8, 2 * block_bytes))
        m.d.comb += [buf.r_en.eq(1) for buf in (raw_buf, comp_buf)]
        m.d.comb += [buf.r_oe.eq(1) for buf in (raw_buf, comp_buf)]
        offsets = Array(Const(x, range(block_bytes)) for x in cfg.group_offsets)
        sizes = Array(Const(x, range(cfg.max_group_bytes + 1)) for x in cfg.group_raw_bytes)

        def bank_base(bank):
            return Mux(bank, block_bytes, 0)

        # busy[k]: bank k holds a block the writer has not copied yet
        busy = Array(Signal(name=f"busy_{k}") for k in range(2))
        in_bank = Signal()
        in_pos = Signal(range(block_bytes))
        in_group = Signal(range(groups))
        in_byte = Signal(range(cfg.max_group_bytes))
        byte = to_bytes.o
        in_pos_zero = Signal(init=1)                    # `in_pos == 0`, as a register
        gate = in_pos_zero & busy[in_bank]
        m.d.comb += [comp.i.valid.eq(byte.valid & ~gate),
                     byte.ready.eq(comp.i.ready & ~gate),
                     comp.i.payload.data.eq(byte.payload.data),
                     comp.i.payload.first.eq(in_byte == 0),
                     comp.i.payload.last.eq(in_byte == sizes[in_group] - 1),
                     raw_buf.w_addr.eq(bank_base(in_bank) + in_pos),
                     raw_buf.w_data.eq(byte.payload.data)]
        set_busy = Signal()
        with m.If(comp.i.valid & comp.i.ready):
            m.d.comb += raw_buf.w_en.eq(1)
            m.d.comb += set_busy.eq(in_pos_zero)
            with m.If(in_byte == sizes[in_group] - 1):
                m.d.sync += [in_byte.eq(0),
                             in_group.eq(Mux(in_group == groups - 1, 0, in_group + 1))]
            with m.Else():
                m.d.sync += in_byte.eq(in_byte + 1)
            m.d.sync += [in_pos.eq(Mux(in_pos == block_bytes - 1, 0, in_pos + 1)),
                         in_pos_zero.eq(in_pos == block_bytes - 1)]
            with m.If(in_pos == block_bytes - 1):
                m.d.sync += in_bank.eq(~in_bank)

        # compressed bytes into comp_buf, clipped at the group's raw size
        out_group = Signal(range(groups))
        out_byte = Signal(range(cfg.compressor.max_compressed_bytes + 1))
        out_bank = Signal()
        bytes_done = Array(Signal(name=f"bytes_done_{k}") for k in range(2))
        # write address and room left in the group's region, kept in registers
        out_addr = Signal(range(2 * block_bytes))
        out_room = Signal(range(cfg.max_group_bytes + 1), init=cfg.group_raw_bytes[0])
        out_room_nz = Signal(init=int(cfg.group_raw_bytes[0] != 0))    # `out_room != 0`
        next_group = Mux(out_group == groups - 1, 0, out_group + 1)
        next_bank = Mux(out_group == groups - 1, ~out_bank, out_bank)
        m.d.comb += [comp.o.ready.eq(1), comp_buf.w_addr.eq(out_addr),
                     comp_buf.w_data.eq(comp.o.payload.data)]
        with m.If(comp.o.valid):
            m.d.comb += comp_buf.w_en.eq(out_room_nz)
            with m.If(comp.o.payload.last):
                m.d.sync += [out_byte.eq(0), out_group.eq(next_group),
                             out_addr.eq(bank_base(next_bank) + offsets[next_group]),
                             out_room.eq(sizes[next_group]),
                             out_room_nz.eq(sizes[next_group] != 0)]
                with m.If(out_group == groups - 1):
                    m.d.sync += [bytes_done[out_bank].eq(1), out_bank.eq(~out_bank)]
            with m.Else():
                m.d.sync += out_byte.eq(out_byte + 1)
                with m.If(out_room_nz):
                    m.d.sync += [out_addr.eq(out_addr + 1), out_room.eq(out_room - 1),
                                 out_room_nz.eq(out_room != 1)]

        # per-group verdicts
        stored = Array(Array(Signal(range(cfg.max_group_bytes + 1), name=f"stored_{k}_{g}")
                             for g in range(groups)) for k in range(2))
        raw_flag = Array(Signal(groups, name=f"raw_flag_{k}") for k in range(2))
        total = Array(Signal(range(block_bytes + 1), name=f"total_{k}") for k in range(2))
        status_bank = Signal()
        status_group = Signal(range(groups))
        status_done = Array(Signal(name=f"status_done_{k}") for k in range(2))
        st = comp.o_status.payload
        m.d.comb += comp.o_status.ready.eq(~status_done[status_bank])
        with m.If(comp.o_status.valid & ~status_done[status_bank]):
            keep_raw = st.compressed_length >= st.raw_length
            length = Mux(keep_raw, st.raw_length, st.compressed_length)
            m.d.sync += [stored[status_bank][status_group].eq(length),
                         raw_flag[status_bank].bit_select(status_group, 1).eq(keep_raw),
                         total[status_bank].eq(Mux(status_group == 0, 0, total[status_bank])
                                               + length),
                         status_group.eq(Mux(status_group == groups - 1, 0,
                                             status_group + 1))]
            with m.If(status_group == groups - 1):
                m.d.sync += [status_done[status_bank].eq(1), status_bank.eq(~status_bank)]

        # writer: stored bytes of every group -> words -> write queue
        m.submodules.to_words = to_words = WidthUpConverter(
            WidthConverterConfig(8, cfg.mem_bytes))
        m.submodules.wqueue = wqueue = RAMQueue(RAMQueueConfig(cfg.mem_data_width,
                                                               cfg.block_beats))
        m.submodules.wreqs = wreqs = fifo.SyncFIFOBuffered(
            width=len(self.o_wreq.payload.as_value()), depth=2)
        m.d.comb += [wqueue.i.payload.eq(to_words.o.payload.data),
                     wqueue.i.valid.eq(to_words.o.valid), to_words.o.ready.eq(wqueue.i.ready)]
        wiring.connect(m, wiring.flipped(self.o_wdata), wqueue.o)

        copying = Signal()
        w_bank = Signal()
        w_group = Signal(range(groups))
        w_left = Signal(range(cfg.max_group_bytes + 1))     # bytes of the group still to read
        # `w_left == 1` as a register, set with every new `w_left`: the end of a group (and of
        # the block, which pushes the write request and pops the length flag) then waits for
        # no wide compare
        w_last = Signal()
        w_addr = Signal(range(2 * block_bytes))
        # a byte read is issued when the small queue behind the buffers has room for it and
        # the two in flight; the buffers' read data lands in their output registers, then
        # goes into the queue
        m.submodules.wbytes = wbytes = fifo.SyncFIFOBuffered(width=9, depth=6)
        in_flight = Signal()
        in_flight_raw = Signal()
        in_flight_last = Signal()
        landed = Signal()
        landed_raw = Signal()
        landed_last = Signal()
        landed_raw_byte = Signal(8)
        landed_comp_byte = Signal(8)
        advance = wbytes.level < 3
        m.d.sync += [in_flight.eq(copying & advance), landed.eq(in_flight),
                     landed_raw.eq(in_flight_raw), landed_last.eq(in_flight_last)]
        m.d.comb += [landed_raw_byte.eq(raw_buf.r_data), landed_comp_byte.eq(comp_buf.r_data)]
        m.d.comb += [wbytes.w_en.eq(landed),
                     wbytes.w_data.eq(Cat(Mux(landed_raw, landed_raw_byte, landed_comp_byte),
                                          landed_last)),
                     to_words.i.valid.eq(wbytes.r_rdy),
                     to_words.i.payload.data.eq(wbytes.r_data[:8]),
                     to_words.i.payload.last.eq(wbytes.r_data[8]),
                     wbytes.r_en.eq(to_words.i.ready),
                     raw_buf.r_addr.eq(w_addr), comp_buf.r_addr.eq(w_addr)]
        start = (status_done[w_bank] & bytes_done[w_bank] & ~copying & wreqs.w_rdy
                 & flags.r_rdy)
        req = Signal(cfg.wreq_layout)
        m.d.comb += [req.stored[g].eq(stored[w_bank][g]) for g in range(groups)]
        m.d.comb += [req.raw.eq(raw_flag[w_bank]), req.length_error.eq(flags.r_data),
                     req.beats.eq((total[w_bank] + cfg.mem_bytes - 1)
                                  >> (cfg.mem_bytes.bit_length() - 1)),
                     wreqs.w_data.eq(req)]
        with m.If(start):
            m.d.sync += [copying.eq(1), w_group.eq(0), w_left.eq(stored[w_bank][0]),
                         w_last.eq(stored[w_bank][0] == 1), w_addr.eq(bank_base(w_bank))]
        with m.If(copying & advance):
            last_byte = w_last
            final_group = w_group == groups - 1
            after = Mux(final_group, 0, w_group + 1)
            m.d.sync += [in_flight_raw.eq(raw_flag[w_bank].bit_select(w_group, 1)),
                         in_flight_last.eq(last_byte & final_group)]
            with m.If(last_byte):
                m.d.sync += [w_group.eq(after), w_left.eq(stored[w_bank][after]),
                             w_last.eq(stored[w_bank][after] == 1),
                             w_addr.eq(bank_base(w_bank) + offsets[after])]
                with m.If(final_group):
                    m.d.sync += [copying.eq(0), status_done[w_bank].eq(0),
                                 bytes_done[w_bank].eq(0), busy[w_bank].eq(0),
                                 w_bank.eq(~w_bank)]
                    m.d.comb += [wreqs.w_en.eq(1), flags.r_en.eq(1)]
            with m.Else():
                m.d.sync += [w_left.eq(w_left - 1), w_last.eq(w_left == 2),
                             w_addr.eq(w_addr + 1)]
        # a bank is busy from its block's first byte until the writer has read its last one
        with m.If(set_busy):
            m.d.sync += busy[in_bank].eq(1)
        m.d.comb += [self.o_wreq.valid.eq(wreqs.r_rdy),
                     self.o_wreq.payload.eq(wreqs.r_data), wreqs.r_en.eq(self.o_wreq.ready)]

    # -- read path -----------------------------------------------------------------------
    def _read_path(self, m):
        cfg = self.cfg
        groups = cfg.groups_count
        job_bits = len(self.i_job.payload.as_value())
        m.submodules.split_jobs = split_jobs = fifo.SyncFIFOBuffered(width=job_bits, depth=2)
        m.submodules.asm_jobs = asm_jobs = fifo.SyncFIFOBuffered(width=job_bits, depth=4)
        both = split_jobs.w_rdy & asm_jobs.w_rdy
        m.d.comb += [self.i_job.ready.eq(both),
                     split_jobs.w_en.eq(self.i_job.valid & both),
                     asm_jobs.w_en.eq(self.i_job.valid & both),
                     split_jobs.w_data.eq(self.i_job.payload),
                     asm_jobs.w_data.eq(self.i_job.payload)]

        # read words -> chunks of the fetched prefix (the last word's padding dropped): a
        # chunk is up to `n` bytes of one word and one group; a raw group's chunks go to the
        # assembler, a compressed group's to the decompressor (which takes up to `n` bytes a
        # beat)
        n = cfg.decompressor.output_bytes_per_cycle
        mb = cfg.mem_bytes
        m.submodules.rqueue = rqueue = RAMQueue(RAMQueueConfig(cfg.mem_data_width,
                                                               cfg.block_beats))
        wiring.connect(m, wiring.flipped(self.i_rdata), rqueue.i)
        # a skid buffer after the queue: the chunker's load decision reaches only its
        # registers, not the queue's block RAM enables (which may be placed far away)
        m.submodules.rskid = rskid = SkidBuffer(SkidBufferConfig(payload=cfg.mem_data_width))
        wiring.connect(m, rqueue.o, rskid.i)
        sjob = data.View(cfg.job_layout, split_jobs.r_data)
        left = Signal(range(cfg.block_bytes + 1))       # bytes of the prefix not yet loaded
        # `left != 0` and `left > mb` as registers, so the load decision and the next word's
        # byte count compare nothing wide
        left_any = Signal()
        left_more = Signal()
        loaded = Signal()
        with m.If(split_jobs.r_rdy & ~loaded):
            m.d.sync += [left.eq(sjob.bytes), loaded.eq(1), left_any.eq(sjob.bytes != 0),
                         left_more.eq(sjob.bytes > mb)]

        w_data = Signal(8 * mb)                         # the word being cut into chunks
        w_off = Signal(range(mb))
        # its bytes not yet sent, a countdown whose `min(left, n)` and `left <= n` are
        # registers: the chunk's count, the word's end and the next load come from compares
        # of registers, not from a compare of a count worked out in the same cycle
        w_rest = Countdown(m, "word", mb, n)
        w_small, w_fits = w_rest.small, w_rest.fits

        m.submodules.decompressor = dec = LZ4Decompressor(cfg.decompressor)
        m.submodules.raw_path = raw_path = fifo.SyncFIFOBuffered(
            width=8 * n + n.bit_length() + 1, depth=4)
        s_group = Signal(range(groups + 1))
        s_raw = Signal()                                # the started group is stored raw
        s_fetched = Mux(sjob.unmapped, 0, sjob.fetched)
        g_started = Signal()                            # the group's countdown is loaded
        g_first = Signal()
        g_rest = Countdown(m, "group", cfg.max_group_bytes, n)
        g_small, g_fits = g_rest.small, g_rest.fits
        stored = sjob.stored[s_group[:max(1, (groups - 1).bit_length())]]
        with m.If(loaded & ~g_started & (s_group < s_fetched)):
            m.d.sync += [g_started.eq(1), g_first.eq(1),
                         s_raw.eq(sjob.raw.bit_select(s_group, 1))]
            g_rest.load(stored)

        # the chunk: up to `n` bytes, within the word and within the group
        count = Signal(range(n + 1))
        word_first = Signal()                           # the word's bytes run out first
        m.d.comb += [word_first.eq(w_small <= g_small),
                     count.eq(Mux(word_first, w_small, g_small))]
        chunk = Signal(8 * n)
        m.d.comb += chunk.eq((w_data >> (w_off * 8))[:8 * n])
        group_done = g_fits & (w_small >= g_small)
        word_done = w_fits & word_first
        ready = Signal()
        offer = loaded & g_started & (w_small != 0)
        # a registered queue in front of the decompressor keeps the group bookkeeping out of
        # the decompressor's (combinational) verdict path; depth 4, because a buffered FIFO of
        # depth 2 (one entry plus the output register) takes a beat only every other cycle
        dec_in = cfg.decompressor.input_layout
        m.submodules.lz4_path = lz4_path = fifo.SyncFIFOBuffered(width=dec_in.size, depth=4)
        beat = data.View(dec_in, lz4_path.w_data)
        m.d.comb += [beat.data.eq(chunk), *([beat.count.eq(count)] if n > 1 else []),
                     beat.first.eq(g_first), beat.last.eq(group_done),
                     raw_path.w_data.eq(Cat(chunk, count, group_done)),
                     dec.i.valid.eq(lz4_path.r_rdy), lz4_path.r_en.eq(dec.i.ready),
                     dec.i.payload.eq(lz4_path.r_data)]
        # each path's room is a register (the level below depth - 1 last cycle, so one push
        # this cycle still fits), so the FIFOs' level compares stay off the chunk decision
        raw_room = Signal(init=1)
        lz4_room = Signal(init=1)
        m.d.sync += [raw_room.eq(raw_path.level < raw_path.depth - 1),
                     lz4_room.eq(lz4_path.level < lz4_path.depth - 1)]
        with m.If(s_raw):
            m.d.comb += [raw_path.w_en.eq(offer & raw_room), ready.eq(raw_room)]
        with m.Else():
            m.d.comb += [lz4_path.w_en.eq(offer & lz4_room), ready.eq(lz4_room)]
        fire = offer & ready
        with m.If(fire):
            m.d.sync += [w_off.eq(w_off + count), g_first.eq(0)]
            w_rest.take(count)
            g_rest.take(count)
            with m.If(group_done):
                m.d.sync += [s_group.eq(s_group + 1), g_started.eq(0)]
        # the next word loads in the cycle the last chunk of this one goes
        load = loaded & left_any & rskid.o.valid & ((w_small == 0) | (fire & word_done))
        m.d.comb += rskid.o.ready.eq(load)
        with m.If(load):
            w_rest.load(Mux(left_more, mb, left))
            m.d.sync += [w_data.eq(rskid.o.payload), w_off.eq(0),
                         left.eq(Mux(left_more, left - mb, 0)),
                         left_any.eq(left_more), left_more.eq(left > 2 * mb)]
        with m.If(loaded & (s_group == s_fetched) & ~left_any):
            m.d.comb += split_jobs.r_en.eq(1)
            m.d.sync += [loaded.eq(0), s_group.eq(0)]

        # assembler -> merge -> mask
        m.submodules.assembler = asm = PlaneAssembler(
            cfg.group_raw_bytes, cfg.decompressor.output_bytes_per_cycle,
            cfg.plane_word_bytes, cfg.job_layout, cfg.decompressor.output_layout,
            cfg.decompressor.status_layout)
        m.d.comb += [asm.i_job.valid.eq(asm_jobs.r_rdy), asm.i_job.payload.eq(asm_jobs.r_data),
                     asm_jobs.r_en.eq(asm.i_job.ready),
                     asm.i_raw.valid.eq(raw_path.r_rdy),
                     asm.i_raw.payload.eq(raw_path.r_data), raw_path.r_en.eq(asm.i_raw.ready)]
        wiring.connect(m, dec.o, asm.i_lz4)
        wiring.connect(m, dec.o_status, asm.i_lz4_status)

        m.submodules.merge = merge = BitplaneMerge(cfg.bitplane)
        ajob = data.View(cfg.job_layout, asm_jobs.r_data)
        # a skid buffer between them: the merge's ready (decided from its block descriptor)
        # then reaches only the skid's registers, not the assembler's output shift
        m.submodules.asm_skid = asm_skid = SkidBuffer(SkidBufferConfig(
            payload=8 * cfg.plane_word_bytes))
        wiring.connect(m, asm.o, asm_skid.i)
        m.d.comb += [merge.i.valid.eq(asm_skid.o.valid),
                     merge.i.payload.data.eq(asm_skid.o.payload),
                     merge.i.payload.count.eq(cfg.plane_word_bytes),
                     asm_skid.o.ready.eq(merge.i.ready)]
        # one descriptor per job, offered from the start of the job until the merge takes it
        # (into its descriptor skid buffer, ahead of the planes)
        desc_taken = Signal()
        m.d.comb += [merge.i_block.valid.eq(asm_jobs.r_rdy & ~desc_taken),
                     merge.i_block.payload.count.eq(cfg.block_values),
                     merge.i_block.payload.planes.eq(ajob.planes)]
        with m.If(merge.i_block.valid & merge.i_block.ready):
            m.d.sync += desc_taken.eq(1)

        m.submodules.masks = masks = fifo.SyncFIFOBuffered(width=5, depth=4)
        m.submodules.statuses = statuses = fifo.SyncFIFOBuffered(
            width=len(self.o_status.payload.as_value()), depth=4)
        # the block ends once the merge has its descriptor: `desc_taken` is a register, so
        # the merge's take decision (a compare on the descriptor) does not reach the
        # assembler's block-end logic in the same cycle
        done_ok = masks.w_rdy & statuses.w_rdy & desc_taken
        status = Signal(cfg.lane_status_layout)
        m.d.comb += [asm.o_done.ready.eq(done_ok),
                     masks.w_en.eq(asm.o_done.valid & done_ok),
                     statuses.w_en.eq(asm.o_done.valid & done_ok),
                     masks.w_data.eq(ajob.keep),
                     status.block.eq(ajob.block),
                     status.beats.eq(ajob.beats),
                     status.error.eq(Mux(ajob.unmapped, cfg.error_code("unmapped"),
                                         Mux(asm.o_done.payload.error,
                                             cfg.error_code("corrupt"), 0))),
                     statuses.w_data.eq(status)]
        with m.If(asm.o_done.valid & done_ok):
            m.d.sync += desc_taken.eq(0)
        m.d.comb += [self.o_status.valid.eq(statuses.r_rdy),
                     self.o_status.payload.eq(statuses.r_data),
                     statuses.r_en.eq(self.o_status.ready)]

        # clear the mantissa bits below the precision read
        width, lanes = cfg.width, cfg.values_per_cycle
        value_mask = Array(Const(((1 << width) - 1) ^ ((1 << (width - k)) - 1), width)
                           for k in range(width + 1))[masks.r_data]
        m.d.comb += [self.o.valid.eq(merge.o.valid & masks.r_rdy),
                     merge.o.ready.eq(self.o.ready & masks.r_rdy),
                     self.o.payload.first.eq(merge.o.payload.first),
                     self.o.payload.last.eq(merge.o.payload.last),
                     self.o.payload.data.eq(merge.o.payload.data
                                            & Cat(*[value_mask] * lanes)),
                     masks.r_en.eq(self.o.valid & self.o.ready & merge.o.payload.last)]
