#!/usr/bin/env bash
# vLLM 0.32.0's own scheduler tests (tests/v1/core, from the PyPI sdist) run three times: with vLLM's
# Scheduler (baseline), and with JustitiaScheduler in its place under JUSTITIA_POLICY=fcfs and =justitia.
# A check, not part of pytest; vLLM's code is fetched into $WORK and never enters this repository.
#
#   benchmarks/vllm_scheduler_suite.sh [WORK_DIR]        (default /tmp/justitia-vllm-suite)
#   PY=/path/to/python  FILES="test_scheduler.py ..."  PARALLEL=1   (optional; PARALLEL runs the three at once)
#   RUNS="vllm plugin-fcfs plugin-justitia"   (optional: which of the three to run now; the summary
#   reads the logs of all three, so a run left out keeps its previous log in WORK_DIR)
#
# The models the tests name (facebook/opt-125m, opt-350m) are stood in for by local folders holding
# only a config.json (the scheduler reads nothing else); tests that need other models (llava, Qwen:
# multimodal, speculative decoding) fail to build their config in all three runs alike, offline.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$HERE")"
WORK="${1:-/tmp/justitia-vllm-suite}"
PY="${PY:-$REPO/.venv/bin/python}"
FILES="${FILES:-test_scheduler.py test_async_scheduler.py test_priority_preemption_bug.py test_priority_scheduler_random.py}"
mkdir -p "$WORK"
cd "$WORK"

if [ ! -f vllm-0.32.0.tar.gz ]; then
  # pip needs the package's metadata to accept a download; vLLM's setup.py wants setuptools-rust and
  # -scm, and a device. VLLM_TARGET_DEVICE=empty skips the build, the override keeps the version plain.
  "$PY" -m pip install -q --target "$WORK/build-deps" setuptools-rust "setuptools-scm>=8"
  PYTHONPATH="$WORK/build-deps" VLLM_TARGET_DEVICE=empty VLLM_VERSION_OVERRIDE=0.32.0 \
    "$PY" -m pip download -q --no-deps --no-binary :all: --no-build-isolation vllm==0.32.0 -d .
fi
[ -d vllm-0.32.0/tests ] || tar xzf vllm-0.32.0.tar.gz vllm-0.32.0/tests
ln -sfn vllm-0.32.0/tests tests
for m in opt-125m opt-350m; do
  mkdir -p "facebook/$m"
  cat > "facebook/$m/config.json" <<'JSON'
{"architectures": ["OPTForCausalLM"], "model_type": "opt", "hidden_size": 768, "ffn_dim": 3072, "num_attention_heads": 12, "num_hidden_layers": 12, "vocab_size": 50272, "max_position_embeddings": 2048, "word_embed_proj_dim": 768, "do_layer_norm_before": true, "activation_function": "relu", "bos_token_id": 2, "eos_token_id": 2, "pad_token_id": 1, "torch_dtype": "float16", "enable_bias": true, "layer_norm_elementwise_affine": true}
JSON
done

paths=""
for f in $FILES; do paths="$paths tests/v1/core/$f"; done
run() {  # name, JUSTITIA_SUITE, JUSTITIA_POLICY
  PYTHONPATH="$REPO/src:$HERE:$WORK" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 JUSTITIA_SUITE="$2" \
    JUSTITIA_POLICY="$3" JUSTITIA_APP_IDLE_S=2 \
    "$PY" -m pytest -q --noconftest -p vllm_suite_patch -p no:cacheprovider -rfE $paths \
    > "$WORK/$1.log" 2>&1 || true
  grep -E "^(FAILED|ERROR) " "$WORK/$1.log" | sed 's/ - .*//' | sort > "$WORK/$1.failed" || true
}
RUNS="${RUNS:-vllm plugin-fcfs plugin-justitia}"
start() {  # one of the three by name
  case "$1" in
    vllm) run vllm vllm fcfs ;;
    plugin-fcfs) run plugin-fcfs plugin fcfs ;;
    plugin-justitia) run plugin-justitia plugin justitia ;;
    *) echo "RUNS: unknown run '$1' (vllm, plugin-fcfs, plugin-justitia)" >&2; exit 2 ;;
  esac
}
if [ "${PARALLEL:-0}" = 1 ]; then
  for n in $RUNS; do start "$n" & done; wait
else
  for n in $RUNS; do start "$n"; done
fi
for n in vllm plugin-fcfs plugin-justitia; do
  [ -f "$WORK/$n.log" ] && echo "== $n: $(tail -n 1 "$WORK/$n.log")" || echo "== $n: not run"
done
touch "$WORK/vllm.failed" "$WORK/plugin-fcfs.failed" "$WORK/plugin-justitia.failed"
echo "== failing under plugin-fcfs but not under vLLM's own scheduler:"
comm -13 "$WORK/vllm.failed" "$WORK/plugin-fcfs.failed" || true
echo "== failing under plugin-justitia but not under vLLM's own scheduler:"
comm -13 "$WORK/vllm.failed" "$WORK/plugin-justitia.failed" || true
