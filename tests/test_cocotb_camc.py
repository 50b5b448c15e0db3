"""cocotb on the generated Verilog of the ``hw.camc`` blocks, in small configurations.

Each pytest case generates one block's Verilog for one config, compiles it once and runs
``test_<block>`` of ``sim/cocotb_tests/camc_blocks.py`` over every seed and stall pair in the
same simulator run (``LLMHW_SEEDS``, ``LLMHW_STALLS``). Icarus by default; the configs are
small (blocks of at most 1 KiB) so the whole file takes under a minute with ``-n 2`` (about 40 s).
"""

import pytest

from hw.camc import controller, lz4_compressor, lz4_decompressor
from hw.camc.bitplane import BitplaneConfig
from hw.camc.lz4_decompressor import LZ4DecompressorConfig
from hw.registry import all_blocks, get_block
from sim.cocotb_bridge import default_build_dir, run_cocotb

pytestmark = pytest.mark.cocotb

TEST_MODULE = "sim.cocotb_tests.camc_blocks"

# (block, label, config): small configs, as Icarus runs the camc blocks at a few thousand
# cycles per second
CASES = [
    ("bitplane_split", "bf16_128x2", BitplaneConfig("bf16", 128, 2)),
    ("bitplane_split", "fp8_128x4", BitplaneConfig("fp8_e4m3", 128, 4)),
    ("bitplane_merge", "bf16_128x2", BitplaneConfig("bf16", 128, 2)),
    ("bitplane_merge", "fp8_128x4", BitplaneConfig("fp8_e4m3", 128, 4)),
    ("lz4_compressor", "tiny", lz4_compressor.PRESETS["tiny"]),
    ("lz4_compressor", "small", lz4_compressor.PRESETS["small"]),
    ("lz4_decompressor", "small", lz4_decompressor.PRESETS["small"]),
    ("lz4_decompressor", "n4_1k", LZ4DecompressorConfig(max_block_bytes=1024,
                                                        output_bytes_per_cycle=4)),
    ("lz4_decompressor", "wide_1k", LZ4DecompressorConfig(max_block_bytes=1024,
                                                          output_bytes_per_cycle=4,
                                                          input_bytes_per_cycle=4)),
    ("camc_controller", "small", controller.PRESETS["small"]),
    ("camc", "small2", controller.PRESETS["small2"]),
]

# the controller runs a few thousand cycles per command under Icarus: one seed, three stall
# pairs (free flow, slow sender against a random sink, and the reverse)
EXTRA_ENV = {"camc_controller": {"LLMHW_SEEDS": "0", "LLMHW_STALLS": "none:none,heavy:random,"
                                                                     "bursty:heavy"},
             "camc": {"LLMHW_SEEDS": "1", "LLMHW_STALLS": "random:bursty"}}

# Known RTL discrepancies between amaranth.sim and Icarus: (block, label) -> reason. Those
# cases are xfail(strict), so a fix shows up as XPASS and fails until the entry goes.
KNOWN_BUGS: dict[tuple[str, str], str] = {}


@pytest.mark.parametrize(
    ("name", "label", "cfg"),
    [pytest.param(name, label, cfg, id=f"{name}-{label}",
                  marks=[pytest.mark.xfail(reason=KNOWN_BUGS[name, label], strict=True)]
                  if (name, label) in KNOWN_BUGS else [])
     for name, label, cfg in CASES])
def test_camc_block(name, label, cfg):
    results = run_cocotb(get_block(name).component, cfg, TEST_MODULE, toplevel=name,
                         build_dir=default_build_dir(name, label), testcase=f"test_{name}",
                         extra_env=EXTRA_ENV.get(name, {}))
    assert results and all(r["name"].startswith(f"test_{name}/") for r in results)


def test_registry_blocks_all_covered():
    """A new camc block fails here until camc_blocks.py has a test and a case for it."""
    import sim.cocotb_tests.camc_blocks as tests

    covered = {name for name, _, _ in CASES}
    for name, info in all_blocks().items():
        if info.family == "camc":
            assert hasattr(tests, f"test_{name}"), f"no cocotb test for block {name!r}"
            assert name in covered, f"no cocotb case for block {name!r}"


def test_configs_are_small():
    """Keep Icarus fast: no case above 1 KiB blocks or 256-value bit-plane blocks."""
    for name, label, cfg in CASES:
        if isinstance(cfg, BitplaneConfig):
            assert cfg.block_values <= 256, (name, label)
        elif isinstance(cfg, controller.CAMCConfig):
            assert cfg.block_bytes <= 1024, (name, label)
        else:
            assert cfg.max_block_bytes <= 1024, (name, label)
