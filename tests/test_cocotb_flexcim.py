"""cocotb on the generated Verilog of the FlexCiM macro, in small configurations.

Each case generates the macro's Verilog for one config, compiles it once and runs one test of
``sim/cocotb_tests/flexcim_blocks.py`` over every seed and stall pair in the same simulator
run (Icarus by default).
"""

import dataclasses

import pytest

from hw.flexcim.macro import PRESETS, FlexCiMConfig
from hw.registry import all_blocks, get_block
from sim.cocotb_bridge import default_build_dir, run_cocotb

pytestmark = pytest.mark.cocotb

TEST_MODULE = "sim.cocotb_tests.flexcim_blocks"

CASES = [
    ("flexcim", "tiny", PRESETS["tiny"], "test_flexcim"),
    ("flexcim", "m16_wrap", FlexCiMConfig(rows=8, cols=3, submacros=4, max_m=16, act_lanes=64,
                                          acc_bits=16, depth=2, out_depth=8), "test_flexcim"),
    ("flexcim", "tiny_d8", dataclasses.replace(PRESETS["tiny"], depth=8), "test_flexcim_real"),
    ("flexcim", "tiny_lut", dataclasses.replace(PRESETS["tiny"], multipliers="lut"),
     "test_flexcim"),
]


@pytest.mark.parametrize(("name", "label", "cfg", "testcase"), CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[3]}" for c in CASES])
def test_flexcim_block(name, label, cfg, testcase):
    results = run_cocotb(get_block(name).component, cfg, TEST_MODULE, toplevel=name,
                         build_dir=default_build_dir(name, label), testcase=testcase)
    assert results and all(r["name"].startswith(f"{testcase}/") for r in results)


def test_registry_blocks_all_covered():
    """A new flexcim block fails here until flexcim_blocks.py has a test and a case for it."""
    import sim.cocotb_tests.flexcim_blocks as tests

    covered = {name for name, _, _, _ in CASES}
    for name, info in all_blocks().items():
        if info.family == "flexcim":
            assert hasattr(tests, f"test_{name}"), f"no cocotb test for block {name!r}"
            assert name in covered, f"no cocotb case for block {name!r}"
