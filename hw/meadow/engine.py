"""The MEADOW engine: P token-parallel PEs, on-chip K/V/score/probability/activation buffers,
the integer softmax (MAX/EXP/DIV), requantisation and a sequencer that runs attention in the
TPHS or GEMM schedule, or a linear layer, from a descriptor, through one memory port.

The math is :mod:`golden.meadow`'s, bit for bit (``attention``, ``linear``).

DRAM layout (one memory word = one beat = ``dot_width`` int8 lanes, lane ``d`` in bits
``8d .. 8d+7``). Activations are stored *feature-block major*: beat ``(c, t)`` (feature block
``c`` of token ``t``) at ``base + c * tokens + t``. For attention a feature block is a head
(``head_dim = dot_width``): Q of head ``h`` at ``a_base + h * tokens + t``, the output at
``d_base + h * tokens + t``; K and V of KV head ``g`` at ``b_base + g * keys + j`` and
``c_base + g * keys + j``. A linear layer reads X at ``a_base + c * tokens + t``, weights
row-major at ``b_base + n * chunks + c`` and writes Y at ``d_base + (n // dot_width) * tokens
+ t``, so the output of one layer is the input of the next. GEMM attention uses ``s_base ..
s_base + keys - 1`` as scratch: per token group it writes every score word (``pes`` int32
lanes, padded to a beat) and reads it back, then the same for the probability words
(``pes`` uint8 lanes).
"""

from contextlib import contextmanager
from dataclasses import dataclass

from amaranth.hdl import (
    Array,
    Cat,
    ClockSignal,
    Const,
    Elaboratable,
    Instance,
    Module,
    Mux,
    Signal,
    signed,
)
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..common.arith import tree_sum
from ..common.memory_port import MemoryPortConfig, MemoryPortSignature
from ..common.skid_buffer import SkidBuffer, SkidBufferConfig
from ..common.validate import check_int, check_power_of_two

__all__ = ["EngineConfig", "MeadowEngine", "PRESETS", "OP_ATTENTION", "OP_LINEAR",
           "EXP_TABLE"]

OP_ATTENTION = 0
OP_LINEAR = 1

# golden.meadow's constants (kept here so the gateware does not import the golden model;
# tests check they agree)
EXP_ENTRIES = 512
EXP_TABLE = [round(2 ** 15 * 2.718281828459045 ** (-k / 32)) for k in range(EXP_ENTRIES)]
DIFF_MAX = 2 ** 21 - 1
RECIP_BITS = 31
PROB_SHIFT = 23
# pipeline depth of the requantiser (select in two registered levels: per PE over its lanes,
# then over the PEs; operand copy, partial products, product copy, sum and rounding, coarse
# shift, fine shift and clamp)
REQUANT_LATENCY = 8
# stages of the passes over the keys (the longest, EXP: score register, difference, operand
# copy, partial products, product copy, sum and rounding, coarse shift, table read,
# exponential register, store)
PASS_STAGES = 10
# cycles the memory port's registers add to each read burst: the command and the read data
# each pass a skid buffer (the port's handshakes are then flip-flops: the sequencer's
# next-state logic does not reach the other side of the port)
READ_PORT_LATENCY = 2
# cycles from the last write of a job to its report: one state that waits for the command
# and write skid buffers to drain (the report then follows every write out of the port)
DONE_LATENCY = 1
# beats the write skid buffer holds: a store state ends that many beats before the DRAM has
# taken the last one when the DRAM is slower than a beat per cycle
WRITE_BUFFER_BEATS = 2


@dataclass(frozen=True)
class EngineConfig:
    """Configuration of :class:`MeadowEngine`.

    Parameters
    ----------
    pes : int
        ``P``: token-parallel PEs (1..32). Each PE holds one query token (or one token's
        activations) and has ``dot_width`` int8 multipliers.
    dot_width : int
        ``D``: int8 lanes per PE and per memory beat, a power of two (4..64); the head
        dimension of attention. Must be at least ``4 * pes`` so a word of ``pes`` int32 scores
        fits one beat (GEMM scratch).
    max_keys : int
        Depth of the K, V, score and probability buffers (2..4096): the longest context.
    max_chunks : int
        Depth of the activation buffer: the largest ``in_features / dot_width`` of a linear
        layer (1..4096).
    addr_width : int
        Bits of a DRAM word address (8..32).
    """

    pes: int = 4
    dot_width: int = 16
    max_keys: int = 512
    max_chunks: int = 64
    addr_width: int = 24

    def __post_init__(self):
        check_int("pes", self.pes, min=1, max=32)
        check_power_of_two("dot_width", self.dot_width, min=4, max=64)
        if self.dot_width < 4 * self.pes:
            raise ValueError(f"dot_width must be at least 4 * pes = {4 * self.pes}, "
                             f"not {self.dot_width!r}")
        check_int("max_keys", self.max_keys, min=2, max=4096)
        check_int("max_chunks", self.max_chunks, min=1, max=4096)
        check_int("addr_width", self.addr_width, min=8, max=32)

    @property
    def port(self) -> MemoryPortConfig:
        length = max(self.max_keys, self.max_chunks, self.pes).bit_length()
        return MemoryPortConfig(self.addr_width, 8 * self.dot_width, length)

    @property
    def descriptor_layout(self) -> data.StructLayout:
        """``op`` (0 attention, 1 linear), ``gemm`` (attention schedule: 0 TPHS, 1 GEMM),
        ``relu`` (linear), ``tokens``, ``keys``, ``heads``, ``group`` (query heads per KV head),
        ``q_offset`` (key ``j`` visible to token ``t`` iff ``j <= q_offset + t``),
        ``exp_mult``/``exp_shift`` (softmax), ``out_mult``/``out_shift`` (requantisation),
        ``chunks`` (linear ``in_features / dot_width``), ``out_blocks`` (linear
        ``out_features / dot_width``), and the word addresses ``a_base`` (Q or X), ``b_base`` (K
        or W), ``c_base`` (V), ``d_base`` (output), ``s_base`` (GEMM scratch)."""
        a = self.addr_width
        return data.StructLayout({
            "op": 1, "gemm": 1, "relu": 1,
            "tokens": 16, "keys": range(2 * self.max_keys), "heads": 8, "group": 8,
            "q_offset": 16, "exp_mult": 16, "exp_shift": 5, "out_mult": 16, "out_shift": 6,
            "chunks": range(2 * self.max_chunks), "out_blocks": 12,
            "a_base": a, "b_base": a, "c_base": a, "d_base": a, "s_base": a,
        })

    @property
    def done_layout(self) -> data.StructLayout:
        """``cycles`` from taking the descriptor to this report; ``error`` if the descriptor
        was refused (sizes out of range), in which case nothing was read or written."""
        return data.StructLayout({"cycles": 32, "error": 1})


PRESETS = {
    "default": EngineConfig(),
    "small": EngineConfig(pes=2, dot_width=8, max_keys=64, max_chunks=16, addr_width=16),
    "tiny": EngineConfig(pes=2, dot_width=8, max_keys=16, max_chunks=4, addr_width=12),
}


class _Mul2(Elaboratable):
    """``p = a * b`` two cycles later: the operands are registered, then the product.

    On ECP5 this is one MULT18X18D with its input and output registers on (the DSP blocks sit
    in a few rows of the die, so registers in the fabric are far from them: the routing to
    and from the multiplier, not the multiply, set the clock); elsewhere (simulation,
    Verilog) the same registers in logic. ``a`` and ``b`` must fit 18-bit signed numbers."""

    def __init__(self, a, b):
        self.a_in, self.b_in = a, b
        self.p = Signal(signed(36))

    def elaborate(self, platform):
        m = Module()
        a, b = Signal(signed(18)), Signal(signed(18))
        m.d.comb += [a.eq(self.a_in), b.eq(self.b_in)]
        if getattr(platform, "family", None) == "ecp5":
            ports = {}
            for i in range(18):
                ports[f"i_A{i}"] = a[i]
                ports[f"i_B{i}"] = b[i]
                ports[f"i_C{i}"] = Const(0, 1)
            for i in range(36):
                ports[f"o_P{i}"] = self.p[i]
            for k in range(4):
                ports[f"i_CLK{k}"] = ClockSignal("sync") if k == 0 else Const(0, 1)
                ports[f"i_CE{k}"] = Const(1, 1) if k == 0 else Const(0, 1)
                ports[f"i_RST{k}"] = Const(0, 1)   # the boards' sync domain has no reset
            m.submodules.dsp = Instance(
                "MULT18X18D",
                p_REG_INPUTA_CLK="CLK0", p_REG_INPUTA_CE="CE0", p_REG_INPUTA_RST="RST0",
                p_REG_INPUTB_CLK="CLK0", p_REG_INPUTB_CE="CE0", p_REG_INPUTB_RST="RST0",
                p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE0", p_REG_OUTPUT_RST="RST0",
                p_REG_PIPELINE_CLK="NONE", p_RESETMODE="SYNC",
                i_SIGNEDA=Const(1, 1), i_SIGNEDB=Const(1, 1),
                i_SOURCEA=Const(0, 1), i_SOURCEB=Const(0, 1), **ports)
        else:
            a_r, b_r = Signal(signed(18)), Signal(signed(18))
            m.d.sync += [a_r.eq(a), b_r.eq(b), self.p.eq(a_r * b_r)]
        return m


def _pick(values, index):
    """``values[index]`` for a signal ``index`` (``values[0]`` when there is one value)."""
    if len(values) == 1:
        return values[0]
    return Array(values)[index[:(len(values) - 1).bit_length()]]


class MeadowEngine(wiring.Component):
    """The MEADOW tiled dataflow engine.

    Parameters
    ----------
    cfg : EngineConfig

    Members
    -------
    i_desc : In(stream.Signature(cfg.descriptor_layout))
        One descriptor per job: an attention layer (all heads, all tokens) or a linear
        layer (all tokens, all outputs).
    o_done : Out(stream.Signature(cfg.done_layout))
        One report per descriptor, after its last write was sent.
    mem : Out(MemoryPortSignature(cfg.port))
        DRAM.

    Attention, per head (KV heads: K and V loaded once per group of query heads), per group
    of ``pes`` tokens: load Q; Q·Kᵀ (one key per cycle, all PEs in parallel, running max);
    [GEMM: scores to DRAM and back]; EXP (table look-up, per-PE sums); DIV (``2**31 // sum``,
    32 cycles); normalise to uint8 probabilities; [GEMM: probabilities to DRAM and back];
    P·V (one key per cycle, ``dot_width`` accumulators per PE); requantise and write the
    outputs. A linear layer, per group of ``pes`` tokens: load X into the activation buffer,
    then per output feature stream its weight row (one beat per cycle, all PEs in parallel),
    requantise, and write a beat per token every ``dot_width`` outputs.

    Latency
    -------
    The job's cycles are predicted by :func:`sim.perf.meadow.engine_job`: each pass over
    the keys is ``keys`` cycles plus ``PASS_STAGES + 1`` = 11 (pipeline and exit), each DRAM
    read its command, ``READ_PORT_LATENCY`` = 2 (the command and the read data each pass a
    skid buffer at the port), the DRAM latency and its beats, each store its command and
    its beats (a GEMM store one cycle more: its words pass a register after the block RAM;
    the write skid buffer takes up to ``WRITE_BUFFER_BEATS`` = 2 beats ahead of a DRAM slower
    than a beat per cycle, and the next read waits for them), each output beat ``dot_width +
    REQUANT_LATENCY + 1`` = ``dot_width + 9`` cycles (a linear layer's requantisation
    ``pes + 9`` per output feature). The report comes ``DONE_LATENCY`` = 1 cycle after the
    last write left the port.

    Throughput
    ----------
    ``pes * dot_width`` multiply-accumulates per cycle in Q·Kᵀ, P·V and linear passes.
    """

    def __init__(self, cfg: EngineConfig):
        self.cfg = cfg
        super().__init__({
            "i_desc": In(stream.Signature(cfg.descriptor_layout)),
            "o_done": Out(stream.Signature(cfg.done_layout)),
            "mem": Out(MemoryPortSignature(cfg.port)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        P, D = cfg.pes, cfg.dot_width
        word = 8 * D
        keys_range = range(cfg.max_keys + 1)

        # ---- buffers ------------------------------------------------------------------------
        m.submodules.kbuf = kbuf = Memory(shape=word, depth=cfg.max_keys, init=[])
        m.submodules.vbuf = vbuf = Memory(shape=word, depth=cfg.max_keys, init=[])
        m.submodules.smem = smem = Memory(shape=32 * P, depth=cfg.max_keys, init=[])
        m.submodules.pmem = pmem = Memory(shape=8 * P, depth=cfg.max_keys, init=[])
        m.submodules.xbuf = xbuf = Memory(shape=word * P, depth=cfg.max_chunks, init=[])
        m.submodules.exp_table = exp_table = Memory(shape=16, depth=EXP_ENTRIES,
                                                    init=EXP_TABLE)
        k_wr, k_rd = kbuf.write_port(), kbuf.read_port()
        v_wr, v_rd = vbuf.write_port(), vbuf.read_port()
        s_wr, s_rd = smem.write_port(), smem.read_port()
        p_wr, p_rd = pmem.write_port(), pmem.read_port()
        x_wr, x_rd = xbuf.write_port(granularity=word), xbuf.read_port()
        lut_rd = [exp_table.read_port() for _ in range(P)]
        for port in (k_wr, v_wr, s_wr, p_wr):
            m.d.comb += port.en.eq(0)
        m.d.comb += x_wr.en.eq(0)

        # the memory port passes skid buffers in all three directions: the sequencer drives
        # the command and write data, and takes the read data, combinationally from its
        # state; across the port those would be long paths (the state register to the far
        # side's clock enables), so each stream is cut by registers on both handshake sides
        m.submodules.cmd_skid = cmd_skid = SkidBuffer(
            SkidBufferConfig(payload=cfg.port.command_layout))
        m.submodules.wdata_skid = wdata_skid = SkidBuffer(
            SkidBufferConfig(payload=cfg.port.write_layout))
        m.submodules.rdata_skid = rdata_skid = SkidBuffer(
            SkidBufferConfig(payload=cfg.port.read_layout))
        wiring.connect(m, cmd_skid.o, wiring.flipped(self.mem.cmd))
        wiring.connect(m, wdata_skid.o, wiring.flipped(self.mem.wdata))
        wiring.connect(m, wiring.flipped(self.mem.rdata), rdata_skid.i)
        cmd, wdata, rdata = cmd_skid.i, wdata_skid.i, rdata_skid.o

        # ---- descriptor and loop state --------------------------------------------------------
        desc = Signal(cfg.descriptor_layout)
        cycles = Signal(32)
        error = Signal()
        head = Signal(8)
        group_left = Signal(8)           # query heads left before the next KV head
        t0 = Signal(16)
        # registered loop bounds (timing: no subtract/compare chains in the sequencer's
        # next-state logic): tokens - t0, keys - 1, chunks - 1, n_tok - 1
        tok_left = Signal(signed(17))
        keys_m1 = Signal(range(2 * cfg.max_keys))
        chunks_m1 = Signal(range(2 * cfg.max_chunks))
        n_tok = Signal(range(P + 1))
        n_tok_m1 = Signal(range(P + 1))
        q_cur = Signal(cfg.addr_width)   # q_addr + t0, o_addr + t0 for this group
        o_cur = Signal(cfg.addr_width)
        q_addr = Signal(cfg.addr_width)  # a_base + head * tokens (+ t0 at use)
        o_addr = Signal(cfg.addr_width)
        k_addr = Signal(cfg.addr_width)
        v_addr = Signal(cfg.addr_width)
        lane_limit = Array(Signal(17, name=f"limit{p}") for p in range(P))
        count = Signal(range(max(cfg.max_keys, cfg.max_chunks, P, D) + 2))
        lane = Signal(range(P + 1))

        def vec(value, width, lanes, signed_=False):
            parts = [value[width * i:width * (i + 1)] for i in range(lanes)]
            return [p.as_signed() if signed_ else p for p in parts]

        # ---- PE array: P x D multipliers shared by Q·Kᵀ, P·V and linear ---------------------
        mul_a = [[Signal(signed(9), name=f"a{p}_{d}") for d in range(D)] for p in range(P)]
        mul_b = [Signal(signed(8), name=f"b{d}") for d in range(D)]
        # operands are registered after the block RAMs (their read is slow), products after
        # the multipliers, and the dot product is summed in two registered halves
        op_a = [[Signal(signed(9), name=f"opa{p}_{d}") for d in range(D)] for p in range(P)]
        op_b = [Signal(signed(8), name=f"opb{d}") for d in range(D)]
        prod = [[Signal(signed(17), name=f"prod{p}_{d}") for d in range(D)] for p in range(P)]
        # the multipliers register their operands and product inside the DSP blocks (_Mul2),
        # and the product is registered again in the fabric: the DSP blocks sit in a few rows
        # of the die, away from the operand muxes and the adders
        prod2 = [[Signal(signed(17), name=f"prod2_{p}_{d}") for d in range(D)]
                 for p in range(P)]
        for d in range(D):
            m.d.sync += op_b[d].eq(mul_b[d])
        # block RAM read data, registered before any logic (their clock-to-out is slow)
        k_data, v_data, p_data = Signal(word), Signal(word), Signal(8 * P)
        x_data = Signal(word * P)
        m.d.sync += [k_data.eq(k_rd.data), v_data.eq(v_rd.data), p_data.eq(p_rd.data),
                     x_data.eq(x_rd.data)]
        for p in range(P):
            for d in range(D):
                mul = _Mul2(op_a[p][d], op_b[d])
                m.submodules[f"mul{p}_{d}"] = mul
                m.d.comb += prod[p][d].eq(mul.p)
                m.d.sync += [op_a[p][d].eq(mul_a[p][d]), prod2[p][d].eq(prod[p][d])]
        parts = [[Signal(signed(24), name=f"part{p}_{g}") for g in range(-(-D // 4))]
                 for p in range(P)]
        tree = [Signal(signed(32), name=f"tree{p}") for p in range(P)]
        for p in range(P):
            for g, part in enumerate(parts[p]):
                m.d.sync += part.eq(tree_sum(prod2[p][4 * g:4 * g + 4]))
            m.d.sync += tree[p].eq(tree_sum(parts[p]))
        q_reg = [Signal(word, name=f"q{p}") for p in range(P)]
        acc = [[Signal(signed(32), name=f"acc{p}_{d}") for d in range(D)] for p in range(P)]
        lin_acc = [Signal(signed(32), name=f"lin{p}") for p in range(P)]
        score_max = [Signal(signed(32), name=f"max{p}") for p in range(P)]
        # the running max takes a registered candidate (the score, or -2**31 when the key is
        # masked or no score is due): the compare-and-load loop has no masking logic in it
        max_cand = [Signal(signed(32), name=f"cand{p}", init=-2 ** 31) for p in range(P)]
        exp_sum = [Signal(32, name=f"sum{p}") for p in range(P)]
        recip = [Signal(17, name=f"recip{p}") for p in range(P)]
        remainder = [Signal(33, name=f"rem{p}") for p in range(P)]

        # pipeline valid bits and key tags of the passes over the keys
        valid = [None] + [Signal(name=f"v{i}") for i in range(1, PASS_STAGES + 1)]
        tag = [None] + [Signal(keys_range, name=f"j{i}") for i in range(1, PASS_STAGES + 1)]
        for i in range(2, PASS_STAGES + 1):
            m.d.sync += [valid[i].eq(valid[i - 1]), tag[i].eq(tag[i - 1])]
        v1, j1 = valid[1], tag[1]
        m.d.sync += v1.eq(0)
        pipe_busy = Cat(*valid[1:]).any()

        def visible(p, j):
            return (j <= lane_limit[p]) & (p < n_tok)

        # key visibility per PE, compared a stage ahead into registers (the compare in front
        # of the running max's candidate was the critical path): vis8[p] is visible(p, tag[8])
        # and vis9[p] visible(p, tag[9]) (the limits hold still during a pass)
        vis8 = [Signal(name=f"vis8_{p}") for p in range(P)]
        vis9 = [Signal(name=f"vis9_{p}") for p in range(P)]
        for p in range(P):
            m.d.sync += [vis8[p].eq(visible(p, tag[7])), vis9[p].eq(vis8[p])]

        # the reciprocals, copied for the NORM multipliers
        recip_c = [Signal(17, name=f"recipc{p}") for p in range(P)]
        m.d.sync += [recip_c[p].eq(recip[p]) for p in range(P)]

        # ---- requantiser: acc -> int8, REQUANT_LATENCY cycles ---------------------------------
        rq_in_valid = Signal()
        rq_in = Signal(signed(32))
        rq_a = Signal(signed(32))
        rq_lo = Signal(32)                # (acc mod 2**16) * mult
        rq_hi = Signal(signed(33))        # (acc >> 16) * mult
        rq_sum = Signal(signed(50))
        rq_coarse = Signal(signed(50))
        rq_out = Signal(signed(8))
        rq_v = Signal(REQUANT_LATENCY - 1)
        # first level of the input select, registered: a feed is valid one cycle after it is
        # picked (rq_pre_v); the states set rq_pre_v, the second level drives rq_in
        rq_pre_v = Signal()
        m.d.sync += rq_pre_v.eq(0)
        m.d.comb += rq_in_valid.eq(rq_pre_v)
        # rounding constants, registered from the descriptor (it holds still during a job)
        # and copies of the multipliers' constant operands (to be placed by the DSPs)
        rq_round = Signal(50)
        exp_round = Signal(38)
        out_mult = Signal(16)
        exp_mult = Signal(16)
        m.d.sync += [rq_round.eq((Const(1, 50) << desc.out_shift) >> 1),
                     exp_round.eq((Const(1, 33) << desc.exp_shift) >> 1),
                     out_mult.eq(desc.out_mult), exp_mult.eq(desc.exp_mult)]
        rq_lo2 = Signal(32)
        rq_hi2 = Signal(signed(33))
        m.submodules.rq_mul_lo = rq_mul_lo = _Mul2(rq_a[:16], out_mult)
        m.submodules.rq_mul_hi = rq_mul_hi = _Mul2(rq_a[16:].as_signed(), out_mult)
        m.d.comb += [rq_lo.eq(rq_mul_lo.p), rq_hi.eq(rq_mul_hi.p)]
        m.d.sync += [rq_v.eq(Cat(rq_in_valid, rq_v[:-1])), rq_a.eq(rq_in),
                     rq_lo2.eq(rq_lo), rq_hi2.eq(rq_hi),
                     rq_sum.eq((rq_hi2 << 16) + rq_lo2 + rq_round),
                     rq_coarse.eq(rq_sum >> Cat(Const(0, 3), desc.out_shift[3:]))]
        rounded = Signal(signed(50))
        m.d.comb += rounded.eq(rq_coarse >> desc.out_shift[:3])
        # saturation from the top bits (reductions, not wide comparisons: timing)
        negative = rounded[-1]
        over = ~negative & rounded[7:].any()
        under = negative & (~rounded[7:].all() | (rounded[:7] == 0))
        clamped = Mux(over, 127, Mux(under, -127, rounded[:8].as_signed()))
        m.d.sync += rq_out.eq(Mux(desc.relu & desc.op & negative, 0, clamped))
        rq_done = rq_v[-1]

        # ---- defaults -------------------------------------------------------------------------
        m.d.comb += [
            k_rd.addr.eq(count), v_rd.addr.eq(count), p_rd.addr.eq(count),
            s_rd.addr.eq(count), x_rd.addr.eq(count),
        ]
        for p in range(P):
            for d in range(D):
                m.d.comb += mul_a[p][d].eq(0)
        for d in range(D):
            m.d.comb += mul_b[d].eq(0)

        out_word = Signal(word)
        w_reg = Signal(word)
        # the requantiser's operands, first level of the select (written every cycle): per
        # PE its accumulator of lane out_fed (a 64-way mux in one cycle was the critical
        # path), and the linear accumulator of token count
        acc_pick = [Signal(signed(32), name=f"accpick{p}") for p in range(P)]
        lin_pick = Signal(signed(32))
        out_results = Signal(range(D + 1))
        out_fed = Signal(range(D + 1))
        ybuf = [Signal(word, name=f"y{p}") for p in range(P)]
        n_out = Signal(16)
        w_addr = Signal(cfg.addr_width)
        x_addr = Signal(cfg.addr_width)
        y_addr = Signal(cfg.addr_width)
        chunk = Signal(16)
        sv = Signal()                  # a word read from a buffer is in its data register
        sv2 = Signal()                 # ... and in the store register, on wdata
        st_data = Signal(word)

        # i_desc.ready and o_done.valid come straight from flip-flops (IDLE and DONE as
        # one-hot flags beside the state register), and the descriptor is taken under them:
        # their enables then do not sit behind the sequencer's next-state logic
        idle = Signal(init=1)
        done_r = Signal()
        take_desc = idle & self.i_desc.valid
        m.d.comb += [self.i_desc.ready.eq(idle), self.o_done.valid.eq(done_r),
                     self.o_done.payload.cycles.eq(cycles),
                     self.o_done.payload.error.eq(error)]
        with m.If(take_desc):
            nd = self.i_desc.payload
            bad_att = ((nd.keys == 0) | (nd.keys > cfg.max_keys) | (nd.heads == 0)
                       | (nd.group == 0) | (nd.exp_shift == 0))
            bad_lin = ((nd.chunks == 0) | (nd.chunks > cfg.max_chunks)
                       | (nd.out_blocks == 0))
            bad = (nd.tokens == 0) | (nd.out_shift == 0) | Mux(nd.op, bad_lin, bad_att)
            m.d.sync += [desc.eq(nd), cycles.eq(1), head.eq(0), t0.eq(0),
                         group_left.eq(0), tok_left.eq(nd.tokens),
                         keys_m1.eq(nd.keys - 1), chunks_m1.eq(nd.chunks - 1),
                         error.eq(bad), q_addr.eq(nd.a_base), o_addr.eq(nd.d_base),
                         k_addr.eq(nd.b_base), v_addr.eq(nd.c_base), x_addr.eq(nd.a_base),
                         idle.eq(0), done_r.eq(bad)]
        with m.Elif(done_r):
            m.d.sync += cycles.eq(cycles)      # the report holds still until taken
            with m.If(self.o_done.ready):
                m.d.sync += [done_r.eq(0), idle.eq(1)]
        with m.Else():
            m.d.sync += cycles.eq(cycles + 1)

        # one-hot copies of the states whose logic lies far from the sequencer, kept beside
        # the state register: set by the transitions into the state and cleared by those
        # out of it (each equals "the state is S"), and the far logic uses registered copies
        # of them, one cycle late as a registered fsm.ongoing() would be; the state decode is
        # then not shared with logic placed across the die (a shared decode LUT placed far
        # away was the critical path), and each flag depends on its own transitions only
        at = {name: Signal(name=f"at_{name.lower()}")
              for name in ("K_LOAD", "V_LOAD", "Q_LOAD", "QK", "S_STORE", "S_LOAD", "EXP", "DIV",
                           "NORM",
                           "P_STORE", "P_LOAD", "PV", "O_STORE", "X_LOAD", "W_STREAM",
                           "L_REQUANT")}

        current = [None]

        @contextmanager
        def state(name):
            current[0] = name
            with m.State(name):
                yield

        def goto(target):
            m.next = target
            if target in at:
                m.d.sync += at[target].eq(1)
            if current[0] in at and target != current[0]:
                m.d.sync += at[current[0]].eq(0)

        def issue(addr, length, write, next_state):
            m.d.comb += [cmd.valid.eq(1), cmd.payload.addr.eq(addr),
                         cmd.payload.length.eq(length), cmd.payload.write.eq(write)]
            with m.If(cmd.ready):
                m.d.sync += [count.eq(0), rd_ready.eq(not write)]
                goto(next_state)

        # the softmax pipelines' registers are written every cycle, not under the FSM state
        # (they carry data only behind the valid bits of their own pass): the state register
        # then does not fan out to them
        free_sync, free_comb = [], []
        # rdata.ready is a flip-flop: set when a read command is issued, cleared with the
        # burst's last beat (the loads take a beat every cycle); the copy that drives the
        # port is a cycle late (a read's first beat comes 3 or more cycles after its command,
        # and the next read's 3 or more after the last one), so the flip-flop set by the
        # sequencer stays beside it
        rd_ready = Signal()
        rd_ready_far = Signal()
        m.d.sync += rd_ready_far.eq(rd_ready)
        m.d.comb += rdata.ready.eq(rd_ready_far)
        e_regs, probs = [], []

        with m.FSM():
            with state("IDLE"):
                with m.If(take_desc):
                    nd = self.i_desc.payload
                    with m.If(bad):
                        goto("DONE")
                    with m.Elif(nd.op == OP_LINEAR):
                        goto("L_GROUP")
                    with m.Else():
                        goto("HEAD")

            # ============================ attention ==========================================
            with state("HEAD"):
                with m.If(head == desc.heads):
                    goto("DRAIN")
                with m.Elif(group_left == 0):
                    m.d.sync += group_left.eq(desc.group)
                    goto("K_CMD")
                with m.Else():
                    m.d.sync += [t0.eq(0), tok_left.eq(desc.tokens)]
                    goto("GROUP")
            with state("K_CMD"):
                issue(k_addr, desc.keys, 0, "K_LOAD")
            with state("K_LOAD"):
                with m.If(rdata.valid):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == keys_m1):
                        m.d.sync += [k_addr.eq(k_addr + desc.keys), rd_ready.eq(0)]
                        goto("V_CMD")
            with state("V_CMD"):
                issue(v_addr, desc.keys, 0, "V_LOAD")
            with state("V_LOAD"):
                with m.If(rdata.valid):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == keys_m1):
                        m.d.sync += [v_addr.eq(v_addr + desc.keys), rd_ready.eq(0), t0.eq(0),
                                     tok_left.eq(desc.tokens)]
                        goto("GROUP")
            with state("GROUP"):
                with m.If(tok_left <= 0):
                    m.d.sync += [head.eq(head + 1), group_left.eq(group_left - 1),
                                 q_addr.eq(q_addr + desc.tokens), o_addr.eq(o_addr + desc.tokens)]
                    goto("HEAD")
                with m.Else():
                    m.d.sync += [q_cur.eq(q_addr + t0), o_cur.eq(o_addr + t0)]
                    goto("Q_CMD")
            with state("Q_CMD"):
                issue(q_cur, n_tok, 0, "Q_LOAD")
            with state("Q_LOAD"):
                # (the Q registers are loaded after the FSM)
                with m.If(rdata.valid):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == n_tok_m1):
                        m.d.sync += [count.eq(0), rd_ready.eq(0)]
                        goto("QK")

            with state("QK"):
                # 0: read K[j]; 1: K register; 2, 3: operands; 4, 5: products; 6: partial
                # sums; 7: dot products; 8: store the scores, max candidates; 9: running max
                # (the score stores and the running max are driven after the FSM)
                with m.If(count < desc.keys):
                    m.d.sync += [v1.eq(1), j1.eq(count), count.eq(count + 1)]
                with m.If((count == desc.keys) & ~pipe_busy):
                    m.d.sync += count.eq(0)
                    goto("QK_DONE")
            with state("QK_DONE"):
                with m.If(desc.gemm):
                    goto("S_STORE_CMD")
                with m.Else():
                    goto("EXP")

            with state("S_STORE_CMD"):
                m.d.sync += [sv.eq(0), sv2.eq(0)]
                issue(desc.s_base, desc.keys, 1, "S_STORE")
            with state("S_STORE"):
                self._store_from(m, goto, s_rd, count, sv, sv2, desc.keys, wdata,
                                 "S_LOAD_CMD")
            with state("S_LOAD_CMD"):
                issue(desc.s_base, desc.keys, 0, "S_LOAD")
            with state("S_LOAD"):
                with m.If(rdata.valid):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == keys_m1):
                        m.d.sync += [count.eq(0), rd_ready.eq(0)]
                        goto("EXP")

            with state("EXP"):
                # 0: read scores; then the stages numbered below; 10: store e, add to sum
                # (the multiplier has a second register on each side, as in the PEs)
                with m.If(count < desc.keys):
                    m.d.sync += [v1.eq(1), j1.eq(count), count.eq(count + 1)]
                scores = vec(s_rd.data, 32, P, True)
                for p in range(P):
                    score = Signal(signed(32), name=f"score{p}")
                    diff = Signal(signed(34), name=f"diff{p}")
                    dsat = Signal(21, name=f"dsat{p}")
                    pp_lo = Signal(32, name=f"pplo{p}")
                    pp_hi = Signal(21, name=f"pphi{p}")
                    pp_lo2 = Signal(32, name=f"pplo2_{p}")
                    pp_hi2 = Signal(21, name=f"pphi2_{p}")
                    rounded_e = Signal(38, name=f"rounded{p}")
                    coarse = Signal(38, name=f"coarse{p}")
                    index = Signal(range(EXP_ENTRIES), name=f"index{p}")
                    e_reg = Signal(16, name=f"e{p}")
                    free_sync.append(score.eq(scores[p]))                         # 2
                    free_comb.append(diff.eq(score_max[p] - score))
                    free_sync.append(dsat.eq(Mux(diff[21:].any(), DIFF_MAX, diff[:21])))  # 3
                    # 4: operands, 5: products, in the DSP blocks
                    exp_lo, exp_hi = _Mul2(dsat[:16], exp_mult), _Mul2(dsat[16:], exp_mult)
                    m.submodules[f"exp_mul_lo{p}"] = exp_lo
                    m.submodules[f"exp_mul_hi{p}"] = exp_hi
                    free_comb += [pp_lo.eq(exp_lo.p), pp_hi.eq(exp_hi.p)]
                    free_sync += [pp_lo2.eq(pp_lo), pp_hi2.eq(pp_hi)]             # 6
                    free_sync.append(rounded_e.eq((pp_hi2 << 16) + pp_lo2 + exp_round))  # 7
                    free_sync.append(coarse.eq(rounded_e >> Cat(Const(0, 3),       # 8
                                                                desc.exp_shift[3:])))
                    shifted = coarse >> desc.exp_shift[:3]
                    free_comb.append(index.eq(Mux(shifted[9:].any(), EXP_ENTRIES - 1,
                                                  shifted)))
                    free_comb.append(lut_rd[p].addr.eq(index))                    # 9: data
                    free_sync.append(e_reg.eq(Mux(vis9[p], lut_rd[p].data, 0)))  # 10
                    e_regs.append(e_reg)
                # (the stores of e and the sums are driven after the FSM)
                with m.If((count == desc.keys) & ~pipe_busy):
                    m.d.sync += count.eq(0)
                    goto("DIV")

            with state("DIV"):
                # (the divider runs after the FSM, a cycle behind the state)
                m.d.sync += count.eq(count + 1)
                with m.If(count == RECIP_BITS):
                    m.d.sync += count.eq(0)
                    goto("NORM")

            with state("NORM"):
                # 0: read e; 1: register it; 2: again (next to the DSP); 3: e * recip;
                # 4: register the product again; 5: store the probability
                with m.If(count < desc.keys):
                    m.d.sync += [v1.eq(1), j1.eq(count), count.eq(count + 1)]
                evec = vec(s_rd.data, 32, P)
                for p in range(P):
                    e_in = Signal(16, name=f"ein{p}")
                    scaled_p = Signal(33, name=f"pscaled{p}")
                    scaled2 = Signal(33, name=f"pscaled2_{p}")
                    norm_mul = _Mul2(e_in, recip_c[p])     # 2: operands, 3: product
                    m.submodules[f"norm_mul{p}"] = norm_mul
                    free_comb.append(scaled_p.eq(norm_mul.p))
                    free_sync += [e_in.eq(evec[p][:16]), scaled2.eq(scaled_p)]
                    top = scaled2 >> PROB_SHIFT
                    probs.append(Mux(top[8:].any(), 255, top[:8]))
                # (the probability stores are driven after the FSM)
                with m.If((count == desc.keys) & ~pipe_busy):
                    m.d.sync += count.eq(0)
                    goto("NORM_DONE")
            with state("NORM_DONE"):
                m.d.sync += [sv.eq(0), sv2.eq(0)]
                with m.If(desc.gemm):
                    goto("P_STORE_CMD")
                with m.Else():
                    goto("PV")

            with state("P_STORE_CMD"):
                issue(desc.s_base, desc.keys, 1, "P_STORE")
            with state("P_STORE"):
                self._store_from(m, goto, p_rd, count, sv, sv2, desc.keys, wdata,
                                 "P_LOAD_CMD")
            with state("P_LOAD_CMD"):
                issue(desc.s_base, desc.keys, 0, "P_LOAD")
            with state("P_LOAD"):
                with m.If(rdata.valid):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == keys_m1):
                        m.d.sync += [count.eq(0), rd_ready.eq(0)]
                        goto("PV")

            with state("PV"):
                # 0: read probabilities and V[j]; 1: registers; 2, 3: operands; 4, 5:
                # products; 6: accumulate
                with m.If(count < desc.keys):
                    m.d.sync += [v1.eq(1), j1.eq(count), count.eq(count + 1)]
                # (the operands and the accumulators are driven after the FSM)
                with m.If((count == desc.keys) & ~pipe_busy):
                    m.d.sync += count.eq(0)
                    goto("O_CMD")

            with state("O_CMD"):
                m.d.sync += [lane.eq(0), out_fed.eq(0), out_results.eq(0)]
                issue(o_cur, n_tok, 1, "O_STORE")
            with state("O_STORE"):
                self._requant_beats(m, acc_pick, lane, out_fed, out_results, out_word,
                                    rq_pre_v, rq_in, rq_done, rq_out, wdata, D)
                with m.If(lane == n_tok):
                    m.d.sync += [t0.eq(t0 + P), tok_left.eq(tok_left - P)]
                    goto("GROUP")

            # ============================== linear ===========================================
            with state("L_GROUP"):
                with m.If(tok_left <= 0):
                    goto("DRAIN")
                with m.Else():
                    m.d.sync += [chunk.eq(0),
                                 x_addr.eq(desc.a_base + t0), w_addr.eq(desc.b_base),
                                 y_addr.eq(desc.d_base + t0), n_out.eq(0)]
                    goto("X_CMD")
            with state("X_CMD"):
                issue(x_addr, n_tok, 0, "X_LOAD")
            with state("X_LOAD"):
                with m.If(rdata.valid):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == n_tok_m1):
                        m.d.sync += [chunk.eq(chunk + 1), x_addr.eq(x_addr + desc.tokens),
                                     rd_ready.eq(0)]
                        with m.If(chunk == chunks_m1):
                            goto("W_CMD")
                        with m.Else():
                            goto("X_CMD")
            with state("W_CMD"):
                issue(w_addr, desc.chunks, 0, "W_STREAM")
            with state("W_STREAM"):
                # 0: take a weight beat, read the X chunk; 1: registers; 2, 3: operands;
                # 4, 5: products; 6: partial sums; 7: dot products; 8: accumulate
                with m.If(rdata.valid & rdata.ready):
                    m.d.sync += [v1.eq(1), count.eq(count + 1)]
                    with m.If(count == chunks_m1):
                        m.d.sync += rd_ready.eq(0)
                w_delayed = Signal(word)
                m.d.sync += w_delayed.eq(w_reg)
                # the X word must line up with the weight beat one cycle later
                m.d.comb += x_rd.addr.eq(count)
                # (the accumulators are driven after the FSM)
                with m.If((count == desc.chunks) & ~pipe_busy):
                    m.d.sync += [count.eq(0), lane.eq(0), out_results.eq(0)]
                    goto("L_REQUANT")
            with state("L_REQUANT"):
                m.d.comb += rq_in.eq(lin_pick)
                with m.If(count < P):
                    m.d.sync += [rq_pre_v.eq(1), count.eq(count + 1)]
                lane_sel = n_out[:D.bit_length() - 1]
                with m.If(rq_done):
                    m.d.sync += out_results.eq(out_results + 1)
                with m.If(out_results == P):
                    m.d.sync += [n_out.eq(n_out + 1), w_addr.eq(w_addr + desc.chunks),
                                 count.eq(0)]
                    with m.If(lane_sel == D - 1):
                        goto("Y_CMD")
                    with m.Else():
                        goto("W_CMD")
            with state("Y_CMD"):
                issue(y_addr, n_tok, 1, "Y_STORE")
            with state("Y_STORE"):
                m.d.comb += wdata.valid.eq(1)
                with m.If(wdata.ready):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == n_tok_m1):
                        m.d.sync += [count.eq(0), y_addr.eq(y_addr + desc.tokens)]
                        with m.If(n_out == Cat(Const(0, D.bit_length() - 1),
                                               desc.out_blocks)):
                            m.d.sync += [t0.eq(t0 + P), tok_left.eq(tok_left - P)]
                            goto("L_GROUP")
                        with m.Else():
                            goto("W_CMD")

            with state("DRAIN"):
                # the report follows the job's last write out of the port
                with m.If(~self.mem.cmd.valid & ~self.mem.wdata.valid):
                    m.d.sync += done_r.eq(1)
                    goto("DONE")
            with state("DONE"):
                with m.If(self.o_done.ready):
                    goto("IDLE")
        m.d.sync += free_sync
        m.d.comb += free_comb
        for p in range(P):
            m.d.sync += acc_pick[p].eq(_pick(acc[p], out_fed))
        m.d.sync += lin_pick.eq(_pick(lin_acc, count))

        # the PE operands are selected by flags registered from the state (one cycle late:
        # a pass's first operands arrive 2 cycles after it starts), so the state register
        # does not fan out to the operand multiplexers
        in_qk, in_pv, in_w = Signal(name="in_qk"), Signal(name="in_pv"), Signal(name="in_w")
        in_exp, in_norm = Signal(name="in_exp"), Signal(name="in_norm")
        m.d.sync += [in_qk.eq(at["QK"]), in_pv.eq(at["PV"]), in_w.eq(at["W_STREAM"]),
                     in_exp.eq(at["EXP"]), in_norm.eq(at["NORM"])]
        # the running maxima and the sums of e are cleared by a registered pulse in the second
        # cycle of Q·Kᵀ, the linear accumulators in the second cycle of the weight stream
        # (their first updates come 8 cycles later), not by the sequencer's states before
        qk_clr, w_clr = Signal(name="qk_clr"), Signal(name="w_clr")
        m.d.sync += [qk_clr.eq(at["QK"] & ~in_qk), w_clr.eq(at["W_STREAM"] & ~in_w)]
        # the group's token count and visibility limits follow t0 and tokens - t0 (set when
        # a group ends, used from the next group's first command on) every cycle
        m.d.sync += [n_tok.eq(Mux(tok_left > P, P, tok_left)),
                     n_tok_m1.eq(Mux(tok_left > P, P - 1, tok_left - 1))]
        m.d.sync += [lane_limit[p].eq(desc.q_offset + t0 + p) for p in range(P)]
        # the same flags, with the passes' valid bits, control the score, e and
        # probability stores, the running max, the sums of e and the linear accumulators
        # (a pass's valid bits all come after its first cycle and end before its last)
        with m.If(in_qk & valid[8]):                                              # QK 8
            m.d.comb += [s_wr.en.eq(1), s_wr.addr.eq(tag[8]),
                         s_wr.data.eq(Cat(*[t.as_unsigned() for t in tree]))]
        for p in range(P):
            m.d.sync += max_cand[p].eq(Mux(in_qk & valid[8] & vis8[p], tree[p], -2 ** 31))
            with m.If(qk_clr):
                m.d.sync += [score_max[p].eq(-2 ** 31), exp_sum[p].eq(0)]
            with m.Elif(max_cand[p] > score_max[p]):                              # QK 9
                m.d.sync += score_max[p].eq(max_cand[p])
        with m.If(in_exp & valid[10]):                                            # EXP 10
            m.d.comb += [s_wr.en.eq(1), s_wr.addr.eq(tag[10]),
                         s_wr.data.eq(Cat(*[Cat(e, Const(0, 16)) for e in e_regs]))]
            for p in range(P):
                m.d.sync += exp_sum[p].eq(exp_sum[p] + e_regs[p])
        with m.If(in_norm & valid[5]):                                            # NORM 5
            m.d.comb += [p_wr.en.eq(1), p_wr.addr.eq(tag[5]), p_wr.data.eq(Cat(*probs))]
        with m.If(w_clr):
            for p in range(P):
                m.d.sync += lin_acc[p].eq(0)
        with m.Elif(in_w & valid[8]):                                             # W 8
            for p in range(P):
                m.d.sync += lin_acc[p].eq(lin_acc[p] + tree[p])
        # the Q registers, the weight register, the output word and the linear outputs are
        # loaded behind flags and valid bits, not the state: the state register does not fan
        # out to their clock enables (a load's beats come after its first cycle, and the
        # requantiser's results after its first feed)
        in_qload, in_lreq = Signal(name="in_qload"), Signal(name="in_lreq")
        m.d.sync += [in_qload.eq(at["Q_LOAD"]), in_lreq.eq(at["L_REQUANT"])]
        with m.If(in_qload & rdata.valid):
            for p in range(P):
                with m.If(count == p):
                    m.d.sync += q_reg[p].eq(rdata.payload.data)
        m.d.sync += w_reg.eq(rdata.payload.data)      # used only behind W_STREAM's valid bits
        with m.If(rq_done):
            m.d.sync += out_word.eq(Cat(out_word[8:], rq_out))
        with m.If(in_lreq & rq_done):
            lane_sel = n_out[:D.bit_length() - 1]
            for p in range(P):
                with m.If(out_results == p):
                    for d in range(D):
                        with m.If(lane_sel == d):
                            m.d.sync += ybuf[p][8 * d:8 * d + 8].eq(rq_out)
        # the buffers' write ports take the read data behind the flags of their loads (a load's
        # beats come at least 3 cycles after its command: the port's skid buffers and the
        # DRAM latency), and the write data is picked by the flags of the stores (the buffer
        # stores and the output beats send their first beat 2 or more cycles into their
        # state; the linear outputs, sent from their first cycle, are the default)
        in_load = {name: Signal(name=f"in_{name.lower()}")
                   for name in ("K_LOAD", "V_LOAD", "S_LOAD", "P_LOAD", "X_LOAD")}
        in_buf_store, in_out_store = Signal(name="in_buf_store"), Signal(name="in_out_store")
        m.d.sync += [flag.eq(at[name]) for name, flag in in_load.items()]
        m.d.sync += [in_buf_store.eq(at["S_STORE"] | at["P_STORE"]),
                     in_out_store.eq(at["O_STORE"])]
        beat = rdata.valid
        m.d.comb += [k_wr.addr.eq(count), k_wr.data.eq(rdata.payload.data),
                     k_wr.en.eq(in_load["K_LOAD"] & beat),
                     v_wr.addr.eq(count), v_wr.data.eq(rdata.payload.data),
                     v_wr.en.eq(in_load["V_LOAD"] & beat),
                     x_wr.addr.eq(chunk), x_wr.data.eq(Cat(*[rdata.payload.data] * P))]
        with m.If(in_load["X_LOAD"] & beat):
            m.d.comb += x_wr.en.eq(1 << count[:max(1, (P - 1).bit_length())] if P > 1 else 1)
        with m.If(in_load["S_LOAD"] & beat):
            m.d.comb += [s_wr.en.eq(1), s_wr.addr.eq(count),
                         s_wr.data.eq(rdata.payload.data[:32 * P])]
        with m.If(in_load["P_LOAD"] & beat):
            m.d.comb += [p_wr.en.eq(1), p_wr.addr.eq(count),
                         p_wr.data.eq(rdata.payload.data[:8 * P])]
        # the store register loads outside the stores too (harmless: it is only sent behind
        # sv2), so only the flag of the probability store, not the state, reaches it
        in_p_store = Signal(name="in_p_store")
        m.d.sync += in_p_store.eq(at["P_STORE"])
        with m.If(~sv2 | wdata.ready):
            m.d.sync += st_data.eq(Mux(in_p_store, p_rd.data, s_rd.data))
        m.d.comb += wdata.payload.data.eq(Mux(in_out_store, out_word,
                                              Mux(in_buf_store, st_data, _pick(ybuf, count))))
        # restoring division 2**31 // sum, one quotient bit per cycle, MSB first, run a cycle
        # behind the DIV state by flags: running, and its first cycle (when the remainder
        # starts from 0 and the dividend's one bit shifts in); the last quotient bit lands in
        # NORM's first cycle, 2 cycles before the NORM multipliers take the reciprocals
        div_run, div_first = Signal(name="div_run"), Signal(name="div_first")
        m.d.sync += [div_run.eq(at["DIV"]), div_first.eq(at["DIV"] & ~div_run)]
        with m.If(div_run):
            for p in range(P):
                shifted_rem = Cat(div_first, Mux(div_first, 0, remainder[p][:32]))
                fits = shifted_rem >= exp_sum[p]
                m.d.sync += [remainder[p].eq(Mux(fits, shifted_rem - exp_sum[p], shifted_rem)),
                             recip[p].eq(Cat(fits, recip[p][:16]))]
        kvec = vec(k_data, 8, D, True)
        pvec = vec(p_data, 8, P)
        vvec = vec(v_data, 8, D, True)
        xvecs = [vec(x_data[word * p:word * (p + 1)], 8, D, True) for p in range(P)]
        wvec = vec(w_delayed, 8, D, True)
        with m.If(in_qk):
            for p in range(P):
                qv = vec(q_reg[p], 8, D, True)
                for d in range(D):
                    m.d.comb += mul_a[p][d].eq(qv[d])
            for d in range(D):
                m.d.comb += mul_b[d].eq(kvec[d])
        with m.Elif(in_pv):
            for p in range(P):
                for d in range(D):
                    m.d.comb += mul_a[p][d].eq(pvec[p].as_unsigned())
            for d in range(D):
                m.d.comb += mul_b[d].eq(vvec[d])
        with m.Elif(in_w):
            for p in range(P):
                for d in range(D):
                    m.d.comb += mul_a[p][d].eq(xvecs[p][d])
            for d in range(D):
                m.d.comb += mul_b[d].eq(wvec[d])
        # P·V accumulators: cleared by a registered pulse in the pass's second cycle (its first
        # products come 5 cycles later), accumulated behind valid bit 6; both controls come
        # straight from flip-flops (they fan out to all P * D accumulators)
        acc_clr = Signal()
        m.d.sync += acc_clr.eq(at["PV"] & ~in_pv)
        with m.If(acc_clr):
            for p in range(P):
                for d in range(D):
                    m.d.sync += acc[p][d].eq(0)
        with m.Elif(valid[6] & in_pv):
            for p in range(P):
                for d in range(D):
                    m.d.sync += acc[p][d].eq(acc[p][d] + prod2[p][d])
        return m

    @staticmethod
    def _store_from(m, goto, rd, count, sv, sv2, length, wdata, next_state):
        """Send words ``0 .. length-1`` of a buffer on ``wdata``, through two registers that
        advance together: the read port's data register (``sv``) and ``st_data`` (``sv2``,
        loaded after the FSM), which drives ``wdata`` (block RAM data is slow out of the RAM:
        no logic behind it)."""
        take = ~sv2 | wdata.ready
        m.d.comb += [rd.addr.eq(count), rd.en.eq(take), wdata.valid.eq(sv2)]
        with m.If(take):
            m.d.sync += sv2.eq(sv)
            with m.If(count < length):
                m.d.sync += [sv.eq(1), count.eq(count + 1)]
            with m.Else():
                m.d.sync += sv.eq(0)
                with m.If(~sv):
                    m.d.sync += count.eq(0)
                    goto(next_state)

    @staticmethod
    def _requant_beats(m, picks, lane, fed, results, out_word, pre_v, rq_in, rq_done,
                       rq_out, wdata, D):
        """Requantise the accumulators of lane ``lane`` into one beat and send it, a beat per
        lane: ``fed`` counts the feeds, ``picks[p]`` holds PE ``p``'s accumulator of the
        previous feed (first level of the select), ``pre_v`` marks it valid."""
        m.d.comb += rq_in.eq(_pick(picks, lane))
        with m.If(fed < D):
            m.d.sync += [pre_v.eq(1), fed.eq(fed + 1)]
        with m.If(rq_done):
            m.d.sync += results.eq(results + 1)
        m.d.comb += wdata.valid.eq(results == D)
        with m.If((results == D) & wdata.ready):
            m.d.sync += [lane.eq(lane + 1), fed.eq(0), results.eq(0)]
