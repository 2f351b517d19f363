"""run.report_to: the trainers' curves and stage 06's probe as TensorBoard event files under <run>/tensorboard,
read back with TensorBoard's own reader; none writes nothing; trackio missing is one line naming the key."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from conftest import SMOKE, write_untrained_rm

from sif_lib.config.params import load_params
from sif_lib.core.errors import InputError
from sif_lib.policy import models
from sif_lib.runner import tracking
from sif_lib.runner.runs import RunContext
from sif_lib.stages import s06_train_grpo as s06

GRPO = {"max_steps": 2, "num_generations": 2, "prompts_per_step": 2, "max_completion_length": 8, "probe_size": 2,
        "save_steps": 1, "logging_steps": 1}


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in ``folder``'s event files, as TensorBoard loads them: tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """Stage 01/02 data of the smoke params and an untrained reward model (the tiny model with a fresh head)."""
    from sif_lib.stages.s01_synthesize_constraints import run as run_synthesis_stage
    from sif_lib.stages.s02_decompose_curriculum import run as run_curriculum_stage

    root = tmp_path_factory.mktemp("tb-base")
    ctx = RunContext.open(root, SMOKE)
    run_synthesis_stage(ctx)
    run_curriculum_stage(ctx)
    write_untrained_rm(root / "rm")
    return root


def _grpo_run(base: Path, root: Path, report_to: str) -> tuple[RunContext, dict]:
    root.mkdir(parents=True)
    shutil.copytree(base / "data", root / "data")
    shutil.copytree(base / "rm", root / "rm")
    ctx = RunContext.open(root, SMOKE, overrides={"run": {"report_to": report_to}, "grpo": GRPO})
    return ctx, s06.run(ctx, echo=lambda *_: None)


def test_grpo_writes_reward_loss_and_probe_scalars_for_every_step(base_run, tmp_path):
    ctx, metrics = _grpo_run(base_run, tmp_path / "run", "tensorboard")
    folder = ctx.root / "tensorboard" / "06_train_grpo"
    assert "run.report_to" not in metrics["params_read"]  # where logs go is no input of the stage (--reuse)

    trained = _scalars(folder)
    for tag in ("train/reward", "train/loss", "train/completions/mean_length"):
        assert [step for step, _ in trained[tag]] == [1, 2], tag
    series = metrics["series"]
    assert [v for _, v in trained["train/reward"]] == pytest.approx(series["reward"], abs=1e-6)
    # The reward by constraint kind, as the reward function logs it per step, lands beside TRL's own figures.
    for key in (k for k in series if k.startswith("components/")):
        logged = [v for v in series[key] if v is not None]
        assert [v for _, v in trained[f"train/{key}"]] == pytest.approx(logged, abs=1e-6), key

    probe = _scalars(folder / "probe")
    before, after = metrics["probe"]["before"], metrics["probe"]["after"]
    degenerate = metrics["probe"]["degenerate"]
    for tag, first, last in (("probe/hard_satisfaction", before["hard_satisfaction"], after["hard_satisfaction"]),
                             ("probe/soft_prob", before["soft_prob"], after["soft_prob"]),
                             ("probe/degenerate_share", degenerate["before"]["share"], degenerate["after"]["share"])):
        assert [step for step, _ in probe[tag]] == [0, 2], tag
        assert [v for _, v in probe[tag]] == pytest.approx([first, last], abs=1e-6), tag
    config = json.loads((ctx.root / "grpo" / "grpo_config.json").read_text())
    assert config["report_to"] == ["tensorboard"] and config["logging_steps"] == 1


def test_report_to_none_writes_no_event_files(base_run, tmp_path):
    ctx, metrics = _grpo_run(base_run, tmp_path / "run", "none")
    assert metrics["steps"] == 2
    assert not (ctx.root / "tensorboard").exists()
    assert not list(ctx.root.rglob("events.out.tfevents.*"))
    assert json.loads((ctx.root / "grpo" / "grpo_config.json").read_text())["report_to"] == []


def test_reward_model_fine_tune_logs_its_loss_and_a_rerun_starts_afresh(tmp_path):
    from sif_lib.reward_model import finetune

    params = load_params(SMOKE, {"run": {"report_to": "tensorboard"}, "reward_model": {"batch_size": 2}})
    tokenizer = models.load_tokenizer("tiny", padding_side="right")
    ids = [tokenizer(f"answer {i} | constraint {i % 3}")["input_ids"] for i in range(8)]
    folder = tracking.log_dir(tmp_path, "04_train_reward_model")
    for _ in range(2):
        _, info = finetune.fit(ids, [i % 2 for i in range(8)], params, tokenizer, "tiny", "model.policy", "cpu",
                               progress=False, log_dir=folder)
        assert len(list(folder.glob("events.out.tfevents.*"))) == 1  # a fresh fit replaced the earlier events
    loss = _scalars(folder)["train/loss"]
    assert [step for step, _ in loss] == [e["step"] for e in info["loss_curve"]]


def test_cold_start_sft_logs_its_loss_under_its_stage(tmp_path):
    from sif_lib.cold_start.sft import train_sft

    params = load_params(SMOKE, {"cold_start": {"batch_size": 2, "epochs": 1.0, "max_length": 64}})
    examples = [{"prompt": [{"role": "user", "content": f"Name the number {i}."}],
                 "completion": [{"role": "assistant", "content": f"<think>It is {i}.</think> {i}"}]} for i in range(6)]
    folder = tracking.log_dir(tmp_path, "00_cold_start")
    training = train_sft(examples, params, "tiny", tmp_path / "cold_start", progress=False, log_dir=folder)
    loss = _scalars(folder)["train/loss"]
    assert [step for step, _ in loss] == [e["step"] for e in training["loss_curve"]] and len(loss) == 3


def test_trackio_missing_is_one_line_naming_the_key(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "trackio" else real(name, *args))
    path = tmp_path / "p.yaml"
    path.write_text("run:\n  report_to: trackio\n")
    with pytest.raises(InputError) as err:
        load_params(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "run.report_to" in message and "trackio" in message
    with pytest.raises(InputError, match="run.report_to"):
        load_params(SMOKE, {"run": {"report_to": "wandb"}})  # the Literal's own check


def test_trackio_names_the_project_after_the_run_and_the_run_after_the_stage(tmp_path):
    params = load_params(SMOKE)
    folder = tracking.log_dir(tmp_path / "my-run", "04_train_reward_model") / "check"
    assert tracking.config_kwargs(params, folder) == {"report_to": ["tensorboard"]}
    assert tracking.config_kwargs(params, None) == {"report_to": []}
    params.run.report_to = "trackio"  # what a params file holds where trackio is installed
    assert tracking.config_kwargs(params, folder) == {
        "report_to": ["trackio"], "project": "my-run", "run_name": "04_train_reward_model/check"}
