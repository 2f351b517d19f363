"""Degenerate answers in stage 07: how many, base against trained, and the headline figures without them.

A policy trained against rule verifiers can win checks with text no reader would accept (``*highlighted
section*`` thirty times). :mod:`sif_lib.constraints.degenerate` says, from the text alone, whether an answer is
degenerate. This module reads what stage 07 saved under ``eval/`` and computes, for IFEval, IFBench (when stage
07 evaluated it; its results files have IFEval's format) and the hold-out:

* ``degenerate``: per set, base and trained :func:`~sif_lib.constraints.degenerate.degenerate_summary` (the
  share with its exact 95% interval, counts per reason), the paired change trained − base (a fraction, like
  every delta of ``summary.json``) with its 95% bootstrap interval over prompts, and the prompts whose answer
  turned degenerate or clean, with the exact sign test;
* ``clean``: the headline figures on the prompts where *neither* answer is degenerate, with the same paired
  intervals and flips as the full figures (:mod:`sif_lib.evaluation.paired`);
* the gallery (``eval/degenerate_gallery.jsonl``): trained answers that turned degenerate (the base answer is
  clean) while gaining at least one check (an IFEval or IFBench instruction's loose verdict, a hold-out hard
  constraint's verifier verdict);
* ``gains`` (IFEval, IFBench): the instructions newly met (loose) and how many of them the trained policy met
  with a degenerate answer, in all and per instruction id, beside the instructions no longer met and how many of
  those the base policy had met with a degenerate answer. A gain whose answer is a loop is not instruction
  following, whatever the check says; this count says how much of each id's Δ is that.

The detector reads the part of each output that is scored (``model.answer_mode``): IFEval's ``responses.jsonl``
holds it already; hold-out answers are cut from ``generations.jsonl`` the same way. An output with no answer
(empty, or no ``</think>`` under ``require_think``) counts as degenerate (``near_empty``), as the detector says
of a missing answer. Each prompt's constraints go with its answer, so a required keyword stuffed is seen.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

from sif_lib.constraints import answer_text
from sif_lib.constraints.degenerate import Degeneration, degeneration
from sif_lib.core.io import read_jsonl, write_jsonl
from sif_lib.core.stats import difference
from sif_lib.evaluation import curriculum_holdout as holdout_eval
from sif_lib.evaluation import paired
from sif_lib.evaluation.ifeval_scoring import PromptResult
from sif_lib.reward.heldout import degenerate_change

GALLERY = "degenerate_gallery.jsonl"
POLICIES = ("base", "trained")
IFEVAL_METRICS = ("prompt_strict", "inst_strict", "prompt_loose", "inst_loose")
HOLDOUT_METRICS = ("hard", "soft", "composite")
BENCH_NAMES = {"ifeval": "IFEval", "ifbench": "IFBench"}


def ifeval_constraints(row: Mapping) -> list[dict]:
    """An IFEval row's instructions as constraint records (``id``, ``kwargs``) for the detector."""
    return [{"id": i, "kwargs": kw or {}} for i, kw in zip(row["instruction_id_list"], row["kwargs"])]


# ---------------------------------------------------------------------------------------------------------------
# IFEval

def ifeval_results(folder: Path, input_rows: Sequence[Mapping]) -> list[PromptResult]:
    """A policy's IFEval verdicts read back from the scorer's files (``eval_results_{strict,loose}.jsonl``)."""
    strict, loose = (read_jsonl(folder / f"eval_results_{mode}.jsonl") for mode in ("strict", "loose"))
    if not (len(strict) == len(loose) == len(input_rows)):
        raise ValueError(f"{folder}: {len(strict)} strict and {len(loose)} loose results for {len(input_rows)} prompts")
    return [PromptResult(key=row.get("key", i), prompt=s["prompt"], response=s["response"],
                         instruction_id_list=list(s["instruction_id_list"]),
                         strict=[bool(v) for v in s["follow_instruction_list"]],
                         loose=[bool(v) for v in lo["follow_instruction_list"]])
            for i, (row, s, lo) in enumerate(zip(input_rows, strict, loose))]


def ifeval_figures(rows: Sequence[PromptResult]) -> dict:
    """The four IFEval accuracies of some prompts (None for none), with their counts."""
    n, inst = len(rows), sum(len(r.strict) for r in rows)

    def share(hits: float, total: int) -> float | None:
        return round(hits / total, 6) if total else None

    return {"prompt_strict": share(sum(all(r.strict) for r in rows), n),
            "inst_strict": share(sum(sum(r.strict) for r in rows), inst),
            "prompt_loose": share(sum(all(r.loose) for r in rows), n),
            "inst_loose": share(sum(sum(r.loose) for r in rows), inst),
            "n_prompts": n, "n_instructions": inst}


def clean_ifeval(rows: Mapping[str, Sequence[PromptResult]], keep: Sequence[bool], n_resamples: int = 1000,
                 seed: int = 0) -> dict:
    """IFEval's headline figures on the prompts ``keep`` marks (neither answer degenerate), paired as the full
    figures are."""
    chosen = {name: [r for r, ok in zip(rows[name], keep) if ok] for name in POLICIES}
    out: dict = {"n_prompts": len(chosen["base"]), "n_excluded": len(keep) - len(chosen["base"])}
    out.update({name: ifeval_figures(chosen[name]) for name in POLICIES})
    out["delta"] = {m: difference(out["base"][m], out["trained"][m]) for m in IFEVAL_METRICS}
    found = paired.ifeval_intervals(chosen["base"], chosen["trained"], n_resamples, seed)
    out["delta_ci95"], out["flips"] = found["intervals"], found["flips"]
    return out


def ifeval_gallery(rows: Mapping[str, Sequence[PromptResult]], verdicts: Mapping[str, Sequence[Degeneration]],
                   bench: str = "ifeval") -> list:
    """IFEval (or IFBench) prompts whose trained answer turned degenerate while an instruction's loose verdict
    turned to pass."""
    found = []
    for b, t, db, dt in zip(rows["base"], rows["trained"], verdicts["base"], verdicts["trained"]):
        gained = [i for i, x, y in zip(b.instruction_id_list, b.loose, t.loose) if y and not x]
        if dt.degenerate and not db.degenerate and gained:
            found.append({"set": bench, "id": b.key, "prompt": b.prompt, "base_answer": b.response,
                          "trained_answer": t.response, "reasons": list(dt.reasons),
                          "checks": f"{BENCH_NAMES[bench]} loose",
                          "gained": gained,
                          "lost": [i for i, x, y in zip(b.instruction_id_list, b.loose, t.loose) if x and not y]})
    return found


def _gain_counts() -> dict:
    return {"gained": 0, "gained_degenerate": 0, "lost": 0, "lost_degenerate": 0}


def ifeval_gains(rows: Mapping[str, Sequence[PromptResult]], verdicts: Mapping[str, Sequence[Degeneration]]
                 ) -> dict:
    """Instructions newly met and no longer met (loose), in all and per id, with how many of the newly met the
    trained policy met with a degenerate answer (``gained_degenerate``) and how many of those lost the base policy
    had met with one (``lost_degenerate``): ``{"gained", "gained_degenerate", "lost", "lost_degenerate",
    "by_id": {id: the same four}}``."""
    total, by_id = _gain_counts(), defaultdict(_gain_counts)
    for b, t, db, dt in zip(rows["base"], rows["trained"], verdicts["base"], verdicts["trained"]):
        for iid, before, after in zip(b.instruction_id_list, b.loose, t.loose):
            if before == after:
                continue
            change = ("gained", dt.degenerate) if after else ("lost", db.degenerate)
            for counts in (total, by_id[iid]):
                counts[change[0]] += 1
                counts[f"{change[0]}_degenerate"] += int(change[1])
    return {**total, "by_id": {iid: by_id[iid] for iid in sorted(by_id)}}


def ifeval_section(eval_dir: Path, n_resamples: int = 1000, seed: int = 0, bench: str = "ifeval"
                   ) -> tuple[dict, dict, list]:
    """(degenerate, clean, gallery) for IFEval, from ``eval/ifeval_input_data.jsonl`` and each policy's results;
    for IFBench with ``bench="ifbench"`` (``eval/ifbench_*``, the same files). The detector's stuffed-phrase check
    knows IFEval's and IFBench's keyword arguments."""
    input_rows = read_jsonl(eval_dir / f"{bench}_input_data.jsonl")
    rows = {name: ifeval_results(eval_dir / f"{bench}_{name}", input_rows) for name in POLICIES}
    constraints = [ifeval_constraints(r) for r in input_rows]
    answers = {name: [r.response for r in rows[name]] for name in POLICIES}
    verdicts = {name: [degeneration(a, c) for a, c in zip(answers[name], constraints)] for name in POLICIES}
    keep = [not (b.degenerate or t.degenerate) for b, t in zip(verdicts["base"], verdicts["trained"])]
    return ({"n": len(input_rows), **degenerate_change(verdicts["base"], verdicts["trained"], POLICIES, n_resamples,
                                                       seed, digits=6), "gains": ifeval_gains(rows, verdicts)},
            clean_ifeval(rows, keep, n_resamples, seed), ifeval_gallery(rows, verdicts, bench))


# ---------------------------------------------------------------------------------------------------------------
# The curriculum hold-out

def clean_holdout(verdicts: Mapping[str, Sequence[dict]], keep_ids: set, n_resamples: int = 1000,
                  seed: int = 0) -> dict:
    """The hold-out's hard, soft and composite figures on the prompts in ``keep_ids`` (neither answer
    degenerate), paired as the full figures are."""
    chosen = {name: [v for v in verdicts[name] if v["id"] in keep_ids] for name in POLICIES}
    prompts = {v["id"] for v in verdicts["base"]}
    out: dict = {"n_prompts": len(prompts & keep_ids), "n_excluded": len(prompts - keep_ids)}
    for name in POLICIES:
        figures = holdout_eval.aggregate(chosen[name])
        out[name] = {k: figures[k] for k in (*HOLDOUT_METRICS, "all_hard_satisfied", "n_constraints")}
    out["delta"] = {k: difference(out["base"][k], out["trained"][k]) for k in HOLDOUT_METRICS}
    found = paired.holdout_intervals(chosen["base"], chosen["trained"], n_resamples, seed)
    out["delta_ci95"] = {k: found["intervals"][k] for k in HOLDOUT_METRICS}
    out["flips"] = found["flips"]
    return out


def holdout_gallery(ids: Sequence[str], prompts: Mapping[str, dict], verdicts: Mapping[str, Sequence[dict]],
                    found: Mapping[str, Mapping[str, Degeneration]]) -> list:
    """Hold-out prompts whose trained answer turned degenerate while a hard constraint turned to pass."""
    grouped = {name: defaultdict(list) for name in POLICIES}
    for name in POLICIES:
        for v in verdicts[name]:
            grouped[name][v["id"]].append(v)
    out = []
    for pid in ids:
        db, dt = found["base"][pid], found["trained"][pid]
        pairs = [(b, t) for b, t in zip(grouped["base"][pid], grouped["trained"][pid]) if b["kind"] == "hard"]
        gained = [b["constraint"] for b, t in pairs if t["score"] == 1.0 and b["score"] != 1.0]
        if dt.degenerate and not db.degenerate and gained:
            row = prompts["base"][pid]
            out.append({"set": "holdout", "id": pid, "level": row.get("level"), "prompt": row.get("prompt", ""),
                        "base_answer": prompts["base"][pid]["answer"],
                        "trained_answer": prompts["trained"][pid]["answer"], "reasons": list(dt.reasons),
                        "checks": "hold-out hard, verifier", "gained": gained,
                        "lost": [b["constraint"] for b, t in pairs if b["score"] == 1.0 and t["score"] != 1.0]})
    return out


def holdout_section(eval_dir: Path, answer_mode: str, constraints: Mapping[str, Sequence[dict]] | None = None,
                    n_resamples: int = 1000, seed: int = 0) -> tuple[dict, dict, list]:
    """(degenerate, clean, gallery) for the hold-out, from each policy's ``generations.jsonl`` (answers, cut by
    ``answer_mode``) and ``verdicts.jsonl``; ``constraints`` maps a prompt id to its constraints (with
    ``kwargs``), else the detector reads the text alone."""
    constraints = constraints or {}
    prompts, verdicts = {}, {}
    for name in POLICIES:
        folder = eval_dir / f"holdout_{name}"
        prompts[name] = {str(r["id"]): {**r, "answer": answer_text(r.get("response"), answer_mode)}
                         for r in read_jsonl(folder / "generations.jsonl")}
        verdicts[name] = read_jsonl(folder / "verdicts.jsonl")
    ids = [pid for pid in prompts["base"] if pid in prompts["trained"]]
    if len(ids) != len(prompts["base"]) or len(ids) != len(prompts["trained"]):
        raise ValueError(f"{eval_dir}: base and trained hold-out answers cover different prompts")
    cons = [constraints.get(pid) for pid in ids]
    answers = {name: [prompts[name][pid]["answer"] for pid in ids] for name in POLICIES}
    found = {name: {pid: degeneration(a, c) for pid, a, c in zip(ids, answers[name], cons)} for name in POLICIES}
    keep = {pid for pid in ids if not (found["base"][pid].degenerate or found["trained"][pid].degenerate)}
    change = {"n": len(ids), **degenerate_change([found["base"][p] for p in ids], [found["trained"][p] for p in ids],
                                                 POLICIES, n_resamples, seed, digits=6)}
    return (change, clean_holdout(verdicts, keep, n_resamples, seed),
            holdout_gallery(ids, prompts, verdicts, found))


# ---------------------------------------------------------------------------------------------------------------
# The stage

def degenerate_figures(eval_dir: Path, answer_mode: str, holdout_rows: Sequence[Mapping] | None = None,
                       n_resamples: int = 1000, seed: int = 0) -> tuple[dict, dict]:
    """``summary["degenerate"]`` and ``summary["clean"]`` (module docstring) from what stage 07 saved in
    ``eval_dir``; writes the gallery to ``eval_dir/degenerate_gallery.jsonl``. ``holdout_rows`` are the
    evaluated hold-out rows (their constraints go to the detector)."""
    eval_dir = Path(eval_dir)
    constraints = {str(r["id"]): list(r["constraints"]) for r in holdout_rows or ()}
    degenerate: dict = {}
    clean: dict = {}
    degenerate["ifeval"], clean["ifeval"], gallery = ifeval_section(eval_dir, n_resamples, seed)
    ifbench: list = []
    if all((eval_dir / f"ifbench_{name}" / "eval_results_loose.jsonl").is_file() for name in POLICIES):
        degenerate["ifbench"], clean["ifbench"], ifbench = ifeval_section(eval_dir, n_resamples, seed, "ifbench")
    degenerate["holdout"], clean["holdout"], more = holdout_section(eval_dir, answer_mode, constraints,
                                                                     n_resamples, seed)
    write_jsonl(eval_dir / GALLERY, gallery + ifbench + more)
    degenerate["gallery"] = {"file": GALLERY, "ifeval": len(gallery), "holdout": len(more)}
    if "ifbench" in degenerate:
        degenerate["gallery"]["ifbench"] = len(ifbench)
    return degenerate, clean


def read_gallery(run_dir: str | Path) -> list[dict]:
    """The rows of a run's ``eval/degenerate_gallery.jsonl`` (none for a run evaluated before it existed)."""
    path = Path(run_dir) / "eval" / GALLERY
    return read_jsonl(path) if path.is_file() else []
