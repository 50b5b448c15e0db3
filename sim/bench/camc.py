"""``llmhw bench camc``: savings of every storage scheme and codec on real tensors (software).

MiniLM BF16 weights and a SmolLM2 KV cache of 512 tokens through raw / byte-plane /
bit-plane (/ bit-plane + cross-token) layouts, with the golden LZ4 the hardware runs, the
``lz4`` library and ZSTD, in 4 KiB blocks; then the RTL (``amaranth.sim``):

- savings of the bit-plane scheme with the RTL LZ4 compressor over a sample of at least
  256 KiB of each tensor kind (plane groups compressed by the RTL, stored raw when that does
  not shrink them, blocks padded to memory words exactly as the controller stores them),
  checked against the golden model, and the compressor's and decompressor's bytes per cycle
  on those groups;
- bytes per cycle per lane of the whole controller (writes, full-precision reads and
  sign+exponent-only reads of real weights) for the 1-lane default and the 4-lane preset;
- LUT/FF/DSP/BRAM and Fmax of the 1-lane and 4-lane ``camc`` designs on the ULX3S-85F, from
  the reports of ``make bitstream DESIGN=camc`` (``build/camc/ulx3s-85f``) and ``llmhw
  bitstream --design camc --preset lanes4 --no-pack --build-root build/camc_lanes4``; the
  full run builds them (about 3 and 8 minutes), ``--quick`` reads what is there.
"""

import json
import time
from pathlib import Path

import numpy as np

from golden.camc.estimate import (
    CODECS,
    KV_SCHEMES,
    WEIGHT_SCHEMES,
    estimate,
    kv_cache_values,
    weight_values,
)

__all__ = ["run"]

# the paper's figures (arXiv 2503.18869), for the table beside ours
PAPER = {"weights": "−25.2% (Llama-3.1-8B BF16, ZSTD)", "kv_cache": "−46.9%"}


def _progress(what):
    def report(row):
        print(f"  {what}: {row['scheme']:<20} {row['codec']:<8} ratio {row['ratio']:.4f} "
              f"saving {100 * row['saving']:5.1f}% ({row['seconds']} s)", flush=True)
    return report


def _bitplane_groups(values, cfg):
    """The raw plane groups of every whole block of ``values``, block by block."""
    from golden.camc import bitplane_split

    n = cfg.block_values
    blocks = []
    for start in range(0, len(values) - n + 1, n):
        planes = bitplane_split(values[start:start + n], cfg.fmt)
        blocks.append([planes[o:o + size] for o, size in
                       zip(cfg.group_offsets, cfg.group_raw_bytes, strict=True)])
    return blocks


def rtl_savings(values, cfg, label: str) -> dict:
    """Bit-plane savings with the RTL compressor over ``values`` (whole blocks of ``cfg``)."""
    from golden.camc import lz4_compress_block
    from sim.bench.camc_rtl import compressor_throughput, decompressor_throughput

    blocks = _bitplane_groups(values, cfg)
    groups = [g for block in blocks for g in block]
    raw_bytes = sum(map(len, groups))
    print(f"  rtl {label}: compressing {len(groups)} plane groups "
          f"({raw_bytes // 1024} KiB) in amaranth.sim", flush=True)
    started = time.monotonic()
    comp = compressor_throughput(cfg.compressor, groups)
    exact = all(out == lz4_compress_block(g, cfg.hash_bits)
                for out, g in zip(comp["outputs"], groups, strict=True))
    stored, k = 0, 0
    compressed = []
    for block in blocks:
        block_stored = 0
        for g in block:
            out = comp["outputs"][k]
            k += 1
            block_stored += min(len(out), len(g))
            if len(out) < len(g):
                compressed.append(out)
        stored += -(-block_stored // cfg.mem_bytes) * cfg.mem_bytes
    print(f"  rtl {label}: decompressing {len(compressed)} compressed groups", flush=True)
    dec = decompressor_throughput(cfg.decompressor, compressed, timeout=20_000_000)
    return {"tensor": label, "raw_bytes": raw_bytes, "stored_bytes": stored,
            "saving": round(1 - stored / raw_bytes, 4), "rtl_equals_golden": exact,
            "groups": len(groups), "groups_stored_raw": len(groups) - len(compressed),
            "compressor_input_bytes_per_cycle": round(comp["input_bytes_per_cycle"], 3),
            "decompressor_output_bytes_per_cycle": round(dec["bytes_per_cycle"], 3),
            "decompressor_input_bytes_per_cycle": round(dec["input_bytes_per_cycle"], 3),
            "seconds": round(time.monotonic() - started, 1)}


def controller_throughput(cfg, values, blocks: int, label: str) -> dict:
    """Cycles of ``blocks`` writes, then as many full-precision reads, then as many
    sign+exponent reads, through the whole controller (DRAM model at 2 words per cycle)."""
    from golden.camc.controller import ERRORS
    from sim.bench.camc_rtl import run_controller
    from sim.dram import DRAMTiming

    n = cfg.block_values
    data = [values[k * n:(k + 1) * n] for k in range(blocks)]
    timing = DRAMTiming(latency=20, bytes_per_cycle=2.0 * cfg.mem_bytes)
    out = {"preset": label, "lanes": cfg.lanes, "block_bytes": cfg.block_bytes,
           "blocks": blocks}
    phases = [("write", [(k, True, 0, v) for k, v in enumerate(data)]),
              ("read_full", [(k, False, 7, None) for k in range(blocks)]),
              ("read_sign_exponent", [(k, False, 0, None) for k in range(blocks)])]
    for phase, commands in phases:
        started = time.monotonic()
        print(f"  rtl controller {label}: {phase}, {blocks} blocks", flush=True)
        # every phase runs from an empty controller; reads replay the writes first
        prefix = phases[0][1] if phase != "write" else []
        run = run_controller(cfg, prefix + commands, timing=timing,
                             pause_after=len(prefix) or None)
        statuses = run["statuses"][len(prefix):]
        assert all(ERRORS[s["error"]] == "none" for s in statuses), statuses
        if phase != "write":
            for got, want in zip(run["reads"], data, strict=True):
                assert phase != "read_full" or list(got) == [int(v) for v in want]
        cycles = run["cycles_after_pause"] if prefix else run["cycles"]
        raw = blocks * cfg.block_bytes
        stored = sum(s["stored_bytes"] for s in statuses)
        out[phase] = {"cycles": cycles, "raw_bytes": raw, "stored_bytes": stored,
                      "raw_bytes_per_cycle": round(raw / cycles, 3),
                      "raw_bytes_per_cycle_per_lane": round(raw / cycles / cfg.lanes, 3),
                      "stored_bytes_per_cycle": round(stored / cycles, 3),
                      "seconds": round(time.monotonic() - started, 1)}
    return out


def run_rtl(quick: bool = False, kv_caches: list | None = None) -> dict:
    """The RTL half; ``kv_caches`` (from :func:`kv_cache_values`) are those of the software
    half, so both halves measure the same cache (512 tokens, 128 with ``quick``)."""
    from hw.camc.controller import PRESETS

    cfg = PRESETS["default"]
    sample = (64 << 10) if quick else (256 << 10)
    print(f"camc rtl: savings over {sample >> 10} KiB samples", flush=True)
    weights = weight_values("minilm", sample_bytes=sample)
    if kv_caches is None:
        kv_caches = kv_cache_values(128 if quick else 512)
    tokens = kv_caches[0].shape[0]
    kv = np.concatenate([a.reshape(-1) for a in kv_caches])
    # an evenly spaced sample of whole 4 KiB blocks of the cache
    per_block = cfg.block_values
    picks = np.linspace(0, kv.size // per_block - 1, sample // cfg.block_bytes).astype(int)
    kv_sample = np.concatenate([kv[p * per_block:(p + 1) * per_block] for p in picks])
    savings = [rtl_savings(weights, cfg, "MiniLM BF16 weights"),
               rtl_savings(kv_sample, cfg, f"SmolLM2 KV cache ({tokens} tokens)")]
    blocks = 2 if quick else 8
    lanes = [controller_throughput(cfg, weights, blocks, "default"),
             controller_throughput(PRESETS["lanes4"], weights, 2 * blocks, "lanes4")]
    return {"savings": savings, "controller": lanes}


# (label, preset, build root, pack) of the FPGA builds the bench reports
FPGA_BUILDS = [("1 lane", "default", "build", True),
               ("4 lanes", "lanes4", "build/camc_lanes4", False)]


def fpga_figures(build: bool, root: str | Path | None = None) -> list[dict]:
    """Utilisation and Fmax of the ``camc`` designs in :data:`FPGA_BUILDS`: built first when
    ``build``, else read from their ``report.json`` (``None`` figures where there is none)."""
    root = Path(root) if root is not None else Path(__file__).resolve().parents[2]
    rows = []
    for label, preset, build_root, pack in FPGA_BUILDS:
        path = root / build_root / "camc" / "ulx3s-85f" / "report.json"
        if build:
            from fpga.build import build as fpga_build

            print(f"camc: building the {label} design ({preset})", flush=True)
            fpga_build("camc", preset=preset, build_root=root / build_root, pack=pack)
        if not path.is_file():
            print(f"camc: no {path.relative_to(root)} (run the full `llmhw bench camc` or "
                  f"build it)", flush=True)
            rows.append({"design": label, "preset": preset, "report": None})
            continue
        report = json.loads(path.read_text())
        rows.append({"design": label, "preset": report["preset"], "report": str(path),
                     "utilisation": {kind: entry["used"] for kind, entry
                                     in report["utilisation"].items()},
                     "fmax_mhz": report["fmax_mhz"], "target_mhz": report["target_mhz"],
                     "timing_met": report["timing_met"],
                     **{key: report.get(key) for key in ("floorplan", "timing_weight",
                                                         "pnr_seed")}})
    return rows


def run(quick: bool = False) -> dict:
    started = time.monotonic()
    sample = (4 << 20) if quick else None
    tokens = 128 if quick else 512
    print(f"camc: MiniLM BF16 weights ({'4 MiB sample' if quick else 'all'})", flush=True)
    weights = weight_values("minilm", sample_bytes=sample)
    weight_rows = estimate(weights, WEIGHT_SCHEMES, CODECS, progress=_progress("weights"))
    print(f"camc: SmolLM2 KV cache, {tokens} tokens, 30 layers x K/V", flush=True)
    kv_caches = kv_cache_values(tokens)
    kv_rows = estimate(kv_caches, KV_SCHEMES, CODECS, progress=_progress("kv cache"))
    return {"block_bytes": 4096, "weights": {"model": "all-MiniLM-L6-v2", "rows": weight_rows},
            "kv_cache": {"model": "SmolLM2-135M-Instruct", "tokens": tokens, "rows": kv_rows},
            "rtl": run_rtl(quick, kv_caches), "fpga": fpga_figures(build=not quick),
            "paper": PAPER, "seconds": round(time.monotonic() - started, 1)}
