"""Stages 01-03 of params/smoke.yaml write the same bytes as they did before the package was reorganised.

The hashes were taken from the code before that redesign; a change here means the data itself changed (a new
seed order, another sampling path), which must be deliberate and said in the commit that updates them.
The rollouts and pseudo-labels were re-pinned when sampling moved to ``sif_lib.policy.decoding`` (a seeded
``torch.Generator`` per batch instead of the global generator inside ``generate``: the same distribution, other
draws); instructions, math items and the curriculum kept their bytes. They were re-pinned again (2026-12-07)
when a sampled token became one uniform draw against the cumulative distribution instead of
``torch.multinomial``'s (:func:`sif_lib.policy.decoding.sample_rows`) and sampled batches grew from 32 to 64:
the same distributions, other draws.
"""

from __future__ import annotations

import hashlib

from conftest import run_sif

PINNED = {
    "instructions.jsonl": "1939bd569d89bb0e541d01232c0d32d66306fa666483fe20c12d94450c0d8ae7",
    "reasoning.jsonl": "5e0a1101435b8ab44cc45d10c950c2d6e2fb69708dad870456f94247ba3d12cb",
    "curriculum.jsonl": "b4b025ce6cfaa43afc34655cb0306474a377693371e0c662b9cdb3ece2499481",
    "rollouts.jsonl": "0408c96a9833eafae4d462883e60ce91cf830c086b9aff691582335dc497bc26",
    "pseudo_labels.jsonl": "241c7d8d6545fc3cd2c271d19f8425d8b0ed6502108d56ee962c4f2bbf843c2f",
}


def test_smoke_stages_01_to_03_write_the_pinned_bytes(tmp_path):
    run_sif("run", "params/smoke.yaml", "--run-id", "pinned", "--outputs", str(tmp_path), "--to",
            "03_generate_pseudo_labels", check=True)
    data = tmp_path / "pinned" / "data"
    got = {name: hashlib.sha256((data / name).read_bytes()).hexdigest() for name in PINNED}
    assert got == PINNED
