"""Prints a counterexample trace (``trace.vcd`` from SymbiYosys) as a table, one row per step.

``python -m sim.formal.trace build/formal/<proof>/<proof>_bmc/engine_0/trace.vcd [signal ...]``
shows the harness's top-level signals (or those whose names contain one of the given words).
"""

import sys
from pathlib import Path

__all__ = ["read_vcd", "format_trace"]


def read_vcd(path: Path) -> tuple[dict[str, int], list[dict[str, int]]]:
    """Read a SymbiYosys VCD: the width of each signal and its values at each solver step.

    Names are dotted paths below ``top`` (``dut.o__valid``); a step is one ``smt_step``.
    """
    widths, names, steps = {}, {}, []
    scope, current, step_code = [], {}, None
    for line in Path(path).read_text().splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "$scope":
            scope.append(words[2])
        elif words[0] == "$upscope":
            scope.pop()
        elif words[0] == "$var":
            width, code, name = int(words[2]), words[3], words[4]
            if name == "smt_step":
                step_code = code
                continue
            # a struct is dumped both whole and as a scope of its fields: keep both
            full = ".".join([*scope[1:], name])
            names.setdefault(code, []).append(full)
            widths[full] = width
        elif words[0][0] in "bB" and len(words) == 2:
            value = int(words[0][1:].translate(str.maketrans("xXzZ", "0000")), 2)
            if words[1] == step_code:
                while len(steps) <= value:
                    steps.append({})
                current = steps[value]
                current.update(steps[value - 1] if value and not current else {})
            for name in names.get(words[1], []):
                current[name] = value
        elif words[0][0] in "01xXzZ" and words[0][1:] in names:
            for name in names[words[0][1:]]:
                current[name] = 1 if words[0][0] == "1" else 0
    return widths, steps


def format_trace(path: Path, patterns=()) -> str:
    """The trace as text: a column per signal, a row per distinct time stamp."""
    widths, steps = read_vcd(path)
    columns = [name for name in sorted(widths)
               if "$" not in name and not name.endswith("clk")
               and (any(p in name for p in patterns) if patterns else "." not in name)]
    rows = [["step", *columns]]
    for step, values in enumerate(steps):
        rows.append([str(step), *(format(values.get(name, 0), "x") for name in columns)])
    sizes = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    return "\n".join("  ".join(cell.rjust(size) for cell, size in zip(row, sizes, strict=True))
                     for row in rows)


if __name__ == "__main__":
    print(format_trace(Path(sys.argv[1]), sys.argv[2:]))
