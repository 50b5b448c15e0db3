"""``llmhw bench camc`` reports the camc designs' FPGA figures from their build reports."""

import json

from sim.bench.camc import FPGA_BUILDS, fpga_figures


def test_fpga_figures_read_the_reports_and_name_missing_ones(tmp_path, capsys):
    label, preset, build_root, _ = FPGA_BUILDS[1]
    folder = tmp_path / build_root / "camc" / "ulx3s-85f"
    folder.mkdir(parents=True)
    report = {"preset": preset, "fmax_mhz": 104.13, "target_mhz": 100.0, "timing_met": True,
              "utilisation": {"LUT": {"used": 38823, "available": 83640},
                              "BRAM": {"used": 154, "available": 208}},
              "floorplan": True, "timing_weight": 30, "pnr_seed": None}
    (folder / "report.json").write_text(json.dumps(report))
    one, four = fpga_figures(build=False, root=tmp_path)
    assert one == {"design": FPGA_BUILDS[0][0], "preset": "default", "report": None}
    assert "no build/camc/ulx3s-85f/report.json" in capsys.readouterr().out
    assert four["design"] == label and four["preset"] == preset
    assert four["utilisation"] == {"LUT": 38823, "BRAM": 154}
    assert four["fmax_mhz"] == 104.13 and four["timing_met"] is True
    assert (four["floorplan"], four["timing_weight"], four["pnr_seed"]) == (True, 30, None)
