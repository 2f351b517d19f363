"""``sif bench grpo``: a step split into generation, reward scoring, forward and backward, with floors."""

import pytest
from conftest import SMOKE

from sif_lib.bench.grpo_step import bench_grpo, step_floors


def test_floors_follow_from_parameters_tokens_and_the_machine_rates():
    rates = {"matmul_gflops": 100.0, "copy_gb_per_s": 10.0}
    # 1e8 parameters x 1,000 tokens x 2 FLOPs = 2e11 FLOPs at 1e11 FLOP/s: 2 s forward; LoRA's backward the same,
    # full fine-tuning's twice that. Generation: 500 tokens of FLOPs (1 s) against 100 decoding steps that each
    # read 4e8 bytes at 1e10 B/s (4 s): the weight reads bound it.
    lora = step_floors(10**8, 0.0, 1000, 500, 100, 4 * 10**8, rates)
    assert lora == {"forward": 2.0, "backward": 2.0, "generation": 4.0}
    assert step_floors(10**8, 1.0, 1000, 500, 100, 4 * 10**8, rates)["backward"] == 4.0
    assert step_floors(10**8, 0.0, 1000, 5000, 1, 4 * 10**8, rates)["generation"] == 10.0  # FLOPs bound


def test_the_split_adds_up_to_the_step_and_no_part_beats_its_floor(capsys):
    figures = bench_grpo(SMOKE, steps=1)
    parts = [figures[f"{p}_seconds_per_step"] for p in ("generation", "reward", "forward", "backward")]
    assert figures["forward_seconds_per_step"] > 0 and figures["generation_seconds_per_step"] > 0
    assert sum(parts) == pytest.approx(figures["seconds_per_step"], abs=0.02)
    for part, floor in figures["floors_s"].items():
        assert 0 < floor <= figures[f"{part}_seconds_per_step"] + 0.01, (part, floor, figures)
    out = capsys.readouterr().out
    assert "forward + loss:" in out and "floor" in out and "GB/s" in out
