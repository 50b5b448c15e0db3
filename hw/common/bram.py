"""Block RAM with a registered read output, and a stream FIFO built on it.

Yosys maps an Amaranth ``Memory`` onto ECP5 ``DP16KD`` blocks with ``REGMODE=NOREG`` and never
moves a register that follows the read port into the block: the read data then leaves the
block 5.8 ns after the clock edge (nextpnr's ECP5 speed-6 figure), more than half a 100 MHz
cycle before any routing. :class:`PipelinedRAM` asks for the block's own output register
(``REGMODE=OUTREG``) by instantiating ``DP16KD`` on ECP5, so its ``r_data`` is a register
output like any flip-flop's. Elsewhere it is an Amaranth ``Memory`` followed by a register,
with the same cycle behaviour.
"""

from dataclasses import dataclass

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .validate import check_int

__all__ = ["PipelinedRAMConfig", "PipelinedRAM", "RAMQueueConfig", "RAMQueue",
           "ecp5_tiling"]

# DP16KD aspect ratios: (data width, depth); 36 is the pseudo-dual-port mode (one write port
# 36 bits wide on A+B inputs, one read port on A+B outputs)
_ECP5_ASPECTS = ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384))
# below this many bits a DP16KD (18 Kib) is mostly empty; Yosys would use LUT RAM or flip-flops
_ECP5_MIN_BITS = 1024


def ecp5_tiling(width: int, depth: int):
    """``(tile_width, tile_depth, tiles)``: the DP16KD aspect and count for ``width × depth``,
    or ``None`` when ``depth`` exceeds one block's deepest aspect or the memory is too small to
    be worth a block (it is then built from an Amaranth ``Memory``)."""
    if width * depth < _ECP5_MIN_BITS:
        return None
    fits = [(-(-width // w), w, d) for w, d in _ECP5_ASPECTS if d >= depth]
    if not fits:
        return None
    tiles, w, d = min(fits)
    return w, d, tiles


def _check_ram(width, depth, domain) -> None:
    # the checks both configs share (a RAM queue is a RAM and its pointers)
    check_int("width", width, min=1, max=4096)
    check_int("depth", depth, min=2, max=1 << 20)
    if not isinstance(domain, str) or not domain or domain == "comb":
        raise ValueError(f"domain must be a synchronous domain name, not {domain!r}")


def _is_ecp5(platform) -> bool:
    return platform is not None and getattr(platform, "family", None) == "ecp5"


@dataclass(frozen=True)
class PipelinedRAMConfig:
    """Configuration of :class:`PipelinedRAM`.

    Parameters
    ----------
    width : int
        Bits per word.
    depth : int
        Words.
    domain : str
        Clock domain of both ports.
    """

    width: int = 8
    depth: int = 2048
    domain: str = "sync"

    def __post_init__(self):
        _check_ram(self.width, self.depth, self.domain)


class PipelinedRAM(wiring.Component):
    """Simple dual-port RAM (one write port, one read port, one clock) with two read stages.

    Members
    -------
    w_addr, w_data, w_en : In
        Write ``w_data`` at ``w_addr`` on the edge where ``w_en`` is high.
    r_addr, r_en : In
        On an edge where ``r_en`` is high the word at ``r_addr`` is read into the first stage
        (the block's read latch); it holds while ``r_en`` is low.
    r_oe : In
        On an edge where ``r_oe`` is high the first stage is copied into ``r_data``.
    r_data : Out(width)
        The output register (the block's own on ECP5).

    Latency
    -------
    2 cycles from ``r_addr`` to ``r_data`` with ``r_en`` and ``r_oe`` both high; each stage
    holds while its enable is low, so the pair is a two-entry pipeline a consumer can stall.

    Collisions
    ----------
    A read on the same edge as a write to the same address returns an undefined word (DP16KD
    does not define it across its two ports). In simulation (no platform) such a read returns
    the old word with every bit inverted, so a design that depends on it fails its tests.
    Neither stage is reset: ``r_data`` is meaningful only behind a valid bit of the user's.

    On ECP5, ``width × depth`` is tiled onto DP16KD blocks in one aspect (see
    :func:`ecp5_tiling`) with ``REGMODE=OUTREG``: ``r_data`` leaves a block about 1 ns after
    the clock edge instead of 5.8 ns. Other platforms get an Amaranth ``Memory`` and a
    register in logic.
    """

    def __init__(self, cfg: PipelinedRAMConfig):
        self.cfg = cfg
        super().__init__({
            "w_addr": In(range(cfg.depth)), "w_data": In(cfg.width), "w_en": In(1),
            "r_addr": In(range(cfg.depth)), "r_en": In(1), "r_oe": In(1),
            "r_data": Out(cfg.width),
        })

    def elaborate(self, platform):
        tiling = ecp5_tiling(self.cfg.width, self.cfg.depth) if _is_ecp5(platform) else None
        if tiling is not None:
            return self._elaborate_ecp5(*tiling)
        return self._elaborate_generic(poison=platform is None)

    def _elaborate_generic(self, poison: bool):
        m = Module()
        cfg = self.cfg
        m.submodules.storage = storage = memory.Memory(shape=cfg.width, depth=cfg.depth, init=[])
        wp = storage.write_port(domain=cfg.domain)
        rp = storage.read_port(domain=cfg.domain, transparent_for=())
        m.d.comb += [wp.addr.eq(self.w_addr), wp.data.eq(self.w_data), wp.en.eq(self.w_en),
                     rp.addr.eq(self.r_addr), rp.en.eq(self.r_en)]
        out = Signal(cfg.width, reset_less=True)
        m.d.comb += self.r_data.eq(out)
        if poison:
            collided = Signal(reset_less=True)
            with m.If(self.r_en):
                m.d[cfg.domain] += collided.eq(self.w_en & (self.w_addr == self.r_addr))
            with m.If(self.r_oe):
                m.d[cfg.domain] += out.eq(rp.data ^ collided.replicate(cfg.width))
        else:
            with m.If(self.r_oe):
                m.d[cfg.domain] += out.eq(rp.data)
        return m

    def _elaborate_ecp5(self, tile_width: int, tile_depth: int, tiles: int):
        m = Module()
        cfg = self.cfg
        shift = (16384 // tile_depth).bit_length() - 1     # word address is AD[13:shift]
        pdp = tile_width == 36
        clk = ClockSignal(cfg.domain)
        w_addr = Cat(Const(0, shift), self.w_addr, Const(0, 14))[:14]
        r_addr = Cat(Const(0, shift), self.r_addr, Const(0, 14))[:14]
        if pdp:
            # byte enables on AD[3:0] of the write port, write enable tied high (as DP16KD's
            # pseudo-dual-port mode wants)
            w_addr = Cat(self.w_en.replicate(4), w_addr[4:])
        elif tile_width == 18:
            w_addr = Cat(self.w_en.replicate(2), w_addr[2:])
        padded = Cat(self.w_data, Const(0, tiles * tile_width - cfg.width))
        outputs = []
        for t in range(tiles):
            data_in = padded[t * tile_width:(t + 1) * tile_width]
            doa, dob = Signal(18, name=f"doa{t}"), Signal(18, name=f"dob{t}")
            ports = {}
            for k in range(14):
                ports[f"i_ADA{k}"] = w_addr[k]
                ports[f"i_ADB{k}"] = r_addr[k]
            for k in range(18):
                ports[f"i_DIA{k}"] = data_in[k] if k < tile_width else Const(0)
                ports[f"i_DIB{k}"] = data_in[18 + k] if pdp else Const(0)
                ports[f"o_DOA{k}"] = doa[k]
                ports[f"o_DOB{k}"] = dob[k]
            for k in range(3):
                ports[f"i_CSA{k}"] = Const(0)
                ports[f"i_CSB{k}"] = Const(0)
            m.submodules[f"tile{t}"] = Instance(
                "DP16KD",
                p_DATA_WIDTH_A=tile_width, p_DATA_WIDTH_B=tile_width,
                p_REGMODE_A="OUTREG" if pdp else "NOREG", p_REGMODE_B="OUTREG",
                p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
                p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
                p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL", p_GSR="AUTO",
                i_CLKA=clk, i_CEA=self.w_en, i_WEA=Const(1) if pdp else self.w_en,
                i_OCEA=self.r_oe if pdp else Const(0), i_RSTA=Const(0),
                i_CLKB=clk, i_CEB=self.r_en, i_WEB=Const(0), i_OCEB=self.r_oe,
                i_RSTB=Const(0),
                **ports)
            outputs.append(Cat(doa, dob) if pdp else dob[:tile_width])
        m.d.comb += self.r_data.eq(Cat(*outputs)[:cfg.width])
        return m


@dataclass(frozen=True)
class RAMQueueConfig:
    """Configuration of :class:`RAMQueue`.

    Parameters
    ----------
    width : int
        Bits per entry.
    depth : int
        Entries held in the RAM; two more sit in its read stages.
    domain : str
        Clock domain.
    """

    width: int = 32
    depth: int = 512
    domain: str = "sync"

    def __post_init__(self):
        _check_ram(self.width, self.depth, self.domain)

    @property
    def payload_shape(self):
        return self.width


class RAMQueue(wiring.Component):
    """Stream FIFO whose output payload is the RAM's output register.

    Members
    -------
    i : In(stream.Signature(width))
    o : Out(stream.Signature(width))
    level : Out(range(depth + 3))
        Entries inside (RAM and both read stages).

    ``i.ready``, ``o.valid`` and ``o.payload`` are register outputs (``o.payload`` the
    block's own register on ECP5): neither side sees a combinational path into the other.

    Latency
    -------
    3 cycles from an entry's transfer on ``i`` to ``o.valid`` (write, read, output register).

    Throughput
    ----------
    One entry per cycle, under any stall pattern on either side.
    """

    def __init__(self, cfg: RAMQueueConfig):
        self.cfg = cfg
        super().__init__({
            "i": In(stream.Signature(cfg.width)),
            "o": Out(stream.Signature(cfg.width)),
            "level": Out(range(cfg.depth + 3)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        sync = m.d[cfg.domain]
        m.submodules.ram = ram = PipelinedRAM(PipelinedRAMConfig(cfg.width, cfg.depth,
                                                                 cfg.domain))
        w_ptr = Signal(range(cfg.depth))
        r_ptr = Signal(range(cfg.depth))
        stored = Signal(range(cfg.depth + 1))       # entries in the RAM not yet read out
        has_stored = Signal()                       # stored != 0, as a register
        room = Signal(init=1)                       # stored + writes in flight < depth
        latch_valid = Signal()                      # first read stage holds an entry
        out_valid = Signal()                        # output register holds an entry

        push = self.i.valid & room
        advance_out = ~out_valid | self.o.ready
        advance_latch = ~latch_valid | advance_out
        pop = advance_latch & has_stored
        m.d.comb += [
            self.i.ready.eq(room),
            self.o.valid.eq(out_valid), self.o.payload.eq(ram.r_data),
            ram.w_addr.eq(w_ptr), ram.w_data.eq(self.i.payload), ram.w_en.eq(push),
            ram.r_addr.eq(r_ptr), ram.r_en.eq(pop), ram.r_oe.eq(advance_out),
        ]

        def wrap(ptr):
            return Mux(ptr == cfg.depth - 1, 0, ptr + 1)

        with m.If(push):
            sync += w_ptr.eq(wrap(w_ptr))
        with m.If(pop):
            sync += r_ptr.eq(wrap(r_ptr))
        stored_next = stored + push - pop
        sync += [stored.eq(stored_next), has_stored.eq(stored_next != 0),
                 room.eq(stored_next < cfg.depth)]
        with m.If(advance_latch):
            sync += latch_valid.eq(pop)
        with m.If(advance_out):
            sync += out_valid.eq(latch_valid)
        m.d.comb += self.level.eq(stored + latch_valid + out_valid)
        return m
