"""`llmhw` CLI and the registry: generation of every block, and clear errors for bad input."""

import dataclasses
import re

import pytest

from hw.cli import main
from hw.registry import all_blocks, make_config


@pytest.mark.parametrize("name", list(all_blocks()))
def test_generate_every_block(name, tmp_path, capsys):
    out = tmp_path / f"{name}.v"
    assert main(["generate", name, "-o", str(out)]) == 0
    text = out.read_text()
    assert re.search(rf"^module {name}\(", text, re.M)
    # stream ports keep Amaranth's readable names (the RAM has plain ports)
    if name == "pipelined_ram":
        assert re.search(r"\binput .*\br_oe\b", text) and re.search(r"\boutput .*\br_data\b", text)
    else:
        assert re.search(r"\b(i|i__0|mem__cmd)__valid\b", text)


@pytest.mark.parametrize("name", list(all_blocks()))
def test_every_preset_is_a_valid_config(name):
    info = all_blocks()[name]
    for preset, cfg in info.presets.items():
        assert isinstance(cfg, info.config), preset
        # round trip through replace runs __post_init__ validation again
        dataclasses.replace(cfg)


def test_generate_rtlil_with_overrides(tmp_path):
    out = tmp_path / "q.il"
    assert main(["generate", "queue", "--preset", "wide", "--set", "depth=8", "--rtlil",
                 "-o", str(out)]) == 0
    assert "module \\queue" in out.read_text()


def test_list_names_every_block_and_preset(capsys):
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    for name, info in all_blocks().items():
        assert name in text
        for preset in info.presets:
            assert f"--preset {preset}" in text


@pytest.mark.parametrize("argv, words", [
    (["generate", "nosuchblock"], ["unknown block 'nosuchblock'", "queue", "bram_memory"]),
    (["generate", "queue", "--preset", "huge"], ["unknown preset 'huge'", "default", "wide"]),
    (["generate", "queue", "--set", "colour=red"], ["unknown parameter 'colour'", "depth"]),
    (["generate", "queue", "--set", "depth=deep"], ["'deep'", "depth", "int"]),
    (["generate", "queue", "--set", "depth=0"], ["depth must be at least 1, not 0"]),
    (["generate", "queue", "--set", "buffered=maybe"], ["'maybe'", "buffered", "bool"]),
    (["generate", "width_up", "--set", "ratio=1"], ["ratio must be at least 2"]),
    (["generate", "bram_memory", "--set", "depth=1000"], ["depth must be a power of two"]),
    (["generate", "bram_memory", "--set", "data_width=12"], ["multiple of 8"]),
    (["generate", "queue", "--set", "depth"], ["key=value"]),
])
def test_bad_input_names_the_problem(argv, words, tmp_path, capsys):
    assert main(argv + ["-o", str(tmp_path / "x.v")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("llmhw: error:")
    for word in words:
        assert word in err
    assert not (tmp_path / "x.v").exists()


def test_overrides_reach_the_config():
    cfg = make_config("arbiter", "pair", {"ports": "0x5", "packets": "false"})
    assert (cfg.ports, cfg.packets, cfg.data_width) == (5, False, 32)


@pytest.mark.parametrize("config, kwargs, name", [
    ("QueueConfig", {"depth": 2.5}, "depth"),
    ("SkidBufferConfig", {"payload": "wide"}, "payload"),
    ("WidthConverterConfig", {"narrow_width": 0}, "narrow_width"),
    ("ArbiterConfig", {"ports": 1}, "ports"),
    ("ArbiterConfig", {"packets": True, "payload": 8}, "last"),
    ("MemoryPortConfig", {"addr_width": True}, "addr_width"),
    ("BlockRAMConfig", {"addr_width": 4, "depth": 64}, "depth"),
])
def test_configs_reject_bad_values_by_name(config, kwargs, name):
    import hw.common

    with pytest.raises(ValueError, match=name):
        getattr(hw.common, config)(**kwargs)
