"""Shim between Amaranth's build script and a YoWASP tool: progress line, timing, arguments.

Amaranth's generated ``build_top.sh`` calls each tool through an environment variable
(``$YOSYS``, ``$NEXTPNR_ECP5``...). :func:`fpga.build.build` points those variables at small
scripts that run ``python -m fpga.toolwrap STAGE TIMES_FILE TOOL ARGS...``, which

* prints one progress line per stage (place and route takes minutes on large designs),
* appends the stage's wall time to ``TIMES_FILE`` (one JSON object per line), and
* for ``nextpnr-himbaechel-gowin`` rewrites the ``--family X`` / ``--cst F`` options that
  Amaranth 0.5's Gowin template passes into the ``--vopt family=X`` / ``--vopt cst=F`` that
  the himbächel build of nextpnr accepts, and
* given ``--floorplan DEVICE`` before the stage, pins the netlist's block RAMs
  (:func:`fpga.floorplan.apply` on the ``--json`` file) before place and route, and writes
  the sites it chose to ``floorplan.json``.
"""

import json
import subprocess
import sys
import time

__all__ = ["translate_gowin_nextpnr_args", "main"]


def translate_gowin_nextpnr_args(args: list[str]) -> list[str]:
    """Rewrite the legacy ``nextpnr-gowin`` options into ``nextpnr-himbaechel`` ones.

    Parameters
    ----------
    args : list of str
        Arguments as Amaranth passes them to ``nextpnr-gowin``.

    Returns
    -------
    list of str
        The same arguments with ``--family``/``--cst`` turned into ``--vopt`` options.
    """
    out = []
    rest = iter(args)
    for arg in rest:
        for option in ("family", "cst"):
            if arg == f"--{option}":
                out += ["--vopt", f"{option}={next(rest)}"]
                break
            if arg.startswith(f"--{option}="):
                out += ["--vopt", f"{option}={arg.split('=', 1)[1]}"]
                break
        else:
            out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    device = None
    if argv[:1] == ["--floorplan"]:
        device, argv = argv[1], argv[2:]
    stage, times_file, tool, *args = argv
    if tool.endswith("nextpnr-himbaechel-gowin"):
        args = translate_gowin_nextpnr_args(args)
    if device is not None and "--json" in args:
        from . import floorplan

        netlist = args[args.index("--json") + 1]
        sites = floorplan.apply(netlist, device)
        with open("floorplan.json", "w") as f:
            json.dump(sites, f, indent=1, sort_keys=True)
        print(f"[fpga]   floorplan: {len(sites)} block RAMs pinned for {device} "
              f"(floorplan.json)", flush=True)
    print(f"[fpga]   {stage}: {tool} ...", flush=True)
    start = time.monotonic()
    code = subprocess.call([tool, *args])
    seconds = time.monotonic() - start
    with open(times_file, "a") as f:
        f.write(json.dumps({"stage": stage, "tool": tool, "seconds": round(seconds, 2),
                            "returncode": code}) + "\n")
    status = "done" if code == 0 else f"FAILED (exit {code})"
    print(f"[fpga]   {stage}: {status} in {seconds:.1f} s", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
