"""Reading the tools' logs into numbers, and the table of all builds.

``parse_nextpnr_log`` and ``parse_yosys_stat`` turn the text the tools write (``top.tim`` and
``top.rpt`` in a build folder) into dicts; :func:`fpga.build.build` stores them in each build's
``report.json``; :func:`collect` and :func:`format_table` summarise all of them.
"""

import json
import re
from pathlib import Path

__all__ = ["parse_nextpnr_utilisation", "parse_nextpnr_fmax", "parse_nextpnr_log",
           "parse_yosys_stat", "collect", "format_table"]

# "Info: \t   TRELLIS_COMB:   123/ 83640     0%"
_UTIL_LINE = re.compile(r"^Info:\s+([A-Za-z0-9_$.]+):\s+(\d+)\s*/\s*(\d+)\s+(\d+)%\s*$")
# "Info: Max frequency for clock '$glbnet$clk': 206.87 MHz (PASS at 100.00 MHz)"
_FMAX_LINE = re.compile(
    r"Max frequency for clock\s+'([^']+)':\s+([0-9.]+)\s+MHz"
    r"(?:\s+\((PASS|FAIL)\s+at\s+([0-9.]+)\s+MHz\))?")
# yosys `stat` (0.4x and later): a cell type is "   <count>   <type>" (several spaces between),
# a summary line is "   <count> cells" / "   <count> submodules" (one space)
_STAT_SECTION = re.compile(r"^=== (.+) ===\s*$", re.MULTILINE)
_STAT_CELL_TYPE = re.compile(r"^\s+(\d+) {2,}(\S+)\s*$")
_STAT_SUMMARY = re.compile(r"^\s+(\d+) (\S[^\d]*?)\s*$")


def parse_nextpnr_utilisation(text: str) -> dict[str, dict[str, int]]:
    """Cell counts from the last "Device utilisation" block of a nextpnr log.

    Returns
    -------
    dict
        ``{cell_type: {"used": n, "available": m}}``.
    """
    blocks = text.split("Device utilisation:")
    if len(blocks) < 2:
        return {}
    cells = {}
    for line in blocks[-1].splitlines()[1:]:
        match = _UTIL_LINE.match(line.rstrip())
        if not match:
            if cells:
                break  # the block ends at the first line that is not a count
            continue
        cells[match[1]] = {"used": int(match[2]), "available": int(match[3])}
    return cells


def parse_nextpnr_fmax(text: str) -> dict[str, dict[str, float | bool | None]]:
    """Fmax per clock after routing (nextpnr prints it after placement and after routing).

    Returns
    -------
    dict
        ``{clock: {"fmax_mhz": f, "target_mhz": t or None, "met": bool or None}}``, from the
        last line nextpnr printed for each clock.
    """
    clocks = {}
    for match in _FMAX_LINE.finditer(text):
        target = float(match[4]) if match[4] else None
        clocks[match[1]] = {
            "fmax_mhz": float(match[2]),
            "target_mhz": target,
            "met": None if match[3] is None else match[3] == "PASS",
        }
    return clocks


def parse_nextpnr_log(text: str) -> dict:
    """Utilisation and Fmax of a nextpnr log: ``{"cells": ..., "clocks": ..., "fmax_mhz": ...}``.

    ``fmax_mhz`` is the slowest clock's post-routing Fmax, or ``None`` when the log has none
    (a design without clocked logic, or a run that stopped before timing analysis).
    """
    clocks = parse_nextpnr_fmax(text)
    fmax = min((c["fmax_mhz"] for c in clocks.values()), default=None)
    return {"cells": parse_nextpnr_utilisation(text), "clocks": clocks, "fmax_mhz": fmax}


def parse_yosys_stat(text: str) -> dict:
    """Cell counts from the last module ``stat`` report in a yosys log.

    Yosys 0.70 lists library cells (``LUT4``, ``TRELLIS_FF``...) of a synthesised design under
    "submodules" and only Yosys-internal cells under "cells", so ``cells`` here is the sum of
    every listed cell type except ``$scopeinfo`` (a zero-size marker ``flatten`` leaves behind).

    Returns
    -------
    dict
        ``{"module": name, "cells": total, "cell_types": {type: count}}``; ``cells`` is
        ``None`` if the log has no ``stat`` output.
    """
    matches = list(_STAT_SECTION.finditer(text))
    sections = [(m[1], text[m.end():matches[k + 1].start() if k + 1 < len(matches) else None])
                for k, m in enumerate(matches)]
    # the last report of a real module; "design hierarchy" only repeats the totals
    for module, body in reversed(sections):
        if module == "design hierarchy":
            continue
        types = {}
        for line in body.splitlines():
            cell = _STAT_CELL_TYPE.match(line)
            if cell:
                types[cell[2]] = types.get(cell[2], 0) + int(cell[1])
            elif line.strip() and not _STAT_SUMMARY.match(line) and types:
                break  # end of this module's report
        if types:
            total = sum(n for t, n in types.items() if t != "$scopeinfo")
            return {"module": module, "cells": total, "cell_types": types}
    return {"module": None, "cells": None, "cell_types": {}}


def collect(build_root: str | Path = "build") -> list[dict]:
    """Every ``build_root/<design>/<board>/report.json``, sorted by design then board."""
    reports = []
    for path in sorted(Path(build_root).glob("*/*/report.json")):
        with open(path) as f:
            report = json.load(f)
        report.setdefault("report_path", str(path))
        reports.append(report)
    return reports


def _used(report: dict, kind: str) -> str:
    entry = report.get("utilisation", {}).get(kind)
    if not entry or entry.get("used") is None:
        return "-"
    if entry.get("available"):
        return f"{entry['used']}/{entry['available']}"
    return str(entry["used"])


def format_table(reports: list[dict]) -> str:
    """A fixed-width table of builds: utilisation, Fmax against target, result and time."""
    header = ["design", "preset", "board", "LUT", "FF", "DSP", "BRAM", "Fmax MHz", "target",
              "result", "seconds"]
    rows = [header]
    for r in reports:
        fmax = r.get("fmax_mhz")
        rows.append([
            r.get("design", "?"),
            r.get("preset") or "default",
            r.get("board", "?"),
            _used(r, "LUT"), _used(r, "FF"), _used(r, "DSP"), _used(r, "BRAM"),
            f"{fmax:.1f}" if isinstance(fmax, (int, float)) else "-",
            f"{r.get('target_mhz', 0):g}",
            "PASS" if r.get("passed") else "FAIL",
            f"{r.get('tool_seconds', {}).get('total', 0):.0f}",
        ])
    widths = [max(len(row[k]) for row in rows) for k in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
