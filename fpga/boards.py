"""The boards the FPGA flow builds for: platform, LEDs, clock target, device size, tools.

The board's crystal clocks the design directly (ULX3S 25 MHz, iCEBreaker 12 MHz, Tang Nano 9K
27 MHz); timing is constrained at the board's *target* frequency instead of the crystal's,
so nextpnr reports whether the design would close at that speed. The self-check itself is
frequency independent, so it passes at the crystal frequency on real hardware.
"""

import copy
import dataclasses
from collections.abc import Callable

from amaranth.build import Clock, Platform
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import io
from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.tang_nano_9k import TangNano9kPlatform
from amaranth_boards.ulx3s import ULX3S_85F_Platform

__all__ = ["Board", "BOARDS", "DEFAULT_BOARD", "get_board", "LedTop"]


@dataclasses.dataclass(frozen=True)
class Board:
    """One FPGA board.

    Parameters
    ----------
    name : str
        Name on the command line (``make bitstream BOARD=...``).
    family : str
        ``ecp5``, ``ice40`` or ``gowin``: selects the tool names and the report parser.
    make_platform : callable
        Returns a fresh Amaranth platform instance (a platform can only be prepared once).
    device : str
        Part name, for the report.
    leds : list of (str, int)
        LED resources in the order: passed, done, heartbeat, then checksum bits from bit 0.
    target_mhz : float
        Default clock target for timing.
    capacity : dict of str to int
        Resources of the device by generic kind (``LUT``, ``FF``, ``DSP``, ``BRAM``), used when
        nextpnr's log does not give the total.
    cell_kinds : dict of str to str
        nextpnr cell type → generic kind, for the utilisation report. The first type listed
        for a kind is the one whose total nextpnr reports as the kind's capacity.
    heartbeat_bit : int
        Bit of a free-running counter shown on the heartbeat LED (about 1 Hz at the crystal).
    """

    name: str
    family: str
    make_platform: Callable[[], Platform]
    device: str
    leds: list[tuple[str, int]]
    target_mhz: float
    capacity: dict[str, int]
    cell_kinds: dict[str, str]
    heartbeat_bit: int


def _icebreaker() -> Platform:
    platform = ICEBreakerPlatform()
    # the snap-off LED/button PMOD ships with every iCEBreaker and gives five more LEDs
    platform.add_resources(platform.break_off_pmod)
    return platform


BOARDS: dict[str, Board] = {
    board.name: board
    for board in [
        Board(
            name="ulx3s-85f", family="ecp5", make_platform=ULX3S_85F_Platform,
            device="LFE5U-85F-6BG381C",
            leds=[("led", k) for k in range(8)],
            target_mhz=100.0,
            capacity={"LUT": 83640, "FF": 83640, "DSP": 156, "BRAM": 208},
            cell_kinds={"TRELLIS_COMB": "LUT", "TRELLIS_FF": "FF", "MULT18X18D": "DSP",
                        "DP16KD": "BRAM"},
            heartbeat_bit=24,
        ),
        Board(
            name="icebreaker", family="ice40", make_platform=_icebreaker,
            device="iCE40UP5K-SG48",
            # led 1 is the green on-board LED, led 0 the red one, 2..6 on the snap-off PMOD
            leds=[("led", 1), ("led", 0), *(("led", k) for k in range(2, 7))],
            target_mhz=24.0,
            # a logic cell is one LUT4 and one flip-flop; BRAM counts 4 kbit EBRs (the 4
            # SPRAMs are reported separately)
            capacity={"LUT": 5280, "FF": 5280, "DSP": 8, "BRAM": 30},
            cell_kinds={"ICESTORM_LC": "LUT", "ICESTORM_DSP": "DSP", "ICESTORM_RAM": "BRAM",
                        "ICESTORM_SPRAM": "SPRAM"},
            heartbeat_bit=23,
        ),
        Board(
            name="tangnano9k", family="gowin", make_platform=TangNano9kPlatform,
            device="GW1NR-LV9QN88PC6/I5",
            leds=[("led", k) for k in range(6)],
            target_mhz=27.0,
            capacity={"LUT": 8640, "FF": 6480, "DSP": 20, "BRAM": 26},
            # ALU cells are the carry-chain LUTs of adders; counted with the LUTs
            cell_kinds={"LUT4": "LUT", "ALU": "LUT", "DFF": "FF", "MULT18X18": "DSP",
                        "MULT9X9": "DSP", "MULTALU18X18": "DSP", "MULTADDALU18X18": "DSP",
                        "MULT36X36": "DSP", "ALU54D": "DSP", "BSRAM": "BRAM"},
            heartbeat_bit=24,
        ),
    ]
}
DEFAULT_BOARD = "ulx3s-85f"


def get_board(name: str) -> Board:
    """The board called ``name``; ``ValueError`` lists the choices otherwise."""
    if name not in BOARDS:
        raise ValueError(f"unknown board {name!r}; choose one of: {', '.join(BOARDS)}")
    return BOARDS[name]


def constrain_default_clock(platform: Platform, mhz: float) -> None:
    """Make the default clock resource carry a ``mhz`` constraint instead of the crystal's.

    Amaranth turns a resource's ``Clock`` into the port constraint it writes to the LPF/PCF, and
    refuses a second, different constraint on the same port; so the resource itself is swapped
    for a copy with the target frequency before the design requests it.
    """
    key = (platform.default_clk, 0)
    resource = copy.copy(platform.resources[key])
    resource.clock = Clock(mhz * 1e6)
    platform.resources[key] = resource


class LedTop(Elaboratable):
    """Top level that puts a :class:`~fpga.harness.SelfCheckHarness` on a board's LEDs.

    Parameters
    ----------
    harness : SelfCheckHarness
    board : Board
        LED 0 shows ``passed``, LED 1 ``done``, LED 2 a heartbeat, the rest the low checksum
        bits (so a failing board shows *how* it differs from the simulation).
    """

    def __init__(self, harness, board: Board):
        self.harness = harness
        self.board = board

    def elaborate(self, platform):
        m = Module()
        m.submodules.harness = harness = self.harness
        heartbeat = Signal(self.board.heartbeat_bit + 1)
        m.d.sync += heartbeat.eq(heartbeat + 1)
        shown = [harness.passed, harness.done, heartbeat[-1],
                 *(harness.checksum[k] for k in range(len(harness.checksum)))]
        # boards have fewer LEDs than checksum bits: show as many as there are
        for (name, number), value in zip(self.board.leds, shown, strict=False):
            # the buffer applies the resource's inversion (active-low LEDs on two boards)
            led = io.Buffer("o", platform.request(name, number, dir="-"))
            m.submodules[f"led_{name}{number}"] = led
            m.d.comb += led.o.eq(value)
        return m
