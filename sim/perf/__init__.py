"""Cycle and traffic models that predict what the RTL measures and extrapolate to paper-scale
models (``sim.perf.meadow``), and the drivers that measure the RTL (``sim.perf.meadow_rtl``)."""
