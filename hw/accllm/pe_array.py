"""The reconfigurable mixed-precision PE and the R x C PE array of AccLLM (arXiv 2505.03745).

Each PE owns one signed 18 x 18 multiplier (one ECP5 ``MULT18X18D``) and two 32-bit
accumulator lanes. Its mode is chosen per beat at run time (encoding of
:data:`golden.accllm.MODES`):

========  ==========================================  ======================  =================
mode      weight word (10 bits)                       multiplier operand B    lane products
========  ==========================================  ======================  =================
w8a8 (0)  ``w`` signed 8-bit in bits 0-7              ``w``                   ``a*w``, 0
w4a8 (1)  codes ``q0`` bits 0-3, ``q1`` bits 4-7      ``q0 + q1 << 12``       ``a*q0``, ``a*q1``
w2a8 (2)  codes ``q0`` bits 0-1, ``q1`` bits 2-3      ``q0 + q1 << 10``       ``a*q0``, ``a*q1``
a8kv4 (3) K/V codes ``k0`` bits 0-3, ``k1`` bits 4-7  ``k0 + k1 << 12``       ``a*k0``, ``a*k1``
sparse24  kept value (signed 8-bit) bits 0-7, its     ``v``                   ``x[idx]*v``, 0
(4)       index in the group of four bits 8-9
========  ==========================================  ======================  =================

``a`` is activation 0 of the PE's four; in ``sparse24`` the index picks one of the four (a
2:4 group). Modes 5-7 are reserved and behave as ``w8a8``. The two packed products come out of
the one product ``P = a * B`` with the sign corrections of :func:`golden.accllm.packed_multiply`
(sign-extend the low field, add its sign bit to the high field), exact for every ``a`` in
[-128, 127] and every code.

Dataflows, also chosen per beat by ``gemm``: matrix-vector (decode, ``gemm = 0``): every PE
takes ``act[0]`` and its own weight word ``wgt[r * cols + c]``; matrix-matrix (prefill,
``gemm = 1``): PE ``(r, c)`` takes row ``r``'s activations ``act[r]`` and column ``c``'s word
``wgt[c]`` (a token per row, an output group per column).
"""

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.accllm import ACC_BITS, FIELD_SHIFT, MODES

from ..common.queue import Queue, QueueConfig
from ..common.validate import check_int

__all__ = ["PEArrayConfig", "PEArray", "ProcessingElement", "PRESETS", "LATENCY"]

ACT_BITS = 8
WORD_BITS = 10
OPERAND_BITS = 18
PRODUCT_BITS = ACT_BITS + OPERAND_BITS
MODE_BITS = 3
SHIFT_BITS = 5
#: Pipeline stages between an accepted beat and its products reaching the accumulators.
LATENCY = 6
#: Result rows the output queue holds.
OUTPUT_QUEUE_DEPTH = 4


@dataclass(frozen=True)
class PEArrayConfig:
    """Configuration of :class:`PEArray`.

    Parameters
    ----------
    rows : int
        PE rows (1 to 16): tokens in parallel in matrix-matrix mode.
    cols : int
        PE columns (1 to 16).
    """

    rows: int = 4
    cols: int = 4

    def __post_init__(self):
        check_int("rows", self.rows, min=1, max=16)
        check_int("cols", self.cols, min=1, max=16)

    @property
    def pes(self) -> int:
        return self.rows * self.cols

    @property
    def input_layout(self) -> data.StructLayout:
        """``mode`` (3 bits), ``gemm`` (dataflow), ``shift`` (requantisation, read on the last
        beat of a run), ``act`` (``rows`` x 4 signed 8-bit), ``wgt`` (``rows * cols`` 10-bit
        weight words), ``first`` (not used), ``last`` (ends the run)."""
        return data.StructLayout({
            "mode": MODE_BITS,
            "gemm": 1,
            "shift": SHIFT_BITS,
            "act": data.ArrayLayout(data.ArrayLayout(signed(ACT_BITS), 4), self.rows),
            "wgt": data.ArrayLayout(WORD_BITS, self.pes),
            "first": 1,
            "last": 1,
        })

    @property
    def output_layout(self) -> data.StructLayout:
        """One beat per PE row at the end of a run: ``row``, ``acc`` (``cols`` x 2 lanes,
        signed 32-bit), ``q`` (the same requantised to signed 8-bit), ``sum_a`` (the row's
        activation sum, signed 32-bit), ``first`` (row 0), ``last`` (row ``rows - 1``)."""
        return data.StructLayout({
            "row": range(max(self.rows, 2)),
            "acc": data.ArrayLayout(data.ArrayLayout(signed(ACC_BITS), 2), self.cols),
            "q": data.ArrayLayout(data.ArrayLayout(signed(8), 2), self.cols),
            "sum_a": signed(ACC_BITS),
            "first": 1,
            "last": 1,
        })


PRESETS: dict[str, PEArrayConfig] = {
    "default": PEArrayConfig(4, 4),
    "tiny": PEArrayConfig(2, 2),
    "pe": PEArrayConfig(1, 1),
    "large": PEArrayConfig(8, 8),
}


class ProcessingElement(Elaboratable):
    """One reconfigurable PE: operand formation, the packed multiply, field extraction with
    sign correction and two accumulator lanes, in a 6-stage pipeline that never stalls
    (operands, operands again, multiply, product again, fields, accumulate). The extra
    registers around the multiply are there for the routing between fabric and MULT18X18D,
    which limits large arrays (an 8 x 8 array reaches 78.6 MHz: nextpnr does not place them
    next to the DSP; the DSP's own registers would be the fix).

    Members
    -------
    acts : Signal array, in
        The four signed 8-bit activations offered to this PE (stage 0).
    word : Signal(10), in
        Its weight word (stage 0).
    mode : Signal(3), in
        Mode of the beat (stage 0).
    accumulate : Signal, in
        High in the cycle the beat entered ``LATENCY - 1`` cycles ago reaches the
        accumulators (the beat was valid).
    clear : Signal, in
        With ``accumulate``: that beat ends the run; ``total`` shows the run's sums in this
        cycle and the lanes restart from zero.
    total : list of 2 Signal(signed(32)), out
        Combinational: accumulator lanes plus the products arriving now.
    """

    def __init__(self):
        self.acts = [Signal(signed(ACT_BITS), name=f"act{k}") for k in range(4)]
        self.word = Signal(WORD_BITS)
        self.mode = Signal(MODE_BITS)
        self.accumulate = Signal()
        self.clear = Signal()
        self.total = [Signal(signed(ACC_BITS), name=f"total{k}") for k in range(2)]

    def elaborate(self, platform):
        m = Module()
        word, mode = self.word, self.mode

        # stage 1: operands
        a = Signal(signed(ACT_BITS))
        b = Signal(signed(OPERAND_BITS))
        kind = Signal(2)            # 0: one product, 1: fields of 12 bits, 2: fields of 10
        index = word[8:10]
        picked = Signal(signed(ACT_BITS))
        with m.Switch(index):
            for k in range(4):
                with m.Case(k):
                    m.d.comb += picked.eq(self.acts[k])
        w8 = word[0:8].as_signed()
        with m.Switch(mode):
            with m.Case(MODES["w4a8"], MODES["a8kv4"]):
                m.d.sync += [a.eq(self.acts[0]),
                             b.eq(Cat(word[0:4], Const(0, 8), word[4:8])), kind.eq(1)]
            with m.Case(MODES["w2a8"]):
                m.d.sync += [a.eq(self.acts[0]),
                             b.eq(Cat(word[0:2], Const(0, 8), word[2:4])), kind.eq(2)]
            with m.Case(MODES["sparse24"]):
                m.d.sync += [a.eq(picked), b.eq(w8), kind.eq(0)]
            with m.Default():
                m.d.sync += [a.eq(self.acts[0]), b.eq(w8), kind.eq(0)]

        # stage 2: operands again; stage 3: the one multiply (MULT18X18D); stage 4: product again
        a_near = Signal(signed(ACT_BITS))
        b_near = Signal(signed(OPERAND_BITS))
        raw_product = Signal(signed(PRODUCT_BITS))
        product = Signal(signed(PRODUCT_BITS))
        kinds = [Signal(2, name=f"kind{s}") for s in range(2, 5)]
        m.d.sync += [a_near.eq(a), b_near.eq(b), raw_product.eq(a_near * b_near),
                     product.eq(raw_product), kinds[0].eq(kind), kinds[1].eq(kinds[0]),
                     kinds[2].eq(kinds[1])]
        kind2 = kinds[2]

        # stage 5: fields, sign-corrected
        lanes = [Signal(signed(PRODUCT_BITS), name=f"lane{k}") for k in range(2)]
        assert FIELD_SHIFT["a8kv4"] == FIELD_SHIFT["w4a8"]
        with m.Switch(kind2):
            for kind_value, s in ((1, FIELD_SHIFT["w4a8"]), (2, FIELD_SHIFT["w2a8"])):
                with m.Case(kind_value):
                    borrow = product[s - 1]
                    m.d.sync += [lanes[0].eq(product[:s].as_signed()),
                                 lanes[1].eq((product >> s) + borrow)]
            with m.Default():
                m.d.sync += [lanes[0].eq(product), lanes[1].eq(0)]

        # stage 6: accumulate
        acc = [Signal(signed(ACC_BITS), name=f"acc{k}") for k in range(2)]
        for k in range(2):
            m.d.comb += self.total[k].eq(acc[k] + lanes[k])
            with m.If(self.accumulate):
                m.d.sync += acc[k].eq(Mux(self.clear, 0, self.total[k]))
        return m


class PEArray(wiring.Component):
    """R x C array of reconfigurable PEs with matrix-vector and matrix-matrix dataflows.

    Input beats (``cfg.input_layout``) are taken one per cycle; each carries a mode, a
    dataflow, the activations and the weight words for every PE, so mode and dataflow can
    change from one beat (and one run) to the next without a reset. The beat with ``last``
    ends a run: its accumulators move to an output buffer (the next run starts from zero at
    once) and leave as ``rows`` beats, row 0 first, with the per-run requantisation
    ``q = sat8((acc + 2**(shift-1)) >> shift)`` (``shift`` of the last beat) beside the raw
    32-bit sums and the row's activation sum (for zero points: ``sum_k a*(q-z) = acc - z*sum_a``).
    The result is :class:`golden.accllm.PEArrayModel` beat for beat.

    Parameters
    ----------
    cfg : PEArrayConfig

    Members
    -------
    i : In(stream.Signature(cfg.input_layout))
    o : Out(stream.Signature(cfg.output_layout))

    Latency
    -------
    Row 0 of a run's results is offered 10 cycles after the run's last beat is taken (6
    pipeline stages, 2 requantiser stages, 2 through the output queue).

    Throughput
    ----------
    One beat per cycle: ``rows * cols`` multiplies per cycle, i.e. ``rows * cols`` MACs in
    ``w8a8``, ``2 * rows * cols`` in ``w4a8``/``w2a8``/``a8kv4`` (two products per multiply)
    and ``2 * rows * cols`` dense-equivalent MACs in ``sparse24``. The output buffer holds one
    run: a ``last`` beat waits while the previous run's rows are still leaving, so runs of at
    least ``rows`` beats go back to back without a stall when ``o`` is always ready.

    Resources
    ---------
    ``rows * cols`` MULT18X18D; ``4 * 32 * rows * cols`` accumulator and buffer flip-flops;
    an output queue of 4 result rows.
    """

    def __init__(self, cfg: PEArrayConfig):
        self.cfg = cfg
        super().__init__({
            "i": In(stream.Signature(cfg.input_layout)),
            "o": Out(stream.Signature(cfg.output_layout)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        R, C = cfg.rows, cfg.cols
        beat = self.i.payload

        # stage valid/last/shift, shared by every PE (the pipeline never stalls)
        valid = [Signal(name=f"valid{s}") for s in range(1, LATENCY)]
        last = [Signal(name=f"last{s}") for s in range(1, LATENCY)]
        shift = [Signal(SHIFT_BITS, name=f"shift{s}") for s in range(1, LATENCY)]
        take = self.i.valid & self.i.ready
        m.d.sync += [valid[0].eq(take), last[0].eq(take & beat.last), shift[0].eq(beat.shift)]
        for s in range(1, LATENCY - 1):
            m.d.sync += [valid[s].eq(valid[s - 1]), last[s].eq(last[s - 1]),
                         shift[s].eq(shift[s - 1])]
        arrive, capture = valid[-1], valid[-1] & last[-1]

        # output buffer: a shift register of rows, row 0 offered on `o`
        full = Signal()
        row = Signal(range(max(R, 2)))
        out_acc = [[[Signal(signed(ACC_BITS), name=f"out_acc_{r}_{c}_{k}") for k in range(2)]
                    for c in range(C)] for r in range(R)]
        out_sum = [Signal(signed(ACC_BITS), name=f"out_sum_{r}") for r in range(R)]
        out_shift = Signal(SHIFT_BITS)

        busy = full | Cat(*last).any()
        m.d.comb += self.i.ready.eq(~(beat.last & busy))

        # the PEs and the per-row activation sums
        for r in range(R):
            row_acts = [Mux(beat.gemm, beat.act[r][k], beat.act[0][k]) for k in range(4)]
            a0 = [Signal(signed(ACT_BITS), name=f"a0_{r}_{s}") for s in range(1, LATENCY)]
            m.d.sync += a0[0].eq(row_acts[0])
            m.d.sync += [a0[s].eq(a0[s - 1]) for s in range(1, LATENCY - 1)]
            row_sum = Signal(signed(ACC_BITS), name=f"sum_a_{r}")
            row_total = Signal(signed(ACC_BITS), name=f"sum_total_{r}")
            m.d.comb += row_total.eq(row_sum + a0[-1])
            with m.If(arrive):
                m.d.sync += row_sum.eq(Mux(capture, 0, row_total))
            with m.If(capture):
                m.d.sync += out_sum[r].eq(row_total)
            for c in range(C):
                pe = ProcessingElement()
                m.submodules[f"pe_{r}_{c}"] = pe
                m.d.comb += [pe.acts[k].eq(row_acts[k]) for k in range(4)]
                m.d.comb += [pe.word.eq(Mux(beat.gemm, beat.wgt[c], beat.wgt[r * C + c])),
                             pe.mode.eq(beat.mode), pe.accumulate.eq(arrive),
                             pe.clear.eq(capture)]
                with m.If(capture):
                    m.d.sync += [out_acc[r][c][k].eq(pe.total[k]) for k in range(2)]

        with m.If(capture):
            m.d.sync += [full.eq(1), row.eq(0), out_shift.eq(shift[-1])]

        # drain: row 0 of the buffer enters a two-stage requantiser (shift, then round and
        # saturate) feeding an output queue; a row is issued only when the queue has room for
        # it and for the rows already in the requantiser, so the requantiser never stalls
        m.submodules.queue = queue = Queue(QueueConfig(depth=OUTPUT_QUEUE_DEPTH,
                                                       payload=cfg.output_layout))
        wiring.connect(m, wiring.flipped(self.o), queue.o)
        stage_a, stage_b = Signal(), Signal()
        in_flight = stage_a.as_unsigned() + stage_b.as_unsigned()
        issue = full & (queue.level + in_flight < OUTPUT_QUEUE_DEPTH)

        shift_m1 = Signal(SHIFT_BITS)
        m.d.comb += shift_m1.eq(out_shift - 1)
        a_payload = Signal(cfg.output_layout)
        a_floor = [[Signal(signed(ACC_BITS), name=f"rq_floor_{c}_{k}") for k in range(2)]
                   for c in range(C)]
        a_half = [[Signal(name=f"rq_half_{c}_{k}") for k in range(2)] for c in range(C)]
        m.d.sync += stage_a.eq(issue)
        with m.If(issue):
            m.d.sync += [a_payload.row.eq(row), a_payload.first.eq(row == 0),
                         a_payload.last.eq(row == R - 1), a_payload.sum_a.eq(out_sum[0])]
            for c in range(C):
                for k in range(2):
                    value = out_acc[0][c][k]
                    m.d.sync += [a_payload.acc[c][k].eq(value),
                                 a_floor[c][k].eq(value >> out_shift),
                                 a_half[c][k].eq((out_shift != 0)
                                                 & value.bit_select(shift_m1, 1))]
            for r in range(R - 1):
                m.d.sync += out_sum[r].eq(out_sum[r + 1])
                m.d.sync += [out_acc[r][c][k].eq(out_acc[r + 1][c][k])
                             for c in range(C) for k in range(2)]
            m.d.sync += row.eq(row + 1)
            with m.If(row == R - 1):
                m.d.sync += full.eq(0)

        # stage b: q = sat8(floor(acc / 2**shift) + rounding bit)
        b_payload = Signal(cfg.output_layout)
        m.d.sync += [stage_b.eq(stage_a), b_payload.eq(a_payload)]
        for c in range(C):
            for k in range(2):
                rounded = Signal(signed(ACC_BITS + 1), name=f"rq_{c}_{k}")
                m.d.comb += rounded.eq(a_floor[c][k] + a_half[c][k])
                m.d.sync += b_payload.q[c][k].eq(
                    Mux(rounded > 127, 127, Mux(rounded < -128, -128, rounded)))
        m.d.comb += [queue.i.valid.eq(stage_b), queue.i.payload.eq(b_payload)]
        return m
