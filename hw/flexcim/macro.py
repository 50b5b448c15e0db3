"""The FlexCiM sparse DCiM macro: weight array, distribution unit, sub-macro adder trees and
merging unit, with the N:M pattern chosen at run time.

Golden model: :mod:`golden.flexcim` (:func:`golden.flexcim.macro_run` computes exactly what
this block outputs; :func:`golden.flexcim.weight_beats`, ``activation_beats`` and
``output_beats`` are its stream payloads).

Organisation (``R = rows``, ``C = cols``, ``P = submacros``):

* **Weight array.** ``R`` rows of ``C`` signed 8-bit weights, each with a
  ``log2(max_m)``-bit index, ``depth`` tiles deep: one memory per row (block RAM or LUT RAM as
  synthesis decides), word ``t`` of row ``r`` = tile ``t``. Tile ``t``, row ``r``, column ``c``
  is the compact (N:M) weight ``t*R + r`` of output ``c``.
* **Distribution unit.** For the N:M pattern loaded with the weights, an activation tile is
  ``R*M/N`` activations; row ``r`` gets the window of ``M`` activations starting at
  ``(r // N) * M`` (a per-row multiplexer over the supported patterns, shared by the ``C``
  columns), and each weight then takes the activation its index selects (``max_m``:1
  multiplexer; window entries past ``M`` are zero, so an index ``>= M`` reads zero). Dense is the
  pattern ``N = M = 1``: row ``r`` reads activation ``r``.
* **Sub-macros.** The rows are split into ``P`` sub-macros of ``R/P`` consecutive rows, each
  with a registered adder tree per column. An N-group of rows never straddles two sub-macros
  (``N <= R/P``), so the patterns with ``N > R/P`` are not offered.
* **Merging unit.** Adds the ``P`` partial sums of each column and accumulates them over the
  tiles of one activation vector in an ``acc_bits``-bit two's-complement accumulator (it
  wraps); after the vector's last tile the ``C`` sums leave on ``o`` and the accumulator
  clears.

Tile ``t`` of a vector uses weight tile ``t mod depth``: a layer of ``K`` inputs needs
``ceil(K*N/M / R)`` tiles, and outputs in blocks of ``C`` (the weights are reloaded between
blocks). Any number of vectors can run against loaded weights (matrix-matrix products).
"""

from dataclasses import dataclass

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.flexcim import DENSE, NM_CANDIDATES, nm_log2

from ..common.arith import tree_sum
from ..common.queue import Queue, QueueConfig
from ..common.skid_buffer import SkidBuffer, SkidBufferConfig
from ..common.validate import check_choice, check_int, check_power_of_two

__all__ = ["FlexCiMConfig", "FlexCiMMacro", "PRESETS"]



@dataclass(frozen=True)
class FlexCiMConfig:
    """Configuration of :class:`FlexCiMMacro`.

    Parameters
    ----------
    rows : int
        Rows of the array (compact weights per output per tile): a power of two, 2 to 256.
    cols : int
        Columns (outputs computed at once), 1 to 64.
    submacros : int
        Sub-macros the rows are split into: a power of two dividing ``rows``.
    max_m : int
        Largest M offered (4, 8 or 16): the patterns are dense and every N:M of
        :data:`golden.flexcim.NM_CANDIDATES` with ``M <= max_m`` and ``N <= rows/submacros``.
        Sets the index width (``log2(max_m)``) and the fill buffer (``rows*max_m``
        activations).
    act_lanes : int
        Activations per beat on ``i_act``: a power of two, at most ``rows * max_m``.
    acc_bits : int
        Accumulator width, 16 to 48.
    depth : int
        Weight tiles held: a power of two, 1 to 4096.
    out_depth : int
        Entries of the output queue, at least ``pipeline_stages + 3`` and at most 64 (a
        vector's last tile leaves the fill buffer only when a place for its sums is sure).
    multipliers : str
        ``"dsp"``: ``sel * weight`` with ``*`` (synthesis maps it to DSP multipliers, one stage);
        ``"lut"``: shift-and-add partial products in logic over two stages (no DSPs; one cycle
        more latency). The results are the same.
    """

    rows: int = 16
    cols: int = 4
    submacros: int = 2
    max_m: int = 8
    act_lanes: int = 32
    acc_bits: int = 32
    depth: int = 16
    out_depth: int = 16
    multipliers: str = "dsp"

    def __post_init__(self):
        check_power_of_two("rows", self.rows, min=2, max=256)
        check_int("cols", self.cols, min=1, max=64)
        check_power_of_two("submacros", self.submacros, max=self.rows)
        check_choice("max_m", self.max_m, (4, 8, 16))
        check_power_of_two("act_lanes", self.act_lanes, max=self.rows * self.max_m)
        check_int("acc_bits", self.acc_bits, min=16, max=48)
        check_power_of_two("depth", self.depth, max=4096)
        check_choice("multipliers", self.multipliers, ("dsp", "lut"))
        check_int("out_depth", self.out_depth, min=self.pipeline_stages + 3, max=64)

    @property
    def tree_stages(self) -> int:
        """Registered stages of each sub-macro adder tree: two adder levels per stage."""
        levels = (self.rows_per_submacro - 1).bit_length()
        return max(1, -(-levels // 2))

    @property
    def pipeline_stages(self) -> int:
        """Stages from a tile leaving the fill buffer to its sums reaching the output queue:
        array read, window, index select, multiply (1 stage with DSPs, 2 in LUTs), adder trees;
        the merging unit adds and accumulates at the end of the last."""
        return 3 + (1 if self.multipliers == "dsp" else 2) + self.tree_stages

    @property
    def rows_per_submacro(self) -> int:
        return self.rows // self.submacros

    @property
    def index_bits(self) -> int:
        return self.max_m.bit_length() - 1

    @property
    def modes(self) -> tuple[tuple[int, int], ...]:
        """The (N, M) patterns offered, dense first."""
        return (DENSE,) + tuple((n, m) for n, m in NM_CANDIDATES
                                if m <= self.max_m and n <= self.rows_per_submacro)

    @property
    def tile_max(self) -> int:
        """Fill-buffer size: the longest activation tile, ``rows * max_m`` (1:max_m)."""
        return self.rows * self.max_m

    def tile_length(self, n: int, m: int) -> int:
        return self.rows * m // n

    def beats_per_tile(self, n: int, m: int) -> int:
        return max(1, self.tile_length(n, m) // self.act_lanes)

    @property
    def weight_layout(self) -> data.StructLayout:
        """``weights`` (``cols`` signed 8-bit lanes, column 0 lowest), ``index`` (``cols``
        lanes of ``index_bits``), ``n_log2``/``m_log2`` (the pattern, read on ``first``),
        ``first``, ``last``."""
        return data.StructLayout({
            "weights": 8 * self.cols, "index": self.index_bits * self.cols,
            "n_log2": 2, "m_log2": 3, "first": 1, "last": 1})

    @property
    def act_layout(self) -> data.StructLayout:
        """``data`` (``act_lanes`` signed 8-bit lanes), ``first``, ``last`` of the vector."""
        return data.StructLayout({"data": 8 * self.act_lanes, "first": 1, "last": 1})

    @property
    def out_layout(self) -> data.StructLayout:
        """``data`` (``cols`` lanes of ``acc_bits``), ``first``, ``last`` (both always 1)."""
        return data.StructLayout({"data": self.acc_bits * self.cols, "first": 1, "last": 1})

    def dense_macs_per_cycle(self, n: int, m: int) -> float:
        """Dense-equivalent multiply-accumulates per cycle at full rate: ``rows*cols*M/N``
        per tile, one tile per ``beats_per_tile`` cycles."""
        return self.rows * self.cols * m / n / self.beats_per_tile(n, m)


PRESETS: dict[str, FlexCiMConfig] = {
    # LUT multipliers: with 64 DSP multipliers the ECP5 router did not converge (congestion
    # where the distribution multiplexers meet the DSP rows)
    "default": FlexCiMConfig(multipliers="lut"),
    "tiny": FlexCiMConfig(rows=8, cols=4, submacros=2, max_m=8, act_lanes=8, acc_bits=24,
                          depth=4),
    "wide_m": FlexCiMConfig(rows=16, cols=4, submacros=2, max_m=16, act_lanes=64),
    "narrow_input": FlexCiMConfig(act_lanes=16),
    # a whole 1:8 tile per beat: every pattern runs at one tile per cycle
    "full_rate": FlexCiMConfig(act_lanes=128),
}


class FlexCiMMacro(wiring.Component):
    """FlexCiM DCiM macro: N:M-sparse (or dense) integer matrix-vector products, the pattern
    set at run time with each weight load.

    A weight load is one packet on ``i_weight``: a beat per (tile, row), tiles in order, rows
    0 to ``rows-1`` in each; the first beat's ``n_log2``/``m_log2`` select the pattern
    (``0, 0`` = dense; a pattern not in ``cfg.modes`` computes zeros). Each activation vector
    is one packet on ``i_act``: its tiles in order, each tile ``max(1, tile/act_lanes)`` beats
    (a beat wider than the tile leaves its upper lanes unused). A vector may end early (its
    ``last`` beat in the middle of a tile): the activations not sent count as zero. For each
    vector one beat leaves on ``o`` with the ``cols`` accumulators, equal to
    :func:`golden.flexcim.macro_run`.

    A weight load waits until no vector is in flight (so the pattern never changes under a
    running vector), and vectors wait while a load is in progress; an activation beat already
    offered goes first.

    Parameters
    ----------
    cfg : FlexCiMConfig

    Members
    -------
    i_weight : In(stream.Signature(cfg.weight_layout))
        Weight tiles and their indices.
    i_act : In(stream.Signature(cfg.act_layout))
        Activation vectors, one packet each.
    o : Out(stream.Signature(cfg.out_layout))
        One beat of ``cols`` sums per vector.

    Latency
    -------
    The sums of a vector are offered ``cfg.pipeline_stages + 4`` cycles after its last
    activation beat is taken (input skid buffer, fill buffer, array read, window, index
    select, multiply, adder trees, merge, output queue): 11 for the default preset.

    Throughput
    ----------
    One activation beat per cycle, so one tile every ``max(1, rows*M/N / act_lanes)``
    cycles: ``rows*cols*M/N / max(1, rows*M/N/act_lanes)`` dense-equivalent MACs per cycle
    (``cfg.dense_macs_per_cycle``); with ``act_lanes >= rows*M/N`` that is ``M/N`` times a dense
    macro of the same size. A weight load takes one beat per row and tile.
    """

    def __init__(self, cfg: FlexCiMConfig):
        self.cfg = cfg
        super().__init__({
            "i_weight": In(stream.Signature(cfg.weight_layout)),
            "i_act": In(stream.Signature(cfg.act_layout)),
            "o": Out(stream.Signature(cfg.out_layout)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        R, C, P = cfg.rows, cfg.cols, cfg.submacros
        IB, MM = cfg.index_bits, cfg.max_m
        lanes, tile_max = cfg.act_lanes, cfg.tile_max
        chunks = tile_max // lanes
        modes = cfg.modes
        word_bits = C * (8 + IB)

        # ---- run-time pattern, latched by the first beat of a weight load -------------------
        mode = Signal(range(len(modes) + 1))          # len(modes): unsupported, computes zero
        beats_per_tile = Signal(range(chunks + 1), init=1)

        # ---- weight array: one memory per row -----------------------------------------------
        rows_mem = []
        for r in range(R):
            mem = memory.Memory(shape=word_bits, depth=cfg.depth, init=[])
            m.submodules[f"row{r}"] = mem
            rows_mem.append((mem.write_port(), mem.read_port()))

        w_busy = Signal()          # inside a weight-load packet
        act_busy = Signal()        # inside an activation packet
        w_row = Signal(range(R))
        w_tile = Signal(range(cfg.depth))

        # ---- fill buffer (activation side of the distribution unit) ------------------------
        fill = Signal(8 * tile_max)
        fill_count = Signal(range(chunks + 1))        # beats of the tile being filled
        fill_full = Signal()                           # a complete tile waits for the array
        fill_keep = Signal(chunks)                     # its beats (the lanes of the others read 0)
        fill_last = Signal()
        tile_index = Signal(range(cfg.depth))          # weight tile of the tile being filled

        # ---- pipeline registers --------------------------------------------------------------
        stages = cfg.pipeline_stages
        s_valid = Signal(stages)
        s_last = Signal(stages)
        x_tile = Signal(8 * tile_max)                  # stage 1 (weights: memory read data)
        sel = [[Signal(signed(8), name=f"sel_{r}_{c}") for c in range(C)] for r in range(R)]
        wgt = [[Signal(signed(8), name=f"w_{r}_{c}") for c in range(C)] for r in range(R)]
        prod = [[Signal(signed(16), name=f"p_{r}_{c}") for c in range(C)] for r in range(R)]
        part_bits = 16 + (cfg.rows_per_submacro - 1).bit_length()
        part = [[Signal(signed(part_bits), name=f"part_{p}_{c}") for c in range(C)]
                for p in range(P)]
        acc = [Signal(signed(cfg.acc_bits), name=f"acc_{c}") for c in range(C)]

        m.submodules.out = out = Queue(QueueConfig(depth=cfg.out_depth,
                                                   payload=cfg.out_layout))
        wiring.connect(m, out.o, wiring.flipped(self.o))

        # sums on their way (a vector's last tile in the pipeline, or sums in the queue): a
        # counter, so that `transfer`, which fans out to the whole tile, is shallow logic
        # and `room` (pending < out_depth) is a register too, computed from the next count
        pending = Signal(range(cfg.out_depth + 1))
        pending_next = Signal(range(cfg.out_depth + 1))
        room = Signal(init=1)
        transfer = Signal()
        # `transfer & fill_last` written out, so the counter's increment is a LUT of its own
        # beside the counter, not the `transfer` LUT placed by the fill buffer
        last_leaves = Signal()
        m.d.comb += [
            transfer.eq(fill_full & (~fill_last | room)),
            last_leaves.eq(fill_full & fill_last & room),
            pending_next.eq(pending + last_leaves - (self.o.valid & self.o.ready)),
        ]
        m.d.sync += [pending.eq(pending_next), room.eq(pending_next < cfg.out_depth)]
        pipeline_empty = ~fill_full & ~s_valid.any() & ~act_busy

        # ---- handshakes ----------------------------------------------------------------------
        # skid buffers on both inputs: their `ready` is a register, and the beat taken drives
        # the write enables of the whole fill buffer from registers only
        m.submodules.act_in = act_in = SkidBuffer(SkidBufferConfig(payload=cfg.act_layout))
        m.submodules.weight_in = weight_in = SkidBuffer(
            SkidBufferConfig(payload=cfg.weight_layout))
        wiring.connect(m, wiring.flipped(self.i_act), act_in.i)
        wiring.connect(m, wiring.flipped(self.i_weight), weight_in.i)
        i_act, i_weight = act_in.o, weight_in.o
        act_take = Signal()
        w_take = Signal()
        # no vector in flight: nothing enters the pipeline but activation beats, so last
        # cycle's answer holds if no beat was taken then (a register, for timing)
        idle = Signal()
        m.d.sync += idle.eq(pipeline_empty & ~act_take)
        m.d.comb += [
            i_act.ready.eq(~w_busy & (~fill_full | transfer)),
            act_take.eq(i_act.valid & i_act.ready),
            i_weight.ready.eq(w_busy | (idle & ~i_act.valid)),
            w_take.eq(i_weight.valid & i_weight.ready),
        ]

        # ---- weight loading ------------------------------------------------------------------
        wp = i_weight.payload
        row_now = Signal(range(R))
        tile_now = Signal(range(cfg.depth))
        m.d.comb += [row_now.eq(Mux(wp.first, 0, w_row)),
                     tile_now.eq(Mux(wp.first, 0, w_tile))]
        # the array write happens a cycle after the beat is taken, from registers (the rows
        # are spread over the chip); a vector cannot read the array sooner than that
        wr_en = Signal()
        wr_row = Signal(range(R))
        wr_addr = Signal(range(cfg.depth))
        wr_data = Signal(word_bits)
        m.d.sync += [wr_en.eq(w_take), wr_row.eq(row_now), wr_addr.eq(tile_now),
                     wr_data.eq(Cat(wp.weights, wp.index))]
        for r, (wport, _) in enumerate(rows_mem):
            m.d.comb += [wport.addr.eq(wr_addr), wport.data.eq(wr_data),
                         wport.en.eq(wr_en & (wr_row == r))]
        with m.If(w_take):
            m.d.sync += w_busy.eq(~wp.last)
            with m.If(row_now == R - 1):
                m.d.sync += [w_row.eq(0), w_tile.eq(tile_now + 1)]
            with m.Else():
                m.d.sync += [w_row.eq(row_now + 1), w_tile.eq(tile_now)]
            with m.If(wp.first):
                code = Cat(wp.n_log2, wp.m_log2)
                m.d.sync += [mode.eq(len(modes)), beats_per_tile.eq(1)]
                with m.Switch(code):
                    for k, (n, mm) in enumerate(modes):
                        n_log2, m_log2 = nm_log2(n, mm)
                        with m.Case(n_log2 | (m_log2 << 2)):
                            m.d.sync += [mode.eq(k),
                                         beats_per_tile.eq(cfg.beats_per_tile(n, mm))]

        # ---- filling tiles -------------------------------------------------------------------
        ap = i_act.payload
        with m.If(act_take):
            m.d.sync += act_busy.eq(~ap.last)
            with m.Switch(fill_count):
                for q in range(chunks):
                    with m.Case(q):
                        m.d.sync += fill[8 * lanes * q:8 * lanes * (q + 1)].eq(ap.data)
            with m.If(ap.last | (fill_count + 1 == beats_per_tile)):
                m.d.sync += [fill_count.eq(0),
                             fill_keep.eq(Cat(fill_count >= q for q in range(chunks))),
                             fill_full.eq(1), fill_last.eq(ap.last)]
            with m.Else():
                m.d.sync += fill_count.eq(fill_count + 1)
        with m.If(transfer):
            with m.If(~act_take | ~(ap.last | (fill_count + 1 == beats_per_tile))):
                m.d.sync += fill_full.eq(0)
            m.d.sync += tile_index.eq(Mux(fill_last, 0, tile_index + 1))
            masked = []
            for q in range(chunks):
                word = fill[8 * lanes * q:8 * lanes * (q + 1)]
                masked.append(Mux(fill_keep[q], word, 0))
            m.d.sync += x_tile.eq(Cat(*masked))
        for _, rport in rows_mem:
            m.d.comb += rport.addr.eq(tile_index)

        # ---- pipeline valid / last -----------------------------------------------------------
        m.d.sync += [s_valid.eq(Cat(transfer, s_valid[:-1])),
                     s_last.eq(Cat(fill_last, s_last[:-1]))]

        # ---- distribution unit: per-row windows, then the index multiplexers ---------------
        x = [x_tile[8 * e:8 * (e + 1)].as_signed() for e in range(tile_max)]
        # the pattern reaches the windows through registers: a copy of `mode`, then a one-hot
        # decode per row, so its fan-out to the window registers is local to each row. `mode`
        # changes only on a weight load's first beat, with no vector in flight; the first
        # activation beat after it is taken a cycle later at the earliest and reaches the
        # window stage three cycles after that, when the per-row copies are up to date.
        mode_r = Signal.like(mode)
        m.d.sync += mode_r.eq(mode)
        windows = []
        for r in range(R):
            onehot = Signal(len(modes), name=f"mode_{r}")
            m.d.sync += onehot.eq(Cat(mode_r == k for k in range(len(modes))))
            window = [Signal(signed(8), name=f"win_{r}_{j}") for j in range(MM)]
            windows.append(window)
            for j in range(MM):
                sources = {}                           # activation -> patterns that pick it
                for k, (n, mm) in enumerate(modes):
                    if j < mm:
                        sources.setdefault((r // n) * mm + j, []).append(k)
                picked = [Mux(Cat(onehot[k] for k in ks).any(), x[e], 0)
                          for e, ks in sources.items()]
                value = picked[0] if picked else Const(0, signed(8))
                for v in picked[1:]:
                    value = value | v
                # an unsupported pattern: no one-hot bit set, the window reads zero
                m.d.sync += window[j].eq(value)
        row_word = [Signal(word_bits, name=f"word_{r}") for r in range(R)]
        m.d.sync += [row_word[r].eq(rows_mem[r][1].data) for r in range(R)]
        for r in range(R):
            for c in range(C):
                index = row_word[r][8 * C + IB * c:8 * C + IB * (c + 1)]
                m.d.sync += [sel[r][c].eq(Array(windows[r])[index]),
                             wgt[r][c].eq(row_word[r][8 * c:8 * (c + 1)].as_signed())]

        # ---- multipliers -----------------------------------------------------------------
        for r in range(R):
            for c in range(C):
                if cfg.multipliers == "dsp":
                    m.d.sync += prod[r][c].eq(sel[r][c] * wgt[r][c])
                    continue
                # sel * wgt = sum_i wgt[i] * sel << i, bit 7 weighing -128; pairs of partial
                # products in one stage, their sum in the next
                a, b = sel[r][c], wgt[r][c]
                # the sign-bit product -128*a is (2*~a + 1 + 1) << 6: the pair of bits 6 and 7
                # adds Mux(b[6], a, 0), Mux(b[7], 2*~a + 1, 0) and b[7] as the carry in, one
                # carry chain with no negation in front of it
                partial = [Mux(b[i], a, 0) << i for i in range(6)]
                pairs = []
                for k in range(4):
                    pair = Signal(signed(16), name=f"pp_{r}_{c}_{k}")
                    if k < 3:
                        m.d.sync += pair.eq(partial[2 * k] + partial[2 * k + 1])
                    else:
                        negated = Cat(Const(1, 1), ~a).as_signed()     # 2*~a + 1 = -2a - 1
                        m.d.sync += pair.eq((Mux(b[6], a, 0) + Mux(b[7], negated, 0) + b[7])
                                            << 6)
                    pairs.append(pair)
                m.d.sync += prod[r][c].eq(tree_sum(pairs))

        # ---- sub-macro adder trees, two adder levels per stage ---------------------------
        rpp = cfg.rows_per_submacro
        for p in range(P):
            for c in range(C):
                values = [prod[r][c] for r in range(p * rpp, (p + 1) * rpp)]
                for stage in range(cfg.tree_stages - 1):
                    values = [tree_sum(values[k:k + 4]) for k in range(0, len(values), 4)]
                    registered = []
                    for k, v in enumerate(values):
                        reg = Signal(signed(part_bits), name=f"tree_{p}_{c}_{stage}_{k}")
                        m.d.sync += reg.eq(v)
                        registered.append(reg)
                    values = registered
                m.d.sync += part[p][c].eq(tree_sum(values))

        # ---- merging unit: sub-macro sums, accumulation, output ---------------------------
        total = []
        for c in range(C):
            s = Signal(signed(cfg.acc_bits), name=f"total_{c}")
            m.d.comb += s.eq(acc[c] + tree_sum([part[p][c] for p in range(P)]))
            total.append(s)
        last_stage = stages - 1
        with m.If(s_valid[last_stage]):
            with m.If(s_last[last_stage]):
                m.d.sync += [a.eq(0) for a in acc]
            with m.Else():
                m.d.sync += [a.eq(t) for a, t in zip(acc, total, strict=True)]
        m.d.comb += [
            out.i.valid.eq(s_valid[last_stage] & s_last[last_stage]),
            out.i.payload.data.eq(Cat(*total)),
            out.i.payload.first.eq(1),
            out.i.payload.last.eq(1),
        ]
        return m
