"""FPGA flow: a self-checking harness around any registered block, board builds and reports."""
