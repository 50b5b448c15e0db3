"""Streaming LZ4 *block* decompressor: parser, command queue, banked history buffer.

The format and the error cases are those of :func:`golden.camc.lz4.lz4_decompress_block`
(read its module docstring): the hardware decodes every block the golden decoder decodes to
the same bytes, and flags the same :data:`golden.camc.lz4.LZ4_ERRORS` kind on every block it
rejects, with ``max_output = max_block_bytes``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from ..common.queue import Queue, QueueConfig
from ..common.validate import check_choice, check_power_of_two, packet_layout

__all__ = ["LZ4Error", "LZ4DecompressorConfig", "LZ4Decompressor", "PRESETS",
           "ERROR_NAMES", "measure_throughput"]

MINMATCH = 4
# Literal and match lengths saturate at 2**LENGTH_BITS - 1 bytes; only a literal run that long
# (which always overflows the output) can tell `literal_past_input` from `output_overflow`, so
# the verdict is exact for compressed blocks shorter than 16 MiB.
LENGTH_BITS = 24


class LZ4Error(enum.Enum, shape=3):
    """Verdict of a block: ``NONE`` or one of the golden ``LZ4_ERRORS`` kinds, in order."""

    NONE = 0
    TRUNCATED = 1
    LITERAL_PAST_INPUT = 2
    OUTPUT_OVERFLOW = 3
    OFFSET_ZERO = 4
    OFFSET_BEFORE_START = 5


#: ``LZ4Error`` value -> golden ``LZ4FormatError.kind`` (``None`` for a good block).
ERROR_NAMES = {0: None, 1: "truncated", 2: "literal_past_input", 3: "output_overflow",
               4: "offset_zero", 5: "offset_before_start"}


class _Command(enum.Enum, shape=2):
    LITERAL = 0
    MATCH = 1
    CLOSE = 2   # an empty beat that carries `last` (empty block, or a block cut by an error)


@dataclass(frozen=True)
class LZ4DecompressorConfig:
    """Configuration of :class:`LZ4Decompressor`.

    Parameters
    ----------
    max_block_bytes : int
        Largest decompressed block (the golden ``max_output``), and the size of the history
        buffer. A power of two from 16 to 65536.
    output_bytes_per_cycle : int
        Bytes a match copy moves per cycle, and lanes of the ``o`` beat: 1, 2 or 4. The
        history buffer has this many byte-wide banks.
    command_depth : int
        Entries of the queue between the parser and the copier; it lets the parser read the
        next token, literals and offset while a long match is being copied.
    """

    max_block_bytes: int = 4096
    output_bytes_per_cycle: int = 4
    command_depth: int = 4

    def __post_init__(self):
        check_power_of_two("max_block_bytes", self.max_block_bytes, min=16, max=65536)
        check_choice("output_bytes_per_cycle", self.output_bytes_per_cycle, (1, 2, 4))
        check_power_of_two("command_depth", self.command_depth, min=2, max=64)

    @property
    def input_layout(self):
        """``{data: 8, first, last}``: one compressed byte per beat; ``first`` is ignored."""
        return packet_layout(8)

    @property
    def output_layout(self):
        """``{data: 8*N, count, first, last}``: lane ``k`` in bits ``[8k, 8k+8)``, lanes at
        and above ``count`` are zero."""
        n = self.output_bytes_per_cycle
        return data.StructLayout({"data": 8 * n, "count": range(n + 1), "first": 1, "last": 1})

    @property
    def status_layout(self):
        """``{error, kind, length}``: one entry per compressed block."""
        return data.StructLayout({"error": 1, "kind": LZ4Error,
                                  "length": range(self.max_block_bytes + 1)})


PRESETS = {
    "default": LZ4DecompressorConfig(),
    "byte": LZ4DecompressorConfig(output_bytes_per_cycle=1),
    "small": LZ4DecompressorConfig(max_block_bytes=1024, output_bytes_per_cycle=2),
    "window64k": dataclasses.replace(LZ4DecompressorConfig(), max_block_bytes=65536),
}


class LZ4Decompressor(wiring.Component):
    """Decompresses a stream of LZ4 blocks (no size prefix), one block per input packet.

    A parser FSM reads one compressed byte per cycle (token, length extensions, literals,
    offset) and checks each field as soon as it is read, in the golden decoder's order. It
    sends literal, match and close commands through a short queue to a copier, which writes
    every produced byte into a history buffer of ``max_block_bytes`` bytes held in
    ``output_bytes_per_cycle`` byte-wide banks (``lib.memory.Memory``; byte address ``a`` in
    bank ``a mod N``) and sends it on ``o``. A match beat reads ``N`` consecutive bytes at
    ``position - offset`` from all banks at once; the bytes of the beat before are forwarded
    by the read ports' transparency, and for an offset below ``N`` output lane ``k`` takes
    source lane ``k mod offset`` (the repeating pattern), so overlapping copies run at full
    rate.

    After an error the parser reports it on ``o_status``, ends the output packet with an
    empty ``last`` beat and drops the rest of the block's input up to its ``last``; the next
    block starts clean (offsets are checked against this block's bytes only).

    Parameters
    ----------
    cfg : LZ4DecompressorConfig

    Members
    -------
    i : In(stream.Signature(cfg.input_layout))
        Compressed bytes, ``{data: 8, first, last}``, ``last`` on the final byte of a block.
    o : Out(stream.Signature(cfg.output_layout))
        Decompressed bytes, ``{data: 8*N, count, first, last}``. Every block gives one packet:
        ``first`` on its first beat, ``last`` on its final beat. Literal beats carry 1 byte,
        match beats up to ``N``; a beat with ``count = 0`` only carries ``last`` (empty block,
        or the end of a block cut short by an error).
    o_status : Out(stream.Signature(cfg.status_layout))
        One entry per block: ``error``, ``kind`` (:class:`LZ4Error`, the golden kind) and
        ``length`` (bytes sent on ``o`` for the block). The parser does not start the next
        block before this entry is taken.

    Latency
    -------
    A literal byte leaves on ``o`` 2 cycles after it is taken on ``i``. ``o_status`` is
    valid 1 cycle after the transfer of the byte that decides the verdict: the field found
    bad, the final byte of a good block, or, for ``output_overflow`` on a literal run, the
    run's final byte (the golden decoder reports ``literal_past_input`` first, so the run
    must be seen to end in the input).

    Throughput
    ----------
    One compressed byte per cycle in; up to ``N`` output bytes per cycle during a match.
    Token and offset bytes of the next sequence are read while a match is copied.
    """

    def __init__(self, cfg: LZ4DecompressorConfig):
        self.cfg = cfg
        super().__init__({
            "i": In(stream.Signature(cfg.input_layout)),
            "o": Out(stream.Signature(cfg.output_layout)),
            "o_status": Out(stream.Signature(cfg.status_layout)),
        })

    def _command_layout(self):
        pos = range(self.cfg.max_block_bytes + 1)
        return data.StructLayout({"kind": _Command, "byte": 8, "offset": pos, "length": pos,
                                  "first": 1, "last": 1})

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        m.submodules.commands = commands = Queue(QueueConfig(
            depth=cfg.command_depth, buffered=False, payload=self._command_layout()))
        self._elaborate_parser(m, commands.i)
        self._elaborate_copier(m, commands.o)
        return m

    # --- parser: compressed bytes -> commands and verdicts ----------------------------------

    def _elaborate_parser(self, m, cmd):
        cfg = self.cfg
        max_out = cfg.max_block_bytes
        byte = self.i.payload.data
        last = self.i.payload.last
        take = self.i.valid & self.i.ready

        pos = Signal(range(max_out + 1))          # bytes this block has produced so far
        room = Signal(range(max_out + 1))
        m.d.comb += room.eq(max_out - pos)
        first_pending = Signal(init=1)
        ended = Signal()                           # the block's `last` byte has been taken
        token = Signal(8)
        length = Signal(LENGTH_BITS)               # length being accumulated / literals left
        overflow = Signal()                        # literal run too long for the output
        offset_lo = Signal(8)
        offset = Signal(16)
        saved_offset = Signal(16)                  # kept from OFFSET_HI for MATCH_LENGTH

        def saturating(total):
            return Mux(total[LENGTH_BITS:].any(), (1 << LENGTH_BITS) - 1, total[:LENGTH_BITS])

        status = self.o_status

        def report(kind):
            m.d.sync += [
                status.valid.eq(1),
                status.payload.error.eq(kind != LZ4Error.NONE),
                status.payload.kind.eq(kind),
                status.payload.length.eq(pos),
            ]

        def fail(kind):
            report(kind)
            m.next = "CLOSE"

        def new_block():
            m.d.sync += [pos.eq(0), first_pending.eq(1), ended.eq(0)]

        with m.If(status.ready):
            m.d.sync += status.valid.eq(0)

        with m.If(take):
            m.d.sync += ended.eq(last)

        def start_literals(lit_len):
            # `lit_len > 0`, more input follows the length fields
            m.d.sync += [length.eq(lit_len), overflow.eq(lit_len > room)]
            m.next = "LITERAL"

        def push_match(match_len):
            # `match_len` is the full length (including MINMATCH), checked against `room`
            with m.If(match_len > room):
                fail(LZ4Error.OUTPUT_OVERFLOW)
            with m.Elif(last):
                fail(LZ4Error.TRUNCATED)       # a token is due after the match
            with m.Else():
                m.d.comb += [
                    cmd.valid.eq(1),
                    cmd.payload.kind.eq(_Command.MATCH),
                    cmd.payload.offset.eq(offset),
                    cmd.payload.length.eq(match_len),
                    cmd.payload.first.eq(first_pending),
                ]
                m.d.sync += [pos.eq(pos + match_len), first_pending.eq(0)]
                m.next = "TOKEN"

        with m.FSM():
            with m.State("TOKEN"):
                m.d.comb += self.i.ready.eq(~status.valid)
                lit_nib = byte[4:]
                with m.If(take):
                    m.d.sync += token.eq(byte)
                    with m.If(last):
                        with m.If(lit_nib == 0):
                            report(LZ4Error.NONE)
                            m.next = "CLOSE"
                        with m.Elif(lit_nib == 15):
                            fail(LZ4Error.TRUNCATED)
                        with m.Else():
                            fail(LZ4Error.LITERAL_PAST_INPUT)
                    with m.Elif(lit_nib == 15):
                        m.d.sync += length.eq(15)
                        m.next = "LITERAL_LENGTH"
                    with m.Elif(lit_nib == 0):
                        m.next = "OFFSET_LO"
                    with m.Else():
                        start_literals(lit_nib)

            with m.State("LITERAL_LENGTH"):
                m.d.comb += self.i.ready.eq(1)
                total = saturating(length + byte)
                with m.If(take):
                    with m.If(byte == 255):
                        m.d.sync += length.eq(total)
                        with m.If(last):
                            fail(LZ4Error.TRUNCATED)
                    with m.Elif(last):
                        fail(LZ4Error.LITERAL_PAST_INPUT)
                    with m.Else():
                        start_literals(total)

            with m.State("LITERAL"):
                final = length == 1
                with m.If(overflow):
                    # Consume the run without producing it: its end decides the error kind.
                    m.d.comb += self.i.ready.eq(1)
                    with m.If(take):
                        m.d.sync += length.eq(length - 1)
                        with m.If(final):
                            fail(LZ4Error.OUTPUT_OVERFLOW)
                        with m.Elif(last):
                            fail(LZ4Error.LITERAL_PAST_INPUT)
                with m.Else():
                    m.d.comb += self.i.ready.eq(cmd.ready)
                    with m.If(take):
                        with m.If(last & ~final):
                            fail(LZ4Error.LITERAL_PAST_INPUT)
                        with m.Else():
                            m.d.comb += [
                                cmd.valid.eq(1),
                                cmd.payload.kind.eq(_Command.LITERAL),
                                cmd.payload.byte.eq(byte),
                                cmd.payload.first.eq(first_pending),
                                cmd.payload.last.eq(last),
                            ]
                            m.d.sync += [pos.eq(pos + 1), first_pending.eq(0),
                                         length.eq(length - 1)]
                            with m.If(last):
                                m.d.sync += [
                                    status.valid.eq(1),
                                    status.payload.error.eq(0),
                                    status.payload.kind.eq(LZ4Error.NONE),
                                    status.payload.length.eq(pos + 1),
                                ]
                                new_block()
                                m.next = "TOKEN"
                            with m.Elif(final):
                                m.next = "OFFSET_LO"

            with m.State("OFFSET_LO"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(take):
                    m.d.sync += offset_lo.eq(byte)
                    with m.If(last):
                        fail(LZ4Error.TRUNCATED)
                    with m.Else():
                        m.next = "OFFSET_HI"

            with m.State("OFFSET_HI"):
                m.d.comb += self.i.ready.eq(cmd.ready)
                value = Cat(offset_lo, byte)
                m.d.comb += offset.eq(value)
                with m.If(take):
                    m.d.sync += saved_offset.eq(value)
                    with m.If(value == 0):
                        fail(LZ4Error.OFFSET_ZERO)
                    with m.Elif(value > pos):
                        fail(LZ4Error.OFFSET_BEFORE_START)
                    with m.Elif(token[:4] == 15):
                        m.d.sync += length.eq(15)
                        with m.If(last):
                            fail(LZ4Error.TRUNCATED)
                        with m.Else():
                            m.next = "MATCH_LENGTH"
                    with m.Else():
                        push_match(token[:4] + MINMATCH)

            with m.State("MATCH_LENGTH"):
                m.d.comb += [self.i.ready.eq(cmd.ready), offset.eq(saved_offset)]
                total = saturating(length + byte)
                with m.If(take):
                    with m.If(byte == 255):
                        m.d.sync += length.eq(total)
                        with m.If(last):
                            fail(LZ4Error.TRUNCATED)
                    with m.Else():
                        push_match(saturating(total + MINMATCH))

            with m.State("CLOSE"):
                # end the output packet; then drop the rest of the block's input
                m.d.comb += [
                    cmd.valid.eq(1),
                    cmd.payload.kind.eq(_Command.CLOSE),
                    cmd.payload.first.eq(first_pending),
                    cmd.payload.last.eq(1),
                ]
                with m.If(cmd.ready):
                    with m.If(ended):
                        new_block()
                        m.next = "TOKEN"
                    with m.Else():
                        m.next = "DISCARD"

            with m.State("DISCARD"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(take & last):
                    new_block()
                    m.next = "TOKEN"

    # --- copier: commands -> history buffer and output beats --------------------------------

    def _elaborate_copier(self, m, cmd):
        cfg = self.cfg
        n = cfg.output_bytes_per_cycle
        lane_bits = max(1, exact_log2(n))
        lane_mask = n - 1
        addr_bits = exact_log2(cfg.max_block_bytes)

        banks = []
        for b in range(n):
            mem = Memory(shape=8, depth=cfg.max_block_bytes // n, init=[])
            m.submodules[f"bank{b}"] = mem
            wp = mem.write_port()
            rp = mem.read_port(transparent_for=(wp,))
            banks.append((wp, rp))

        # stage A: choose the beat (from the current match, or from the queue head)
        busy = Signal()                             # a match has beats left
        pos = Signal(addr_bits)                     # write address of the next beat
        src = Signal(addr_bits)                     # read address of the next match beat
        remaining = Signal(range(cfg.max_block_bytes + 1))
        match_offset = Signal(range(cfg.max_block_bytes + 1))

        o = self.o
        advance = Signal()
        m.d.comb += advance.eq(~o.valid | o.ready)

        head = cmd.payload
        kind = Signal(_Command)
        beat_src = Signal(addr_bits)
        beat_len = Signal(range(cfg.max_block_bytes + 1))
        beat_offset = Signal(range(cfg.max_block_bytes + 1))
        beat_first = Signal()
        beat_last = Signal()
        issue = Signal()
        with m.If(busy):
            m.d.comb += [
                kind.eq(_Command.MATCH), beat_src.eq(src), beat_len.eq(remaining),
                beat_offset.eq(match_offset), issue.eq(advance),
            ]
        with m.Else():
            m.d.comb += [
                kind.eq(head.kind), beat_src.eq(pos - head.offset), beat_len.eq(head.length),
                beat_offset.eq(head.offset), beat_first.eq(head.first),
                beat_last.eq(head.last), issue.eq(advance & cmd.valid),
                cmd.ready.eq(advance),
            ]

        count = Signal(range(n + 1))
        with m.Switch(kind):
            with m.Case(_Command.LITERAL):
                m.d.comb += count.eq(1)
            with m.Case(_Command.MATCH):
                m.d.comb += count.eq(Mux(beat_len > n, n, beat_len))
            with m.Default():
                m.d.comb += count.eq(0)

        with m.If(issue):
            with m.If((kind == _Command.MATCH) & (beat_len > n)):
                m.d.sync += [
                    busy.eq(1), remaining.eq(beat_len - n), src.eq(beat_src + n),
                    match_offset.eq(beat_offset),
                ]
            with m.Else():
                m.d.sync += busy.eq(0)
            m.d.sync += pos.eq(Mux(beat_last, 0, pos + count))

        # per-lane source bank: lane k reads source byte k (k mod offset when offset < n)
        source_lane = []
        for k in range(n):
            expr = Const(k, lane_bits)
            for v in range(1, n):
                expr = Mux(beat_offset == v, k % v, expr)
            source_lane.append(expr)

        # stage B: the beat on `o`, built from the banks' read data
        b_literal = Signal()
        b_first = Signal()
        b_last = Signal()
        b_byte = Signal(8)
        b_count = Signal(range(n + 1))
        b_read_bank = [Signal(lane_bits, name=f"b_read_bank{k}") for k in range(n)]
        b_write_lane = [Signal(lane_bits, name=f"b_write_lane{b}") for b in range(n)]
        b_write_row = [Signal(max(1, addr_bits - exact_log2(n)), name=f"b_write_row{b}")
                       for b in range(n)]
        b_write_en = [Signal(name=f"b_write_en{b}") for b in range(n)]

        with m.If(advance):
            m.d.sync += [
                o.valid.eq(issue),
                b_first.eq(beat_first),
                b_last.eq(beat_last),
                b_literal.eq(kind == _Command.LITERAL),
                b_byte.eq(head.byte),
            ]
            m.d.sync += b_count.eq(count)
            for k in range(n):
                m.d.sync += b_read_bank[k].eq((beat_src + source_lane[k]) & lane_mask)
        for b, (_, rp) in enumerate(banks):
            # bank b holds output lane (b - pos) mod n and source lane (b - src) mod n
            write_lane = Signal(lane_bits, name=f"write_lane{b}")
            read_lane = Signal(lane_bits, name=f"read_lane{b}")
            m.d.comb += [write_lane.eq((b - pos) & lane_mask),
                         read_lane.eq((b - beat_src) & lane_mask)]
            with m.If(advance):
                m.d.sync += [
                    b_write_lane[b].eq(write_lane),
                    b_write_row[b].eq((pos + write_lane) >> exact_log2(n)),
                    b_write_en[b].eq(write_lane < count),
                ]
                m.d.comb += rp.addr.eq((beat_src + read_lane) >> exact_log2(n))
        for _, rp in banks:
            m.d.comb += rp.en.eq(advance)

        read_data = Array(rp.data for _, rp in banks)
        lanes = []
        for k in range(n):
            lane = Signal(8, name=f"lane{k}")
            with m.If(k >= b_count):
                m.d.comb += lane.eq(0)
            with m.Elif(b_literal):
                m.d.comb += lane.eq(b_byte if k == 0 else 0)
            with m.Else():
                m.d.comb += lane.eq(read_data[b_read_bank[k]])
            lanes.append(lane)
        m.d.comb += [
            o.payload.data.eq(Cat(*lanes)),
            o.payload.count.eq(b_count),
            o.payload.first.eq(b_first),
            o.payload.last.eq(b_last),
        ]

        lane_array = Array(lanes)
        transfer = o.valid & o.ready
        for b, (wp, _) in enumerate(banks):
            m.d.comb += [
                wp.addr.eq(b_write_row[b]),
                wp.data.eq(lane_array[b_write_lane[b]]),
                wp.en.eq(transfer & b_write_en[b]),
            ]


def measure_throughput(cfg: LZ4DecompressorConfig, blocks, *, timeout: int = 200_000) -> dict:
    """Decompress ``blocks`` (compressed LZ4 blocks, back to back) in ``amaranth.sim`` with
    no stalls and no back-pressure; returns ``{"cycles", "input_bytes", "output_bytes",
    "bytes_per_cycle", "cycles_per_output_byte", "input_bytes_per_cycle"}``, counting from
    the first input transfer to the last output beat."""
    from sim.stream import simulate

    dut = LZ4Decompressor(cfg)
    beats = []
    for block in blocks:
        block = bytes(block)
        beats += [{"data": b, "first": int(j == 0), "last": int(j == len(block) - 1)}
                  for j, b in enumerate(block)]
    result = {}

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.o_status.ready, 1)
        sent = cycle = start = end = produced = packets = 0
        while packets < len(blocks):
            if sent < len(beats):
                ctx.set(dut.i.payload, beats[sent])
                ctx.set(dut.i.valid, 1)
            else:
                ctx.set(dut.i.valid, 0)
            _, _, i_ready, o_valid, o_payload = await ctx.tick().sample(
                dut.i.ready, dut.o.valid, dut.o.payload)
            cycle += 1
            if sent < len(beats) and i_ready:
                if sent == 0:
                    start = cycle
                sent += 1
            if o_valid:
                produced += int(o_payload.count)
                packets += int(o_payload.last)
                end = cycle
            if cycle > timeout:
                raise AssertionError(f"no end after {timeout} cycles")
        cycles = end - start + 1
        result.update(cycles=cycles, input_bytes=len(beats), output_bytes=produced,
                      bytes_per_cycle=produced / cycles,
                      cycles_per_output_byte=cycles / max(1, produced),
                      input_bytes_per_cycle=len(beats) / cycles)

    simulate(dut, bench)
    return result
