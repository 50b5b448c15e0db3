"""Numpy golden models, one module per hardware family, bit-exact where the hardware is integer."""
