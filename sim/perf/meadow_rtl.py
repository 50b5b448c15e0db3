"""Run the ``hw.meadow`` engine in ``amaranth.sim`` behind the DRAM model: lay tensors out
in DRAM as the engine expects, send descriptors, read the results back, and report cycles
and DRAM bytes (for the tests and for ``llmhw bench meadow``)."""

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from hw.meadow.engine import OP_ATTENTION, OP_LINEAR, EngineConfig, MeadowEngine
from sim.dram import DRAMModel, DRAMTiming
from sim.stalls import stall_pattern
from sim.stream import simulate, stream_get, stream_put

__all__ = ["StallingDRAM", "pack_beat", "unpack_beat", "AttentionJob", "LinearJob",
           "run_jobs"]


class StallingDRAM(DRAMModel):
    """:class:`sim.dram.DRAMModel` that also holds off on ``stall`` cycles: no command or
    write beat is taken and no new read beat is offered (a beat on offer stays on offer)."""

    def __init__(self, cfg, timing: DRAMTiming, stall: Iterator[bool], **kwargs):
        super().__init__(cfg, timing, **kwargs)
        self.stall = stall

    def outputs(self) -> dict:
        if next(self.stall):
            return {"cmd_ready": False, "wdata_ready": False,
                    "rdata_valid": self.presenting is not None,
                    "rdata_payload": self.presenting or {"data": 0, "last": 0}}
        return super().outputs()


def pack_beat(values) -> int:
    """One memory word from int8 lanes (lane ``d`` in bits ``8d .. 8d+7``)."""
    return sum((int(v) & 0xFF) << (8 * d) for d, v in enumerate(values))


def unpack_beat(word: int, lanes: int) -> list[int]:
    out = []
    for d in range(lanes):
        b = (word >> (8 * d)) & 0xFF
        out.append(b - 256 if b >= 128 else b)
    return out


@dataclass
class AttentionJob:
    """Attention over all heads: ``q`` (H, T, D), ``k``/``v`` (KV, keys, D) int8; ``params``
    a :class:`golden.meadow.AttentionParams`; ``gemm`` picks the schedule."""

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    params: object
    gemm: bool = False
    output: np.ndarray | None = None
    cycles: int | None = None


@dataclass
class LinearJob:
    """``y = requant(x @ w.T)``: ``x`` (T, K), ``w`` (N, K) int8, ``K`` and ``N`` multiples
    of ``dot_width``."""

    x: np.ndarray
    w: np.ndarray
    mult: int
    shift: int
    relu: bool = False
    output: np.ndarray | None = None
    cycles: int | None = None


def _feature_major(x: np.ndarray, D: int) -> list[int]:
    """(T, F) activations -> beats ``(c, t)`` at ``c * T + t``."""
    T, F = x.shape
    return [pack_beat(x[t, c * D:(c + 1) * D]) for c in range(F // D) for t in range(T)]


def _layout(cfg: EngineConfig, job, base: int, dram: DRAMModel) -> tuple[dict, callable]:
    """Load a job's inputs at ``base``; its descriptor and a function reading its output."""
    D = cfg.dot_width
    desc = {"op": 0, "gemm": 0, "relu": 0, "tokens": 0, "keys": 0, "heads": 0, "group": 0,
            "q_offset": 0, "exp_mult": 0, "exp_shift": 0, "out_mult": 0, "out_shift": 0,
            "chunks": 0, "out_blocks": 0, "a_base": 0, "b_base": 0, "c_base": 0,
            "d_base": 0, "s_base": 0}
    if isinstance(job, AttentionJob):
        H, T, _ = job.q.shape
        KV, keys, _ = job.k.shape
        a = base
        b = a + H * T
        c = b + KV * keys
        d = c + KV * keys
        s = d + H * T
        dram.load(a, [pack_beat(row) for head in job.q for row in head])
        dram.load(b, [pack_beat(row) for head in job.k for row in head])
        dram.load(c, [pack_beat(row) for head in job.v for row in head])
        p = job.params
        desc.update(op=OP_ATTENTION, gemm=int(job.gemm), tokens=T, keys=keys, heads=H,
                    group=H // KV, q_offset=p.q_offset, exp_mult=p.exp_mult,
                    exp_shift=p.exp_shift, out_mult=p.out_mult, out_shift=p.out_shift,
                    a_base=a, b_base=b, c_base=c, d_base=d, s_base=s)

        def read():
            words = dram.dump(d, H * T)
            return np.array([unpack_beat(w, D) for w in words]).reshape(H, T, D)
        return desc, read
    T, K = job.x.shape
    N = job.w.shape[0]
    a = base
    b = a + T * K // D
    d = b + N * K // D
    dram.load(a, _feature_major(job.x, D))
    dram.load(b, [pack_beat(job.w[n, c * D:(c + 1) * D]) for n in range(N)
                  for c in range(K // D)])
    desc.update(op=OP_LINEAR, relu=int(job.relu), tokens=T, chunks=K // D, out_blocks=N // D,
                out_mult=job.mult, out_shift=job.shift, a_base=a, b_base=b, d_base=d)

    def read():
        words = dram.dump(d, T * N // D)
        y = np.zeros((T, N), np.int64)
        for c in range(N // D):
            for t in range(T):
                y[t, c * D:(c + 1) * D] = unpack_beat(words[c * T + t], D)
        return y
    return desc, read


def job_end_margin(job, cfg: EngineConfig) -> int:
    """Words past a job's last base address that it may use."""
    if isinstance(job, LinearJob):
        return len(job.x) * len(job.w) // cfg.dot_width
    return job.q.shape[0] * job.q.shape[1]


def run_jobs(cfg: EngineConfig, jobs: list, *, timing: DRAMTiming | None = None,
             stalls: tuple[str, str, str] = ("none", "none", "none"), seed: int = 0,
             timeout: int = 200_000) -> dict:
    """Run ``jobs`` back to back on one engine; fills each job's ``output`` and ``cycles``.

    ``stalls`` = (descriptor source, done back-pressure, memory port) patterns.
    Returns DRAM bytes read and written and the total cycles.
    """
    timing = timing or DRAMTiming(8, 8.0, 4)
    dut = MeadowEngine(cfg)
    dram = StallingDRAM(cfg.port, timing, stall_pattern(stalls[2], seed + 200),
                        words=1 << cfg.addr_width)
    descs, readers, base = [], [], 0
    for job in jobs:
        desc, read = _layout(cfg, job, base, dram)
        descs.append(desc)
        readers.append(read)
        base = max(desc["a_base"], desc["b_base"], desc["c_base"], desc["d_base"],
                   desc["s_base"]) + cfg.max_keys + job_end_margin(job, cfg)
        assert base < 1 << cfg.addr_width, "jobs do not fit the engine's address space"
    reports = []

    async def source(ctx):
        await stream_put(ctx, dut.i_desc, descs, stall=stall_pattern(stalls[0], seed))

    async def sink(ctx):
        reports.extend(await stream_get(ctx, dut.o_done, len(descs), timeout=timeout,
                                        backpressure=stall_pattern(stalls[1], seed + 100)))
        # no write may follow the report, and no command may be left over
        for _ in range(32):
            await ctx.tick()
        assert not ctx.get(dut.mem.cmd.valid) and not ctx.get(dut.mem.wdata.valid)

    async def memory(ctx):
        await dram.process(ctx, dut.mem)

    simulate(dut, source, sink, background=[memory])
    for job, read, report in zip(jobs, readers, reports, strict=True):
        assert report["error"] == 0, f"engine refused {job!r}"
        job.output = read()
        job.cycles = report["cycles"]
    return {"bytes_read": dram.bytes_read, "bytes_written": dram.bytes_written,
            "reports": reports}


def iter_none():
    return itertools.repeat(False)
