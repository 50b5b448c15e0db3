"""cocotb on the generated Verilog of the ``hw.accllm`` blocks, in small configurations.

Each pytest case generates one block's Verilog for one config, compiles it once and runs
``test_<block>`` of ``sim/cocotb_tests/accllm_blocks.py`` over every seed and stall pair in the
same simulator run (Icarus by default).
"""

import pytest

from hw.accllm import kv_manager
from hw.accllm.pe_array import PEArray, PEArrayConfig
from sim.cocotb_bridge import default_build_dir, run_cocotb

pytestmark = pytest.mark.cocotb

TEST_MODULE = "sim.cocotb_tests.accllm_blocks"

CASES = [
    ("accllm", "2x2", PEArray, PEArrayConfig(2, 2)),
    ("accllm_kv_manager", "tiny", kv_manager.LambdaKVManager, kv_manager.PRESETS["tiny"]),
]


@pytest.mark.parametrize(("name", "label", "component", "cfg"), CASES,
                         ids=[f"{name}-{label}" for name, label, _, _ in CASES])
def test_accllm_block(name, label, component, cfg):
    results = run_cocotb(component, cfg, TEST_MODULE, toplevel=name,
                         build_dir=default_build_dir(name, label), testcase=f"test_{name}")
    assert results and all(r["name"].startswith(f"test_{name}/") for r in results)


def test_blocks_all_covered():
    """A new accllm block fails here until accllm_blocks.py has a test and a case for it."""
    import hw.accllm
    import sim.cocotb_tests.accllm_blocks as tests

    covered = {name for name, _, _, _ in CASES}
    for info in hw.accllm.BLOCKS:
        assert hasattr(tests, f"test_{info.name}"), f"no cocotb test for block {info.name!r}"
        assert info.name in covered, f"no cocotb case for block {info.name!r}"
