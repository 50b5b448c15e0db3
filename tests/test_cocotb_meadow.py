"""cocotb on the generated Verilog of the ``hw.meadow`` blocks, in small configurations.

Each case generates one block's Verilog, compiles it once (Icarus) and runs
``test_<block>`` of ``sim/cocotb_tests/meadow_blocks.py`` over the seeds and stall pairs
given here (fewer than the common default: the engine runs thousands of cycles per job set).
"""

import pytest

from hw.meadow.engine import PRESETS as ENGINE_PRESETS
from hw.meadow.wilu import PRESETS as WILU_PRESETS
from hw.registry import all_blocks, get_block
from sim.cocotb_bridge import default_build_dir, run_cocotb

pytestmark = pytest.mark.cocotb

TEST_MODULE = "sim.cocotb_tests.meadow_blocks"
ENV = {"LLMHW_SEEDS": "0,1", "LLMHW_STALLS": "none:none,random:heavy,bursty:alternate"}

CASES = [
    ("meadow", "tiny", ENGINE_PRESETS["tiny"]),
    ("meadow_wilu", "small", WILU_PRESETS["small"]),
]


@pytest.mark.parametrize(("name", "label", "cfg"), CASES, ids=[f"{n}-{lab}" for n, lab, _ in CASES])
def test_meadow_block(name, label, cfg):
    results = run_cocotb(get_block(name).component, cfg, TEST_MODULE, toplevel=name,
                         build_dir=default_build_dir(name, label), testcase=f"test_{name}",
                         extra_env=ENV)
    assert len(results) == 6 and all(r["name"].startswith(f"test_{name}/") for r in results)


def test_registry_blocks_all_covered():
    """A new meadow block fails here until meadow_blocks.py has a test and a case for it."""
    import sim.cocotb_tests.meadow_blocks as tests

    covered = {name for name, _, _ in CASES}
    for name, info in all_blocks().items():
        if info.family == "meadow":
            assert hasattr(tests, f"test_{name}"), f"no cocotb test for block {name!r}"
            assert name in covered, f"no cocotb case for block {name!r}"
