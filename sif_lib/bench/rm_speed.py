"""``sif bench reward``: how fast the reward model scores pairs, against a generative judge on the same backbone.

Both score the same pairs. The pairs are built deterministically from the bundled seed tasks (as stand-in
response text, 40 words up to the params' ``rollouts.max_new_tokens`` words, about a rollout's length) and a
fixed list of soft-constraint sentences, so the figure needs no run directory. Without ``rm_dir`` the classifier
gets a fresh, untrained head: its speed does not depend on training. Each scorer is warmed up on a few pairs
first; model loading is not timed.

Printed: RM pairs/s, judge pairs/s, their ratio, and peak memory (the process's ``ru_maxrss`` after each phase,
plus the CUDA allocator's peak on a GPU).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from sif_lib.config.params import load_params
from sif_lib.core.errors import InputError
from sif_lib.core.io import peak_rss_mib
from sif_lib.policy import models
from sif_lib.reward_model.scorer import RewardScorer
from sif_lib.stages.s05_analysis.judge import GenerativeJudge
from sif_lib.synthesis.seeds import load_seeds

_CONSTRAINTS = [
    "Write in a formal, academic tone.",
    "Address the reader as a complete beginner.",
    "Keep a warm and encouraging tone throughout.",
    "Use a concrete example to illustrate the main point.",
    "Do not mention any specific brand names.",
    "Structure the answer as a short argument with a clear conclusion.",
    "Write from the perspective of an experienced teacher.",
    "Avoid technical jargon.",
]


def bench_pairs(n_pairs: int, max_words: int = 128, seed: int = 0) -> list[tuple[str, str]]:
    """Deterministic (response, constraint) pairs of realistic length."""
    words = " ".join(s.task for s in load_seeds()).split()
    rng = random.Random(seed)
    pairs = []
    for i in range(n_pairs):
        length = rng.randint(min(40, max_words), max(40, max_words))
        start = rng.randrange(0, max(1, len(words) - length))
        pairs.append((" ".join(words[start:start + length]), _CONSTRAINTS[i % len(_CONSTRAINTS)]))
    return pairs


def _time(fn, pairs) -> float:
    fn(pairs[: min(4, len(pairs))])  # warm-up: first-call allocations and kernel selection
    began = time.perf_counter()
    fn(pairs)
    return time.perf_counter() - began


def bench_reward(params_file: str | Path, rm_dir: str | Path | None = None, n_pairs: int = 64) -> dict:
    """Print and return RM and judge throughput on ``n_pairs`` pairs for the params' backbone."""
    import torch  # heavy: only when benchmarking


    if n_pairs < 1:
        raise InputError(f"--pairs must be at least 1, got {n_pairs}")
    params = load_params(params_file)
    device = models.device_for(params.run.device)
    backbone = params.reward_model.backbone or params.model.policy
    pairs = bench_pairs(n_pairs, params.rollouts.max_new_tokens, params.run.seed)
    cuda = device.startswith("cuda") and torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()

    if rm_dir:
        scorer = RewardScorer.from_dir(rm_dir, device=device, batch_size=params.scoring.batch_size,
                                       dtype=params.run.dtype)
        label = str(rm_dir)
    else:
        model = models.load_sequence_classifier(backbone, num_labels=2, dtype=params.run.dtype, device=device,
                                                key=("reward_model.backbone" if params.reward_model.backbone
                                                     else "model.policy"))
        scorer = RewardScorer(model, models.load_tokenizer(backbone), params.reward_model.max_length,
                              batch_size=params.scoring.batch_size)
        label = f"{backbone} (fresh head)"
    rm_seconds = _time(scorer.score, pairs)
    rm_peak = peak_rss_mib(children=False)
    rm_cuda = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    del scorer

    judge = GenerativeJudge.from_params(params)
    judge_seconds = _time(judge.score, pairs)
    judge_peak = peak_rss_mib(children=False)
    judge_cuda = torch.cuda.max_memory_allocated() / 2**20 if cuda else None

    result: dict[str, Any] = {
        "backbone": backbone, "rm": label, "device": device, "pairs": n_pairs,
        "torch_threads": torch.get_num_threads(),
        "rm_batch_size": params.scoring.batch_size, "rm_max_length": params.reward_model.max_length,
        "judge_max_new_tokens": params.scoring.judge_max_new_tokens,
        "rm_seconds": rm_seconds, "judge_seconds": judge_seconds,
        "rm_pairs_per_second": n_pairs / rm_seconds, "judge_pairs_per_second": n_pairs / judge_seconds,
        "ratio": judge_seconds / rm_seconds,
        # Counted over the warm-up and the timed pairs together.
        "judge_unparsable": judge.unparsable,
        "judge_judged": judge.judged,
        "peak_rss_mib_after_rm": rm_peak, "peak_rss_mib_after_judge": judge_peak,
        "cuda_peak_mib_rm": rm_cuda, "cuda_peak_mib_total": judge_cuda,
    }
    print(f"reward bench: {n_pairs} pairs, backbone {backbone}, device {device}, {result['torch_threads']} threads")
    print(f"  reward model ({label}): {result['rm_pairs_per_second']:.1f} pairs/s "
          f"({rm_seconds:.2f} s; batch {params.scoring.batch_size}, max_length {params.reward_model.max_length})")
    print(f"  generative judge: {result['judge_pairs_per_second']:.2f} pairs/s "
          f"({judge_seconds:.2f} s; {params.scoring.judge_max_new_tokens} new tokens, "
          f"{judge.unparsable}/{judge.judged} verdicts unparsable)")
    print(f"  judge / RM time: {result['ratio']:.1f}x")
    print(f"  peak RSS: {rm_peak:.0f} MiB after the RM, {judge_peak:.0f} MiB after the judge")
    if cuda:
        print(f"  CUDA peak allocated: {rm_cuda:.0f} MiB (RM), {judge_cuda:.0f} MiB (both)")
    return result
