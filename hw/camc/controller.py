"""The compression-aware memory controller: lanes, block map, memory port, counters.

Behaviour is that of :class:`golden.camc.controller.ControllerModel` (physical layout,
allocation, reduced-precision reads, error kinds), command by command.
"""

from dataclasses import dataclass

from amaranth.hdl import Array, Const, Module, Mux, Signal
from amaranth.lib import data, enum, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.camc.bitplane import DEFAULT_PLANE_GROUPS, FORMATS

from ..common.bram import PipelinedRAM, PipelinedRAMConfig
from ..common.memory_port import (
    BlockRAMConfig,
    BlockRAMMemory,
    MemoryPortConfig,
    MemoryPortSignature,
)
from ..common.skid_buffer import SkidBuffer, SkidBufferConfig
from ..common.validate import check_choice, check_int, check_power_of_two, packet_layout
from .bitplane import BitplaneConfig
from .lane import CAMCLane
from .lz4_compressor import LZ4CompressorConfig
from .lz4_decompressor import LZ4DecompressorConfig

__all__ = ["CAMCError", "CAMCConfig", "CAMCController", "CAMCSystem", "PRESETS"]

COUNTER_WIDTH = 40


class CAMCError(enum.Enum, shape=3):
    """``error`` of ``o_status``; names as in :data:`golden.camc.controller.ERRORS`."""

    NONE = 0
    CORRUPT = 1
    UNMAPPED = 2
    FULL = 3
    LENGTH = 4


@dataclass(frozen=True)
class CAMCConfig:
    """Configuration of :class:`CAMCController` and :class:`CAMCSystem`.

    Parameters
    ----------
    lanes : int
        Compression lanes (1 to 8); commands go to them in turn.
    fmt : str
        ``bf16``, ``fp16`` or ``fp8_e4m3``.
    block_values : int
        Values per logical block (2048 = 4 KiB of BF16); a multiple of
        ``values_per_cycle * width``, from 64 to 16384.
    values_per_cycle : int
        Values per beat of ``i`` and ``o`` (1, 2, 4, 8); ``values_per_cycle * width`` at
        least 16.
    groups : tuple of int or None
        Planes per group, MSB first; ``None``: the format's default (bf16 9/4/3).
    blocks : int
        Entries of the block map, a power of two (2 to 4096).
    hash_bits : int
        Of each lane's LZ4 compressor (4 to 16).
    mem_data_width : int
        Bits per memory word, a power of two (16 to 256).
    mem_addr_width : int
        Bits of a word address (8 to 32).
    memory_words : int
        Words the controller allocates from (at most ``2**mem_addr_width``); also the
        block RAM of :class:`CAMCSystem`.
    output_bytes_per_cycle : int
        Of each lane's LZ4 decompressor (1, 2, 4).
    """

    lanes: int = 1
    fmt: str = "bf16"
    block_values: int = 2048
    values_per_cycle: int = 2
    groups: tuple | None = None
    blocks: int = 64
    hash_bits: int = 12
    mem_data_width: int = 32
    mem_addr_width: int = 16
    memory_words: int = 8192
    output_bytes_per_cycle: int = 4

    def __post_init__(self):
        check_int("lanes", self.lanes, min=1, max=8)
        check_choice("fmt", self.fmt, tuple(FORMATS))
        check_choice("values_per_cycle", self.values_per_cycle, (1, 2, 4, 8))
        width = FORMATS[self.fmt].width
        if self.values_per_cycle * width < 16:
            raise ValueError(f"values_per_cycle must make beats of at least 16 bits, not "
                             f"{self.values_per_cycle!r} ({self.fmt} values are {width} bits)")
        check_int("block_values", self.block_values, min=64, max=16384)
        if self.block_values % (self.values_per_cycle * width):
            raise ValueError(f"block_values must be a multiple of values_per_cycle * width = "
                             f"{self.values_per_cycle * width}, not {self.block_values!r}")
        if self.groups is not None:
            groups = tuple(self.groups)
            if (not groups or len(groups) > 8
                    or not all(isinstance(g, int) and g >= 1 for g in groups)
                    or sum(groups) != width):
                raise ValueError(f"groups must be 1 to 8 positive plane counts adding up to "
                                 f"{width}, not {self.groups!r}")
            object.__setattr__(self, "groups", groups)
        check_power_of_two("blocks", self.blocks, min=2, max=4096)
        check_int("hash_bits", self.hash_bits, min=4, max=16)
        check_power_of_two("mem_data_width", self.mem_data_width, min=16, max=256)
        check_int("mem_addr_width", self.mem_addr_width, min=8, max=32)
        check_int("memory_words", self.memory_words, min=self.block_beats,
                  max=1 << self.mem_addr_width)
        check_choice("output_bytes_per_cycle", self.output_bytes_per_cycle, (1, 2, 4))

    # -- derived -------------------------------------------------------------------------
    @property
    def width(self) -> int:
        return FORMATS[self.fmt].width

    @property
    def plane_groups(self) -> tuple[int, ...]:
        return self.groups if self.groups is not None else DEFAULT_PLANE_GROUPS[self.fmt]

    @property
    def block_bytes(self) -> int:
        return self.block_values * self.width // 8

    @property
    def plane_bytes(self) -> int:
        return self.block_values // 8

    @property
    def group_raw_bytes(self) -> tuple[int, ...]:
        return tuple(p * self.plane_bytes for p in self.plane_groups)

    @property
    def group_offsets(self) -> tuple[int, ...]:
        return tuple(sum(self.group_raw_bytes[:g]) for g in range(len(self.plane_groups)))

    @property
    def max_group_bytes(self) -> int:
        return max(self.group_raw_bytes)

    @property
    def mem_bytes(self) -> int:
        return self.mem_data_width // 8

    @property
    def block_beats(self) -> int:
        return -(-self.block_bytes // self.mem_bytes)

    @property
    def plane_word_bytes(self) -> int:
        return self.values_per_cycle * self.width // 8

    @property
    def codec_block_bytes(self) -> int:
        """LZ4 block buffers: the largest group, rounded up to a power of two."""
        return max(16, 1 << (self.max_group_bytes - 1).bit_length())

    @property
    def bitplane(self) -> BitplaneConfig:
        return BitplaneConfig(self.fmt, self.block_values, self.values_per_cycle)

    @property
    def compressor(self) -> LZ4CompressorConfig:
        return LZ4CompressorConfig(hash_bits=self.hash_bits,
                                   max_block_bytes=self.codec_block_bytes)

    @property
    def decompressor(self) -> LZ4DecompressorConfig:
        # the lane hands it up to a beat's worth of compressed bytes per cycle, as for raw
        # groups, so long literal runs go at `output_bytes_per_cycle` bytes a cycle
        return LZ4DecompressorConfig(max_block_bytes=self.codec_block_bytes,
                                     output_bytes_per_cycle=self.output_bytes_per_cycle,
                                     input_bytes_per_cycle=self.output_bytes_per_cycle)

    @property
    def memory_port(self) -> MemoryPortConfig:
        return MemoryPortConfig(self.mem_addr_width, self.mem_data_width,
                                self.block_beats.bit_length())

    def error_code(self, name: str) -> int:
        return CAMCError[name.upper()].value

    # -- layouts -------------------------------------------------------------------------
    @property
    def groups_count(self) -> int:
        return len(self.plane_groups)

    @property
    def value_layout(self):
        return packet_layout(self.values_per_cycle * self.width)

    @property
    def command_layout(self):
        """``{block, write, precision}``: ``precision`` mantissa bits kept by a read (at or
        above the format's mantissa bits: all)."""
        return data.StructLayout({"block": range(self.blocks), "write": 1,
                                  "precision": range(FORMATS[self.fmt].mant_bits + 1)})

    @property
    def status_layout(self):
        return data.StructLayout({"block": range(self.blocks), "write": 1, "error": CAMCError,
                                  "raw_bytes": range(self.block_bytes + 1),
                                  "stored_bytes": range(self.block_beats * self.mem_bytes + 1)})

    @property
    def _stored_layout(self):
        return data.ArrayLayout(range(self.max_group_bytes + 1), self.groups_count)

    @property
    def wreq_layout(self):
        return data.StructLayout({"stored": self._stored_layout, "raw": self.groups_count,
                                  "beats": range(self.block_beats + 1), "length_error": 1})

    @property
    def job_layout(self):
        return data.StructLayout({
            "block": range(self.blocks), "stored": self._stored_layout,
            "raw": self.groups_count, "fetched": range(self.groups_count + 1),
            "planes": range(self.width + 1), "keep": range(self.width + 1),
            "bytes": range(self.block_bytes + 1), "beats": range(self.block_beats + 1),
            "unmapped": 1})

    @property
    def lane_status_layout(self):
        return data.StructLayout({"block": range(self.blocks), "error": 3,
                                  "beats": range(self.block_beats + 1)})

    @property
    def map_layout(self):
        return data.StructLayout({"addr": self.mem_addr_width, "stored": self._stored_layout,
                                  "raw": self.groups_count})

    @property
    def counters_layout(self):
        return data.StructLayout({name: COUNTER_WIDTH for name in
                                  ("raw_written", "stored_written", "raw_read", "stored_read")})

    def read_plan(self, precision: int) -> tuple[int, int, int]:
        """``(groups fetched, planes fetched, planes kept)`` for a ``precision`` field."""
        f = FORMATS[self.fmt]
        keep = 1 + f.exp_bits + min(precision, f.mant_bits)
        fetched, planes = 0, 0
        while planes < keep:
            planes += self.plane_groups[fetched]
            fetched += 1
        return fetched, planes, keep


PRESETS: dict[str, CAMCConfig] = {
    "default": CAMCConfig(),
    "lanes4": CAMCConfig(lanes=4, block_values=1024, mem_data_width=64, hash_bits=10,
                         memory_words=4096),
    "small": CAMCConfig(block_values=256, hash_bits=8, blocks=16, memory_words=1024),
    "small2": CAMCConfig(lanes=2, block_values=256, hash_bits=8, blocks=16,
                         memory_words=1024),
    "fp16": CAMCConfig(fmt="fp16", block_values=256, hash_bits=8, blocks=16,
                       memory_words=1024),
    "fp8": CAMCConfig(fmt="fp8_e4m3", block_values=512, values_per_cycle=4, hash_bits=8,
                      blocks=16, memory_words=1024),
}


class CAMCController(wiring.Component):
    """Compression-aware memory controller (arXiv 2503.18869) with ``lanes`` lanes.

    Commands on ``i_cmd`` are taken in order and handed to the lanes in turn (command k to
    lane ``k mod lanes``). A write takes one packet of values on ``i``: the lane splits it
    into bit planes, LZ4-compresses every plane group (storing a group raw when that does not
    shrink it) and, when the block is ready, the controller gives it the next free words of
    memory, writes it and records the address and the group lengths in the block map. A read
    looks the block up, fetches only the words of the groups its precision needs, and the
    lane decompresses them and merges the planes into values with the dropped mantissa bits
    zero. Memory commands are issued in command order, and results (``o`` packets,
    ``o_status`` entries) come back in command order, whichever lane finishes first.

    The physical layout, allocation (a log from word 0), the read plan and the error kinds
    are those of :class:`golden.camc.controller.ControllerModel`.

    Parameters
    ----------
    cfg : CAMCConfig

    Members
    -------
    i_cmd : In(stream.Signature(cfg.command_layout))
        ``{block, write, precision}``.
    i : In(stream.Signature(cfg.value_layout))
        One packet of ``block_values`` values per write command (``last`` on its final
        beat). A shorter packet is padded with zero values and a longer one cut at
        ``block_values`` (its extra beats are taken and dropped up to ``last``); both report
        ``length``.
    o : Out(stream.Signature(cfg.value_layout))
        One packet of ``block_values`` values per read command (even on an error).
    o_status : Out(stream.Signature(cfg.status_layout))
        One entry per command: ``block``, ``write``, ``error`` (:class:`CAMCError`),
        ``raw_bytes`` (values moved) and ``stored_bytes`` (memory words moved, in bytes).
    mem : Out(MemoryPortSignature(cfg.memory_port))
        Towards DRAM; one command per block read or written.
    counters : Out(cfg.counters_layout)
        ``raw_written``, ``stored_written``, ``raw_read``, ``stored_read`` bytes since reset.

    Latency
    -------
    Write: the block's memory command issues after its last value, the bit-plane transpose
    (``width + 4`` cycles), compression (about one cycle per raw byte) and the copy of its
    stored bytes into the write queue (one cycle per stored byte). Read: words reach the lane
    from the memory, the first values leave after all of the block's plane bytes are
    assembled (compressed and raw group bytes in chunks of up to ``output_bytes_per_cycle``
    bytes of one memory word; the decompressor reads literals a chunk per cycle and token
    and offset bytes one per cycle) plus ``width + 7`` cycles (the merge's ``width + 4``,
    a skid buffer on each side of it and one after the lane selection). A read block's status
    leaves through a skid buffer after the selection too.

    Throughput
    ----------
    Per lane, about one raw byte per cycle plus one cycle per stored byte when writing, and
    up to ``output_bytes_per_cycle`` bytes per cycle when reading (the decompressor's literal
    runs and match copies; a sequence's token and offset cost a cycle per byte). Lanes
    work in parallel; the memory port moves one word per cycle. Measured figures:
    ``llmhw bench camc``.
    """

    def __init__(self, cfg: CAMCConfig):
        self.cfg = cfg
        super().__init__({
            "i_cmd": In(stream.Signature(cfg.command_layout)),
            "i": In(stream.Signature(cfg.value_layout)),
            "o": Out(stream.Signature(cfg.value_layout)),
            "o_status": Out(stream.Signature(cfg.status_layout)),
            "mem": Out(MemoryPortSignature(cfg.memory_port)),
            "counters": Out(cfg.counters_layout),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        n = cfg.lanes
        lane_bits = max(1, (n - 1).bit_length())
        lanes = []
        for k in range(n):
            lane = CAMCLane(cfg)
            m.submodules[f"lane{k}"] = lane
            lanes.append(lane)

        depth = 2 * n + 2
        cmd_layout = data.StructLayout({"lane": lane_bits, "cmd": cfg.command_layout})
        m.submodules.order = order = fifo.SyncFIFOBuffered(width=cmd_layout.size, depth=depth)
        m.submodules.value_route = value_route = fifo.SyncFIFOBuffered(width=lane_bits,
                                                                       depth=depth)
        m.submodules.out_route = out_route = fifo.SyncFIFOBuffered(width=lane_bits,
                                                                   depth=depth)
        m.submodules.status_route = status_route = fifo.SyncFIFOBuffered(width=lane_bits + 1,
                                                                         depth=depth)
        m.submodules.read_route = read_route = fifo.SyncFIFOBuffered(width=lane_bits,
                                                                     depth=depth)
        m.submodules.write_status = write_status = fifo.SyncFIFOBuffered(
            width=cfg.status_layout.size, depth=2)

        # dispatch: command k to lane k mod n; a skid buffer registers `i_cmd.ready`, so the
        # queues' room (which the sequencer's pops change) does not reach the sender
        m.submodules.cmd_skid = cmd_skid = SkidBuffer(
            SkidBufferConfig(payload=cfg.command_layout))
        wiring.connect(m, wiring.flipped(self.i_cmd), cmd_skid.i)
        commands = cmd_skid.o
        next_lane = Signal(lane_bits)
        cmd = commands.payload
        room = order.w_rdy & status_route.w_rdy & Mux(cmd.write, value_route.w_rdy,
                                                      out_route.w_rdy)
        entry = Signal(cmd_layout)
        m.d.comb += [entry.lane.eq(next_lane), entry.cmd.eq(cmd),
                     commands.ready.eq(room),
                     order.w_data.eq(entry), order.w_en.eq(commands.valid & room),
                     status_route.w_data.eq(Mux(cmd.write, 1 << lane_bits, 0) | next_lane),
                     status_route.w_en.eq(commands.valid & room),
                     value_route.w_data.eq(next_lane),
                     value_route.w_en.eq(commands.valid & room & cmd.write),
                     out_route.w_data.eq(next_lane),
                     out_route.w_en.eq(commands.valid & room & ~cmd.write)]
        with m.If(commands.valid & room):
            m.d.sync += next_lane.eq(Mux(next_lane == n - 1, 0, next_lane + 1))

        # write values to the lane of their command; the skid buffer registers `i.ready`, so
        # no path runs from a lane's back-pressure to the sender's logic
        m.submodules.i_skid = i_skid = SkidBuffer(SkidBufferConfig(payload=cfg.value_layout))
        wiring.connect(m, wiring.flipped(self.i), i_skid.i)
        values = i_skid.o
        for k, lane in enumerate(lanes):
            # and one more per lane, so a lane's `i.ready` (the bit-plane split's) meets only
            # registers beside it, and the routing logic here only registers too
            value_skid = SkidBuffer(SkidBufferConfig(payload=cfg.value_layout))
            m.submodules[f"value_skid{k}"] = value_skid
            wiring.connect(m, value_skid.o, lane.i)
            sel = value_route.r_rdy & (value_route.r_data == k)
            m.d.comb += [value_skid.i.payload.eq(values.payload),
                         value_skid.i.valid.eq(values.valid & sel)]
            with m.If(sel):
                m.d.comb += values.ready.eq(value_skid.i.ready)
        m.d.comb += value_route.r_en.eq(values.valid & values.ready & values.payload.last)

        # read values back in command order; a skid buffer per lane on values and statuses,
        # so the sender's `o.ready` reaches only registers beside the selection, not the
        # output shift register of a merge (or a status queue) across the die
        lane_o, lane_status = [], []
        for k, lane in enumerate(lanes):
            o_skid = SkidBuffer(SkidBufferConfig(payload=cfg.value_layout))
            s_skid = SkidBuffer(SkidBufferConfig(payload=cfg.lane_status_layout))
            m.submodules[f"o_skid{k}"] = o_skid
            m.submodules[f"status_skid{k}"] = s_skid
            wiring.connect(m, lane.o, o_skid.i)
            wiring.connect(m, lane.o_status, s_skid.i)
            lane_o.append(o_skid.o)
            lane_status.append(s_skid.o)
        # and one after the selection: the sender's `o.ready` and whatever consumes `o` meet
        # only its registers, so the pop below is decided beside the queue (the selected
        # lane's `valid` and `last` cross the die once, not back and forth)
        m.submodules.out_skid = out_skid = SkidBuffer(SkidBufferConfig(payload=cfg.value_layout))
        wiring.connect(m, out_skid.o, wiring.flipped(self.o))
        selected = out_skid.i
        for k, lo in enumerate(lane_o):
            sel = out_route.r_rdy & (out_route.r_data == k)
            with m.If(sel):
                m.d.comb += [selected.valid.eq(lo.valid), selected.payload.eq(lo.payload),
                             lo.ready.eq(selected.ready)]
        m.d.comb += out_route.r_en.eq(selected.valid & selected.ready & selected.payload.last)

        # statuses in command order, through a skid buffer after the selection as for values
        m.submodules.o_status_skid = o_status_skid = SkidBuffer(
            SkidBufferConfig(payload=cfg.status_layout))
        wiring.connect(m, o_status_skid.o, wiring.flipped(self.o_status))
        chosen = o_status_skid.i
        head_write = status_route.r_data[lane_bits]
        head_lane = status_route.r_data[:lane_bits]
        ws = data.View(cfg.status_layout, write_status.r_data)
        with m.If(status_route.r_rdy & head_write):
            m.d.comb += [chosen.valid.eq(write_status.r_rdy),
                         chosen.payload.eq(ws),
                         write_status.r_en.eq(chosen.ready)]
        for k, lst in enumerate(lane_status):
            with m.If(status_route.r_rdy & ~head_write & (head_lane == k)):
                ls = lst.payload
                m.d.comb += [chosen.valid.eq(lst.valid),
                             chosen.payload.block.eq(ls.block),
                             chosen.payload.write.eq(0),
                             chosen.payload.error.eq(ls.error),
                             chosen.payload.raw_bytes.eq(cfg.block_bytes),
                             chosen.payload.stored_bytes.eq(ls.beats * cfg.mem_bytes),
                             lst.ready.eq(chosen.ready)]
        m.d.comb += status_route.r_en.eq(chosen.valid & chosen.ready)

        # read data to the lane of its command; registers on both data paths of the memory
        # port keep block-RAM outputs (the lanes' queues, a block-RAM memory) off long routes
        port = cfg.memory_port
        m.submodules.rdata_skid = rdata_skid = SkidBuffer(
            SkidBufferConfig(payload=port.read_layout))
        m.submodules.wdata_skid = wdata_skid = SkidBuffer(
            SkidBufferConfig(payload=port.write_layout))
        wiring.connect(m, wiring.flipped(self.mem.rdata), rdata_skid.i)
        wiring.connect(m, wdata_skid.o, wiring.flipped(self.mem.wdata))
        # and on the command path: the sequencer's issue decisions see only its registers
        m.submodules.mcmd_skid = mcmd_skid = SkidBuffer(
            SkidBufferConfig(payload=self.mem.cmd.payload.shape()))
        wiring.connect(m, mcmd_skid.o, wiring.flipped(self.mem.cmd))
        rdata = rdata_skid.o
        for k, lane in enumerate(lanes):
            # a skid buffer per lane: the selection's `ready` is a register, not the lane's
            # read queue logic across the die
            lane_rdata = SkidBuffer(SkidBufferConfig(payload=cfg.mem_data_width))
            m.submodules[f"rdata_skid{k}"] = lane_rdata
            wiring.connect(m, lane_rdata.o, lane.i_rdata)
            sel = read_route.r_rdy & (read_route.r_data == k)
            m.d.comb += [lane_rdata.i.payload.eq(rdata.payload.data),
                         lane_rdata.i.valid.eq(rdata.valid & sel)]
            with m.If(sel):
                m.d.comb += rdata.ready.eq(lane_rdata.i.ready)
        m.d.comb += read_route.r_en.eq(rdata.valid & rdata.ready & rdata.payload.last)

        self._sequencer(m, lanes, order, cmd_layout, read_route, write_status, wdata_skid.i,
                        mcmd_skid.i)
        return m

    def _sequencer(self, m, lanes, order, cmd_layout, read_route, write_status, wdata,
                   mem_cmd):
        cfg = self.cfg
        groups = cfg.groups_count
        head = data.View(cmd_layout, order.r_data)
        # the head command, copied in IDLE into registers beside the sequencer: its steps
        # then start from these, not from the queue's output register (placed near the
        # dispatch logic)
        cur = Signal(cmd_layout)
        lane_no = cur.lane
        block = cur.cmd.block

        # the block map is a block RAM with its output register: read continuously at the
        # head command's block, its entry is in `map_data` two cycles after the address
        m.submodules.block_map = block_map = PipelinedRAM(PipelinedRAMConfig(
            cfg.map_layout.size, cfg.blocks))
        map_data = data.View(cfg.map_layout, block_map.r_data)
        map_w = Signal(cfg.map_layout)
        m.d.comb += [block_map.r_en.eq(1), block_map.r_oe.eq(1),
                     block_map.w_data.eq(map_w)]
        mapped = Signal(cfg.blocks)
        # the block's `mapped` bit and block-map entry are written in the cycle after its
        # memory command, from this register and `map_w`: the wide enable decode and the
        # block RAM's data (which may sit far away) then start from registers, not from the
        # sequencer's decisions
        mark = Signal()
        alloc = Signal(cfg.mem_addr_width + 1)
        counters = Signal(cfg.counters_layout)
        m.d.comb += self.counters.eq(counters)

        wreq = Signal(cfg.wreq_layout)
        # the sequencer talks to the lane of the head command through a skid buffer per lane
        # and stream: its decisions then see only registers of the skid buffers, not the
        # lanes' queue logic (with four lanes, the lanes sit far apart on the die)
        wreqs, wdatas, jobs = [], [], []
        for k, lane in enumerate(lanes):
            wreq_skid = SkidBuffer(SkidBufferConfig(payload=cfg.wreq_layout))
            wdata_skid_k = SkidBuffer(SkidBufferConfig(payload=cfg.mem_data_width))
            job_skid = SkidBuffer(SkidBufferConfig(payload=cfg.job_layout))
            m.submodules[f"wreq_skid{k}"] = wreq_skid
            m.submodules[f"wdata_skid{k}"] = wdata_skid_k
            m.submodules[f"job_skid{k}"] = job_skid
            wiring.connect(m, lane.o_wreq, wreq_skid.i)
            wiring.connect(m, lane.o_wdata, wdata_skid_k.i)
            wiring.connect(m, job_skid.o, lane.i_job)
            wreqs.append(wreq_skid.o)
            wdatas.append(wdata_skid_k.o)
            jobs.append(job_skid.i)
        lane_wreq = Array(wreqs)[lane_no]
        lane_wdata = Array(wdatas)[lane_no]
        lane_job = Array(jobs)[lane_no]
        beats_left = Signal(range(cfg.block_beats + 1))
        fits = Signal()
        entry = Signal(cfg.map_layout)
        unmapped = Signal()
        total = Signal(range(cfg.block_bytes + 1))
        job = Signal(cfg.job_layout)
        status = Signal(cfg.status_layout)

        precision = cur.cmd.precision
        plans = [cfg.read_plan(p) for p in range(FORMATS[cfg.fmt].mant_bits + 1)]
        fetched = Array(Const(p[0], range(groups + 1)) for p in plans)[precision]
        planes = Array(Const(p[1], range(cfg.width + 1)) for p in plans)[precision]
        keep = Array(Const(p[2], range(cfg.width + 1)) for p in plans)[precision]

        m.d.comb += [block_map.r_addr.eq(block), block_map.w_addr.eq(block),
                     write_status.w_data.eq(status)]
        shift = cfg.mem_bytes.bit_length() - 1

        with m.FSM():
            with m.State("IDLE"):
                with m.If(order.r_rdy):
                    m.d.sync += cur.eq(head)
                    with m.If(head.cmd.write):
                        m.next = "WAIT_BLOCK"
                    with m.Else():
                        m.next = "MAP_READ"
            with m.State("WAIT_BLOCK"):
                m.d.comb += lane_wreq.ready.eq(1)
                with m.If(lane_wreq.valid):
                    m.d.sync += [wreq.eq(lane_wreq.payload),
                                 beats_left.eq(lane_wreq.payload.beats)]
                    m.next = "WRITE_CHECK"
            with m.State("WRITE_CHECK"):
                m.d.sync += fits.eq(alloc + wreq.beats <= cfg.memory_words)
                m.next = "WRITE_CMD"
            with m.State("WRITE_CMD"):
                m.d.comb += [mem_cmd.valid.eq(fits),
                             mem_cmd.payload.addr.eq(alloc),
                             mem_cmd.payload.length.eq(wreq.beats),
                             mem_cmd.payload.write.eq(1)]
                with m.If(~fits | mem_cmd.ready):
                    with m.If(fits):
                        m.d.sync += [map_w.addr.eq(alloc), map_w.stored.eq(wreq.stored),
                                     map_w.raw.eq(wreq.raw), mark.eq(1),
                                     alloc.eq(alloc + wreq.beats),
                                     counters.raw_written.eq(counters.raw_written
                                                             + cfg.block_bytes),
                                     counters.stored_written.eq(
                                         counters.stored_written + (wreq.beats << shift))]
                    m.d.sync += [status.block.eq(block), status.write.eq(1),
                                 status.error.eq(Mux(~fits, CAMCError.FULL,
                                                     Mux(wreq.length_error, CAMCError.LENGTH,
                                                         CAMCError.NONE))),
                                 status.raw_bytes.eq(cfg.block_bytes),
                                 status.stored_bytes.eq(Mux(fits, wreq.beats << shift, 0))]
                    m.next = "WRITE_DATA"
            with m.State("WRITE_DATA"):
                # a write that does not fit drains its words without a memory command
                m.d.comb += [wdata.payload.data.eq(lane_wdata.payload),
                             wdata.valid.eq(fits & lane_wdata.valid),
                             lane_wdata.ready.eq(Mux(fits, wdata.ready, 1))]
                with m.If(lane_wdata.valid & lane_wdata.ready):
                    m.d.sync += beats_left.eq(beats_left - 1)
                    with m.If(beats_left == 1):
                        m.next = "WRITE_STATUS"
            with m.State("WRITE_STATUS"):
                m.d.comb += write_status.w_en.eq(1)
                with m.If(write_status.w_rdy):
                    m.next = "POP"
            with m.State("MAP_READ"):
                m.next = "MAP_WAIT"
            with m.State("MAP_WAIT"):
                m.next = "MAP_DATA"
            with m.State("MAP_DATA"):
                # each step below starts from registers: the map entry and the `mapped` bit
                # (a wide multiplexer) here, the group sum next, the job's byte and word
                # counts last
                m.d.sync += [entry.eq(map_data), unmapped.eq(~mapped.bit_select(block, 1))]
                m.next = "PLAN"
            with m.State("PLAN"):
                m.d.sync += [job.block.eq(block), job.stored.eq(entry.stored),
                             job.raw.eq(entry.raw), job.fetched.eq(fetched),
                             job.planes.eq(planes), job.keep.eq(keep),
                             job.unmapped.eq(unmapped),
                             total.eq(sum(Mux(g < fetched, entry.stored[g], 0)
                                          for g in range(groups)))]
                m.next = "PLAN_WORDS"
            with m.State("PLAN_WORDS"):
                m.d.sync += [job.bytes.eq(Mux(job.unmapped, 0, total)),
                             job.beats.eq(Mux(job.unmapped, 0,
                                              (total + cfg.mem_bytes - 1) >> shift))]
                m.next = "READ_JOB"
            with m.State("READ_JOB"):
                m.d.comb += [lane_job.valid.eq(1), lane_job.payload.eq(job)]
                with m.If(lane_job.ready):
                    with m.If(job.unmapped):
                        m.next = "POP"
                    with m.Else():
                        m.next = "READ_CMD"
            with m.State("READ_CMD"):
                m.d.comb += [mem_cmd.valid.eq(read_route.w_rdy),
                             mem_cmd.payload.addr.eq(entry.addr),
                             mem_cmd.payload.length.eq(job.beats),
                             read_route.w_data.eq(lane_no)]
                with m.If(mem_cmd.valid & mem_cmd.ready):
                    m.d.comb += read_route.w_en.eq(1)
                    m.d.sync += [counters.raw_read.eq(counters.raw_read + cfg.block_bytes),
                                 counters.stored_read.eq(counters.stored_read
                                                         + (job.beats << shift))]
                    m.next = "POP"
            with m.State("POP"):
                # the command at the head is done: its pop comes from the state register
                # alone, not from the decisions that ended it
                m.d.comb += order.r_en.eq(1)
                m.next = "IDLE"
        # (`block` is still the head command's: a write leaves WRITE_CMD for WRITE_DATA)
        m.d.comb += block_map.w_en.eq(mark)
        with m.If(mark):
            m.d.sync += [mapped.bit_select(block, 1).eq(1), mark.eq(0)]


class CAMCSystem(wiring.Component):
    """:class:`CAMCController` with a :class:`BlockRAMMemory` of ``memory_words`` words
    behind its memory port: the ``camc`` design that ``make bitstream DESIGN=camc`` builds.

    Members
    -------
    i_cmd, i, o, o_status, counters
        As :class:`CAMCController`.
    """

    def __init__(self, cfg: CAMCConfig):
        self.cfg = cfg
        super().__init__({
            "i_cmd": In(stream.Signature(cfg.command_layout)),
            "i": In(stream.Signature(cfg.value_layout)),
            "o": Out(stream.Signature(cfg.value_layout)),
            "o_status": Out(stream.Signature(cfg.status_layout)),
            "counters": Out(cfg.counters_layout),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        m.submodules.controller = ctrl = CAMCController(cfg)
        port = cfg.memory_port
        depth = 1 << (cfg.memory_words - 1).bit_length()
        m.submodules.memory = mem = BlockRAMMemory(BlockRAMConfig(
            port.addr_width, port.data_width, port.length_width, depth))
        wiring.connect(m, ctrl.mem, mem.mem)
        for name in ("i_cmd", "i"):
            wiring.connect(m, wiring.flipped(getattr(self, name)), getattr(ctrl, name))
        for name in ("o", "o_status"):
            wiring.connect(m, getattr(ctrl, name), wiring.flipped(getattr(self, name)))
        m.d.comb += self.counters.eq(ctrl.counters)
        return m
