"""GRPO on a CUDA GPU: SmolLM2-135M-Instruct with LoRA in bf16 for 2 steps (skipped without CUDA)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "params" / "smoke.yaml"


def test_smollm2_lora_bf16_two_steps(tmp_path):
    from sif_lib import grpo, models
    from sif_lib.curriculum import run_curriculum_stage
    from sif_lib.reward_model import META_FILE
    from sif_lib.runs import RunContext, read_jsonl
    from sif_lib.synthesis import run_synthesis_stage

    ctx = RunContext.open(tmp_path / "run", SMOKE, overrides={
        "run": {"device": "cuda", "dtype": "bfloat16"},
        "model": {"policy": "smollm2-135m-instruct"},
        "grpo": {"finetune": "lora", "max_steps": 2, "num_generations": 4, "prompts_per_step": 4,
                 "max_completion_length": 32, "probe_size": 4, "save_steps": 1}})
    run_synthesis_stage(ctx)
    run_curriculum_stage(ctx)
    rm = ctx.root / "rm"
    models.load_sequence_classifier("smollm2-135m-instruct", dtype="float32", device="cpu").save_pretrained(str(rm))
    models.load_tokenizer("smollm2-135m-instruct").save_pretrained(str(rm))
    (rm / META_FILE).write_text(json.dumps({"max_length": 256}))

    metrics = grpo.run_grpo_stage(ctx, echo=print)

    assert metrics["steps"] == 2 and metrics["series"]["step"] == [1, 2]
    assert metrics["timing"]["rollout_tokens_per_second"] > 0
    assert metrics["precision"] == {"device": "cuda", "bf16": True, "fp16": False}
    assert len(read_jsonl(ctx.root / "grpo" / "rollouts.jsonl")) == 2 * 4 * 4
    model = models.load_causal_lm("smollm2-135m-instruct", dtype="bfloat16", device="cuda",
                                  adapter=ctx.root / "grpo" / "adapter")
    assert next(model.parameters()).is_cuda
    shutil.rmtree(ctx.root / "grpo" / "checkpoints")
