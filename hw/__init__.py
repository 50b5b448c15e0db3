"""Amaranth HDL generators for LLM-inference hardware blocks."""
