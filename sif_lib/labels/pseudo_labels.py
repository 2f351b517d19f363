"""Pseudo-labels (stage 03, part 2): self-supervised labels from the rollouts, and their audit on hard constraints.

For a ladder with constraints c_1..c_n and the policy's responses o_0..o_n (o_k answers the prompt holding
c_1..c_k), every constraint c_k gives two rows:

* a **positive** ``(o_k, c_k, 1)``: o_k was written with c_k in the prompt;
* a **negative** ``(o_{k-1}, c_k, 0)``: o_{k-1} was written without it.

Soft constraints always get rows; hard ones only with ``rollouts.hard_pairs`` (the reward model never needs to
score hard constraints, but the rows let us measure the assumption). With several samples per prompt, sample i of
level k is paired with sample i of level k-1.

Row: ``{"pair_id", "parent", "level": k, "sample", "constraint": c_k, "kind": "hard"|"soft", "response", "label",
"source_level": k or k-1, "verifier"}``. ``pair_id`` is unique per row: ``<parent>-c<k>-s<sample>-pos|neg``; the
positive and negative of one pair share everything up to the suffix. ``verifier`` is the hard-constraint check
of that response (after answer extraction per ``model.answer_mode``), null for soft constraints.

The audit (hard rows only; the verifier is the ground truth there)
-----------------------------------------------------------------
All rates are fractions in [0, 1]; ``*_ci95`` is the Wilson 95% interval; a figure over zero rows is null.

* ``accuracy``: share of hard rows whose pseudo-label equals the verifier's verdict (label 1 and satisfied, or
  label 0 and not satisfied).
* ``positive_rate``: P(o_k satisfies c_k), over positive rows.
* ``negative_rate``: P(o_{k-1} satisfies c_k), over negative rows. A negative that satisfies c_k anyway is a
  wrong pseudo-label (e.g. "no commas" is often met by chance).
* ``steering_gap`` = positive_rate - negative_rate: how much putting c_k in the prompt raises the chance that the
  policy meets it. With one positive per negative, accuracy = 0.5 + steering_gap / 2.
* ``per_level`` (k = the constraint's position, i.e. the positive's level) and ``per_constraint`` (hard id) give
  the same figures for subsets.
* ``pairwise``: each (positive, negative) pair of one constraint, judged by the verifier:
  ``concordant`` (positive satisfied, negative not), ``discordant`` (negative satisfied, positive not),
  ``tie_both`` / ``tie_neither``. ``agreement`` = (concordant + ties) / pairs, the share where the verifier does
  not contradict "the positive is at least as good as the negative"; ``strict_agreement`` = concordant / pairs;
  ``tau`` = (concordant - discordant) / (concordant + discordant), a Kendall-style statistic over untied pairs.
  The paper's tau 94.0 compares pseudo-labels with human judgements of soft constraints; ours compares them with
  the verifier on hard ones, so the two are analogues, not the same measurement.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable

from sif_lib.constraints import check_constraints
from sif_lib.core.errors import InputError
from sif_lib.core.io import read_jsonl
from sif_lib.core.stats import wilson
from sif_lib.runner.runs import RunContext

PSEUDO_LABELS = ("data", "pseudo_labels.jsonl")

Verifier = Callable[[str, dict], bool]

DEFINITIONS = {
    "accuracy": "share of hard rows whose pseudo-label equals the verifier verdict",
    "positive_rate": "P(o_k satisfies c_k) over positive rows",
    "negative_rate": "P(o_{k-1} satisfies c_k) over negative rows",
    "steering_gap": "positive_rate - negative_rate",
    "pairwise.agreement": "(concordant + ties) / pairs: verifier does not contradict pos >= neg",
    "pairwise.strict_agreement": "concordant / pairs: positive satisfied and negative not",
    "pairwise.tau": "(concordant - discordant) / (concordant + discordant), untied pairs only",
    "ci95": "Wilson 95% interval",
}


def hard_verifier(answer_mode: str) -> Verifier:
    """The code check of one hard constraint on one response, scoring the part ``answer_mode`` selects."""
    def verify(response: str, constraint: dict) -> bool:
        return bool(check_constraints(response, [constraint], answer_mode=answer_mode)[0])

    return verify


def build_pairs(ladders: dict[str, list[dict]], rollouts: Iterable[dict], hard_pairs: bool = True,
                verify: Verifier | None = None, answer_mode: str = "after_think") -> tuple[list[dict], dict]:
    """Positive and negative rows for every constraint of every answered ladder.

    ``ladders`` is ``rollouts.read_ladders`` output; ``verify`` defaults to the hard-constraint verifiers.
    Returns the rows and counts of what was skipped (hard constraints with ``hard_pairs`` off, pairs whose
    response at one of the two levels is missing).
    """
    responses: dict[tuple[str, int, int], str] = {}
    samples: dict[str, set[int]] = defaultdict(set)
    for row in rollouts:
        responses[(row["ladder"], row["level"], row["sample"])] = row["response"]
        samples[row["ladder"]].add(row["sample"])
    if verify is None and hard_pairs:
        verify = hard_verifier(answer_mode)

    pairs: list[dict] = []
    skipped = Counter()
    for parent, levels in ladders.items():
        if parent not in samples:
            continue
        constraints = levels[-1]["constraints"]
        for sample in sorted(samples[parent]):
            for k, constraint in enumerate(constraints, start=1):
                kind = constraint.get("kind")
                if kind not in ("hard", "soft"):
                    raise InputError(f"data/curriculum.jsonl: ladder {parent}, constraint {k}: kind must be "
                                     f"'hard' or 'soft', got {kind!r}")
                if kind == "hard" and not hard_pairs:
                    skipped["hard_pairs_off"] += 1
                    continue
                positive = responses.get((parent, k, sample))
                negative = responses.get((parent, k - 1, sample))
                if positive is None or negative is None:
                    skipped["missing_response"] += 1
                    continue
                for label, response, source in ((1, positive, k), (0, negative, k - 1)):
                    verdict = None
                    if kind == "hard":
                        try:
                            verdict = verify(response, constraint)
                        except ValueError as err:  # unknown id or bad arguments, per check_constraints
                            raise InputError(f"data/curriculum.jsonl: ladder {parent}: hard constraint "
                                             f"{constraint.get('id')!r} cannot be checked ({err})") from None
                    pairs.append({
                        "pair_id": f"{parent}-c{k}-s{sample}-{'pos' if label else 'neg'}",
                        "parent": parent, "level": k, "sample": sample, "constraint": constraint, "kind": kind,
                        "response": response, "label": label, "source_level": source, "verifier": verdict,
                    })
    return pairs, dict(skipped)


# --------------------------------------------------------------------------------------------------------------
# Audit


def _ratio(k: int, n: int) -> float | None:
    return round(k / n, 4) if n else None


def _summary(rows: list[dict]) -> dict:
    pos = [r for r in rows if r["label"] == 1]
    neg = [r for r in rows if r["label"] == 0]
    correct = sum(int(bool(r["verifier"])) == r["label"] for r in rows)
    pos_sat = sum(bool(r["verifier"]) for r in pos)
    neg_sat = sum(bool(r["verifier"]) for r in neg)
    pos_rate, neg_rate = _ratio(pos_sat, len(pos)), _ratio(neg_sat, len(neg))
    return {
        "n": len(rows), "n_positive": len(pos), "n_negative": len(neg),
        "accuracy": _ratio(correct, len(rows)), "accuracy_ci95": wilson(correct, len(rows)),
        "positive_rate": pos_rate, "positive_rate_ci95": wilson(pos_sat, len(pos)),
        "negative_rate": neg_rate, "negative_rate_ci95": wilson(neg_sat, len(neg)),
        "steering_gap": round(pos_rate - neg_rate, 4) if pos_rate is not None and neg_rate is not None else None,
    }


def _pairwise(rows: list[dict]) -> dict:
    matched: dict[tuple, dict[int, bool]] = defaultdict(dict)
    for r in rows:
        matched[(r["parent"], r["level"], r["sample"])][r["label"]] = bool(r["verifier"])
    counts = Counter()
    for verdicts in matched.values():
        if 0 not in verdicts or 1 not in verdicts:
            continue
        pos, neg = verdicts[1], verdicts[0]
        counts["concordant" if pos and not neg else "discordant" if neg and not pos
               else "tie_both" if pos else "tie_neither"] += 1
    n = sum(counts.values())
    c, d = counts["concordant"], counts["discordant"]
    ties = counts["tie_both"] + counts["tie_neither"]
    return {
        "pairs": n, "concordant": c, "discordant": d, "tie_both": counts["tie_both"],
        "tie_neither": counts["tie_neither"],
        "agreement": _ratio(c + ties, n), "agreement_ci95": wilson(c + ties, n),
        "strict_agreement": _ratio(c, n), "tie_share": _ratio(ties, n),
        "tau": round((c - d) / (c + d), 4) if c + d else None,
    }


def audit_hard_pseudo_labels(pairs: Iterable[dict]) -> dict:
    """How often the pseudo-labels of hard constraints agree with the verifier (definitions in the module doc)."""
    hard = [p for p in pairs if p["kind"] == "hard" and p["verifier"] is not None]
    by_level: dict[int, list[dict]] = defaultdict(list)
    by_id: dict[str, list[dict]] = defaultdict(list)
    for row in hard:
        by_level[row["level"]].append(row)
        by_id[row["constraint"]["id"]].append(row)
    return {
        "n_rows": len(hard),
        "overall": _summary(hard),
        "per_level": {str(k): _summary(by_level[k]) for k in sorted(by_level)},
        "per_constraint": {cid: _summary(by_id[cid]) for cid in sorted(by_id)},
        "pairwise": _pairwise(hard),
        "pairwise_per_level": {str(k): _pairwise(by_level[k]) for k in sorted(by_level)},
        "definitions": DEFINITIONS,
    }


def pair_counts(pairs: list[dict]) -> dict:
    """Rows and label balance by constraint kind and by level."""
    def balance(rows: list[dict]) -> dict:
        positive = sum(r["label"] for r in rows)
        return {"rows": len(rows), "positive": positive, "negative": len(rows) - positive,
                "positive_share": _ratio(positive, len(rows))}

    kinds = defaultdict(list)
    levels = defaultdict(list)
    for row in pairs:
        kinds[row["kind"]].append(row)
        levels[row["level"]].append(row)
    return {
        "total": balance(pairs),
        "by_kind": {kind: balance(kinds[kind]) for kind in ("soft", "hard")},
        "by_level": {str(k): balance(levels[k]) for k in sorted(levels)},
        "parents": len({r["parent"] for r in pairs}),
        "constraints": len({(r["parent"], r["level"]) for r in pairs}),
    }


def load_pairs(ctx: RunContext) -> list[dict]:
    """The pseudo-label rows this stage wrote."""
    return read_jsonl(ctx.require(*PSEUDO_LABELS))
