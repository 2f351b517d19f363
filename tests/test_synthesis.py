"""Stage 01: synthesized instructions are well-formed, conflict-free, cover the libraries and are reproducible."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from conftest import CPU_DEMO, SMOKE

from sif_lib.config.params import load_params, params_from_dict
from sif_lib.constraints import EXCLUDED_HARD_IDS, HARD_CONSTRAINTS, check_constraint, conflicts, usable_hard_ids
from sif_lib.constraints.soft import SOFT_CATEGORIES, soft_conflicts, soft_conflicts_with_hard
from sif_lib.core.errors import InputError
from sif_lib.core.io import read_jsonl
from sif_lib.runner.runs import RunContext
from sif_lib.stages import s01_synthesize_constraints as s01
from sif_lib.synthesis import instructions as synth
from sif_lib.synthesis import paraphrase
from sif_lib.synthesis.seeds import Seed, load_seeds


@pytest.fixture(scope="module")
def demo():
    # The demo's sizes with the full hard pool at the paper's share (the demo itself narrows both).
    params = load_params(CPU_DEMO, overrides={"synthesis": {"hard_ids": None, "hard_ratio": 0.4}})
    instructions, items = s01.synthesize(params, load_seeds())
    return params, instructions, items


def test_record_format(demo):
    params, instructions, _ = demo
    assert len(instructions) == params.synthesis.n_instructions + params.synthesis.n_heldout
    assert [r["id"] for r in instructions] == [f"inst-{i:05d}" for i in range(1, len(instructions) + 1)]
    keys = {"id", "seed_id", "domain", "seed", "constraints", "n_constraints", "prompt", "split"}
    for r in instructions:
        assert set(r) == keys
        assert r["split"] == ("train" if int(r["id"][5:]) <= params.synthesis.n_instructions else "heldout")
        assert r["n_constraints"] == len(r["constraints"])
        assert r["prompt"].startswith(r["seed"] + " ")
        assert r["prompt"] == synth.compose_prompt(r["seed"], [c["description"] for c in r["constraints"]])
        for c in r["constraints"]:
            assert set(c) == {"id", "kind", "category", "description", "kwargs"}
            assert c["description"] in r["prompt"]
            if c["kind"] == "hard":
                assert c["id"] in HARD_CONSTRAINTS and c["id"] not in EXCLUDED_HARD_IDS
                assert c["category"] == c["id"].split(":")[0]
            else:
                assert c["kind"] == "soft" and c["id"].startswith("soft:")
                assert c["category"] in {s.name for s in SOFT_CATEGORIES}


def test_full_pool_covers_every_soft_category_and_most_hard_ids(demo):
    params, instructions, _ = demo
    for split in ("train", "heldout"):
        constraints = [c for r in instructions if r["split"] == split for c in r["constraints"]]
        soft = {c["category"] for c in constraints if c["kind"] == "soft"}
        hard = {c["id"] for c in constraints if c["kind"] == "hard"}
        assert soft == {s.name for s in SOFT_CATEGORIES}, split
        assert len(hard) >= 20, split
    # The round robin reaches every usable hard id in the training split.
    assert hard_train(instructions) == set(usable_hard_ids())
    # Every constraint count 1..5 is populated, evenly, in each split.
    for split, total in (("train", 200), ("heldout", 40)):
        per_n = Counter(r["n_constraints"] for r in instructions if r["split"] == split)
        assert per_n == {n: total // 5 for n in range(1, 6)}
    train = [c for r in instructions if r["split"] == "train" for c in r["constraints"]]
    assert sum(c["kind"] == "hard" for c in train) == round(0.4 * len(train))


def hard_train(instructions):
    return {c["id"] for r in instructions if r["split"] == "train" for c in r["constraints"] if c["kind"] == "hard"}


def test_hard_ids_restrict_the_hard_pool():
    chosen = ["detectable_format:title", "punctuation:no_comma", "keywords:existence"]
    params = params_from_dict({"synthesis": {"n_instructions": 40, "n_heldout": 10, "hard_ratio": 0.5,
                                             "hard_ids": chosen}})
    instructions, _ = s01.synthesize(params, load_seeds())
    hard = [c["id"] for r in instructions for c in r["constraints"] if c["kind"] == "hard"]
    assert hard and set(hard) == set(chosen)
    demo = load_params(CPU_DEMO).synthesis
    assert demo.hard_ids and set(demo.hard_ids) <= set(usable_hard_ids())
    for r in instructions:  # a small pool runs out within one instruction; soft constraints fill the rest
        ids = [c["id"] for c in r["constraints"] if c["kind"] == "hard"]
        assert len(ids) == len(set(ids))


def test_no_instruction_holds_a_conflicting_pair(demo):
    _, instructions, _ = demo
    for r in instructions:
        cs = r["constraints"]
        for i, a in enumerate(cs):
            for b in cs[i + 1:]:
                if a["kind"] == b["kind"] == "hard":
                    assert not conflicts(a["id"], b["id"]), (r["id"], a["id"], b["id"])
                elif a["kind"] == b["kind"] == "soft":
                    assert not soft_conflicts(a, b), (r["id"], a["id"], b["id"])
                else:
                    soft, hard = (a, b) if a["kind"] == "soft" else (b, a)
                    assert not soft_conflicts_with_hard(soft, hard["id"]), (r["id"], soft["id"], hard["id"])


def test_hard_kwargs_rebuild_the_description(demo):
    """The recorded arguments are the ones the sentence states, so the verifier checks what the prompt asks."""
    _, instructions, _ = demo
    seen = 0
    for r in instructions:
        for c in r["constraints"]:
            if c["kind"] == "hard":
                rebuilt = HARD_CONSTRAINTS[c["id"]]().build_description(**c["kwargs"])
                assert synth.normalize_sentence(rebuilt) == c["description"]
                seen += 1
    assert seen > 200


def test_repeat_prompt_repeats_the_seed(demo):
    _, instructions, _ = demo
    repeats = [(r, c) for r in instructions for c in r["constraints"] if c["id"] == "combination:repeat_prompt"]
    assert repeats
    for r, c in repeats:
        assert c["kwargs"]["prompt_to_repeat"] == r["seed"]
        # Repeating the whole request (any level's prompt) starts with the seed, so it passes.
        assert check_constraint(r["prompt"] + "\n\nHere is my answer.", c["id"], c["kwargs"])
        assert not check_constraint("Here is my answer. " + r["seed"], c["id"], c["kwargs"])


def test_train_and_heldout_seeds_are_disjoint(demo):
    _, instructions, _ = demo
    train = {r["seed_id"] for r in instructions if r["split"] == "train"}
    heldout = {r["seed_id"] for r in instructions if r["split"] == "heldout"}
    assert len(train) == 200 and len(heldout) == 40 and not train & heldout


def test_reasoning_mix(demo):
    params, instructions, items = demo
    rl_prompts = sum(r["n_constraints"] for r in instructions if r["split"] == "train")
    train = [m for m in items if m["split"] == "train"]
    heldout = [m for m in items if m["split"] == "heldout"]
    share = params.synthesis.reasoning_share
    assert len(train) == round(share / (1 - share) * rl_prompts)
    assert len(train) / (len(train) + rl_prompts) == pytest.approx(share, abs=0.002)
    assert len(heldout) == params.evaluation.math_items
    assert not {m["question"] for m in train} & {m["question"] for m in heldout}
    assert len({m["id"] for m in items}) == len(items)
    for m in items:
        assert set(m) == {"id", "kind", "question", "answer", "prompt", "source", "split"}
        assert m["kind"] == "reasoning" and m["question"] in m["prompt"] and "boxed" in m["prompt"]


def test_reasoning_from_a_jsonl_source(tmp_path):
    source = tmp_path / "gsm.jsonl"
    source.write_text("".join(json.dumps({"question": f"What is {i} + {i}?", "answer": f"so #### {2 * i}"}) + "\n"
                              for i in range(30)))
    params = load_params(SMOKE, {"synthesis": {"reasoning_source": str(source)}})
    rows, info = synth.compose_reasoning(params, 40, 4)
    # 30 items cannot fill 44: held-out is served first, the shortfall is reported.
    assert sum(r["split"] == "heldout" for r in rows) == 4 and len(rows) == 30
    assert info["reasoning_shortfall"] == 14
    assert all(r["answer"] == str(2 * int(r["question"].split()[2])) for r in rows)


def _stage_files(run_dir: Path) -> dict[str, bytes]:
    """Every file a stage wrote, with the metrics' peak memory (which varies from run to run) left out."""
    files = {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}
    for name in files:
        if name.startswith("metrics/"):
            metrics = json.loads(files[name])
            assert metrics.pop("peak_rss_mb") > 10
            files[name] = json.dumps(metrics, sort_keys=True).encode()
    return files


def test_stage_is_byte_identical_for_the_same_seed(tmp_path):
    metrics = s01.run(RunContext.open(tmp_path / "a", CPU_DEMO))
    s01.run(RunContext.open(tmp_path / "b", CPU_DEMO))
    a, b = _stage_files(tmp_path / "a"), _stage_files(tmp_path / "b")
    assert {"data/instructions.jsonl", "data/reasoning.jsonl", "metrics/01_synthesize_constraints.json",
            "data/instructions/dataset_dict.json"} <= set(a)
    assert any(name.endswith(".arrow") for name in a)
    assert a == b
    assert metrics["soft_categories_covered"] == 25
    assert metrics["hard_ids_covered"] == len(load_params(CPU_DEMO).synthesis.hard_ids)
    assert metrics["seeds"]["used_train"] == 200 and metrics["seeds"]["skipped"] == 0

    import datasets

    loaded = datasets.load_from_disk(str(tmp_path / "a" / "data" / "instructions"))
    rows = read_jsonl(tmp_path / "a" / "data" / "instructions.jsonl")
    assert loaded["train"].num_rows == 200 and loaded["heldout"].num_rows == 40
    first = loaded["train"][0]
    assert first["prompt"] == rows[0]["prompt"]
    assert [json.loads(c["kwargs"]) for c in first["constraints"]] == [c["kwargs"] for c in rows[0]["constraints"]]


def test_a_different_seed_gives_different_data():
    base = load_params(SMOKE)
    other = load_params(SMOKE, {"run": {"seed": 1}})
    seeds = load_seeds()
    a, ma = s01.synthesize(base, seeds)
    b, mb = s01.synthesize(other, seeds)
    assert [r["prompt"] for r in a] != [r["prompt"] for r in b]
    assert [m["question"] for m in ma] != [m["question"] for m in mb]


def test_scarce_seeds_are_cycled_within_each_split():
    seeds = [Seed(f"s{i}", "general", f"Write about topic number {i}.") for i in range(6)]
    params = load_params(SMOKE, {"synthesis": {"n_instructions": 10, "n_heldout": 5}})
    instructions, _ = s01.synthesize(params, seeds)
    train = [r["seed_id"] for r in instructions if r["split"] == "train"]
    heldout = [r["seed_id"] for r in instructions if r["split"] == "heldout"]
    assert len(train) == 10 and len(heldout) == 5 and not set(train) & set(heldout)
    assert len(set(train)) + len(set(heldout)) == 6


def test_too_few_seeds_is_an_input_error():
    params = load_params(SMOKE)
    with pytest.raises(InputError, match="synthesis.seeds"):
        s01.synthesize(params, [Seed("only", "general", "Write a haiku.")])


def test_bad_seed_row_names_file_and_line(tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text('{"task": "Write a poem."}\n{"task": \n')
    params_file = tmp_path / "p.yaml"
    params_file.write_text(f"synthesis:\n  seeds: {seeds}\n  strict: true\n")
    with pytest.raises(InputError, match=r"seeds.jsonl:2"):
        s01.run(RunContext.open(tmp_path / "run", params_file))


def test_faithfulness_check():
    c = {"id": "length_constraints:number_words", "kind": "hard", "category": "length_constraints",
         "description": "Answer with at least 120 words.", "kwargs": {"num_words": 120, "relation": "at least"}}
    assert paraphrase.paraphrase_is_faithful(c, "Your answer should use at least 120 words.")
    assert not paraphrase.paraphrase_is_faithful(c, "Your answer should use at least 150 words.")   # number changed
    assert not paraphrase.paraphrase_is_faithful(c, "Answer with less than 120 words.")             # relation flipped
    assert not paraphrase.paraphrase_is_faithful(c, "answer with at least 120 words")               # no real change
    assert not paraphrase.paraphrase_is_faithful(c, "Rewrite the instruction: answer with at least 120 words, ok.")
    neg = {"id": "keywords:forbidden_words", "kind": "hard", "category": "keywords",
           "description": "Do not include the words 'river', 'valley' anywhere in your response.",
           "kwargs": {"forbidden_words": ["river", "valley"]}}
    assert paraphrase.paraphrase_is_faithful(neg, "Never include the words 'river' or 'valley' anywhere in your reply.")
    assert not paraphrase.paraphrase_is_faithful(neg, "Include the words 'river' and 'valley' anywhere in your reply.")
    assert not paraphrase.paraphrase_is_faithful(neg, "Do not include the word 'river' anywhere in your response.")
    lang = {"id": "language:response_language", "kind": "hard", "category": "language",
            "description": "Write your entire response in Urdu; no other language is allowed.",
            "kwargs": {"language": "ur"}}
    assert not paraphrase.paraphrase_is_faithful(lang, "Write your entire response in Hindi; "
                                                       "no other language is allowed!")


def test_paraphrase_keeps_faithful_rewrites_only():
    params = load_params(SMOKE, {"synthesis": {"n_instructions": 6, "n_heldout": 0}})
    instructions, _ = synth.compose_instructions(params, load_seeds())
    originals = json.loads(json.dumps(instructions))

    def rewrite(requests):
        # Good rewrite for the comma rule, a meaning-changing one for everything else.
        out = []
        for req in requests:
            sentence = req.rsplit("Instruction: ", 1)[1]
            out.append("Please avoid commas anywhere in your response." if "commas" in sentence
                       else "Rewritten instruction: Be brief.")
        return out

    info = paraphrase.paraphrase_instructions(instructions, rewrite)
    no_comma = sum(c["id"] == "punctuation:no_comma" for r in instructions for c in r["constraints"])
    assert info["paraphrase_requests"] > no_comma >= 1
    # The faithful rewrite is kept (every comma rule), the unfaithful ones are not.
    assert info["paraphrased_constraints"] == no_comma
    for new, old in zip(instructions, originals):
        for c, o in zip(new["constraints"], old["constraints"]):
            assert c["kwargs"] == o["kwargs"]
            if c["paraphrased"]:
                assert c["id"] == "punctuation:no_comma" and c["original_description"] == o["description"]
                assert c["description"] == "Please avoid commas anywhere in your response."
            else:
                assert c["description"] == o["description"]
        assert new["prompt"] == synth.compose_prompt(new["seed"], [c["description"] for c in new["constraints"]])


def test_paraphrase_with_the_tiny_model_falls_back():
    params = load_params(SMOKE, {"synthesis": {"n_instructions": 3, "n_heldout": 1, "paraphrase": True}})
    plain = load_params(SMOKE, {"synthesis": {"n_instructions": 3, "n_heldout": 1}})
    seeds = load_seeds()
    rewritten, _ = s01.synthesize(params, seeds)
    reference, _ = s01.synthesize(plain, seeds)
    constraints = [c for r in rewritten for c in r["constraints"]]
    assert constraints and all("paraphrased" in c for c in constraints)
    for r, ref in zip(rewritten, reference):
        for c, o in zip(r["constraints"], ref["constraints"]):
            assert c["kwargs"] == o["kwargs"]
            assert c["description"] == o["description"] or c["paraphrased"]
            if c["paraphrased"]:
                assert paraphrase.paraphrase_is_faithful(o, c["description"])
    # A random-weight model writes noise: the check must reject (nearly) all of it.
    assert sum(c["paraphrased"] for c in constraints) <= len(constraints) // 4


def test_type_mix_figure_counts(demo):
    _, instructions, _ = demo
    fig = s01.type_mix_figure(instructions)
    soft_trace, hard_trace = fig.data
    constraints = [c for r in instructions for c in r["constraints"]]
    assert sum(soft_trace.x) == sum(c["kind"] == "soft" for c in constraints)
    assert sum(hard_trace.x) == sum(c["kind"] == "hard" for c in constraints)
    assert len(soft_trace.y) == 25
    html = s01.counts_table_html(synth.synthesis_metrics(instructions, []))
    assert "Lexical content" in html and "punctuation:no_comma" in html
