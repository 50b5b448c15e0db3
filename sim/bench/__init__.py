"""Benchmarks behind ``llmhw bench FAMILY``: each module has ``run(quick) -> dict``."""
