"""Block RAM floorplan (fpga.floorplan): every block gets a site of its own, each lane's
blocks a patch of their own, and a build passes the sites to nextpnr."""

import json
import re

import pytest

from fpga import floorplan
from fpga.build import build
from fpga.toolwrap import main as toolwrap_main


def _names(lanes, per_lane, shared):
    names = [f"harness.dut.controller.lane{k}.buf{j}.tile0" for k in range(lanes)
             for j in range(per_lane)]
    return names + [f"harness.dut.memory.storage.tile{j}" for j in range(shared)]


def _xy(bel):
    x, y, k = re.fullmatch(r"X(\d+)/Y(\d+)/EBR(\d)", bel).groups()
    return int(x), int(y), int(k)


def test_sites_of_the_85f():
    sites = floorplan.ebr_sites("LFE5U-85F-6BG381C")
    assert len(sites) == len(set(sites)) == 208
    # four sites per group, two tiles apart, EBR0..EBR3 from the left
    assert {k for _, _, k in sites} == {0, 1, 2, 3}
    assert all(0 < x < 126 and 0 < y < 95 for x, y, _ in sites)


def test_unknown_device_is_refused():
    with pytest.raises(ValueError, match="device must be one of"):
        floorplan.ebr_sites("iCE40UP5K-SG48")


@pytest.mark.parametrize("lanes", [1, 2, 4, 8])
def test_every_block_gets_its_own_site_and_lanes_keep_apart(lanes):
    names = _names(lanes, 34 if lanes <= 4 else 20, 18)
    placed = floorplan.plan(names)
    assert set(placed) == set(names)
    assert len(set(placed.values())) == len(names)          # no site twice
    valid = {f"X{x}/Y{y}/EBR{k}" for x, y, k in floorplan.ebr_sites("LFE5U-85F")}
    assert set(placed.values()) <= valid
    boxes = []
    for k in range(lanes):
        xy = [_xy(placed[n]) for n in names if f".lane{k}." in n]
        boxes.append((min(x for x, _, _ in xy), max(x for x, _, _ in xy),
                      min(y for _, y, _ in xy), max(y for _, y, _ in xy)))
    centre = [((a + b) / 2, (c + d) / 2) for a, b, c, d in boxes]
    if lanes == 4:
        # the quadrants: lanes 0 and 1 on top, 0 and 2 on the left
        assert centre[0][0] < centre[1][0] and centre[2][0] < centre[3][0]
        assert centre[0][1] < centre[2][1] and centre[1][1] < centre[3][1]
    for k in range(lanes):
        # a patch: no lane's box spans the whole die
        x0, x1, y0, y1 = boxes[k]
        assert (x1 - x0) < 126 * (0.9 if lanes == 1 else 0.6)


def test_too_many_blocks_are_refused():
    with pytest.raises(ValueError, match="209 DP16KD cells do not fit the 208 sites"):
        floorplan.plan(_names(1, 209, 0))


def test_apply_rewrites_the_netlist_and_keeps_given_sites(tmp_path):
    cells = {f"harness.dut.lane0.ram{j}": {"type": "DP16KD", "attributes": {}} for j in range(3)}
    cells["harness.dut.lane0.ram0"]["attributes"]["BEL"] = "X4/Y22/EBR0"
    cells["lut"] = {"type": "LUT4", "attributes": {}}
    path = tmp_path / "top.json"
    path.write_text(json.dumps({"modules": {"top": {"cells": cells}}}))
    placed = floorplan.apply(path)
    assert set(placed) == {"harness.dut.lane0.ram1", "harness.dut.lane0.ram2"}
    out = json.loads(path.read_text())["modules"]["top"]["cells"]
    assert out["harness.dut.lane0.ram0"]["attributes"]["BEL"] == "X4/Y22/EBR0"
    assert out["harness.dut.lane0.ram1"]["attributes"]["BEL"] == placed["harness.dut.lane0.ram1"]
    assert "BEL" not in out["lut"]["attributes"]


def test_toolwrap_pins_before_the_tool_runs(tmp_path, monkeypatch):
    cells = {f"lane{k}.ram": {"type": "DP16KD", "attributes": {}} for k in range(2)}
    (tmp_path / "top.json").write_text(json.dumps({"modules": {"top": {"cells": cells}}}))
    monkeypatch.chdir(tmp_path)
    code = toolwrap_main(["--floorplan", "LFE5U-85F-6BG381C", "pnr", "times.jsonl", "true",
                          "--json", "top.json"])
    assert code == 0
    written = json.loads((tmp_path / "floorplan.json").read_text())
    out = json.loads((tmp_path / "top.json").read_text())["modules"]["top"]["cells"]
    assert {n: c["attributes"]["BEL"] for n, c in out.items()} == written
    assert _xy(written["lane0.ram"])[0] < _xy(written["lane1.ram"])[0]


def test_floorplan_on_a_board_without_sites_is_refused(tmp_path):
    with pytest.raises(ValueError, match="device must be one of"):
        build("skid_buffer", board="icebreaker", build_root=tmp_path, floorplan=True)
    assert not (tmp_path / "skid_buffer").exists()


def test_blocks_name_their_own_place_and_route_options():
    from hw import registry

    assert registry.get_block("camc").pnr == {"floorplan": True, "timing_weight": 30}
    assert registry.get_block("skid_buffer").pnr == {}
    info = registry.get_block("skid_buffer")
    with pytest.raises(ValueError, match="takes floorplan and timing_weight, not \\['seed'\\]"):
        registry.BlockInfo(info.name, info.family, info.component, info.config, info.presets,
                           info.summary, pnr={"seed": 3})


def test_cli_floorplan_switch():
    from hw.cli import parser as make_parser

    parser = make_parser()
    assert parser.parse_args(["bitstream"]).floorplan is None
    assert parser.parse_args(["bitstream", "--floorplan"]).floorplan is True
    assert parser.parse_args(["bitstream", "--no-floorplan"]).floorplan is False
    assert parser.parse_args(["report", "--timing-weight", "40"]).timing_weight == 40
