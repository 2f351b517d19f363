"""GRPO on a CUDA GPU: SmolLM2-135M-Instruct with LoRA in bf16 for 2 steps (skipped without CUDA)."""

from __future__ import annotations

import shutil

import pytest
from conftest import SMOKE, write_untrained_rm

torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_smollm2_lora_bf16_two_steps(tmp_path):
    from sif_lib.core.io import read_jsonl
    from sif_lib.policy import models
    from sif_lib.runner.runs import RunContext
    from sif_lib.stages import s06_train_grpo as s06
    from sif_lib.stages.s01_synthesize_constraints import run as run_synthesis_stage
    from sif_lib.stages.s02_decompose_curriculum import run as run_curriculum_stage

    ctx = RunContext.open(tmp_path / "run", SMOKE, overrides={
        "run": {"device": "cuda", "dtype": "bfloat16"},
        "model": {"policy": "smollm2-135m-instruct"},
        "grpo": {"finetune": "lora", "max_steps": 2, "num_generations": 4, "prompts_per_step": 4,
                 "max_completion_length": 32, "probe_size": 4, "save_steps": 1}})
    run_synthesis_stage(ctx)
    run_curriculum_stage(ctx)
    write_untrained_rm(ctx.root / "rm", spec="smollm2-135m-instruct", max_length=256)

    metrics = s06.run(ctx, echo=print)

    assert metrics["steps"] == 2 and metrics["series"]["step"] == [1, 2]
    assert metrics["timing"]["rollout_tokens_per_second"] > 0
    assert metrics["precision"] == {"device": "cuda", "bf16": True, "fp16": False}
    assert len(read_jsonl(ctx.root / "grpo" / "rollouts.jsonl")) == 2 * 4 * 4
    model = models.load_causal_lm("smollm2-135m-instruct", dtype="bfloat16", device="cuda",
                                  adapter=ctx.root / "grpo" / "adapter")
    assert next(model.parameters()).is_cuda
    shutil.rmtree(ctx.root / "grpo" / "checkpoints")
