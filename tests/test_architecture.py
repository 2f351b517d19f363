"""The shape of the package: no import cycle, layers that only import downwards, modules a reader can hold in
mind, imports at the top, one stage table that everything derives from, and TRL's private surface in one place."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "sif_lib"
# Bottom to top; a module may import its own layer and the ones below. core and constraints are the shared
# infrastructure (constraints' verifiers are what every stage checks with).
LAYERS = [("core", "constraints"), ("synthesis",), ("labels",), ("reward",), ("grpo", "cold_start"), ("evaluation",), ("stages",),
          ("widgets", "bench", "cli", "__main__")]
# Modules allowed imports of sif_lib inside functions, and why.
LAZY_IMPORTS = {"sif_lib.cli": "each subcommand imports what it runs, so that `sif params` or `sif status` "
                               "answer without importing training or serving code"}
MAX_LINES = 500
LONG_ON_PURPOSE = {"sif_lib/constraints/hard.py": "the IFEval registry: one small class per id, in one file"}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts)
        found[name[:-len(".__init__")] if name.endswith(".__init__") else name] = path
    return found


def _imports(modules: dict[str, Path]) -> dict[str, list[tuple[str, bool]]]:
    """module -> [(imported sif_lib module, at top level?)]; ``from pkg import mod`` counts as importing mod."""
    graph: dict[str, list[tuple[str, bool]]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        top = {id(n) for n in tree.body}
        edges = []
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sif_lib") and not node.level:
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    edges.append((target if target in modules else node.module, id(node) in top))
            elif isinstance(node, ast.Import):
                edges += [(a.name, id(node) in top) for a in node.names if a.name.startswith("sif_lib")]
        graph[name] = edges
    return graph


def _layer(module: str) -> int:
    part = module.split(".")[1] if "." in module else ""
    for i, names in enumerate(LAYERS):
        if part in names:
            return i
    raise AssertionError(f"{module} belongs to no layer")


def test_no_import_cycle():
    """Every import counts, at the top or inside a function: a cycle is a design fault either way."""
    graph = {m: {t for t, _ in edges if t != m} for m, edges in _imports(_modules()).items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt in graph and not state.get(nxt):
                visit(nxt)
        path.pop()
        state[node] = 2

    for module in sorted(graph):
        if not state.get(module):
            visit(module)


def test_layers_import_only_downwards():
    wrong = [f"{m} imports {t}" for m, edges in _imports(_modules()).items() if m != "sif_lib"
             for t, _ in edges if t != "sif_lib" and _layer(t) > _layer(m)]
    assert not wrong, wrong


def test_leaf_helpers_import_nothing_of_ours():
    graph = _imports(_modules())
    assert graph["sif_lib.core.errors"] == []
    assert {t for t, _ in graph["sif_lib.core.io"]} == {"sif_lib.core.errors"}


def test_imports_are_at_the_top():
    lazy = {m: [t for t, top in edges if not top] for m, edges in _imports(_modules()).items()}
    lazy = {m: ts for m, ts in lazy.items() if ts}
    assert set(lazy) <= set(LAZY_IMPORTS), {m: ts for m, ts in lazy.items() if m not in LAZY_IMPORTS}
    assert sum(len(ts) for ts in lazy.values()) <= 20
    for module in lazy:  # the reason is written where the imports are
        assert "import" in _modules()[module].read_text().split("def ", 1)[0]


def test_modules_stay_small():
    long = {str(p.relative_to(REPO)): n for p in _modules().values()
            if (n := len(p.read_text().splitlines())) > MAX_LINES and str(p.relative_to(REPO)) not in LONG_ON_PURPOSE}
    assert not long, long


def test_one_stage_table():
    """Each stage of the table has its notebook and its module with ``run``, and knows itself; artifacts map back
    to the stage that writes them; the runner, --from/--to and --reuse read the same table."""
    from sif_lib.core import pipeline, stages

    assert [s.number for s in stages.STAGES] == list(range(len(stages.STAGES)))  # 00, the optional cold start, first
    # Only optional stages say which boolean params field enables them, and that field exists.
    assert [s.name for s in stages.STAGES if s.enabled_by] == ["00_cold_start"]
    from sif_lib.core.config import Params
    assert all(isinstance(Params().value(s.enabled_by), bool) for s in stages.STAGES if s.enabled_by)
    for entry in stages.STAGES:
        assert (REPO / "notebooks" / entry.notebook).is_file(), entry.name
        module = importlib.import_module(entry.module)
        assert callable(module.run) and module.STAGE == entry, entry.name
        assert "ctx" in inspect.signature(module.run).parameters
        for artifact in entry.artifacts:
            assert stages.producer(artifact) == entry and stages.producer(artifact + "/x") == entry
        if entry.finish:
            name, _, function = entry.finish.partition(":")
            assert callable(getattr(importlib.import_module(name), function))
    assert stages.producer("data/curriculum.jsonl").name == "02_decompose_curriculum"
    assert stages.select() == list(stages.STAGE_NAMES)
    # No stage name is spelled out elsewhere in the package: the table is the only list.
    for module, path in _modules().items():
        if module in ("sif_lib.core.stages",):
            continue
        text = path.read_text()
        spelled = [s.name for s in stages.STAGES if f'"{s.name}"' in text]
        assert not spelled, (module, spelled)
    assert pipeline.STAGE_NAMES is stages.STAGE_NAMES


def test_trl_private_surface_is_the_one_pinned():
    """TRL's private method that :mod:`sif_lib.grpo.trl_hooks` overrides still has the parameters it was written
    for; a TRL release that changes them fails here, not in the middle of a training run."""
    from sif_lib.grpo import trl_hooks

    assert trl_hooks.hooked_signatures() == trl_hooks.HOOKED
    overridden = [name for name, value in vars(trl_hooks.trainer_class()).items()
                  if name.startswith("_") and not name.startswith("__") and callable(value)]
    from trl import GRPOTrainer

    private_of_trl = [name for name in overridden if hasattr(GRPOTrainer, name)]
    assert private_of_trl == list(trl_hooks.HOOKED), private_of_trl


def test_every_package_is_listed_for_the_wheel():
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(REPO).parts) for p in PACKAGE.rglob("__init__.py")}
    assert listed == on_disk | {"sif_lib.notebooks"}
