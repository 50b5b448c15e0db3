"""``llmhw``: list, generate, build and measure the blocks of the generator."""

import argparse
import dataclasses
import importlib
import json
import sys
from pathlib import Path

__all__ = ["main"]

# Benchmarks in the order `llmhw bench all` runs them; each is a module `sim.bench.<name>`
# with `run(quick) -> dict`. Names whose module does not exist yet are skipped.
_BENCH_ORDER = ["common", "models", "camc", "meadow", "flexcim", "accllm"]


def _benches() -> list[str]:
    import importlib.util
    return [name for name in _BENCH_ORDER if importlib.util.find_spec(f"sim.bench.{name}")]


def _overrides(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set takes key=value, not {pair!r}")
        out[key.strip()] = value.strip()
    return out


def _describe(cfg) -> str:
    return ", ".join(f"{f.name}={getattr(cfg, f.name)!r}" for f in dataclasses.fields(cfg)
                     if getattr(cfg, f.name) is not None)


def cmd_list(args) -> int:
    from hw.registry import all_blocks

    by_family = {}
    for info in all_blocks().values():
        by_family.setdefault(info.family, []).append(info)
    for family, blocks in by_family.items():
        print(f"{family}")
        for info in blocks:
            print(f"  {info.name:<14} {info.summary}")
            for preset, cfg in info.presets.items():
                print(f"    --preset {preset:<16} {_describe(cfg)}")
    return 0


def _convert(component, name: str, rtlil: bool) -> str:
    from amaranth.back import rtlil as rtlil_backend
    from amaranth.back import verilog

    if rtlil:
        return rtlil_backend.convert(component, name=name)
    return verilog.convert(component, name=name)


def cmd_generate(args) -> int:
    from hw.registry import all_blocks, build, get_block

    names = list(all_blocks()) if args.all else [args.block]
    if not args.all and args.block is None:
        raise ValueError("generate needs a BLOCK name, or --all")
    for name in names:
        get_block(name)
        component = build(name, args.preset, _overrides(args.set))
        suffix = ".il" if args.rtlil else ".v"
        if args.output and not args.all:
            out = Path(args.output)
        else:
            stem = name if not args.preset or args.preset == "default" else f"{name}_{args.preset}"
            out = Path(args.output_dir) / f"{stem}{suffix}"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(_convert(component, name, args.rtlil))
        print(f"{name}: wrote {out}")
    return 0


def _print_report(report: dict, build_root: str) -> None:
    from fpga.report import format_table

    print(format_table([report]))
    print(f"report: {Path(build_root) / report['design'] / report['board'] / 'report.json'}")
    if report.get("bitstream"):
        print(f"bitstream: {report['bitstream']}")


def cmd_bitstream(args) -> int:
    from fpga.build import build

    report = build(args.design, args.board, args.preset, _overrides(args.set),
                   pack=not args.no_pack, freq_mhz=args.freq, build_root=args.build_root,
                   router=args.router, placer_density=args.placer_density,
                   pnr_seed=args.pnr_seed, floorplan=args.floorplan,
                   timing_weight=args.timing_weight)
    _print_report(report, args.build_root)
    return 0 if report.get("passed") else 1


def cmd_report(args) -> int:
    from fpga.build import build
    from fpga.report import collect, format_table

    if args.design:
        build(args.design, args.board, args.preset, _overrides(args.set), pack=False,
              freq_mhz=args.freq, build_root=args.build_root, router=args.router,
              placer_density=args.placer_density, pnr_seed=args.pnr_seed,
              floorplan=args.floorplan, timing_weight=args.timing_weight)
    reports = collect(args.build_root)
    if not reports:
        print(f"no reports under {args.build_root}/; run `make bitstream` or `make report` first")
        return 1
    summary = Path(args.build_root) / "report.json"
    summary.write_text(json.dumps(reports, indent=2))
    print(format_table(reports))
    print(f"summary: {summary}")
    return 0 if all(r.get("passed") for r in reports) else 1


def cmd_bench(args) -> int:
    benches = _benches()
    families = benches if args.family == "all" else [args.family]
    for family in families:
        if family not in benches:
            raise ValueError(f"unknown bench {family!r}; choose one of: all, {', '.join(benches)}")
        results = importlib.import_module(f"sim.bench.{family}").run(quick=args.quick)
        out = Path(args.build_root) / "bench" / f"{family}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2))
        print(f"{family}: wrote {out}")
    return 0


def cmd_model(args) -> int:
    from golden.models import cli as model_cli

    if args.model_command == "generate":
        print(model_cli.generate(args.prompt, n=args.n, variant=args.variant))
    elif args.model_command == "perplexity":
        result = model_cli.perplexity(variant=args.variant, tokens=args.tokens,
                                      window=args.window)
        print(f"{result['variant']}: perplexity {result['perplexity']:.3f} over "
              f"{result['tokens']} tokens (window {result['window']})")
        print(json.dumps(result))
    elif args.model_command == "capture":
        path = model_cli.capture(tokens=args.tokens, out=args.output, layers=args.layers)
        print(model_cli.describe(path))
    return 0


def cmd_camc(args) -> int:
    from golden.camc.estimate import (
        CODECS,
        KV_SCHEMES,
        WEIGHT_SCHEMES,
        estimate,
        kv_cache_values,
        weight_values,
    )

    codecs = args.codecs.split(",")
    for codec in codecs:
        if codec not in CODECS:
            raise ValueError(f"unknown codec {codec!r}; choose one of: {', '.join(CODECS)}")
    sample = None if args.sample_mib is None else int(args.sample_mib * (1 << 20))
    if args.kv_tokens:
        values, schemes, what = kv_cache_values(args.kv_tokens), KV_SCHEMES, "kv cache"
    else:
        values, schemes, what = weight_values(args.model, sample), WEIGHT_SCHEMES, "weights"
    print(f"{'scheme':<20} {'codec':<8} {'raw bytes':>12} {'stored':>12} {'ratio':>7} saving")
    rows = estimate(values, schemes, codecs, args.block_bytes, progress=lambda r: print(
        f"{r['scheme']:<20} {r['codec']:<8} {r['raw_bytes']:>12} {r['stored_bytes']:>12} "
        f"{r['ratio']:>7.4f} {100 * r['saving']:5.1f}%", flush=True))
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"source": args.model if not args.kv_tokens else "smollm2 kv",
                               "what": what, "block_bytes": args.block_bytes, "rows": rows},
                              indent=2))
    print(f"wrote {out}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llmhw", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="families, blocks and presets").set_defaults(run=cmd_list)

    g = sub.add_parser("generate", help="Verilog (or RTLIL) of a block")
    g.add_argument("block", nargs="?", help="block name (see `llmhw list`)")
    g.add_argument("--all", action="store_true", help="every block, default preset")
    g.add_argument("--preset", default=None)
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config parameter (repeatable)")
    g.add_argument("-o", "--output", help="output file (default build/verilog/BLOCK.v)")
    g.add_argument("--output-dir", default="build/verilog")
    g.add_argument("--rtlil", action="store_true", help="emit RTLIL instead of Verilog")
    g.set_defaults(run=cmd_generate)

    def fpga_args(sp, design_default):
        from fpga.boards import BOARDS, DEFAULT_BOARD

        sp.add_argument("--design", default=design_default, help="block name")
        sp.add_argument("--board", default=DEFAULT_BOARD, choices=list(BOARDS))
        sp.add_argument("--preset", default=None)
        sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
        sp.add_argument("--freq", type=float, default=None, help="target MHz (board default)")
        sp.add_argument("--build-root", default="build")
        sp.add_argument("--router", choices=["router1", "router2"], default=None,
                        help="nextpnr router (its default, router1, otherwise; router2 is faster "
                             "on large designs, but reached a lower Fmax on camc lanes4)")
        sp.add_argument("--placer-density", type=float, default=None, metavar="BETA",
                        help="most of an area nextpnr's placer may fill, in (0, 1] (its "
                             "--placer-heap-beta, default 0.9); lower spreads a congested design")
        sp.add_argument("--pnr-seed", type=int, default=None, metavar="N",
                        help="seed of nextpnr's placer and router (its --seed, 1 to 2**31 - 1; "
                             "its default otherwise): rebuilds a figure from a seed sweep")
        sp.add_argument("--floorplan", action=argparse.BooleanOptionalAction, default=None,
                        help="pin the block RAMs before place and route, each lane's in a "
                             "patch of the die of its own (ECP5 85F; default: the block's "
                             "choice, on for camc)")
        sp.add_argument("--timing-weight", type=int, default=None, metavar="N",
                        help="weight of timing in nextpnr's placer (its "
                             "--placer-heap-timingweight, 1 to 1000; default: the block's "
                             "choice, 30 for camc, else nextpnr's 10)")

    b = sub.add_parser("bitstream", help="synthesise, place, route and pack a design")
    fpga_args(b, "bram_memory")
    b.add_argument("--no-pack", action="store_true", help="stop after place and route")
    b.set_defaults(run=cmd_bitstream)

    r = sub.add_parser("report", help="table of utilisation and Fmax of every build")
    fpga_args(r, None)
    r.set_defaults(run=cmd_report)

    mo = sub.add_parser("model", help="run SmolLM2-135M in numpy (real weights)")
    msub = mo.add_subparsers(dest="model_command", required=True)
    mg = msub.add_parser("generate", help="greedy generation")
    mg.add_argument("prompt")
    mg.add_argument("-n", type=int, default=20, help="tokens to generate")
    mg.add_argument("--variant", "--quant", dest="variant", default="fp32",
                    help="fp32, bf16, w8a8, w4a8, w2a8, kv4, 2:4, lambda")
    mp = msub.add_parser("perplexity", help="perplexity on the bundled text")
    mp.add_argument("--variant", "--quant", dest="variant", default="fp32")
    mp.add_argument("--tokens", type=int, default=None, help="first N tokens (default all)")
    mp.add_argument("--window", type=int, default=512)
    mc = msub.add_parser("capture", help="save KV caches and linear-layer inputs to .npz")
    mc.add_argument("--tokens", type=int, default=512)
    mc.add_argument("-o", "--output", default="build/kv.npz")
    mc.add_argument("--layers", type=int, nargs="*", default=None, help="layers (default all)")
    mo.set_defaults(run=cmd_model)

    ca = sub.add_parser("camc", help="compression-aware memory controller tools")
    csub = ca.add_subparsers(dest="camc_command", required=True)
    cf = csub.add_parser("footprint", help="savings per scheme and codec on real tensors")
    cf.add_argument("--model", default="minilm",
                    help="minilm, smollm2, or a .safetensors / .gguf file (BF16-rounded)")
    cf.add_argument("--kv-tokens", type=int, default=0,
                    help="estimate a SmolLM2 KV cache of this many tokens instead of weights")
    cf.add_argument("--codecs", default="lz4,lz4-lib,zstd")
    cf.add_argument("--block-bytes", type=int, default=4096)
    cf.add_argument("--sample-mib", type=float, default=None,
                    help="evenly spaced sample of this many MiB (default all)")
    cf.add_argument("-o", "--output", default="build/camc/footprint.json")
    ca.set_defaults(run=cmd_camc)

    be = sub.add_parser("bench", help="measure cycles and bandwidth; writes build/bench/*.json")
    be.add_argument("family", nargs="?", default="all")
    be.add_argument("--quick", action="store_true", help="smaller sweep")
    be.add_argument("--build-root", default="build")
    be.set_defaults(run=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, RuntimeError) as exc:
        # bad input (ValueError), a missing model wheel or a failed tool run (RuntimeError):
        # the message says what and how to fix it; a traceback would only bury it
        print(f"llmhw: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
