"""Verification and performance infrastructure: stream helpers, DRAM model, cocotb bridge."""
