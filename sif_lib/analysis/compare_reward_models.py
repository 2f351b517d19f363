"""``sif compare-rm``: reward models of several runs side by side (stage 04's held-out figures).

The usual way to make the runs is one set of pseudo-labels and one run per reward-model setting, for example::

    sif run params/cpu_rm.yaml --run-id rm-probe --reuse outputs/cpu_rm --from 04 --to 04 \\
        --set reward_model.method=linear_probe

Each run is described by the parameters in which it differs from the others. The columns are the figures that
decide which setting to use: held-out ROC-AUC on soft pairs against their pseudo-labels and on hard pairs against
the verifier's truth, each with its bootstrap 95% interval and pair count, the training loss and the time.

Two runs' intervals overlap easily, because both carry the noise of the same held-out set. Where the runs share
their held-out pairs (the same pseudo-labels and seed), each later run is also compared with the first *paired*:
the AUC difference on the same pairs, with a paired-bootstrap interval (``rm/eval_scores.jsonl``). An interval
that excludes 0 is a difference the data can tell.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sif_lib.config.params import load_params
from sif_lib.core.display import differing_keys, format_table
from sif_lib.core.errors import InputError
from sif_lib.core.io import iter_jsonl, read_json
from sif_lib.reward_model.rm_eval import paired_auc_difference
from sif_lib.reward_model.training import EVAL_SCORES_FILE

METRICS_FILE = "metrics/04_train_reward_model.json"


def _auc(value: float | None, interval: list | None, n: int | None) -> str:
    if value is None:
        return "n/a"
    ci = f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""
    return f"{value:.3f}{ci} (n={n})"


def load(run_dir: str | Path) -> tuple[str, dict, dict, dict | None]:
    """A run's name, flat params, stage-04 metrics and held-out scores by pair id (None when not saved)."""
    run_dir = Path(run_dir)
    metrics = read_json(run_dir / METRICS_FILE, f"is {run_dir} a run with stage 04 done?")
    params_file = run_dir / "params.yaml"
    if not params_file.is_file():
        raise InputError(f"{params_file}: missing; is {run_dir} a run directory?")
    scores_file = run_dir / "rm" / EVAL_SCORES_FILE
    scores = {r["pair_id"]: r for r in iter_jsonl(scores_file)} if scores_file.is_file() else None
    return run_dir.name, load_params(params_file).flat(), metrics, scores


def paired_versus(reference: dict | None, scores: dict | None, n_resamples: int = 1000) -> dict[str, str]:
    """The AUC differences of ``scores`` against ``reference`` on their shared held-out pairs."""
    out = {"Δ hard AUC vs first (paired)": "n/a", "Δ soft AUC vs first (paired)": "n/a"}
    if reference is None or scores is None or reference is scores:
        return out
    shared = [k for k in scores if k in reference]
    for kind, column in (("hard", "Δ hard AUC vs first (paired)"), ("soft", "Δ soft AUC vs first (paired)")):
        keys = [k for k in shared
                if scores[k]["kind"] == kind and (kind == "soft" or scores[k]["verifier"] is not None)]
        labels = [int(scores[k]["verifier"] if kind == "hard" else scores[k]["label"]) for k in keys]
        diff, ci = paired_auc_difference([reference[k]["prob"] for k in keys], [scores[k]["prob"] for k in keys],
                                         labels, n_resamples)
        if diff is not None:
            out[column] = f"{diff:+.3f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "") + f" (n={len(keys)})"
    return out


def table_rows(runs: Sequence[tuple[str, dict, dict, dict | None]]) -> list[dict[str, str]]:
    differing = differing_keys([flat for _, flat, _, _ in runs], {"description"})
    rows = []
    for name, flat, m, scores in runs:
        soft = m["eval_by_kind"]["soft"]
        loss = m.get("final_train_loss")
        rows.append({
            "run": name,
            "differs in": ", ".join(f"{k.split('.', 1)[-1]}={flat.get(k)}" for k in differing) or "-",
            "method": m.get("method", "finetune") + (f"/{m['mode']}" if m.get("mode") else ""),
            "train pairs": str(m["counts"]["train"]["pairs"]),
            "soft AUC vs pseudo": _auc(soft["auc"], soft.get("auc_ci95"), soft["pairs"]),
            "hard AUC vs truth": _auc(m.get("hard_truth_auc"), m.get("hard_truth_auc_ci95"), m.get("hard_truth_pairs")),
            **paired_versus(runs[0][3], scores),
            "final loss": "n/a" if loss is None else f"{loss:.3f}",
            "train s": str(m.get("train_seconds")),
        })
    return rows


def compare_reward_models(run_dirs: Sequence[str | Path]) -> list[dict[str, str]]:
    rows = table_rows([load(d) for d in run_dirs])
    print(format_table(rows))
    return rows
