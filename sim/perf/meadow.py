"""Cycle and DRAM-traffic model of the MEADOW engine (``hw.meadow``), and its extrapolation
to paper-scale models: time to first token (TTFT) and time between tokens (TBT) of the TPHS
and GEMM attention schedules, with and without weight packing.

:func:`engine_job` follows the engine's sequencer state by state (the RTL runs one phase
after another: a DRAM transfer, then a pass over the keys, then the next transfer), so it
predicts the cycles and bytes the RTL measures behind :class:`sim.dram.DRAMModel`.
:func:`decoder_layer` sums the jobs of a whole decoder layer; :func:`latency` multiplies by
the layer count. ``overlap=True`` gives the double-buffered bound instead (each phase
``max(compute, bytes / bandwidth)``), the way a production engine with prefetching would run.
"""

from dataclasses import dataclass

from hw.meadow.engine import (
    DONE_LATENCY,
    PASS_STAGES,
    READ_PORT_LATENCY,
    REQUANT_LATENCY,
    WRITE_BUFFER_BEATS,
)

__all__ = ["ModelDims", "OPT_125M", "SMOLLM2_135M", "EngineModel", "DRAM",
           "engine_job", "decoder_layer", "latency", "gbps_to_bytes_per_cycle"]


@dataclass(frozen=True)
class ModelDims:
    """Decoder dimensions. ``ffn_matrices``: 2 for OPT (fc1, fc2), 3 for Llama (gate, up,
    down)."""

    name: str
    layers: int
    d_model: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    ffn_matrices: int


#: OPT-125M: 12 layers, d_model 768, 12 heads of 64, FFN 3072 (Zhang et al., "OPT: Open
#: Pre-trained Transformer Language Models", arXiv 2205.01068, Table 1; the
#: facebook/opt-125m config: num_hidden_layers 12, hidden_size 768, num_attention_heads 12,
#: ffn_dim 3072).
OPT_125M = ModelDims("OPT-125M", 12, 768, 12, 12, 64, 3072, 2)
#: SmolLM2-135M: 30 layers, d_model 576, 9 query heads and 3 KV heads of 64, FFN 1536
#: (the GGUF metadata read by golden.models.smollm2).
SMOLLM2_135M = ModelDims("SmolLM2-135M", 30, 576, 9, 3, 64, 1536, 3)


@dataclass(frozen=True)
class EngineModel:
    """``pes`` token-parallel PEs of ``dot_width`` int8 lanes (= head dim, = beat bytes)."""

    pes: int
    dot_width: int


@dataclass(frozen=True)
class DRAM:
    """``latency`` cycles from command to first read beat, ``bytes_per_cycle`` shared."""

    latency: int
    bytes_per_cycle: float


def gbps_to_bytes_per_cycle(gbps: float, clock_mhz: float = 100.0) -> float:
    return gbps * 1e9 / 8 / (clock_mhz * 1e6)


# ---- the engine's sequencer, state by state ------------------------------------------------



DIV_CYCLES = 32                      # restoring divider, one quotient bit per cycle
PASS_OVERHEAD = PASS_STAGES + 1      # a pass over the keys: issue, pipeline, exit
REQUANT_OVERHEAD = REQUANT_LATENCY + 1   # an output: dot_width feeds, requantiser, send
LINEAR_STREAM_OVERHEAD = PASS_STAGES + 2   # weight row: last beat, pipeline, exit


def _interval(eng: EngineModel, dram: DRAM) -> float:
    """Cycles per beat at the DRAM's bandwidth (at least one)."""
    return max(1.0, eng.dot_width / dram.bytes_per_cycle)


def _read(beats: int, eng, dram, after_store: int = 0) -> float:
    """Command cycle + latency + the beats: the engine waits for the last one (the command
    and the read data each pass the port's skid buffers). ``after_store``: beats of a store
    just before it; the DRAM serves commands in order, so the first beat also waits for the
    beats still in the engine's write buffer to be written (:func:`_write_tail`)."""
    wait = max(dram.latency, _write_tail(after_store, eng, dram))
    return 1 + READ_PORT_LATENCY + wait + (beats - 1) * _interval(eng, dram)


def _buffered(beats: int) -> int:
    """Beats of a store the write buffer takes ahead of the DRAM (the store state ends that
    many beats before the DRAM has them all)."""
    return min(WRITE_BUFFER_BEATS, max(beats - 1, 0))


def _write_tail(beats: int, eng, dram) -> float:
    """Cycles after a store state ends until the DRAM could present a read beat: the
    buffered beats, then the bandwidth credit for one more beat (0 without a store)."""
    if not beats:
        return 0
    return (_buffered(beats) + 1) * _interval(eng, dram) - 3


def _store(beats: int, eng, dram) -> float:
    """Command cycle, then a buffer word per beat (two cycles to read the first and register
    it), less what the write buffer takes ahead of a DRAM slower than a beat per cycle."""
    r = _interval(eng, dram)
    return 1 + 3 + (beats - 1) * r - _buffered(beats) * (r - 1)


def engine_job(eng: EngineModel, dram: DRAM, job: dict, *, overlap: bool = False,
               weight_ratio: float = 1.0) -> dict:
    """Cycles and DRAM bytes of one engine descriptor.

    ``job``: ``{"op": "attention", "gemm": bool, "tokens", "keys", "heads", "kv_heads"}`` or
    ``{"op": "linear", "tokens", "in_features", "out_features"}``. ``weight_ratio``: weight
    bytes are divided by it (packed weights unpacked on chip by the WILU).
    """
    P, D = eng.pes, eng.dot_width
    r = _interval(eng, dram)
    bpc = dram.bytes_per_cycle
    tokens = job["tokens"]
    groups = -(-tokens // P)
    sizes = [min(P, tokens - g * P) for g in range(groups)]
    if job["op"] == "attention":
        keys, heads, kv = job["keys"], job["heads"], job["kv_heads"]
        gemm = job["gemm"]
        read = (heads * tokens + 2 * kv * keys) * D
        written = heads * tokens * D
        if gemm:
            read += heads * groups * 2 * keys * D
            written += heads * groups * 2 * keys * D
        if overlap:
            # Q·Kᵀ and P·V: one key per cycle for a group of tokens; softmax hidden behind them
            compute = heads * groups * 2 * keys
            cycles = max(compute, (read + written) / bpc)
            return {"cycles": cycles, "bytes_read": read, "bytes_written": written}
        pass_cycles = keys + PASS_OVERHEAD
        per_group = [
            1                                        # GROUP
            + _read(n, eng, dram)                    # Q
            + pass_cycles + 1                        # QK, QK_DONE
            + pass_cycles + DIV_CYCLES + pass_cycles + 1   # EXP, DIV, NORM, NORM_DONE
            + pass_cycles                            # PV
            + 1 + n * max(D + REQUANT_OVERHEAD, r) + 1     # O_CMD, O_STORE
            + (2 * (_store(keys, eng, dram) + _read(keys, eng, dram, after_store=keys))
               if gemm else 0)
            for n in sizes]
        cycles = (heads + 1                          # HEAD visits
                  + kv * 2 * _read(keys, eng, dram)  # K and V per KV head
                  + heads * (sum(per_group) + 1)     # groups + the closing GROUP
                  + DONE_LATENCY + 1)                # DRAIN, DONE
        return {"cycles": cycles, "bytes_read": read, "bytes_written": written}
    if job["op"] == "linear":
        K, N = job["in_features"], job["out_features"]
        chunks = K // D
        w_interval = max(1.0, D / (bpc * weight_ratio))
        read_x = tokens * chunks * D
        read_w = groups * N * K / weight_ratio
        written = tokens * N
        if overlap:
            compute = groups * N * chunks
            cycles = max(compute, (read_x + read_w + written) / bpc)
            return {"cycles": cycles, "bytes_read": read_x + read_w, "bytes_written": written}
        per_group = [
            1                                                  # L_GROUP
            + chunks * _read(n, eng, dram)                     # X
            + N * (dram.latency + READ_PORT_LATENCY + (chunks - 1) * w_interval
                   + LINEAR_STREAM_OVERHEAD)                   # W_CMD, W_STREAM
            + N * (P + REQUANT_OVERHEAD)                       # L_REQUANT
            + (N // D) * (1 + n * r - _buffered(n) * (r - 1)  # Y_CMD, Y_STORE
                          + max(0, _write_tail(n, eng, dram) - dram.latency))  # next read
            for n in sizes]
        cycles = sum(per_group) + 1 + DONE_LATENCY + 1      # closing L_GROUP, DRAIN, DONE
        return {"cycles": cycles, "bytes_read": read_x + read_w, "bytes_written": written}
    raise ValueError(f"op must be 'attention' or 'linear', not {job['op']!r}")


def decoder_layer(model: ModelDims, eng: EngineModel, dram: DRAM, *, tokens: int,
                  context: int, gemm: bool, overlap: bool = False,
                  weight_ratio: float = 1.0) -> dict:
    """One decoder layer for ``tokens`` new tokens after ``context - tokens`` cached ones:
    Q/K/V and output projections, attention (TPHS or GEMM), the FFN matrices; the
    per-part cycles and bytes."""
    dm, hd = model.d_model, model.head_dim
    linear = [("q", dm, model.heads * hd), ("k", dm, model.kv_heads * hd),
              ("v", dm, model.kv_heads * hd), ("o", model.heads * hd, dm)]
    if model.ffn_matrices == 3:
        linear += [("gate", dm, model.ffn), ("up", dm, model.ffn), ("down", model.ffn, dm)]
    else:
        linear += [("fc1", dm, model.ffn), ("fc2", model.ffn, dm)]
    parts = {}
    for name, k, n in linear:
        parts[name] = engine_job(eng, dram, {"op": "linear", "tokens": tokens, "in_features": k,
                                             "out_features": n},
                                 overlap=overlap, weight_ratio=weight_ratio)
    parts["attention"] = engine_job(eng, dram, {"op": "attention", "gemm": gemm,
                                                "tokens": tokens, "keys": context,
                                                "heads": model.heads,
                                                "kv_heads": model.kv_heads}, overlap=overlap)
    return {"parts": parts,
            "cycles": sum(p["cycles"] for p in parts.values()),
            "bytes": sum(p["bytes_read"] + p["bytes_written"] for p in parts.values())}


def latency(model: ModelDims, eng: EngineModel, dram: DRAM, *, prompt: int, gemm: bool,
            overlap: bool = False, weight_ratio: float = 1.0, clock_mhz: float = 100.0
            ) -> dict:
    """TTFT (prefill of ``prompt`` tokens) and TBT (one token after ``prompt``), in cycles
    and milliseconds at ``clock_mhz``."""
    pre = decoder_layer(model, eng, dram, tokens=prompt, context=prompt, gemm=gemm,
                        overlap=overlap, weight_ratio=weight_ratio)
    dec = decoder_layer(model, eng, dram, tokens=1, context=prompt + 1, gemm=gemm,
                        overlap=overlap, weight_ratio=weight_ratio)
    ttft = model.layers * pre["cycles"]
    tbt = model.layers * dec["cycles"]
    return {"ttft_cycles": ttft, "tbt_cycles": tbt,
            "ttft_ms": ttft / (clock_mhz * 1e3), "tbt_ms": tbt / (clock_mhz * 1e3),
            "prefill_bytes": model.layers * pre["bytes"],
            "decode_bytes": model.layers * dec["bytes"],
            "attention_share_prefill": pre["parts"]["attention"]["cycles"] / pre["cycles"]}
