"""A byte countdown whose "how many may go this cycle" figures are registers."""

from amaranth.hdl import Array, Mux, Signal

__all__ = ["Countdown"]


class Countdown:
    """A byte countdown (``left``) with registered ``small = min(left, n)`` and ``fits =
    left <= n``, so a per-cycle "how many bytes may go" never waits for a wide compare.

    Their next values, and ``left`` minus each count, are worked out for every count 0..n in
    parallel, so the count only drives a mux, never a carry chain. ``far`` (registered)
    says ``left > 2n``: then every next value is "n, does not fit"; otherwise ``left < 4n``
    and the exact ones need only its low bits. ``far`` itself is updated from ``left > 3n``
    before the take (a take is at most n), which keeps the wide compare off the path from
    the count.
    """

    def __init__(self, m, name, max_value, n):
        self.m, self.n = m, n
        self.left = Signal(range(max_value + 1), name=f"{name}_left")
        self.small = Signal(range(n + 1), name=f"{name}_small")
        self.fits = Signal(name=f"{name}_fits")
        self.far = Signal(name=f"{name}_far")
        near_bits = (4 * n).bit_length()
        self.next_small = Array(Signal(range(n + 1), name=f"{name}_next_small{a}")
                                for a in range(n + 1))
        self.next_fits = Array(Signal(name=f"{name}_next_fits{a}") for a in range(n + 1))
        self.next_left = Array(Signal.like(self.left, name=f"{name}_next_left{a}")
                               for a in range(n + 1))
        m.d.comb += [self.next_left[a].eq(self.left - a) for a in range(n + 1)]
        for a in range(n + 1):
            after = Signal(range(-n, 4 * n), name=f"{name}_after{a}")
            m.d.comb += [after.eq(self.left[:near_bits] - a),
                         self.next_small[a].eq(Mux(self.far | (after > n), n, after)),
                         self.next_fits[a].eq(~self.far & (after <= n))]

    def load(self, value, *, far=False):
        """Start from ``value``; ``far=True`` promises ``value > 2n`` (no compare on it)."""
        n = self.n
        if far:
            self.m.d.sync += [self.left.eq(value), self.small.eq(n), self.fits.eq(0),
                              self.far.eq(1)]
            return
        self.m.d.sync += [self.left.eq(value), self.small.eq(Mux(value > n, n, value)),
                          self.fits.eq(value <= n), self.far.eq(value > 2 * n)]

    def take(self, count):
        """Take ``count`` bytes: a value, or a function that reads a table indexed by the
        count (a list of the entries for 0..n), for a count whose own logic is slow."""
        pick = count if callable(count) else (lambda table: Array(table)[count])
        self.m.d.sync += [self.left.eq(pick(self.next_left)),
                          self.far.eq(self.left > 3 * self.n),
                          self.small.eq(pick(self.next_small)),
                          self.fits.eq(pick(self.next_fits))]
