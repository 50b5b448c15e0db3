"""``llmhw bench accllm``: the PE array measured in ``amaranth.sim``, the FPGA report, and the
perplexity cost of each AccLLM step on SmolLM2.

* ``modes``: MACs per cycle and per multiplier (``MULT18X18D``) in every mode, from a GEMV
  run back to back on the default 4 x 4 array with no stalls; cycles from the first beat taken
  to the last result row sent. Every result is compared with the golden model.
* ``smollm2``: array utilisation (useful products / (cycles x peak products per cycle)) on a
  real decode GEMV and prefill GEMM: block 0's ``attn_q`` (K = 576) on the last token (all 576
  outputs) and on the prompt's 13 tokens (the first 32 outputs: the tiling repeats), each
  mode's codes of the real weights (``--quick``: 16 and 8 outputs on a 2 x 2 array).
* ``kv_manager``: appends and read beats per cycle of the Λ KV manager (``smollm2`` preset).
* ``fpga``: LUT/FF/DSP/BRAM and Fmax from ``build/accllm/ulx3s-85f/report.json`` (made by
  ``make bitstream DESIGN=accllm``; the bench does not run nextpnr) and, if built, of the 8 x 8
  preset (:data:`LARGE_COMMAND`), with MACs per second.
* ``perplexity``: the SmolLM2 variants of each step from ``build/bench/models.json``
  (``llmhw bench models``; not re-run here).
"""

import json
import time
from pathlib import Path

import numpy as np

from golden import accllm as g
from hw.accllm.kv_manager import OPS, PRESETS, LambdaKVManager
from hw.accllm.pe_array import PEArray, PEArrayConfig
from sim.stream import simulate, stream_get, stream_put

__all__ = ["run", "measure"]

REPO = Path(__file__).resolve().parents[2]
PROMPT = "The capital of France is a city that many people visit every year"
#: What the paper reports (arXiv 2505.03745, as quoted in the issue): Llama-2-7B, Alveo U280.
PAPER = {
    "model": "Llama-2-7B, 2:4 pruning + Λ-shaped attention + W2A8KV4",
    "board": "Xilinx Alveo U280 at 225 MHz",
    "tokens_per_second": 164,
    "speedup_vs_flightllm": 2.98,
    "energy_efficiency_vs_flightllm": 4.07,
}
#: The accllm steps and the models-bench variant that measures each.
STEPS = [("W8A8 (int8 per-channel weights, int8 per-token activations)", "w8a8"),
         ("W4A8 (4-bit group-64 weights, integer zero point)", "w4a8"),
         ("W2A8 (2-bit group-32 weights, integer zero point)", "w2a8"),
         ("KV4 (4-bit K/V, one group per head vector)", "kv4"),
         ("Λ-shaped attention (4 sink + 128 window)", "lambda"),
         ("2:4 pruning, magnitude", "2:4"),
         ("2:4 pruning, Wanda score", "2:4-wanda")]


def measure(cfg: PEArrayConfig, beats: list[dict]) -> dict:
    """Run ``beats`` through the RTL array with no stalls; cycles and a bit-exact check."""
    dut = PEArray(cfg)
    expected = g.PEArrayModel(cfg.rows, cfg.cols).run(beats)
    received, times = [], {}

    async def clock(ctx):
        cycle = 0
        async for _, _, iv, ir, ov, orr in ctx.tick().sample(dut.i.valid, dut.i.ready,
                                                            dut.o.valid, dut.o.ready):
            cycle += 1
            if iv and ir and "start" not in times:
                times["start"] = cycle
            if ov and orr:
                times["end"] = cycle

    async def source(ctx):
        await stream_put(ctx, dut.i, beats)

    async def sink(ctx):
        received.extend(await stream_get(ctx, dut.o, len(expected),
                                         timeout=4 * len(beats) + 100))

    simulate(dut, source, sink, background=[clock])
    return {"beats": len(beats), "cycles": times["end"] - times["start"] + 1,
            "bit_exact": received == expected, "outputs": received}


def _random_codes(rng, mode: str, outs: int, k: int):
    if mode == "w8a8":
        return rng.integers(-128, 128, (outs, k))
    if mode == "sparse24":
        return g.prune_24(rng.integers(-128, 128, (outs, k)))
    return rng.integers(0, 1 << g.CODE_BITS[mode], (outs, k))


def _products(mode: str, outs: int, tokens: int, k: int) -> int:
    """Useful lane products: one per (token, output, input), half of them for 2:4."""
    return outs * tokens * k // (2 if mode == "sparse24" else 1)


def bench_modes(cfg: PEArrayConfig, k: int) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for mode in g.MODES:
        outs = 2 * cfg.pes * g.LANES[mode]          # two runs
        w = _random_codes(rng, mode, outs, k)
        x = rng.integers(-128, 128, k)
        started = time.monotonic()
        result = measure(cfg, g.gemv_beats(mode, x, w, rows=cfg.rows, cols=cfg.cols))
        dense_macs = outs * k
        row = {"mode": mode, "k": k, "outputs": outs, "cycles": result["cycles"],
               "dense_macs": dense_macs,
               "macs_per_cycle": round(dense_macs / result["cycles"], 3),
               "macs_per_cycle_per_multiplier": round(dense_macs / result["cycles"] / cfg.pes,
                                                      3),
               "products_per_multiply": g.LANES[mode],
               "weight_bits_per_dense_mac": _weight_bits(mode),
               "bit_exact": result["bit_exact"],
               "seconds": round(time.monotonic() - started, 1)}
        print(f"  {mode:<9} {row['macs_per_cycle']:7.2f} MAC/cycle, "
              f"{row['macs_per_cycle_per_multiplier']:.3f} per multiplier, "
              f"bit-exact {row['bit_exact']} ({row['seconds']} s)", flush=True)
        rows.append(row)
    base = next(r for r in rows if r["mode"] == "w8a8")["macs_per_cycle"]
    for row in rows:
        row["gain_over_w8a8"] = round(row["macs_per_cycle"] / base, 3)
    return rows


def _weight_bits(mode: str) -> float:
    """Weight-stream bits per dense MAC of the format (2:4: 8-bit value + 2-bit index per
    kept weight, half the weights kept)."""
    return {"w8a8": 8, "w4a8": 4, "w2a8": 2, "a8kv4": 4, "sparse24": 5}[mode]


def bench_smollm2(cfg: PEArrayConfig, quick: bool) -> list[dict]:
    real = g.smollm2_tensors(PROMPT)
    decode_outs = 16 if quick else 576
    prefill_outs = 8 if quick else 32
    x = real["x"].astype(np.int64)
    tokens = x.shape[0]
    weights = {"w8a8": real["w8"], "w4a8": real["w4"], "w2a8": real["w2"]}
    rows = []
    cases = [("decode GEMV", mode) for mode in ("w8a8", "w4a8", "w2a8", "sparse24")]
    cases += [("prefill GEMM", mode) for mode in ("w8a8", "w4a8", "w2a8")]
    for kind, mode in cases:
        outs = decode_outs if kind == "decode GEMV" else prefill_outs
        w = weights.get(mode, real["w8"])[:outs].astype(np.int64)
        if mode == "sparse24":
            w = g.prune_24(w)
            dense = g.unprune_24(*w)
        else:
            dense = w
        started = time.monotonic()
        if kind == "decode GEMV":
            beats = g.gemv_beats(mode, x[-1], w, rows=cfg.rows, cols=cfg.cols)
            result = measure(cfg, beats)
            got = g.gemv_result(mode, result["outputs"], outs, rows=cfg.rows, cols=cfg.cols)
            correct = np.array_equal(got, dense @ x[-1])
            n_tokens = 1
        else:
            beats = g.gemm_beats(mode, x, w, rows=cfg.rows, cols=cfg.cols)
            result = measure(cfg, beats)
            got = g.gemm_result(mode, result["outputs"], tokens, outs, rows=cfg.rows,
                                cols=cfg.cols)
            correct = np.array_equal(got, x @ dense.T)
            n_tokens = tokens
        products = _products(mode, outs, n_tokens, x.shape[1])
        peak = cfg.pes * g.LANES[mode]
        row = {"workload": kind, "mode": mode, "layer": "blk.0.attn_q", "outputs": outs,
               "k": int(x.shape[1]), "tokens": n_tokens, "cycles": result["cycles"],
               "utilisation": round(products / (result["cycles"] * peak), 4),
               "bit_exact": result["bit_exact"] and bool(correct),
               "seconds": round(time.monotonic() - started, 1)}
        print(f"  {kind} {mode:<9} {row['cycles']:7d} cycles, utilisation "
              f"{100 * row['utilisation']:.1f}%, bit-exact {row['bit_exact']} "
              f"({row['seconds']} s)", flush=True)
        rows.append(row)
    return rows


def bench_kv_manager(appends: int) -> dict:
    """The ``smollm2`` KV manager preset: ``appends`` appends then one read, no stalls; beats
    per cycle of the read and of the appends, and a bit-exact check."""
    cfg = PRESETS["smollm2"]
    dut = LambdaKVManager(cfg)
    ops = ["append"] * appends + ["read"]
    model = g.LambdaKVManager(cfg.sink, cfg.window, cfg.entry_words, cfg.base, cfg.addr_width,
                              cfg.pos_width)
    expected = model.run(ops)
    received, times = [], []

    async def clock(ctx):
        cycle = 0
        async for _, _, valid, ready in ctx.tick().sample(dut.o.valid, dut.o.ready):
            cycle += 1
            if valid and ready:
                times.append(cycle)

    async def source(ctx):
        await stream_put(ctx, dut.i, [{"op": OPS[op]} for op in ops])

    async def sink(ctx):
        received.extend(await stream_get(ctx, dut.o, len(expected), timeout=10 * len(ops) + 400))

    simulate(dut, source, sink, background=[clock])
    read = len(expected) - appends
    row = {"preset": "smollm2", "sink": cfg.sink, "window": cfg.window, "appends": appends,
           "append_cycles": times[appends - 1] - times[0] + 1,
           "read_beats": read, "read_cycles": times[-1] - times[appends] + 1,
           "bit_exact": received == expected}
    row["read_beats_per_cycle"] = round(read / row["read_cycles"], 3)
    row["appends_per_cycle"] = round(appends / row["append_cycles"], 3)
    print(f"  Λ KV manager: {appends} appends in {row['append_cycles']} cycles, read of "
          f"{read} keys in {row['read_cycles']} cycles, bit-exact {row['bit_exact']}",
          flush=True)
    return row


LARGE_COMMAND = ("llmhw bitstream --design accllm --preset large "
                 "--build-root build/accllm_large --no-pack")


def _report(path: Path, command: str, mode_rows: list[dict]) -> dict:
    if not path.is_file():
        return {"missing": str(path.relative_to(REPO)), "command": command}
    report = json.loads(path.read_text())
    out = {"command": command, "report": report}
    fmax = report.get("fmax_mhz")
    dsp = report.get("utilisation", {}).get("DSP", {}).get("used")
    if isinstance(fmax, int | float):
        out["gmacs_per_second"] = {r["mode"]: round(r["macs_per_cycle_per_multiplier"] * dsp
                                                    * fmax / 1000, 3) for r in mode_rows} \
            if dsp else {}
    if dsp:
        out["macs_per_cycle_per_mult18x18d"] = {
            r["mode"]: r["macs_per_cycle_per_multiplier"] for r in mode_rows}
    return out


def fpga_report(mode_rows: list[dict], cfg: PEArrayConfig) -> dict:
    """The default preset's report (``make bitstream DESIGN=accllm``) and, when built, the 8 x 8
    ``large`` preset's; GMAC/s = measured MACs per cycle per multiplier x DSPs x Fmax."""
    return {
        "default": _report(REPO / "build" / "accllm" / "ulx3s-85f" / "report.json",
                           "make bitstream DESIGN=accllm", mode_rows),
        "large": _report(REPO / "build" / "accllm_large" / "accllm" / "ulx3s-85f"
                         / "report.json", LARGE_COMMAND, mode_rows),
        "bench_config": {"rows": cfg.rows, "cols": cfg.cols},
    }


def perplexity() -> dict:
    path = REPO / "build" / "bench" / "models.json"
    if not path.is_file():
        return {"missing": "build/bench/models.json", "command": "llmhw bench models"}
    models = json.loads(path.read_text())
    by_name = {v["variant"]: v for v in models["variants"]}
    base = by_name["fp32"]["perplexity"]
    steps = [{"step": step, "variant": name, "perplexity": by_name[name]["perplexity"],
              "change": round(by_name[name]["perplexity"] / base - 1, 4)}
             for step, name in STEPS if name in by_name]
    return {"source": "build/bench/models.json (llmhw bench models)", "model": models["model"],
            "fp32_perplexity": base, "window": models.get("window"), "steps": steps}


def run(quick: bool = False) -> dict:
    started = time.monotonic()
    cfg = PEArrayConfig(2, 2) if quick else PEArrayConfig(4, 4)
    print(f"accllm: MACs per cycle per mode on a {cfg.rows} x {cfg.cols} array", flush=True)
    modes = bench_modes(cfg, 32 if quick else 128)
    print(f"accllm: SmolLM2 blk.0.attn_q on the {cfg.rows} x {cfg.cols} array", flush=True)
    smollm2 = bench_smollm2(cfg, quick)
    print("accllm: Λ KV manager", flush=True)
    kv = bench_kv_manager(150 if quick else 400)
    return {"config": {"rows": cfg.rows, "cols": cfg.cols}, "quick": quick, "modes": modes,
            "smollm2": smollm2, "kv_manager": kv, "fpga": fpga_report(modes, cfg),
            "perplexity": perplexity(), "paper": PAPER,
            "seconds": round(time.monotonic() - started, 1)}
