"""cocotb test modules, run on generated Verilog by sim.cocotb_bridge.run_cocotb."""
