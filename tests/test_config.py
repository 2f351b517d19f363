import dataclasses
from pathlib import Path

import pytest
from conftest import REPO

from sif_lib.config.params import Params, describe_params, load_params, params_from_dict
from sif_lib.core.errors import InputError
from sif_lib.synthesis.params_checks import check_constraint_ids, load_checked_params


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "params").glob("*.yaml")))
def test_shipped_params_load(name):
    params = load_checked_params(REPO / "params" / name)
    assert params.description


def test_every_field_has_help():
    for section in dataclasses.fields(Params):
        value = getattr(Params(), section.name)
        if dataclasses.is_dataclass(value):
            for f in dataclasses.fields(value):
                assert f.metadata.get("help"), f"{section.name}.{f.name} has no help text"
    assert "grpo:" in describe_params()


def test_unknown_key_names_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("grpo:\n  max_stpes: 3\n")
    with pytest.raises(InputError) as err:
        load_params(bad)
    message = str(err.value)
    assert str(bad) in message and "grpo.max_stpes" in message and "grpo.max_steps" in message
    assert "\n" not in message


def test_wrong_type_names_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rollouts:\n  batch_size: many\n")
    with pytest.raises(InputError, match=r"bad.yaml: key 'rollouts.batch_size' must be int"):
        load_params(bad)


def test_bool_is_not_an_int_and_literals_are_checked():
    with pytest.raises(InputError, match="grpo.max_steps"):
        params_from_dict({"grpo": {"max_steps": True}})
    with pytest.raises(InputError, match="grpo.curriculum"):
        params_from_dict({"grpo": {"curriculum": "sideways"}})


def test_int_accepted_for_float_and_defaults_kept():
    params = params_from_dict({"grpo": {"learning_rate": 1}})
    assert params.grpo.learning_rate == 1.0 and isinstance(params.grpo.learning_rate, float)
    assert params.grpo.num_generations == Params().grpo.num_generations


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(InputError, match="params file not found"):
        load_params(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("grpo: [unclosed\n")
    with pytest.raises(InputError, match=r"broken.yaml:\d+: not valid YAML"):
        load_params(broken)


def test_section_must_be_mapping_and_cross_field_checks():
    with pytest.raises(InputError, match="key 'grpo' must be a mapping"):
        params_from_dict({"grpo": 3})
    with pytest.raises(InputError, match="num_generations"):
        params_from_dict({"grpo": {"num_generations": 1}})
    with pytest.raises(InputError, match="min_constraints"):
        params_from_dict({"synthesis": {"min_constraints": 4, "max_constraints": 2}})


def test_hard_ids_are_checked_against_the_registry():
    params = params_from_dict({"synthesis": {"hard_ids": ["punctuation:no_comma", "detectable_format:title"]}})
    assert params.synthesis.hard_ids == ["punctuation:no_comma", "detectable_format:title"]
    with pytest.raises(InputError, match=r"key 'synthesis.hard_ids': 'punctuation:no_commas' .*did you mean "
                                         r"'punctuation:no_comma'"):
        check_constraint_ids(params_from_dict({"synthesis": {"hard_ids": ["punctuation:no_commas"]}}), "<params>")
    with pytest.raises(InputError, match="key 'synthesis.hard_ids' must be list"):
        params_from_dict({"synthesis": {"hard_ids": "punctuation:no_comma"}})
    with pytest.raises(InputError, match="key 'synthesis.hard_ids' must be list"):
        params_from_dict({"synthesis": {"hard_ids": ["punctuation:no_comma", 3]}})
    with pytest.raises(InputError, match="'synthesis.hard_ids' is empty"):
        params_from_dict({"synthesis": {"hard_ids": []}})
    assert params_from_dict({"synthesis": {"hard_ids": [], "hard_ratio": 0.0}}).synthesis.hard_ids == []


def test_sif_params_and_sif_run_refuse_an_unknown_constraint_id_in_one_line(tmp_path, capsys, monkeypatch):
    import signal

    from sif_lib import cli

    monkeypatch.setattr(signal, "signal", lambda *args: None)  # `sif run` would take this process's SIGTERM
    bad = tmp_path / "bad.yaml"
    bad.write_text("synthesis:\n  ifbench_ids: [count:number]\n")
    runs = tmp_path / "runs"
    for argv in (["params", str(bad)], ["run", str(bad), "--outputs", str(runs), "--no-space-check"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err == (f"error: {bad}: key 'synthesis.ifbench_ids': 'count:number' is not an IFBench constraint id "
                       "(did you mean 'count:numbers'?)\n")
    assert not list(runs.rglob("manifest.json")) and not list(runs.rglob("params.yaml"))


def test_overrides_apply_on_top(tmp_path):
    params = load_params(REPO / "params" / "smoke.yaml", overrides={"grpo": {"max_steps": 7}})
    assert params.grpo.max_steps == 7 and params.model.policy == "tiny"


def test_a_bare_yaml_off_is_the_choice_off(tmp_path):
    path = tmp_path / "off.yaml"
    path.write_text("grpo:\n  curriculum: off\n")  # YAML 1.1 reads this as false
    assert load_params(path).grpo.curriculum == "off"
    with pytest.raises(InputError, match="'grpo.soft_reward' must be"):
        params_from_dict({"grpo": {"soft_reward": False}})  # no "off" among its choices


def test_exponent_floats_without_a_dot_are_floats(tmp_path):
    # YAML 1.1 (PyYAML) reads `5e-5` as a string; it means the float, in a file and in --set alike.
    path = tmp_path / "p.yaml"
    path.write_text("reward_model:\n  learning_rate: 5e-5\n  probe_c: 1E2\n")
    params = load_params(path, overrides={"grpo": {"learning_rate": "3e-4"}})
    assert params.reward_model.learning_rate == 5e-5 and params.reward_model.probe_c == 100.0
    assert params.grpo.learning_rate == 3e-4
    with pytest.raises(InputError, match="reward_model.learning_rate' must be float, got 'e-5'"):
        params_from_dict({"reward_model": {"learning_rate": "e-5"}})


def test_repetitive_penalty_must_not_be_negative():
    assert params_from_dict({}).grpo.repetitive_penalty == 0.0  # the paper's reward by default
    with pytest.raises(InputError, match="'grpo.repetitive_penalty' must be at least 0"):
        params_from_dict({"grpo": {"repetitive_penalty": -0.1}})


def _writer(data: bytes | None):
    def make(path: Path) -> Path:
        if data is None:
            path.mkdir()
        else:
            path.write_bytes(data)
        return path
    return make


def _unreadable(path: Path) -> Path:
    path.write_text("{}\n")
    path.chmod(0)
    return path


EDGE_CASES = {
    "binary": (_writer(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe binary"), "not a UTF-8 text file"),
    "empty": (_writer(b""), "the params file is empty; write {} to run with every default"),
    "comment only": (_writer(b"# run:\n#   seed: 1\n"), "the params file is empty"),
    "a list": (_writer(b"- run\n- grpo\n"), "must be a mapping of sections, got a YAML list"),
    "a directory": (_writer(None), "is a directory, not a params file"),
    "no read permission": (_unreadable, "cannot read the params file (Permission denied)"),
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_unusable_params_files_end_in_one_line_and_exit_2(tmp_path, case):
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    make, message = EDGE_CASES[case]
    as_nobody = case == "no read permission" and os.geteuid() == 0
    if as_nobody:
        # root reads any file: ask as an unprivileged user, whom the permission is meant to stop, from a folder
        # that user can reach
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: cannot drop the permission to read")
        tmp_path = Path(tempfile.mkdtemp(prefix="sif-perm-"))
        tmp_path.chmod(0o755)
    path = make(tmp_path / "p.yaml")
    outputs = tmp_path / "outputs"
    cmd = [sys.executable, "-m", "sif_lib", "run", str(path), "--outputs", str(outputs)]
    if as_nobody:
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    try:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    finally:
        if as_nobody:
            shutil.rmtree(tmp_path, ignore_errors=True)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and not outputs.exists()


def test_an_explicit_empty_mapping_means_every_default(tmp_path):
    path = tmp_path / "defaults.yaml"
    path.write_text("{}\n")
    assert load_params(path) == params_from_dict({})
