"""``llmhw bench flexcim``: FLOW's per-layer N:M on SmolLM2-135M and its perplexity against
uniform N:M, and the macro's dense-equivalent MACs per cycle for each N:M, measured in
``amaranth.sim``.

* FLOW (:mod:`golden.flow`) on the float SmolLM2 with Wanda input norms from 128 tokens the
  model samples itself (:func:`golden.models.quant.wanda_input_norms`, the calibration of the
  ``2:4-wanda`` variant), at 50%, 70% and 75% parameter-weighted sparsity (and smaller
  ``spread`` settings as an ablation); every variant
  (FLOW and uniform) prunes by the same Wanda scores and keeps float32 arithmetic, so only
  the N:M choice differs. Perplexity on the bundled text, 512-token windows (``quick``: the
  first 1024 tokens).
* The macro (:class:`hw.flexcim.FlexCiMMacro`, presets ``default``, ``full_rate``,
  ``wide_m`` and ``narrow_input``) runs every pattern it offers on random int8 weights: 16
  vectors of 4 tiles each, no stalls; the cycles from the first activation beat taken to the
  last sum taken give dense-equivalent MACs per cycle (``vectors * K * cols / cycles``, ``K``
  the dense inputs), beside dense operation of the same macro. Outputs are checked against
  the golden model. The latency of one one-tile vector is measured too.
* Utilisation and Fmax come from ``make bitstream DESIGN=flexcim`` (read from
  ``build/flexcim/ulx3s-85f/report.json`` if it exists; the bench does not run nextpnr).
"""

import collections
import json
import time
from pathlib import Path

import numpy as np

__all__ = ["run"]

WINDOW = 512
QUICK_TOKENS = 1024
TARGETS = (0.5, 0.7, 0.75)
#: (target, spread) of each FLOW run: the default spread (1.0: a layer's density target moves
#: up to one power of two with its outlier rank) at every target, and smaller spreads (0: the
#: density target is the same for all layers, only M follows the locality) as an ablation
FLOW_SETTINGS = [(t, 1.0) for t in TARGETS] + [(0.5, 0.0), (0.75, 0.5), (0.75, 0.0)]
UNIFORM = [(2, 4), (4, 8), (8, 16), (1, 4), (2, 8)]
MACRO_PRESETS = ("default", "full_rate", "wide_m", "narrow_input")
VECTORS = 16
TILES = 4

# the paper's claims (arXiv 2504.14365), for the table beside ours
PAPER = {
    "accuracy": "up to 36% better accuracy than uniform N:M at the same sparsity (FLOW)",
    "latency": "up to 1.75x lower latency than existing sparse accelerators (FlexCiM)",
    "energy": "up to 1.5x lower energy than existing sparse accelerators (FlexCiM)",
}


def _macro_case(cfg, n: int, m: int, seed: int = 0) -> dict:
    """Cycles for VECTORS vectors of TILES tiles through the macro in pattern n:m."""
    from golden.flexcim import compress_nm, session
    from hw.flexcim import FlexCiMMacro
    from sim.stream import simulate, stream_get, stream_put

    rng = np.random.default_rng(seed)
    k = TILES * cfg.tile_length(n, m)
    w = rng.integers(-128, 128, (cfg.cols, k))
    x = rng.integers(-128, 128, (VECTORS, k))
    traffic, expected = session([("load", n, m, *compress_nm(w, n, m)), ("run", x, None)], cfg)
    (_, load), (_, acts) = traffic
    dut = FlexCiMMacro(cfg)
    marks = {}

    async def source(ctx):
        await stream_put(ctx, dut.i_weight, load)
        # the load ends before the run starts, so the count starts with the first activation
        await stream_put(ctx, dut.i_act, acts)

    async def sink(ctx):
        got = await stream_get(ctx, dut.o, len(expected))
        marks["got"] = got

    async def clock(ctx):
        cycle = 0
        async for _, _, act_valid, act_ready, o_valid, o_ready in ctx.tick().sample(
                dut.i_act.valid, dut.i_act.ready, dut.o.valid, dut.o.ready):
            cycle += 1
            if act_valid and act_ready and "first" not in marks:
                marks["first"] = cycle
            if o_valid and o_ready:
                marks["last"] = cycle

    simulate(dut, source, sink, background=[clock])
    assert marks["got"] == expected, f"macro output differs from the golden model at {n}:{m}"
    cycles = marks["last"] - marks["first"] + 1
    dense_macs = VECTORS * k * cfg.cols
    return {"n": n, "m": m, "tile_length": cfg.tile_length(n, m),
            "beats_per_tile": cfg.beats_per_tile(n, m), "vectors": VECTORS, "inputs": k,
            "cycles": cycles, "dense_macs_per_cycle": round(dense_macs / cycles, 2),
            "ideal_dense_macs_per_cycle": cfg.dense_macs_per_cycle(n, m)}


def _latency(cfg) -> int:
    """Cycles from taking the last beat of a one-tile dense vector to its sums on ``o``."""
    from golden.flexcim import compress_nm, session
    from hw.flexcim import FlexCiMMacro
    from sim.stream import simulate, stream_put

    rng = np.random.default_rng(1)
    w = rng.integers(-128, 128, (cfg.cols, cfg.rows))
    traffic, _ = session([("load", 1, 1, *compress_nm(w, 1, 1)),
                          ("run", rng.integers(-128, 128, (1, cfg.rows)), None)], cfg)
    dut = FlexCiMMacro(cfg)
    marks = {}

    async def source(ctx):
        await stream_put(ctx, dut.i_weight, traffic[0][1])
        await stream_put(ctx, dut.i_act, traffic[1][1])

    async def watch(ctx):
        ctx.set(dut.o.ready, 1)
        cycle = 0
        async for _, _, act_valid, act_ready, o_valid in ctx.tick().sample(
                dut.i_act.valid, dut.i_act.ready, dut.o.valid):
            cycle += 1
            if act_valid and act_ready:
                marks["in"] = cycle
            if o_valid:
                marks["out"] = cycle
                return

    simulate(dut, source, watch)
    return marks["out"] - marks["in"]


def _macro_figures() -> dict:
    from hw.flexcim.macro import PRESETS

    figures = {}
    for preset in MACRO_PRESETS:
        cfg = PRESETS[preset]
        rows = []
        for n, m in cfg.modes:
            start = time.monotonic()
            row = _macro_case(cfg, n, m)
            rows.append(row)
            print(f"  macro {preset} {n}:{m}: {row['cycles']} cycles, "
                  f"{row['dense_macs_per_cycle']} dense-equivalent MACs/cycle "
                  f"({time.monotonic() - start:.1f} s)", flush=True)
        dense = rows[0]["dense_macs_per_cycle"]
        for row in rows:
            row["vs_dense"] = round(row["dense_macs_per_cycle"] / dense, 3)
        figures[preset] = {
            "rows": cfg.rows, "cols": cfg.cols, "submacros": cfg.submacros,
            "max_m": cfg.max_m, "act_lanes": cfg.act_lanes, "acc_bits": cfg.acc_bits,
            "depth": cfg.depth, "latency_cycles": _latency(cfg), "modes": rows}
    return figures


def _flow_figures(quick: bool) -> dict:
    from golden.flow import flow_plan, flow_variant, uniform_variant
    from golden.models import evaluate
    from golden.models.quant import WANDA_TOKENS, wanda_input_norms
    from golden.models.smollm2 import SmolLM2

    started = time.monotonic()
    model = SmolLM2()
    print(f"flexcim: Wanda calibration on {WANDA_TOKENS} self-sampled tokens", flush=True)
    norms = wanda_input_norms(WANDA_TOKENS)
    tokens = evaluate.load_eval_tokens()
    if quick:
        tokens = tokens[:QUICK_TOKENS]
    plans = {}
    for target, spread in FLOW_SETTINGS:
        label = f"FLOW {round(target * 100)}%" + ("" if spread == 1.0 else f" spread {spread}")
        plan = flow_plan(model.weights, norms, target, spread=spread)
        counts = collections.Counter(f"{n}:{m}" for n, m in plan.choices.values())
        plans[label] = plan
        print(f"  {label}: sparsity {plan.sparsity:.4f}, {dict(counts)}", flush=True)
    variants = [("fp32", None, "dense float32")]
    for n, m in UNIFORM:
        variants.append((f"uniform {n}:{m}", (n, m), f"every block linear {n}:{m}"))
    for label, plan in plans.items():
        variants.append((label, plan, f"FLOW per-layer N:M, target {plan.target:.0%}"))
    rows = []
    for k, (label, spec, description) in enumerate(variants):
        start = time.monotonic()
        if spec is None:
            pruned, sparsity = model, 0.0
        elif isinstance(spec, tuple):
            pruned = model.with_variant(uniform_variant(*spec, norms))
            sparsity = 1 - spec[0] / spec[1]
        else:
            pruned = model.with_variant(flow_variant(spec, norms))
            sparsity = spec.sparsity
        ppl = float(evaluate.perplexity(pruned, tokens, window=WINDOW))
        seconds = round(time.monotonic() - start, 1)
        rows.append({"variant": label, "description": description,
                     "sparsity": round(sparsity, 4), "perplexity": round(ppl, 3),
                     "seconds": seconds})
        print(f"[{k + 1}/{len(variants)}] {label}: perplexity {ppl:.3f} "
              f"({len(tokens)} tokens, {seconds} s)", flush=True)
    choices = {}
    for label, plan in plans.items():
        summary = collections.defaultdict(collections.Counter)
        for name, (n, m) in plan.choices.items():
            summary[name.split(".")[2]][f"{n}:{m}"] += 1
        choices[label] = {
            "target": plan.target, "sparsity": round(plan.sparsity, 4),
            "cost": round(plan.cost, 4),
            "counts": dict(collections.Counter(f"{n}:{m}" for n, m in plan.choices.values())),
            "by_layer_kind": {kind: dict(c) for kind, c in summary.items()},
            "layers": {name: f"{n}:{m}" for name, (n, m) in plan.choices.items()},
        }
    stats = {name: {"outlier_share": round(st.outlier_share, 6),
                    "locality": round(st.locality, 6), "params": st.params}
             for name, st in next(iter(plans.values())).stats.items()}
    return {"model": "SmolLM2-135M-Instruct", "calibration_tokens": WANDA_TOKENS,
            "window": WINDOW, "tokens": len(tokens), "outlier_multiple": 5.0,
            "choices": choices, "layer_stats": stats, "perplexity": rows,
            "seconds": round(time.monotonic() - started, 1)}


def _fpga_figures() -> dict | None:
    path = Path(__file__).resolve().parents[2] / "build" / "flexcim" / "ulx3s-85f" / "report.json"
    if not path.is_file():
        print("flexcim: no build/flexcim/ulx3s-85f/report.json (run make bitstream "
              "DESIGN=flexcim)", flush=True)
        return None
    return json.loads(path.read_text())


def run(quick: bool = False) -> dict:
    started = time.monotonic()
    print("flexcim: macro throughput in amaranth.sim", flush=True)
    macro = _macro_figures()
    flow = _flow_figures(quick)
    return {"macro": macro, "flow": flow, "fpga": _fpga_figures(), "paper": PAPER,
            "quick": quick, "seconds": round(time.monotonic() - started, 1)}
