"""Params to TRL's GRPOConfig: typed knobs reach the trainer, every other GRPOConfig field passes through
``grpo.trl``, and a key that is not a field, or that a typed field owns, is one line naming it and the file."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import REPO, run_sif
from trl import GRPOConfig

from sif_lib.config import trl_fields
from sif_lib.config.params import Params, load_params
from sif_lib.core.errors import InputError
from sif_lib.grpo import config as grpo_config

CPU = {"run": {"device": "cpu", "dtype": "float32"}}


def _params_keys() -> set[str]:
    params = Params()
    return {f"{s.name}.{f.name}" for s in dataclasses.fields(params)
            if dataclasses.is_dataclass(getattr(params, s.name)) for f in dataclasses.fields(getattr(params, s.name))}


def test_every_grpo_config_field_is_reachable_and_the_tables_match_trl():
    fields = {f.name for f in dataclasses.fields(GRPOConfig)}
    assert set(trl_fields.TRL_TYPED) <= fields, set(trl_fields.TRL_TYPED) - fields  # a TRL rename would show here
    assert set(trl_fields.TRL_DERIVED) <= fields
    assert set(trl_fields.TRL_TYPED.values()) <= _params_keys()
    passthrough = fields - set(trl_fields.TRL_TYPED) - set(trl_fields.TRL_DERIVED)
    assert len(passthrough) > 100
    known = trl_fields.trl_config_fields()
    for name in passthrough:  # accepted by name: what remains is only the value's type
        trl_fields.check_trl_passthrough({name: None}, "p.yaml", {name: object})
    with pytest.raises(InputError, match="set by 'grpo.learning_rate'"):
        trl_fields.check_trl_passthrough({"learning_rate": 1.0}, "p.yaml", known)


def test_typed_knobs_and_passthrough_reach_the_trainer(tmp_path):
    params = load_params(REPO / "params" / "smoke.yaml", {"grpo": {
        "loss_type": "bnpo", "scale_rewards": "none", "epsilon": 0.1, "epsilon_high": 0.28, "num_iterations": 2,
        "mask_truncated_completions": True, "top_entropy_quantile": 0.2, "beta": 0.01,
        "trl": {"use_bias_correction_kl": False, "entropy_coef": 0.001, "warmup_steps": 3}}, **CPU})
    args = grpo_config.make_grpo_config(params, tmp_path)
    assert (args.loss_type, args.scale_rewards, args.epsilon, args.epsilon_high, args.num_iterations) == \
        ("bnpo", "none", 0.1, 0.28, 2)
    assert args.mask_truncated_completions and args.top_entropy_quantile == 0.2 and args.beta == 0.01
    assert args.use_bias_correction_kl is False and args.entropy_coef == 0.001 and args.warmup_steps == 3
    assert args.shuffle_dataset is False and args.output_dir == str(tmp_path)


def test_paper_params_state_the_papers_loss():
    params = load_params(REPO / "params" / "paper_7b.yaml")
    assert (params.grpo.loss_type, params.grpo.scale_rewards, params.grpo.beta) == ("dapo", "group", 0.01)
    assert params.grpo.trl == {"use_bias_correction_kl": False}
    assert params.model.answer_mode == "require_think"
    proc = run_sif("params", "params/paper_7b.yaml", check=True)
    assert "loss_type: 'dapo'" in proc.stdout and "beta: 0.01" in proc.stdout and "k3" in proc.stdout
    assert "use_bias_correction_kl: False" in proc.stdout


@pytest.mark.parametrize("trl, message", [
    ("{nonsense: 1}", "unknown key 'grpo.trl.nonsense': not a field of TRL's GRPOConfig"),
    ("{lerning_rate: 1}", "did you mean"),
    ("{learning_rate: 1.0e-5}", "key 'grpo.trl.learning_rate' is set by 'grpo.learning_rate'"),
    ("{output_dir: x}", "key 'grpo.trl.output_dir' cannot be set"),
    ("{entropy_coef: high}", "key 'grpo.trl.entropy_coef' must be float"),
])
def test_bad_passthrough_is_one_line_naming_the_key_and_file(tmp_path, trl, message):
    path = tmp_path / "p.yaml"
    path.write_text(f"grpo:\n  trl: {trl}\n")
    proc = run_sif("params", str(path))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and message in lines[0], proc.stderr


def test_bad_typed_knobs_are_rejected(tmp_path):
    for bad in ({"loss_type": "ppo"}, {"epsilon_high": 0.1}, {"top_entropy_quantile": 1.5}, {"num_iterations": 0}):
        with pytest.raises(InputError, match="grpo"):
            load_params(REPO / "params" / "smoke.yaml", {"grpo": bad})
