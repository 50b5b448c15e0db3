"""Block RAM floorplan for ECP5: pin each ``DP16KD`` of a netlist to a site near its lane.

nextpnr's analytic placer spreads the block RAMs of a design over the whole die (a one-lane
camc controller had its 68 blocks in four rows from X4 to X69), and the logic that talks to
them spreads with them: on the camc designs most of every worst path was routing. Pinning
each lane's blocks to a compact patch of the die, one patch per lane, and the shared blocks
between them, lets the placer keep each lane's logic together, the way a hand floorplan
(Vivado's pblocks) does. nextpnr takes a cell's site from its ``BEL`` attribute
(docs/constraints.md, "absolute placement constraints"); the rest of the placement stays its
own.

A block belongs to lane ``k`` when its hierarchical name holds a path component ``lane<k>``;
the others are shared. Lanes get patches in this order: one lane the middle of the die, two
lanes the left and right halves, three or four lanes the quadrants (more lanes: a grid). Each
group takes the free sites nearest its patch's centre (``|dx| + |dy|`` in tiles), and its
blocks, in name order, fill those sites row by row, so the tiles of one memory and the
memories of one block sit side by side. Shared blocks go last, to the free sites nearest the
centre of the die.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from pathlib import Path

__all__ = ["ECP5_EBR_SITES", "ebr_sites", "plan", "apply"]

# LFE5U-85F: 4 rows of 52 DP16KD sites, 208 in all (nextpnr's bel names ``X{x}/Y{y}/EBR{k}``).
# Each row holds 13 groups of four sites two tiles apart, EBR0..EBR3; 7 groups left of the
# centre spine (from X4, 9 tiles apart) and 6 right of it (from X69).
_ECP5_85_ROWS = (22, 46, 70, 82)
_ECP5_85_GROUPS = tuple(4 + 9 * g for g in range(7)) + tuple(69 + 9 * g for g in range(6))

ECP5_EBR_SITES = {
    "LFE5U-85F": [(base + 2 * k, y, k) for y in _ECP5_85_ROWS for base in _ECP5_85_GROUPS
                  for k in range(4)],
}
# tiles across and down each die, whose centre and quarters the lanes' patches are around
_DIE_SIZE = {"LFE5U-85F": (126, 95)}

_LANE = re.compile(r"(?:^|\.)lane(\d+)(?:\.|$)")


def _die(device: str) -> str:
    # a full part number (`LFE5U-85F-6BG381C`) names its die
    for die in ECP5_EBR_SITES:
        if device == die or device.startswith(die + "-"):
            return die
    raise ValueError(f"device must be one of {sorted(ECP5_EBR_SITES)} for a block RAM "
                     f"floorplan, not {device!r}")


def ebr_sites(device: str) -> list[tuple[int, int, int]]:
    """``(x, y, k)`` of every DP16KD site of ``device`` (bel ``X{x}/Y{y}/EBR{k}``); a full
    part number (``LFE5U-85F-6BG381C``) names its die."""
    return list(ECP5_EBR_SITES[_die(device)])


def _centres(lanes: int, size: tuple[int, int]) -> list[tuple[float, float]]:
    # lane patches: a grid of `cols x rows` cells over the die, lane k in cell k (row-major)
    width, height = size
    cols = 1 if lanes == 1 else 2 if lanes <= 4 else math.ceil(math.sqrt(lanes))
    rows = math.ceil(lanes / cols)
    return [((k % cols + 0.5) * width / cols, (k // cols + 0.5) * height / rows)
            for k in range(lanes)]


def plan(cells: list[str], device: str = "LFE5U-85F") -> dict[str, str]:
    """Site (a nextpnr bel name) for each DP16KD cell name in ``cells``.

    Raises ``ValueError`` when the device has fewer sites than ``cells``.
    """
    sites = ebr_sites(device)
    if len(cells) > len(sites):
        raise ValueError(f"{len(cells)} DP16KD cells do not fit the {len(sites)} sites of "
                         f"{device}")
    groups = defaultdict(list)
    for name in cells:
        match = _LANE.search(name)
        groups[int(match.group(1)) if match else None].append(name)
    lanes = sorted(k for k in groups if k is not None)
    size = _DIE_SIZE[_die(device)]
    centres = dict(zip(lanes, _centres(len(lanes), size), strict=True)) if lanes else {}
    centres[None] = (size[0] / 2, size[1] / 2)
    free = set(sites)
    placed = {}
    for key in [*lanes, None]:
        names = sorted(groups.get(key, []))
        cx, cy = centres[key]
        nearest = sorted(free, key=lambda s: (abs(s[0] - cx) + abs(s[1] - cy), s[1], s[0]))
        chosen = sorted(nearest[:len(names)], key=lambda s: (s[1], s[0]))
        free.difference_update(chosen)
        for name, (x, y, k) in zip(names, chosen, strict=True):
            placed[name] = f"X{x}/Y{y}/EBR{k}"
    return placed


def apply(netlist: str | Path, device: str = "LFE5U-85F") -> dict[str, str]:
    """Give every DP16KD cell of the Yosys JSON ``netlist`` (rewritten in place) a ``BEL``
    attribute from :func:`plan`; cells that already have one keep it. Returns the plan."""
    path = Path(netlist)
    design = json.loads(path.read_text())
    cells = []
    for module in design["modules"].values():
        for name, cell in module.get("cells", {}).items():
            if cell["type"] == "DP16KD" and "BEL" not in cell.get("attributes", {}):
                cells.append((name, cell))
    placed = plan([name for name, _ in cells], device)
    for name, cell in cells:
        cell.setdefault("attributes", {})["BEL"] = placed[name]
    path.write_text(json.dumps(design))
    return placed
