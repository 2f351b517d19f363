"""The cold start's SFT set: think/answer pairs written by no model other than the policy itself.

The paper cold-starts a non-reasoning model (its Qwen2.5-7B-Instruct row) with SFT before RL, on data a
stronger model wrote. Here no stronger model exists, and none is wanted: by default the SFT teaches the *format*
``<think>…</think>answer`` and nothing about meeting constraints, so that any later instruction-following gain
comes from RL alone. ``cold_start.rewrite_answers`` is the one deliberate exception (below): programs, not a
model, make the answers meet their rules, so that RL can start on rules the policy never met.

* **Math items** (:mod:`sif_lib.synthesis.stepped_math`): the think part is the generator's worked solution,
  computed alongside the answer, and the answer is ``The answer is \\boxed{N}.``
* **Instruction items**: one per seed task reserved for the cold start (:func:`~sif_lib.synthesis.instructions.
  compose_cold_start`; no RL or held-out instruction uses those seeds). The think part is a plan built by rule from
  the item's own constraint records; the answer is the base policy's own sampled response to the prompt, whether
  or not it meets them.

Math questions are drawn from their own random stream; stage 01 drops any of them from the RL set and the
hold-out (:func:`cold_start_questions`).
"""

from __future__ import annotations

import re

from sif_lib.cold_start.rule_rewrites import rewrite
from sif_lib.config.params import Params
from sif_lib.constraints.extraction import THINK_CLOSE, THINK_OPEN
from sif_lib.policy.generation import chat_messages
from sif_lib.synthesis import stepped_math
from sif_lib.synthesis.instructions import question_key

MATH_SOURCE = "generator"    # who wrote a math item's think part and answer
PLAN_SOURCE = "rule"         # who wrote an instruction item's think part
ANSWER_SOURCE = "policy"     # who wrote an instruction item's answer: the base policy, sampled
REWRITTEN_SOURCE = "policy, rewritten by rule"  # the same, changed by cold_start.rule_rewrites to meet its rules


def cold_start_math(params: Params) -> list[dict]:
    """``cold_start.n_math`` stepped problems, a third each of 1, 2 and 3+ steps, from the cold start's own seed."""
    n = params.cold_start.n_math
    items: list[dict] = []
    for steps in (1, 2, 3):
        count = n // 3 + (1 if steps <= n % 3 else 0)
        items += stepped_math.generate_stepped_items(count, f"{params.run.seed}:cold-start:{steps}", steps)
    return items


def cold_start_questions(params: Params) -> set[str]:
    """The normalized math questions of the cold start (empty when it is off), which stage 01 leaves out."""
    if not params.cold_start.enabled:
        return set()
    return {question_key(item["question"]) for item in cold_start_math(params)}


def plan(instruction: dict) -> str:
    """The think part of an instruction item: the request and its constraints as a numbered plan."""
    lines = [f"The request: {instruction['seed'].strip()}", "The answer must:"]
    lines += [f"{i}. {c['description'].strip()}" for i, c in enumerate(instruction["constraints"], start=1)]
    return "\n".join(lines)


def completion(think: str, answer: str) -> str:
    """The assistant turn the SFT teaches: the think part in tags, then the answer."""
    return f"{THINK_OPEN}\n{think.strip()}\n{THINK_CLOSE}\n{answer.strip()}"


def math_rows(items: list[dict]) -> list[dict]:
    return [{"id": item["id"], "kind": "math", "prompt": item["prompt"], "think": stepped_math.worked_solution(item),
             "answer": f"The answer is \\boxed{{{item['answer']}}}.", "think_source": MATH_SOURCE,
             "answer_source": MATH_SOURCE, "steps": item["steps"], "gold": item["answer"]} for item in items]


_SENTENCE_END = re.compile(r"[.!?][\"')\]*]*(?=\s|$)")


def trim_to_sentence_end(answer: str) -> str:
    """``answer`` up to the end of its last complete sentence, its lines as they were ("" when none ends). A stop,
    ! or ? followed by a space or the end counts as an end, so "e.g." does too: a simplification."""
    ends = [m.end() for m in _SENTENCE_END.finditer(answer)]
    return answer[:ends[-1]].rstrip() if ends else ""


def instruction_rows(instructions: list[dict], answers: list[str], policy: str,
                     rewrite_answers: bool = False, cut: list[bool] | None = None) -> list[dict]:
    """Instruction items with the base policy's answers (``policy`` names it); empty answers are left out.

    ``cut`` marks answers that ran to their token budget: each is trimmed to its last complete sentence
    (:func:`trim_to_sentence_end`; left out when none ends). With ``rewrite_answers``, each answer is then
    rewritten by program to meet the item's hard constraints (:func:`~sif_lib.cold_start.rule_rewrites.rewrite`;
    its ``answer_source`` then says so when the text changed), and an item whose answer cannot be made to meet them
    all, or is degenerate, is left out."""
    if len(answers) != len(instructions) or (cut is not None and len(cut) != len(answers)):
        raise ValueError(f"{len(instructions)} instructions, {len(answers)} answers and "
                         f"{len(answers) if cut is None else len(cut)} cut flags")
    rows = []
    for i, (inst, answer) in enumerate(zip(instructions, answers)):
        if cut is not None and cut[i]:
            answer = trim_to_sentence_end(answer)
        source = ANSWER_SOURCE
        if rewrite_answers and answer.strip():
            rewritten = rewrite(answer, inst["constraints"], inst["seed"])
            if rewritten is None:
                continue
            source = REWRITTEN_SOURCE if rewritten != answer.strip() else ANSWER_SOURCE
            answer = rewritten
        if answer.strip():
            rows.append({"id": inst["id"], "kind": "instruction", "prompt": inst["prompt"], "think": plan(inst),
                         "answer": answer, "think_source": PLAN_SOURCE, "answer_source": source, "model": policy,
                         "n_constraints": inst["n_constraints"],
                         "constraints": [c for c in inst["constraints"] if c.get("kind") == "hard"],
                         **({"trimmed": True} if cut is not None and cut[i] else {})})
    return rows


def sft_examples(rows: list[dict], system_prompt: str | None = None, think: bool = True) -> list[dict]:
    """TRL's conversational prompt-completion format (the loss falls on the completion only), with the system
    message every later stage's prompts carry (``model.system_prompt``). Without ``think`` the completion is the
    answer alone; a math item's worked solution then stays in front of its answer, in plain text."""
    def content(row: dict) -> str:
        if think:
            return completion(row["think"], row["answer"])
        if row["kind"] == "math":
            return f"{row['think'].strip()}\n{row['answer'].strip()}"
        return row["answer"].strip()

    return [{"prompt": chat_messages(row["prompt"], system_prompt),
             "completion": [{"role": "assistant", "content": content(row)}]} for row in rows]
