"""Throughput of the camc RTL units, measured in ``amaranth.sim``.

Drivers the unit tests and ``llmhw bench camc`` share: each runs blocks back to back through
one unit and counts cycles.
"""

from hw.camc.lz4_compressor import LZ4Compressor, LZ4CompressorConfig
from hw.camc.lz4_decompressor import LZ4Decompressor, LZ4DecompressorConfig
from sim.stalls import stall_pattern
from sim.stream import simulate, stream_get, stream_put

__all__ = ["compressor_throughput", "decompressor_beats", "decompressor_throughput",
           "run_controller", "value_beats"]


def compressor_throughput(cfg: LZ4CompressorConfig, blocks, *, stalls=("none", "none"),
                       status_stalls: str | None = None, seed: int = 0) -> dict:
    """Compress ``blocks`` (a list of non-empty ``bytes``, one packet each) back to back in
    ``amaranth.sim`` under the named ``stalls`` (input, output; see :mod:`sim.stalls`) and count
    cycles (``status_stalls`` names the back-pressure on ``o_status``, by default the one on
    ``o``). A packet longer than ``cfg.max_block_bytes`` comes out as several blocks.

    Returns ``{"input_bytes", "output_bytes", "cycles", "cycles_per_input_byte",
    "input_bytes_per_cycle", "outputs", "statuses", "left_over"}``: cycles run from the first
    accepted input byte to the last status entry;
    ``outputs`` are the compressed blocks and ``statuses`` the ``o_status`` entries, in order;
    ``left_over`` is true if ``o`` or ``o_status`` offered anything in the 32 cycles after.
    The stream helpers check that ``o`` and ``o_status`` keep the stream contract.
    """
    dut = LZ4Compressor(cfg)
    sent = [{"data": b, "first": int(k == 0), "last": int(k == len(block) - 1)}
            for block in blocks for k, b in enumerate(block)]
    outputs, statuses, times = [], [], {}
    counter = {"cycle": 0}
    expected = sum(-(-len(block) // cfg.max_block_bytes) for block in blocks)
    timeout = 50 * (cfg.max_block_bytes + (1 << cfg.hash_bits)) + 1000

    async def clock(ctx):
        while True:
            _, _, valid, ready = await ctx.tick().sample(dut.i.valid, dut.i.ready)
            counter["cycle"] += 1
            if "start" not in times and valid and ready:
                times["start"] = counter["cycle"]

    async def source(ctx):
        await stream_put(ctx, dut.i, sent, stall=stall_pattern(stalls[0], seed))

    async def sink(ctx):
        backpressure = stall_pattern(stalls[1], seed + 100)
        for _ in range(expected):
            payload = []
            while not payload or not payload[-1]["last"]:
                payload += await stream_get(ctx, dut.o, 1, backpressure=backpressure,
                                            timeout=timeout)
            outputs.append(bytes(p["data"] for p in payload))
        times["o_end"] = counter["cycle"]

    async def status_sink(ctx):
        # its own back-pressure: a block's last byte must wait for the status before it
        backpressure = stall_pattern(status_stalls or stalls[1], seed + 200)
        statuses.extend(await stream_get(ctx, dut.o_status, expected, backpressure=backpressure,
                                         timeout=timeout * expected))
        while "o_end" not in times:
            await ctx.tick()
        times["end"] = counter["cycle"]
        for _ in range(32):
            _, _, valid, status_valid = await ctx.tick().sample(dut.o.valid, dut.o_status.valid)
            times["left_over"] = times.get("left_over", False) or bool(valid or status_valid)

    simulate(dut, source, sink, status_sink, background=[clock])
    cycles = times["end"] - times["start"] + 1
    n_in = sum(map(len, blocks))
    return {"input_bytes": n_in, "output_bytes": sum(map(len, outputs)), "cycles": cycles,
            "cycles_per_input_byte": cycles / max(n_in, 1),
            "input_bytes_per_cycle": n_in / cycles, "outputs": outputs, "statuses": statuses,
            "left_over": times["left_over"]}


def decompressor_beats(blocks, width: int = 1, rng=None) -> list[dict]:
    """``i`` beats of an :class:`LZ4Decompressor` with ``input_bytes_per_cycle = width`` for
    ``blocks`` (compressed blocks, back to back): one byte each for ``width`` 1, else
    ``{data, count, first, last}`` beats of ``width`` bytes (fewer at a block's end), or of
    1 to ``width`` bytes drawn from ``rng`` (a ``random.Random``) when given, and then with
    random bytes in the lanes at and above ``count`` (which the decompressor ignores)."""
    beats = []
    for block in blocks:
        block = bytes(block)
        j = 0
        while j < len(block):
            count = 1 if width == 1 else min(len(block) - j,
                                             rng.randint(1, width) if rng else width)
            junk = rng.randbytes(width - count) if rng and width > 1 else b""
            beat = {"data": int.from_bytes(block[j:j + count] + junk, "little"),
                    "first": int(j == 0),
                    "last": int(j + count == len(block))}
            if width > 1:
                beat["count"] = count
            beats.append(beat)
            j += count
    return beats


def decompressor_throughput(cfg: LZ4DecompressorConfig, blocks, *, timeout: int = 200_000) -> dict:
    """Decompress ``blocks`` (compressed LZ4 blocks, back to back) in ``amaranth.sim`` with
    no stalls and no back-pressure; returns ``{"cycles", "input_bytes", "output_bytes",
    "bytes_per_cycle", "cycles_per_output_byte", "input_bytes_per_cycle"}``, counting from
    the first input transfer to the last output beat. Input beats carry
    ``cfg.input_bytes_per_cycle`` bytes each (fewer at a block's end)."""
    dut = LZ4Decompressor(cfg)
    beats = decompressor_beats(blocks, cfg.input_bytes_per_cycle)
    input_bytes = sum(len(bytes(block)) for block in blocks)
    result = {}

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.o_status.ready, 1)
        sent = cycle = start = end = produced = packets = 0
        while packets < len(blocks):
            if sent < len(beats):
                ctx.set(dut.i.payload, beats[sent])
                ctx.set(dut.i.valid, 1)
            else:
                ctx.set(dut.i.valid, 0)
            _, _, i_ready, o_valid, o_payload = await ctx.tick().sample(
                dut.i.ready, dut.o.valid, dut.o.payload)
            cycle += 1
            if sent < len(beats) and i_ready:
                if sent == 0:
                    start = cycle
                sent += 1
            if o_valid:
                produced += int(o_payload.count)
                packets += int(o_payload.last)
                end = cycle
            if cycle > timeout:
                raise AssertionError(f"no end after {timeout} cycles")
        cycles = end - start + 1
        result.update(cycles=cycles, input_bytes=input_bytes, output_bytes=produced,
                      bytes_per_cycle=produced / cycles,
                      cycles_per_output_byte=cycles / max(1, produced),
                      input_bytes_per_cycle=input_bytes / cycles)

    simulate(dut, bench)
    return result


def value_beats(cfg, values, *, last: bool = True) -> list[dict]:
    """Value-side beats (``{data, first, last}``) of one block for a config with ``width``
    and ``values_per_cycle``; lanes past ``len(values)`` are zero."""
    w, v = cfg.width, cfg.values_per_cycle
    values = [int(x) for x in values] + [0] * (-len(values) % v)
    rows = len(values) // v
    return [{"data": sum(x << (k * w) for k, x in enumerate(values[r * v:(r + 1) * v])),
             "first": int(r == 0), "last": int(last and r == rows - 1)} for r in range(rows)]


def _beat_values(beats, lanes: int, width: int) -> list[int]:
    mask = (1 << width) - 1
    return [(b["data"] >> (width * k)) & mask for b in beats for k in range(lanes)]


def run_controller(cfg, commands, *, stalls=("none", "none", "none"), seed: int = 0,
                   timing=None, dram=None, timeout: int | None = None,
                   pause_after: int | None = None, on_pause=None) -> dict:
    """Run ``commands`` through :class:`hw.camc.controller.CAMCController` in ``amaranth.sim``
    with :class:`sim.dram.DRAMModel` behind its memory port.

    ``commands`` are ``(block, write, precision, values)``: ``values`` (any length) for a
    write, ``None`` for a read (``precision`` is the command's field; a write ignores it).
    ``stalls`` names the patterns (:mod:`sim.stalls`) on ``i_cmd`` and ``i``, on ``o`` and
    ``o_status`` (back-pressure), and ``timing`` is the DRAM's :class:`sim.dram.DRAMTiming`.
    ``dram`` reuses a model (its storage carries over); pass one to corrupt memory between
    runs. With ``pause_after = k``, the first ``k`` commands run to their last status, then
    ``on_pause(dram)`` is called (to corrupt memory behind the controller's back) and the
    rest follow.

    Returns ``{"reads": [values per read command], "statuses": [...], "counters": {...},
    "dram": model, "cycles", "cycles_after_pause", "left_over"}``; ``cycles`` runs from the
    first command taken to the last status (or read value) delivered, ``cycles_after_pause``
    from the pause; ``left_over`` is true if
    ``o`` or ``o_status`` offered anything in the 64 cycles after.
    """
    from hw.camc.controller import CAMCController
    from sim.dram import DRAMModel, DRAMTiming

    dut = CAMCController(cfg)
    width, lanes = cfg.width, cfg.values_per_cycle
    dram = dram or DRAMModel(cfg.memory_port, timing or DRAMTiming(), words=cfg.memory_words)
    cmds = [{"block": b, "write": int(w), "precision": p} for b, w, p, _ in commands]
    write_beats = [beat for b, w, p, v in commands if w for beat in value_beats(cfg, v)]
    reads = sum(1 for c in commands if not c[1])
    read_beats = reads * cfg.block_values // lanes
    budget = timeout or 200 + 12 * len(commands) * (cfg.block_bytes + 64)
    result = {"cycle": 0, "first": None, "end": 0}

    async def clock(ctx):
        while True:
            _, _, valid, ready = await ctx.tick().sample(dut.i_cmd.valid, dut.i_cmd.ready)
            result["cycle"] += 1
            if valid and ready and result["first"] is None:
                result["first"] = result["cycle"]

    async def memory(ctx):
        await dram.process(ctx, dut.mem)

    split = len(cmds) if pause_after is None else pause_after
    statuses = []

    async def put_cmds(ctx):
        stall = stall_pattern(stalls[0], seed)
        await stream_put(ctx, dut.i_cmd, cmds[:split], stall=stall)
        while len(statuses) < split:
            await ctx.tick()
        if on_pause is not None:
            on_pause(dram)
        result["resume"] = result["cycle"]
        await stream_put(ctx, dut.i_cmd, cmds[split:], stall=stall)

    async def put_values(ctx):
        await stream_put(ctx, dut.i, write_beats, stall=stall_pattern(stalls[0], seed + 1))

    async def get_values(ctx):
        beats = await stream_get(ctx, dut.o, read_beats, timeout=budget,
                                 backpressure=stall_pattern(stalls[1], seed + 2))
        result["o"] = beats
        result["end"] = max(result["end"], result["cycle"])

    async def get_status(ctx):
        backpressure = stall_pattern(stalls[2], seed + 3)
        statuses.extend(await stream_get(ctx, dut.o_status, split, timeout=budget,
                                         backpressure=backpressure))
        statuses.extend(await stream_get(ctx, dut.o_status, len(cmds) - split, timeout=budget,
                                         backpressure=backpressure))
        result["s"] = statuses
        result["end"] = max(result["end"], result["cycle"])
        for _ in range(budget):
            if "o" in result:
                break
            await ctx.tick()
        left = False
        for _ in range(64):
            _, _, ov, sv = await ctx.tick().sample(dut.o.valid, dut.o_status.valid)
            left = left or bool(ov) or bool(sv)
        result["left_over"] = left
        result["counters"] = {name: ctx.get(getattr(dut.counters, name)) for name in
                              ("raw_written", "stored_written", "raw_read", "stored_read")}

    simulate(dut, put_cmds, put_values, get_values, get_status,
             background=[clock, memory])
    beats = result["o"]
    for k in range(reads):
        chunk = beats[k * cfg.block_values // lanes:(k + 1) * cfg.block_values // lanes]
        assert chunk[0]["first"] and chunk[-1]["last"] and \
            not any(b["last"] for b in chunk[:-1]), f"read packet {k} is not one packet"
    values = _beat_values(beats, lanes, width)
    per_read = [values[k * cfg.block_values:(k + 1) * cfg.block_values] for k in range(reads)]
    return {"reads": per_read, "statuses": result["s"], "counters": result["counters"],
            "dram": dram, "cycles": result["end"] - (result["first"] or 0),
            "cycles_after_pause": result["end"] - result.get("resume", result["first"] or 0),
            "left_over": result["left_over"]}
