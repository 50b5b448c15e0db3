"""Streaming LZ4 *block* decompressor: parser, command queue, banked history buffer.

The format and the error cases are those of :func:`golden.camc.lz4.lz4_decompress_block`
(read its module docstring): the hardware decodes every block the golden decoder decodes to
the same bytes, and flags the same :data:`golden.camc.lz4.LZ4_ERRORS` kind on every block it
rejects, with ``max_output = max_block_bytes``.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from dataclasses import dataclass

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from ..common.bram import PipelinedRAM, PipelinedRAMConfig
from ..common.queue import Queue, QueueConfig
from ..common.skid_buffer import SkidBuffer, SkidBufferConfig
from ..common.validate import check_choice, check_power_of_two, packet_layout
from .countdown import Countdown

__all__ = ["LZ4Error", "LZ4DecompressorConfig", "LZ4Decompressor", "PRESETS",
           "ERROR_NAMES", "LITERAL_LATENCY", "STATUS_LATENCY"]

MINMATCH = 4
# Literal and match lengths saturate at 2**LENGTH_BITS - 1 bytes; only a literal run that long
# (which always overflows the output) can tell `literal_past_input` from `output_overflow`, so
# the verdict is exact for compressed blocks shorter than 16 MiB.
LENGTH_BITS = 24

#: Cycles from the transfer of a literal byte on ``i`` to its beat on ``o`` (no stalls), for
#: byte beats; wide beats add the input window's cycle (``LZ4DecompressorConfig.literal_latency``).
LITERAL_LATENCY = 6
#: Cycles from the parser's read of the byte that decides a block's verdict to
#: ``o_status.valid``; for byte beats, from that byte's transfer on ``i``.
STATUS_LATENCY = 1


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
        next token, literals and offset while a long match is being copied. The parser pushes
        only while fewer than ``command_depth - 1`` entries were queued the cycle before (a
        register, for timing), so 2 halves the literal rate; 4 keeps one beat per cycle.
    input_bytes_per_cycle : int
        Bytes of an ``i`` beat, from 1 to ``output_bytes_per_cycle``. The parser reads token,
        length and offset bytes one per cycle, and up to this many literal bytes per cycle
        from an input window of ``2I`` bytes. 1 keeps ``i`` a plain byte stream, read with
        no window.
    """

    max_block_bytes: int = 4096
    output_bytes_per_cycle: int = 4
    command_depth: int = 4
    input_bytes_per_cycle: int = 1

    def __post_init__(self):
        check_power_of_two("max_block_bytes", self.max_block_bytes, min=16, max=65536)
        check_choice("output_bytes_per_cycle", self.output_bytes_per_cycle, (1, 2, 4))
        check_power_of_two("command_depth", self.command_depth, min=2, max=64)
        n = self.output_bytes_per_cycle
        if (not isinstance(self.input_bytes_per_cycle, int)
                or not 1 <= self.input_bytes_per_cycle <= n):
            raise ValueError(f"input_bytes_per_cycle must be an integer from 1 to "
                             f"output_bytes_per_cycle ({n}), not {self.input_bytes_per_cycle!r}")

    @property
    def literal_latency(self):
        """Cycles from the transfer of a literal byte on ``i`` to its beat on ``o`` when the
        parser reads it as soon as it can: :data:`LITERAL_LATENCY`, plus one for the input
        window when ``input_bytes_per_cycle > 1``."""
        return LITERAL_LATENCY + (self.input_bytes_per_cycle > 1)

    @property
    def status_bound(self):
        """Most cycles from the transfer of the byte that decides a block's verdict to
        ``o_status.valid`` while the parser does not wait (on a full command queue, or on a
        status not yet taken): :data:`STATUS_LATENCY` when ``input_bytes_per_cycle`` is 1;
        with ``I > 1`` the byte may wait behind ``2I - 1`` bytes in the input window, so
        ``STATUS_LATENCY + 2I``."""
        i = self.input_bytes_per_cycle
        return STATUS_LATENCY if i == 1 else STATUS_LATENCY + 2 * i

    @property
    def input_layout(self):
        """``{data: 8, first, last}``: one compressed byte per beat (``input_bytes_per_cycle``
        1), or ``{data: 8*I, count, first, last}``: ``count`` bytes (1 to ``I``) in lanes 0
        up (the lanes above are ignored), ``last`` on the beat that holds a block's final
        byte. ``first`` is ignored."""
        i = self.input_bytes_per_cycle
        if i == 1:
            return packet_layout(8)
        return data.StructLayout({"data": 8 * i, "count": range(1, i + 1), "first": 1,
                                  "last": 1})

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
    "wide": LZ4DecompressorConfig(input_bytes_per_cycle=4),
    "small": LZ4DecompressorConfig(max_block_bytes=1024, output_bytes_per_cycle=2),
    "window64k": dataclasses.replace(LZ4DecompressorConfig(), max_block_bytes=65536),
}


class LZ4Decompressor(wiring.Component):
    """Decompresses a stream of LZ4 blocks (no size prefix), one block per input packet.

    A parser FSM reads the token, length extensions and offset one byte per cycle, and a literal
    run up to ``I = input_bytes_per_cycle`` bytes per cycle, and checks each field as soon as it
    is read, in the golden decoder's order. It sends literal (1 to ``I`` bytes), match and close
    commands through a short queue to a copier, which writes every produced byte into a history
    buffer of ``max_block_bytes`` bytes held in ``output_bytes_per_cycle`` byte-wide banks
    (``lib.memory.Memory``; byte address ``a`` in bank ``a mod N``) and sends it on ``o``. A
    match beat reads ``N`` consecutive bytes at ``position - offset`` from all banks at once;
    for an offset below ``N`` output lane ``k`` takes source lane ``k mod offset`` (the
    repeating pattern). Bytes of the three beats before are not read from the buffer but
    forwarded (the read ports' transparency, and the registers of the two beats just built), so
    overlapping copies run at full rate.

    For timing (>= 100 MHz on ECP5 speed 6 at ``N = 4``) no cycle adds a byte to a long
    length: the parser keeps ``room = max_block_bytes - produced`` and, during a length
    extension, ``room - length`` and a sticky "past room" flag, so the output bound is an 8-bit
    compare against the final extension byte, while ``length`` itself (which the
    ``literal_past_input`` check needs in full) only feeds registers. The parser also works
    out what the copier needs of a match offset (source address, lane pattern, forwarding
    distances). The copier is five stages: H holds the command queue's head (and its source's
    next history row), A picks the beat and the bank addresses, B reads
    the banks, R holds the banks' read data in flip-flops (the block RAM's clock-to-out is
    5.8 ns and the banks may be placed far from the copier, so nothing else follows them), C
    registers the output lanes (then written back to the history buffer). Bytes of the two
    beats in B and R are forwarded from C and from the beat C held before.

    With ``I > 1`` the parser reads from an input window: up to ``2I`` bytes in registers,
    which takes a beat (``i.ready`` is a register) while it holds at most ``I`` bytes and no
    block's final byte, and drops the bytes the parser read each cycle. What the parser
    needs of it (the byte at its front, how many bytes may be read up to the block's end,
    whether they end the block) is registered, so no byte select sits in front of the
    parser's checks and ``i.ready`` depends on nothing the parser decides this cycle. With
    ``I = 1`` the parser reads ``i`` itself and takes each byte as it reads it.

    After an error the parser reports it on ``o_status`` (bytes decoded before the bad field
    are out already; of a literal run that ends past the input, the bytes the input holds),
    ends the output packet with an empty ``last`` beat and drops the rest of the block's
    input up to its ``last``; the next block starts clean (offsets are checked against this
    block's bytes only).

    Parameters
    ----------
    cfg : LZ4DecompressorConfig

    Members
    -------
    i : In(stream.Signature(cfg.input_layout))
        Compressed bytes, ``{data: 8, first, last}`` (``I = 1``) or ``{data: 8*I, count, first,
        last}`` (1 to ``I`` bytes per beat, from lane 0), ``last`` on the beat that holds the
        final byte of a block; lanes at and above ``count`` are ignored. With ``I = 1`` a
        byte is taken in the cycle it is read; with ``I > 1`` beats go into the input window
        ahead of the parser.
    o : Out(stream.Signature(cfg.output_layout))
        Decompressed bytes, ``{data: 8*N, count, first, last}``. Every block gives one packet:
        ``first`` on its first beat, ``last`` on its final beat. Literal beats carry 1 to
        ``I`` bytes, match beats up to ``N``; a beat with ``count = 0`` only carries ``last``
        (empty block, or the end of a block cut short by an error).
    o_status : Out(stream.Signature(cfg.status_layout))
        One entry per block: ``error``, ``kind`` (:class:`LZ4Error`, the golden kind) and
        ``length`` (bytes sent on ``o`` for the block). The parser does not start the next
        block before this entry is taken.

    Latency
    -------
    A literal byte leaves on ``o`` :data:`LITERAL_LATENCY` (6) cycles after it is taken on
    ``i`` at ``I = 1``: parser, copier stages H, A, B, R, C, skid buffer on ``o``; at
    ``I > 1`` the input window adds a cycle (``cfg.literal_latency``, 7) when the parser
    reads the byte the cycle after it arrives. ``o_status`` is valid :data:`STATUS_LATENCY`
    (1) cycle after the parser reads the byte that decides the verdict (the parser's checks
    stay within that cycle): the field found bad, the final byte of a good block, or, for
    ``output_overflow`` on a literal run, the run's final byte (the golden decoder reports
    ``literal_past_input`` first, so the run must be seen to end in the input). At ``I = 1``
    that is the byte's transfer on ``i``. At ``I > 1`` the byte waits behind at most
    ``2I - 1`` bytes in the window, so the verdict is valid at most ``cfg.status_bound``
    (``STATUS_LATENCY + 2I``) cycles after the byte's transfer while the parser does not
    wait (on a full command queue, or on a status not yet taken), and always before the
    next block's first byte is taken.

    Throughput
    ----------
    One token, length or offset byte per cycle, and up to ``I`` literal bytes per cycle (the
    window holds at least ``I`` bytes while ``i`` keeps up, except at a block's end); up to
    ``N`` output bytes per cycle during a match. A block boundary costs a cycle at ``I > 1``
    (the window takes the next block's first beat once the last one's final byte is read).
    Token and offset bytes of the next sequence are read while a match is copied. On
    bit-plane groups of MiniLM BF16 weights (``N = 4``): 1.49 output bytes per cycle at
    ``I = 1``, 2.48 at ``I = 2`` and 3.73 at ``I = 4`` (docs/results.md).
    """

    def __init__(self, cfg: LZ4DecompressorConfig):
        self.cfg = cfg
        super().__init__({
            "i": In(stream.Signature(cfg.input_layout)),
            "o": Out(stream.Signature(cfg.output_layout)),
            "o_status": Out(stream.Signature(cfg.status_layout)),
        })

    def _reach_layout(self):
        # what the copier needs of a match offset, worked out by the parser: `source[k]`, the
        # source byte of output lane k (k, or k mod offset for an offset below N);
        # `distance[k] = offset - source[k]`, valid when `near` (offset < 4N), the only case
        # where the source byte may still be in the copier's pipeline (stages B, R and C hold
        # up to 3N bytes, and lane k's distance is offset - k)
        n = self.cfg.output_bytes_per_cycle
        lane_bits = max(1, exact_log2(n))
        return data.StructLayout({"near": 1, "source": data.ArrayLayout(lane_bits, n),
                                  "distance": data.ArrayLayout(lane_bits + 2, n)})

    def _command_layout(self):
        pos = range(self.cfg.max_block_bytes + 1)
        # `src`: the match's first source byte, `position - offset` modulo the buffer size
        # `long`: a match longer than one beat (`length > N`)
        # a literal command carries `length` (1 to I) bytes in `bytes`, from lane 0 up
        return data.StructLayout({"kind": _Command, "bytes": 8 * self.cfg.input_bytes_per_cycle,
                                  "reach": self._reach_layout(),
                                  "length": pos, "long": 1,
                                  "src": exact_log2(self.cfg.max_block_bytes),
                                  "first": 1, "last": 1})

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        # eager writes: the parser's push (its checks' verdict) reaches only the queue's
        # pointer and level, not the write enables of all its LUT RAM
        m.submodules.commands = commands = Queue(QueueConfig(
            depth=cfg.command_depth, buffered=False, eager_write=True,
            payload=self._command_layout()))
        # `o` leaves through a skid buffer, so `o.ready` does not fan out into the copier
        self._out = stream.Signature(cfg.output_layout).create()
        m.submodules.out_buffer = out_buffer = SkidBuffer(
            SkidBufferConfig(payload=cfg.output_layout))
        wiring.connect(m, out_buffer.i, self._out)
        wiring.connect(m, out_buffer.o, wiring.flipped(self.o))
        # The parser pushes a command only when `cmd_room` (a register) says the queue has a free
        # entry, never looking at the queue's combinational `ready`: with the level below
        # depth - 1 last cycle, one push this cycle still fits. This keeps the loop parser ->
        # queue -> parser (and the lane's queue in front of `i`) out of one cycle.
        cmd_room = Signal(init=1)
        m.d.sync += cmd_room.eq(commands.level < cfg.command_depth - 1)
        self._elaborate_parser(m, commands.i, cmd_room)
        self._elaborate_copier(m, commands.o)
        return m

    # --- parser: compressed bytes -> commands and verdicts ----------------------------------

    def _elaborate_parser(self, m, cmd, cmd_room):
        cfg = self.cfg
        max_out = cfg.max_block_bytes
        n = cfg.output_bytes_per_cycle
        lane_bits = max(1, exact_log2(n))
        width = cfg.input_bytes_per_cycle
        # `want`: the state reads this cycle (given a byte to read); `k`: how many bytes it
        # reads (1, but up to `avail` for literals and DISCARD); `consumed_last`: the bytes
        # read include the block's final byte. `avail`: the bytes that may be read this
        # cycle, up to the block's final byte; `end_last`: they end with it.
        want = Signal()
        k = Signal(range(width + 1), init=1)
        consumed_last = Signal()
        take = Signal()
        if width == 1:
            # `i` is read directly, one byte per beat, taken in the cycle it is read
            avail = Const(1, 1)
            byte = front = self.i.payload.data
            last = end_last = self.i.payload.last
            m.d.comb += [take.eq(self.i.valid & want), self.i.ready.eq(want)]

            def by_k(table):
                return table[1]
        else:
            # `k` is 1, `small` (the literal countdown's `min(left, I)`) or `avail`. It is also
            # kept one-hot (`k_is[c]`: from the decoded registers `small` and `avail` and the
            # choice `k_small` / `k_avail`), and a table indexed by `k` is an AND-OR of its
            # entries with those bits: the entries (worked out from registers) and the choice
            # (from the parser's state) meet in one last AND-OR, not a chain of muxes
            k_small = Signal()
            k_avail = Signal()
            small = Signal(range(width + 1))
            avail = Signal(range(width + 1))
            m.d.comb += k.eq(Mux(k_small, small, Mux(k_avail, avail, 1)))
            k_is = Signal(width + 1)
            m.d.comb += [k_is[c].eq((k_small & (small == c)) | (k_avail & (avail == c))
                                    | (~k_small & ~k_avail & (c == 1)))
                         for c in range(width + 1)]
            # the window's next state: the table at `k` after a take, else at 0
            next_is = Signal(width + 1)
            m.d.comb += [next_is[c].eq((take & k_is[c]) | (~take & (c == 0)))
                         for c in range(width + 1)]

            def one_hot_pick(select, table):
                return functools.reduce(operator.or_, (
                    Mux(select[c], entry, 0) for c, entry in enumerate(table)))

            def by_k(table):
                return one_hot_pick(k_is, table)

            def next_of(table):
                return one_hot_pick(next_is, table)

            front, last, end_last, nonempty = self._elaborate_window(m, next_of, avail)
            byte = front[:8]
            m.d.comb += take.eq(nonempty & want)
        m.d.comb += consumed_last.eq(last)

        pos = Signal(range(max_out + 1))          # bytes this block has produced so far
        room = Signal(range(max_out + 1), init=max_out)   # max_out - pos, kept as a register
        first_pending = Signal(init=1)
        ended = Signal()                           # the block's `last` byte has been taken
        token = Signal(8)
        length = Signal(LENGTH_BITS)               # length being accumulated / literals left
        # While a length extension is read: `slack = room - length` and `over` (sticky) says
        # `length > room`, so the final extension byte is checked against the output bound
        # with an 8-bit compare (`byte > slack`) instead of an add followed by a compare.
        slack = Signal(range(max_out + 1))
        over = Signal()
        end_pos = Signal(range(max_out + 1 + 15 + MINMATCH))   # pos + length so far
        overflow = Signal()                        # literal run too long for the output
        final = Signal()                           # `length == 1` in LITERAL
        offset_lo = Signal(8)
        offset_lo_above = Signal()                 # offset_lo > pos[:8]
        offset_lo_zero = Signal()                  # offset_lo == 0
        short_too_long = Signal()                  # token[:4] + MINMATCH > room
        offset = Signal(16)
        saved_offset = Signal(16)                  # kept from OFFSET_HI for MATCH_LENGTH

        def saturating(total):
            return Mux(total[LENGTH_BITS:].any(), (1 << LENGTH_BITS) - 1, total[:LENGTH_BITS])

        def exceeds(value):
            # `length + value > room` for an extension byte `value`, given `slack` and `over`
            return over | (~slack[8:].any() & (value > slack[:8]))

        def start_extension(base):
            m.d.sync += [length.eq(base), slack.eq(room - base), over.eq(room < base),
                         end_pos.eq(pos + base)]

        def extend():
            # one more 255 byte of a length extension
            m.d.sync += [slack.eq(slack - 255), over.eq(over | (slack < 255)),
                         end_pos.eq(end_pos + 255)]

        status = self.o_status

        def report(kind, length=pos):
            m.d.sync += [
                status.valid.eq(1),
                status.payload.error.eq(kind != LZ4Error.NONE),
                status.payload.kind.eq(kind),
                status.payload.length.eq(length),
            ]

        def fail(kind, length=pos):
            report(kind, length)
            goto("CLOSE")

        def new_block():
            m.d.sync += [pos.eq(0), room.eq(max_out), first_pending.eq(1), ended.eq(0)]

        with m.If(status.ready):
            m.d.sync += status.valid.eq(0)

        with m.If(take):
            m.d.sync += ended.eq(consumed_last)

        # With wide beats the run's length is a countdown whose `min(left, I)` and
        # `left <= I` are registers, so how many literal bytes go this cycle is a 3-bit
        # compare against the beat, not a compare of the whole length. Its `left` is a
        # register of its own, not `length`, so neither register's input picks among the
        # other's updates (`length` had been on the 1-lane critical paths).
        if width > 1:
            literals = Countdown(m, "literals", (1 << LENGTH_BITS) - 1, width)
            m.d.comb += small.eq(literals.small)
            assert 15 > 2 * width   # an extended literal length is "far"
        # `pos + a` and `room - a` for every literal count a, so the count only drives a mux
        pos_plus = Array(Signal.like(pos, name=f"pos_plus{a}") for a in range(width + 1))
        room_minus = Array(Signal.like(room, name=f"room_minus{a}") for a in range(width + 1))
        m.d.comb += [pos_plus[a].eq(pos + a) for a in range(width + 1)]
        m.d.comb += [room_minus[a].eq(room - a) for a in range(width + 1)]

        def start_literals(lit_len, too_long, one, extended=False):
            # `lit_len > 0`, more input follows the length fields; `extended`: `lit_len >= 15`
            if width > 1:
                literals.load(lit_len, far=extended)
            else:
                m.d.sync += length.eq(lit_len)
            m.d.sync += [overflow.eq(too_long), final.eq(one)]
            goto("LITERAL")

        def match_payload(match_len, long):
            # `match_len` is the full length (including MINMATCH). The payload is set in the
            # whole state, whatever the checks decide (it only counts with `valid`), so the
            # checks' compares reach the command queue's write enable, not its data.
            m.d.comb += [
                cmd.payload.kind.eq(_Command.MATCH),
                cmd.payload.src.eq(pos - offset),
                cmd.payload.reach.near.eq(offset < 4 * n),
                cmd.payload.length.eq(match_len),
                cmd.payload.long.eq(long),
                cmd.payload.first.eq(first_pending),
            ]
            for k in range(n):
                source = Const(k, lane_bits)
                for v in range(1, n):
                    source = Mux(offset == v, k % v, source)
                m.d.comb += [cmd.payload.reach.source[k].eq(source),
                             cmd.payload.reach.distance[k].eq(offset[:lane_bits + 2] - source)]

        def push_match(too_long, new_pos, new_room):
            # `too_long`: the match exceeds `room`
            with m.If(too_long):
                fail(LZ4Error.OUTPUT_OVERFLOW)
            with m.Elif(last):
                fail(LZ4Error.TRUNCATED)       # a token is due after the match
            with m.Else():
                m.d.comb += cmd.valid.eq(1)
                m.d.sync += [pos.eq(new_pos), room.eq(new_room), first_pending.eq(0)]
                goto("TOKEN")

        # The state again, one-hot: every change of state sets these flags too, so what the
        # parser reads this cycle (`want`, `k`), which the input window's next state hangs on,
        # is an AND-OR of flags and not a decode of the FSM's state register.
        states = ("TOKEN", "LITERAL_LENGTH", "LITERAL", "OFFSET_LO", "OFFSET_HI",
                  "MATCH_LENGTH", "CLOSE", "DISCARD")
        at = {name: Signal(name=f"at_{name.lower()}", init=name == "TOKEN") for name in states}

        def goto(name):
            m.next = name
            m.d.sync += [flag.eq(state == name) for state, flag in at.items()]

        m.d.comb += want.eq(
            (at["TOKEN"] & ~status.valid) | at["LITERAL_LENGTH"] | at["OFFSET_LO"]
            | at["DISCARD"] | (at["LITERAL"] & (overflow | cmd_room))
            | ((at["OFFSET_HI"] | at["MATCH_LENGTH"]) & cmd_room))
        if width > 1:
            # in LITERAL: `small` while the run's rest fits in the bytes that may be read
            short = Signal()
            m.d.comb += [short.eq(literals.small <= avail),
                         k_small.eq(at["LITERAL"] & short),
                         k_avail.eq((at["LITERAL"] & ~short) | at["DISCARD"])]

        with m.FSM():
            with m.State("TOKEN"):
                lit_nib = byte[4:]
                with m.If(take):
                    m.d.sync += token.eq(byte)
                    with m.If(last):
                        with m.If(lit_nib == 0):
                            report(LZ4Error.NONE)
                            goto("CLOSE")
                        with m.Elif(lit_nib == 15):
                            fail(LZ4Error.TRUNCATED)
                        with m.Else():
                            fail(LZ4Error.LITERAL_PAST_INPUT)
                    with m.Elif(lit_nib == 15):
                        start_extension(15)
                        goto("LITERAL_LENGTH")
                    with m.Elif(lit_nib == 0):
                        goto("OFFSET_LO")
                    with m.Else():
                        start_literals(lit_nib, lit_nib > room, lit_nib == 1)

            with m.State("LITERAL_LENGTH"):
                total = saturating(length + byte)
                with m.If(take):
                    with m.If(byte == 255):
                        m.d.sync += length.eq(total)
                        extend()
                        with m.If(last):
                            fail(LZ4Error.TRUNCATED)
                    with m.Elif(last):
                        fail(LZ4Error.LITERAL_PAST_INPUT)
                    with m.Else():
                        start_literals(total, exceeds(byte), 0, extended=True)   # >= 15

            with m.State("LITERAL"):
                # `ends`: the run's final byte is in this cycle's bytes; then `k` is what is
                # left of the run, else `avail`
                if width == 1:
                    ends = final

                    def count_down():
                        m.d.sync += [length.eq(length - 1), final.eq(length == 2)]
                else:
                    ends = Signal()
                    m.d.comb += [ends.eq(literals.fits & short),
                                 consumed_last.eq(end_last & (literals.small >= avail))]

                    def count_down():
                        literals.take(by_k)
                with m.If(overflow):
                    # Consume the run without producing it: its end decides the error kind.
                    with m.If(take):
                        count_down()
                        with m.If(ends):
                            fail(LZ4Error.OUTPUT_OVERFLOW)
                        with m.Elif(consumed_last):
                            fail(LZ4Error.LITERAL_PAST_INPUT)
                with m.Else():
                    # The bytes read are pushed whatever the checks say (the run fits in the
                    # output), so the queue's write enable is only `take`; the payload is set
                    # in the whole state.
                    m.d.comb += [
                        cmd.valid.eq(take),
                        cmd.payload.kind.eq(_Command.LITERAL),
                        cmd.payload.bytes.eq(front),
                        cmd.payload.length.eq(k),
                        cmd.payload.first.eq(first_pending),
                        # a run cut short by the input's end is closed by CLOSE instead
                        cmd.payload.last.eq(consumed_last & ends),
                    ]
                    with m.If(take):
                        count_down()
                        m.d.sync += [pos.eq(by_k(pos_plus)), room.eq(by_k(room_minus)),
                                     first_pending.eq(0)]
                        with m.If(consumed_last & ~ends):
                            # the bytes read so far are out; the packet ends there
                            fail(LZ4Error.LITERAL_PAST_INPUT, by_k(pos_plus))
                        with m.Else():
                            with m.If(consumed_last):
                                report(LZ4Error.NONE, by_k(pos_plus))
                                new_block()
                                goto("TOKEN")
                            with m.Elif(ends):
                                goto("OFFSET_LO")

            with m.State("OFFSET_LO"):
                with m.If(take):
                    # what OFFSET_HI checks of `pos`, `room` and the low byte, worked out here
                    # (they hold still until then), so its push decision is short
                    m.d.sync += [offset_lo.eq(byte), offset_lo_above.eq(byte > pos[:8]),
                                 offset_lo_zero.eq(byte == 0),
                                 short_too_long.eq(token[:4] + MINMATCH > room)]
                    with m.If(last):
                        fail(LZ4Error.TRUNCATED)
                    with m.Else():
                        goto("OFFSET_HI")

            with m.State("OFFSET_HI"):
                value = Cat(offset_lo, byte)
                m.d.comb += offset.eq(value)
                short_len = token[:4] + MINMATCH
                match_payload(short_len, short_len > n)
                with m.If(take):
                    m.d.sync += saved_offset.eq(value)
                    with m.If(offset_lo_zero & (byte == 0)):
                        fail(LZ4Error.OFFSET_ZERO)
                    # `value > pos` from 8-bit compares: `pos` holds still since OFFSET_LO
                    with m.Elif((byte > pos[8:]) | ((byte == pos[8:]) & offset_lo_above)):
                        fail(LZ4Error.OFFSET_BEFORE_START)
                    with m.Elif(token[:4] == 15):
                        start_extension(15 + MINMATCH)
                        with m.If(last):
                            fail(LZ4Error.TRUNCATED)
                        with m.Else():
                            goto("MATCH_LENGTH")
                    with m.Else():
                        push_match(short_too_long, pos + short_len, room - short_len)

            with m.State("MATCH_LENGTH"):
                # `length` already counts MINMATCH; past `room` its value no longer matters
                m.d.comb += offset.eq(saved_offset)
                # at least 15 + MINMATCH bytes, longer than a beat
                match_payload(length + byte, 1)
                with m.If(take):
                    with m.If(byte == 255):
                        m.d.sync += length.eq(length + 255)
                        extend()
                        with m.If(last):
                            fail(LZ4Error.TRUNCATED)
                    with m.Else():
                        push_match(exceeds(byte), end_pos + byte, slack - byte)

            with m.State("CLOSE"):
                # end the output packet; then drop the rest of the block's input
                m.d.comb += [
                    cmd.valid.eq(cmd_room),
                    cmd.payload.kind.eq(_Command.CLOSE),
                    cmd.payload.first.eq(first_pending),
                    cmd.payload.last.eq(1),
                ]
                with m.If(cmd_room):
                    with m.If(ended):
                        new_block()
                        goto("TOKEN")
                    with m.Else():
                        goto("DISCARD")

            with m.State("DISCARD"):
                # the bytes up to the block's end at once (`avail`)
                m.d.comb += consumed_last.eq(end_last)
                with m.If(take & end_last):
                    new_block()
                    goto("TOKEN")

    def _elaborate_window(self, m, next_of, avail):
        """The input window of a wide ``i`` (``I > 1``): up to ``2I`` bytes in registers, the
        parser reading from byte 0, ``k`` bytes in a cycle with ``take``: every register's
        next value is ``next_of`` its table of entries for 0..I bytes read (the entry at ``k``
        after a take, else at 0). Returns ``(front, last, end_last, nonempty)``, ``front``
        the window's first ``I`` bytes, and drives the register ``avail``.

        A beat is taken (``i.ready``, a register) while the window holds at most ``I`` bytes
        and no block's final byte, and its bytes land behind those held; the parser's ``k``
        bytes leave from the front. Every figure the parser reads (``avail = min(fill, I,
        bytes up to the block's final byte)``, whether those end with it, whether byte 0 is
        it) is a register, worked out for each count the parser may take (0 to ``I``) and
        chosen by that count, so no byte select or subtraction sits in front of its checks,
        and ``i.ready`` reaches nothing of the parser."""
        width = self.cfg.input_bytes_per_cycle
        size = 2 * width
        win = Signal(8 * size)                      # bytes at and above the fill are junk
        # The fill and the final byte's index are thermometer codes: bit j - 1 of `fill_ge`
        # says the window holds at least j bytes (j = 1..2I), bit j - 1 of `last_ge` that the
        # final byte's index is at least j (j = 1..2I-1; meaningful with `has_last`). Reading
        # c bytes then shifts a code by c (wiring), and every figure below is an AND-OR of a
        # few of its bits, not an add followed by compares.
        fill_ge = Signal(size)
        has_last = Signal()                         # the window holds a block's final byte
        last_ge = Signal(size - 1)
        accept = Signal(init=1)                     # i.ready: fill <= I and no final byte
        nonempty = Signal()
        end_last = Signal()                         # the `avail` bytes end the block
        last = Signal()                             # byte 0 ends the block
        m.d.comb += self.i.ready.eq(accept)

        def code(bits, j):
            # bit "at least j" of a thermometer code: 1 below j = 1, 0 past its top
            if j <= 0:
                return Const(1, 1)
            return bits[j - 1] if j <= len(bits) else Const(0, 1)

        def fill_at_least(j):
            return code(fill_ge, j)

        def fill_is(f):
            return fill_at_least(f) & ~fill_at_least(f + 1)

        arrive = self.i.valid & accept
        count = self.i.payload.count
        # the held bytes, then the beat's bytes from the fill on (the fill is at most I when
        # a beat is taken; bytes past the beat's are junk, so the beat's lanes need no mask)
        joined = Signal(8 * (size + width))
        in_lanes = self.i.payload.data
        for j in range(size + width):
            placed = functools.reduce(operator.or_, (
                Mux(fill_is(f), in_lanes.word_select(j - f, 8), 0)
                for f in range(width + 1) if 0 <= j - f < width), Const(0, 8))
            held_byte = win.word_select(j, 8) if j < size else Const(0, 8)
            m.d.comb += joined.word_select(j, 8).eq(Mux(fill_at_least(j + 1), held_byte,
                                                        placed))
        # with a beat arriving: at least j bytes held after it (the fill plus the beat's count)
        came_ge = Signal(size + 1)
        for j in range(1, size + 2):
            m.d.comb += came_ge[j - 1].eq(functools.reduce(operator.or_, (
                (count == n) & fill_at_least(j - n) for n in range(1, width + 1))))

        # The figures after reading c bytes, worked out twice: with no beat arriving (from
        # the registers alone) and with one arriving (then the window held no final byte,
        # and the beat's bytes land at the fill: its final byte, if any, is at fill + count
        # - 1), and picked by `arrive`.
        def figures(c, held_at_least, has, last_at_least):
            nh = has & last_at_least(c)                     # a final byte is left
            near = nh & ~last_at_least(width + c)           # ... among the first I bytes
            # avail = min(bytes held, I, bytes up to the final one), as "at least j" bits
            avail_ge = [held_at_least(j + c) & (~near | last_at_least(j - 1 + c))
                        for j in range(1, width + 1)]
            # the binary count: bit b is set when the top "at least" bit set is some v
            # with bit b
            top = [avail_ge[v - 1] & ~(avail_ge[v] if v < width else Const(0, 1))
                   for v in range(1, width + 1)]
            avail_bits = Signal(range(width + 1))
            m.d.comb += [avail_bits[b].eq(functools.reduce(operator.or_, (
                top[v - 1] for v in range(1, width + 1) if v >> b & 1), Const(0, 1)))
                for b in range(len(avail_bits))]
            return {
                "fill_ge": Cat(*(held_at_least(j + c) for j in range(1, size + 1))),
                "has_last": nh,
                "last_ge": Cat(*(last_at_least(j + c) for j in range(1, size))),
                "accept": ~held_at_least(width + 1 + c) & ~nh,
                "nonempty": held_at_least(1 + c),
                "avail": avail_bits,
                "end_last": near,
                "last": nh & ~last_at_least(1 + c),
            }

        names = ("win", "fill_ge", "has_last", "last_ge", "accept", "nonempty", "avail",
                 "end_last", "last")
        table = {name: [] for name in names}
        for c in range(width + 1):
            idle = figures(c, fill_at_least, has_last, lambda j: code(last_ge, j))
            came = figures(c, lambda j: code(came_ge, j), self.i.payload.last,
                           lambda j: code(came_ge, j + 1))
            table["win"].append(joined[8 * c:8 * (c + size)])
            for name in names[1:]:
                table[name].append(Mux(arrive, came[name], idle[name]))
        targets = {"win": win, "fill_ge": fill_ge, "has_last": has_last, "last_ge": last_ge,
                   "accept": accept, "nonempty": nonempty, "avail": avail,
                   "end_last": end_last, "last": last}
        for name in names:
            m.d.sync += targets[name].eq(next_of(table[name]))
        return win[:8 * width], last, end_last, nonempty

    # --- copier: commands -> history buffer and output beats --------------------------------

    def _elaborate_copier(self, m, cmd):
        cfg = self.cfg
        n = cfg.output_bytes_per_cycle
        lane_bits = max(1, exact_log2(n))
        lane_mask = n - 1
        addr_bits = exact_log2(cfg.max_block_bytes)

        # history banks: block RAMs whose output register is stage R below
        banks = []
        for b in range(n):
            ram = PipelinedRAM(PipelinedRAMConfig(8, cfg.max_block_bytes // n))
            m.submodules[f"bank{b}"] = ram
            banks.append(ram)

        # stage A: choose the beat (from the current match, or from the queue head)
        busy = Signal()                             # a match has beats left
        pos = Signal(addr_bits)                     # write address of the next beat
        src = Signal(addr_bits)                     # read address of the next match beat
        remaining = Signal(range(cfg.max_block_bytes + 1))
        remaining_long = Signal()                   # remaining > n
        match_reach = Signal(self._reach_layout())

        out = self._out
        advance = Signal()
        m.d.comb += advance.eq(~out.valid | out.ready)

        # stage H: the queue's head in registers, with the history row after its source row
        # worked out, so the bank read addresses are a mux of registers (the queue is LUT RAM,
        # and an adder after it towards the block RAM's address pins was a critical path)
        log_n = exact_log2(n)
        row_bits = max(1, addr_bits - log_n)
        h_valid = Signal()
        head = Signal(self._command_layout())
        h_row1 = Signal(row_bits)
        h_take = Signal()
        m.d.comb += cmd.ready.eq(~h_valid | h_take)
        with m.If(cmd.ready):
            m.d.sync += [h_valid.eq(cmd.valid), head.eq(cmd.payload),
                         h_row1.eq((cmd.payload.src >> log_n) + 1)]
        src_row1 = Signal(row_bits)                 # row after `src`'s row (busy match)
        beat_row1 = Signal(row_bits)

        kind = Signal(_Command)
        beat_src = Signal(addr_bits)
        beat_len = Signal(range(cfg.max_block_bytes + 1))
        beat_long = Signal()
        beat_reach = Signal(self._reach_layout())
        beat_first = Signal()
        beat_last = Signal()
        issue = Signal()
        with m.If(busy):
            m.d.comb += [
                kind.eq(_Command.MATCH), beat_src.eq(src), beat_row1.eq(src_row1),
                beat_len.eq(remaining),
                beat_long.eq(remaining_long),
                beat_reach.eq(match_reach), issue.eq(advance),
            ]
        with m.Else():
            m.d.comb += [
                kind.eq(head.kind), beat_src.eq(head.src), beat_row1.eq(h_row1),
                beat_len.eq(head.length),
                beat_long.eq(head.long),
                beat_reach.eq(head.reach), beat_first.eq(head.first),
                beat_last.eq(head.last), issue.eq(advance & h_valid),
                h_take.eq(advance),
            ]

        count = Signal(range(n + 1))
        with m.Switch(kind):
            with m.Case(_Command.LITERAL):
                m.d.comb += count.eq(beat_len[:len(count)])
            with m.Case(_Command.MATCH):
                m.d.comb += count.eq(Mux(beat_long, n, beat_len))
            with m.Default():
                m.d.comb += count.eq(0)

        with m.If(issue):
            with m.If((kind == _Command.MATCH) & beat_long):
                m.d.sync += [
                    busy.eq(1), remaining.eq(beat_len - n), remaining_long.eq(beat_len > 2 * n),
                    src.eq(beat_src + n), src_row1.eq(beat_row1 + 1),
                    match_reach.eq(beat_reach),
                ]
            with m.Else():
                m.d.sync += busy.eq(0)
            m.d.sync += pos.eq(Mux(beat_last, 0, pos + count))

        source_lane = beat_reach.source

        # Stage B holds the beat whose bank reads are under way (in the banks' read latches),
        # stage R the same beat with the read data in the banks' output registers (the block
        # RAM's own, so nothing slow leaves the banks, which sit wherever the placer found
        # room), stage C the finished beat (`out`'s registers), which is written to the
        # history buffer when `out` takes it, D the beat C held before and E the one before
        # that. Every select is decided in stage A. The beats in B, R and C are not in the
        # buffer when A reads it (C is written in that very cycle, and a block RAM read
        # colliding with a write on the other port is undefined): once the beat from A is in
        # R they are in C, D and E, and their bytes are forwarded from those registers.
        # one beat's state in stage B and again in stage R
        # read_from[k] bit b: lane k is read from bank b (one-hot or zero: an AND-OR);
        # forward_c[k] / forward_d[k] / forward_e[k]: lane k comes from lane forward_lane[k]
        # of C / D / E
        beat_layout = data.StructLayout({
            "valid": 1, "first": 1, "last": 1, "count": range(n + 1), "literal": 1,
            "bytes": data.ArrayLayout(8, cfg.input_bytes_per_cycle),
            "read_from": data.ArrayLayout(n, n), "forward_c": n, "forward_d": n, "forward_e": n,
            "forward_lane": data.ArrayLayout(lane_bits, n),
            "write_lane": data.ArrayLayout(lane_bits, n),
            "write_row": data.ArrayLayout(row_bits, n), "write_en": n,
        })

        b = Signal(beat_layout)
        r = Signal(beat_layout)
        r_data = [ram.r_data for ram in banks]

        c_lanes = [Signal(8, name=f"c_lane{k}") for k in range(n)]
        d_lanes = [Signal(8, name=f"d_lane{k}") for k in range(n)]
        e_lanes = [Signal(8, name=f"e_lane{k}") for k in range(n)]
        c_write_lane = [Signal(lane_bits, name=f"c_write_lane{bank}") for bank in range(n)]
        c_write_row = [Signal(row_bits, name=f"c_write_row{bank}") for bank in range(n)]
        c_write_en = [Signal(name=f"c_write_en{bank}") for bank in range(n)]

        # A source byte `distance` bytes before this beat is in the beat in B (lane
        # `in_b - distance`) when `distance <= in_b`, else in the beat in R (lane
        # `in_b + in_r - distance`) when `distance <= in_b + in_r`, else in the beat in C
        # (lane `in_b + in_r + in_c - distance`) when `distance <= in_b + in_r + in_c`, else
        # in the buffer. A beat
        # of an earlier block is never chosen: a match reaches back at most to its block's
        # first byte.
        in_b = Mux(b.valid, b.count, 0)
        in_r = Mux(r.valid, r.count, 0)
        in_c = Mux(out.valid, out.payload.count, 0)
        in_br = Signal(range(2 * n + 1))
        in_brc = Signal(range(3 * n + 1))
        m.d.comb += [in_br.eq(in_b + in_r), in_brc.eq(in_b + in_r + in_c)]
        with m.If(advance):
            m.d.sync += [
                b.valid.eq(issue),
                b.first.eq(beat_first),
                b.last.eq(beat_last),
                b.literal.eq(kind == _Command.LITERAL),
                # a literal's bytes, lanes at and above its count zeroed
                *[b.bytes[j].eq(Mux(j < count, head.bytes.word_select(j, 8), 0))
                  for j in range(cfg.input_bytes_per_cycle)],
                b.count.eq(count),
            ]
            for k in range(n):
                on = (k < count) & (kind == _Command.MATCH)
                near = on & beat_reach.near
                distance = beat_reach.distance[k]
                from_c = near & (distance <= in_b)
                from_d = near & ~from_c & (distance <= in_br)
                from_e = near & ~from_c & ~from_d & (distance <= in_brc)
                read_bank = (beat_src + source_lane[k]) & lane_mask
                m.d.sync += [b.read_from[k][bank].eq(on & ~from_c & ~from_d & ~from_e
                                                        & (read_bank == bank))
                             for bank in range(n)]
                m.d.sync += [
                    b.forward_c[k].eq(from_c),
                    b.forward_d[k].eq(from_d),
                    b.forward_e[k].eq(from_e),
                    b.forward_lane[k].eq((Mux(from_c, in_b, Mux(from_d, in_br, in_brc))
                                          - distance) & lane_mask),
                ]
        for bank, ram in enumerate(banks):
            # bank holds output lane (bank - pos) mod n and source lane (bank - src) mod n
            write_lane = Signal(lane_bits, name=f"write_lane{bank}")
            m.d.comb += write_lane.eq((bank - pos) & lane_mask)
            with m.If(advance):
                m.d.sync += [
                    b.write_lane[bank].eq(write_lane),
                    b.write_row[bank].eq((pos + write_lane) >> exact_log2(n)),
                    b.write_en[bank].eq(write_lane < count),
                ]
                # source row of this bank: `beat_src`'s row, or the next one for the banks
                # below `beat_src`'s lane
                m.d.comb += ram.r_addr.eq(Mux(bank < (beat_src & lane_mask), beat_row1,
                                              beat_src >> log_n))
        for ram in banks:
            m.d.comb += [ram.r_en.eq(advance), ram.r_oe.eq(advance)]

        # stage R: the bank data lands in the banks' output registers; the beat's selects
        # move along with it
        with m.If(advance):
            m.d.sync += r.eq(b)

        c_lane_array = Array(c_lanes)
        d_lane_array = Array(d_lanes)
        e_lane_array = Array(e_lanes)
        out = self._out
        with m.If(advance):
            m.d.sync += [
                out.valid.eq(r.valid),
                out.payload.count.eq(r.count),
                out.payload.first.eq(r.first),
                out.payload.last.eq(r.last),
            ]
            m.d.sync += [d.eq(c) for d, c in zip(d_lanes, c_lanes, strict=True)]
            m.d.sync += [e.eq(d) for e, d in zip(e_lanes, d_lanes, strict=True)]
            for k in range(n):
                terms = [
                    Mux(r.forward_c[k], c_lane_array[r.forward_lane[k]], 0),
                    Mux(r.forward_d[k], d_lane_array[r.forward_lane[k]], 0),
                    Mux(r.forward_e[k], e_lane_array[r.forward_lane[k]], 0),
                ]
                if k < cfg.input_bytes_per_cycle:
                    terms.append(Mux(r.literal, r.bytes[k], 0))
                terms += [r_data[bank] & r.read_from[k][bank].replicate(8)
                          for bank in range(n)]
                m.d.sync += c_lanes[k].eq(functools.reduce(operator.or_, terms))
            for bank in range(n):
                m.d.sync += [c_write_lane[bank].eq(r.write_lane[bank]),
                             c_write_row[bank].eq(r.write_row[bank]),
                             c_write_en[bank].eq(r.write_en[bank])]
        m.d.comb += out.payload.data.eq(Cat(*c_lanes))

        transfer = out.valid & out.ready
        for bank, ram in enumerate(banks):
            m.d.comb += [
                ram.w_addr.eq(c_write_row[bank]),
                ram.w_data.eq(c_lane_array[c_write_lane[bank]]),
                ram.w_en.eq(transfer & c_write_en[bank]),
            ]
