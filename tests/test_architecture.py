"""The shape of the package: no import cycle, layers that only import downwards, the import rules between the
shared infrastructure (core, config, runner, policy), constraints, grpo, evaluation and analysis, no two modules
of one name, modules a reader can hold in mind, imports at the top, one stage table that everything derives from,
and TRL's private surface in one place."""

from __future__ import annotations

import ast
import importlib
import inspect
from collections import Counter
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "sif_lib"
# Bottom to top; a module may import its own layer and the ones below. At the bottom, side by side, the utilities
# (core) and the verifiers every stage checks with (constraints): neither imports anything of sif_lib but itself
# (SELF_CONTAINED). Then the params schema (config), on the utilities alone. Then the runner and the policy's runtime,
# side by side: the runner reads model specs before a run and copies a policy's cached answers between seed runs,
# and those answers report progress to it and name the stage that writes what they read. Then the method's concerns
# in the order its stages use them, the analysis across runs, the stages, and the entry points.
LAYERS = [("core", "constraints"), ("config",), ("runner", "policy"), ("synthesis",), ("labels",), ("reward",),
          ("reward_model",), ("rm_service",), ("grpo", "cold_start"), ("evaluation",), ("analysis",), ("stages",),
          ("widgets", "bench", "cli", "__main__")]
# The import rules the layers alone do not say, for every import, at the top or inside a function. Importer ->
# the sif_lib packages it must not import: the infrastructure under every stage (params, runner, policy) knows no
# constraint, training or evaluation; evaluation judges a policy without importing training (stage 06's policy is
# found through policy.answers), and the analysis across runs reads what runs wrote without importing training.
_UNDER_EVERY_STAGE = ("sif_lib.constraints", "sif_lib.grpo", "sif_lib.evaluation")
FORBIDDEN = {"sif_lib.config": _UNDER_EVERY_STAGE,
             "sif_lib.runner": _UNDER_EVERY_STAGE,
             "sif_lib.policy": _UNDER_EVERY_STAGE,
             "sif_lib.evaluation": ("sif_lib.grpo",),
             "sif_lib.analysis": ("sif_lib.grpo",)}
# Packages that import nothing of sif_lib but themselves: the utilities and the verifiers stand alone.
SELF_CONTAINED = ("sif_lib.core", "sif_lib.constraints")
# A module may share its name with a package of sif_lib only for a reason written here.
NAMED_LIKE_A_PACKAGE = {"sif_lib.grpo.config": "GRPO's own config (params to GRPOConfig); the package config is the "
                                               "params schema and has no config module"}
# Modules allowed imports of sif_lib inside functions, and why.
LAZY_IMPORTS = {"sif_lib.cli": "each subcommand imports what it runs, so that `sif params` or `sif status` "
                               "answer without importing training or serving code"}
# A function longer than this is split into named steps, unless it is listed here with the reason it reads best
# whole; a listed one still may not grow past LONG_FUNCTION_CEILING. Modules have no line cap: a module holds one
# concern, however long (the IFEval registry is one small class per id, in one file).
MAX_FUNCTION_LINES = 100
LONG_FUNCTION_CEILING = 150
LONG_ON_PURPOSE = {
    "sif_lib/cli.py:build_parser": "the command line's whole argument table, one block per subcommand",
    "sif_lib/reward_model/training.py:_train": "one training run of the reward model, from the pairs to the saved "
                                               "and verified model, in the order it happens",
    "sif_lib/grpo/trainer.py:train_grpo": "builds TRL's GRPOTrainer from its parts and runs it, in the order TRL "
                                          "needs them",
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts)
        found[name[:-len(".__init__")] if name.endswith(".__init__") else name] = path
    return found


def _statements(name: str, source: str, modules: dict[str, Path]) -> list[tuple[str, bool, int, str]]:
    """The sif_lib imports of module ``name``: (imported module, at top level?, line, the statement); ``from pkg
    import mod`` counts as importing mod, and a relative import is read as the absolute one it means."""
    tree = ast.parse(source)
    top = {id(n) for n in tree.body}
    package = name if name in modules and modules[name].name == "__init__.py" else name.rpartition(".")[0]
    edges = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            if base == "sif_lib" or base.startswith("sif_lib."):
                for alias in node.names:
                    target = f"{base}.{alias.name}"
                    edges.append((target if target in modules else base, id(node) in top, node.lineno,
                                  ast.unparse(node)))
        elif isinstance(node, ast.Import):
            edges += [(a.name, id(node) in top, node.lineno, ast.unparse(node)) for a in node.names
                      if a.name == "sif_lib" or a.name.startswith("sif_lib.")]
    return edges


def _imports(modules: dict[str, Path]) -> dict[str, list[tuple[str, bool]]]:
    """module -> [(imported sif_lib module, at top level?)]."""
    return {name: [(target, top) for target, top, _, _ in _statements(name, path.read_text(), modules)]
            for name, path in modules.items()}


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _rule_breaks(name: str, statements: list[tuple[str, bool, int, str]]) -> list[str]:
    """Each import of module ``name`` that FORBIDDEN or SELF_CONTAINED rules out, as one line naming both."""
    broken = []
    for target, top, line, statement in statements:
        where = f"{name}, line {line}{'' if top else ' (not at the top level)'}: `{statement}`"
        for importer, banned in FORBIDDEN.items():
            hit = next((b for b in banned if _within(target, b)), None)
            if _within(name, importer) and hit:
                broken.append(f"{where}: {importer} must not import {hit}")
        for package in SELF_CONTAINED:
            if _within(name, package) and not _within(target, package):
                broken.append(f"{where}: {package} imports nothing of sif_lib but itself")
    return broken


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


def test_the_import_rules_hold():
    """Nothing in config, runner or policy imports constraints, grpo or evaluation; evaluation and analysis import
    nothing of grpo; core and constraints import nothing of sif_lib but themselves."""
    modules = _modules()
    broken = [line for name, path in sorted(modules.items())
              for line in _rule_breaks(name, _statements(name, path.read_text(), modules))]
    assert not broken, "\n".join(broken)


def test_the_import_rules_see_every_kind_of_import():
    """An import inside a function, a plain ``import``, and a relative one break the rules as a top one does."""
    modules = _modules()
    source = ("from sif_lib.core.io import read_json\n"
              "import sif_lib.evaluation.report\n"
              "def f():\n    from sif_lib.grpo.policy_export import export_merged\n"
              "def g():\n    from ..constraints import soft\n")
    broken = _rule_breaks("sif_lib.runner.fake", _statements("sif_lib.runner.fake", source, modules))
    assert broken == [
        "sif_lib.runner.fake, line 2: `import sif_lib.evaluation.report`: sif_lib.runner must not import "
        "sif_lib.evaluation",
        "sif_lib.runner.fake, line 4 (not at the top level): `from sif_lib.grpo.policy_export import export_merged`: "
        "sif_lib.runner must not import sif_lib.grpo",
        "sif_lib.runner.fake, line 6 (not at the top level): `from ..constraints import soft`: sif_lib.runner must "
        "not import sif_lib.constraints"], broken
    broken = _rule_breaks("sif_lib.core.fake", _statements("sif_lib.core.fake", source, modules))
    assert [line.split(":")[0] for line in broken] == [
        "sif_lib.core.fake, line 2", "sif_lib.core.fake, line 4 (not at the top level)",
        "sif_lib.core.fake, line 6 (not at the top level)"], broken
    assert all(line.endswith("sif_lib.core imports nothing of sif_lib but itself") for line in broken)
    assert _rule_breaks("sif_lib.constraints.fake", _statements("sif_lib.constraints.fake", source, modules))[0] \
        .endswith("`from sif_lib.core.io import read_json`: sif_lib.constraints imports nothing of sif_lib but itself")
    for package in ("sif_lib.evaluation", "sif_lib.analysis"):
        assert _rule_breaks(f"{package}.fake", _statements(f"{package}.fake", source, modules)) == [
            f"{package}.fake, line 4 (not at the top level): `from sif_lib.grpo.policy_export import export_merged`: "
            f"{package} must not import sif_lib.grpo"]


def test_no_two_modules_share_a_name():
    """A module's file name says which one it is: no two modules of one name in different packages, and none named
    like a package of sif_lib unless :data:`NAMED_LIKE_A_PACKAGE` says why."""
    modules = [m for m, path in _modules().items() if path.name not in ("__init__.py", "__main__.py")]
    shared = {name: n for name, n in Counter(m.rpartition(".")[2] for m in modules).items() if n > 1}
    assert not shared, shared
    packages = {p.parent.name for p in PACKAGE.rglob("__init__.py")}
    like = [m for m in modules if m.rpartition(".")[2] in packages]
    assert sorted(like) == sorted(NAMED_LIKE_A_PACKAGE), like


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


def _functions() -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef, bool]]:
    """Every function and method of the package as ``(path:name, node, at module level)``."""
    found = []
    for path in _modules().values():
        tree = ast.parse(path.read_text())
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((f"{path.relative_to(REPO)}:{node.name}", node, id(node) in top))
    return found


def test_functions_stay_short():
    lengths = {key: node.end_lineno - node.lineno + 1 for key, node, _ in _functions()}
    long = {key: n for key, n in lengths.items() if n > MAX_FUNCTION_LINES and key not in LONG_ON_PURPOSE}
    assert not long, long
    grown = {key: lengths.get(key) for key in LONG_ON_PURPOSE if not lengths.get(key, 0) <= LONG_FUNCTION_CEILING}
    assert not grown, grown  # listed ones must exist and stay under the ceiling


def _body_key(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    """What a function does: its parameter names and body, without its name, docstring or annotations."""
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    params = [a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs]
    return repr(params) + ast.dump(ast.Module(body=body, type_ignores=[]))


def test_no_function_is_defined_twice():
    """A module-level function written out again elsewhere (under any name) is one function imported twice."""
    by_body: dict[str, list[str]] = {}
    for key, node, top in _functions():
        if top:
            by_body.setdefault(_body_key(node), []).append(key)
    assert not [keys for keys in by_body.values() if len(keys) > 1]


def test_the_duplicate_check_sees_a_copy_under_another_name():
    one = ast.parse('def _pct(value: float) -> str:\n    """A share."""\n    return f"{100 * value:.1f}"').body[0]
    two = ast.parse('def percent(value):\n    return f"{100 * value:.1f}"').body[0]
    other = ast.parse('def percent(value):\n    return f"{100 * value:+.1f}"').body[0]
    assert _body_key(one) == _body_key(two) != _body_key(other)


def test_one_stage_table():
    """Each stage of the table has its notebook and its module with ``run``, and knows itself; artifacts map back
    to the stage that writes them; the runner, --from/--to and --reuse read the same table."""
    from sif_lib.runner import pipeline, stage_table

    # 00, the optional cold start, first
    assert [s.number for s in stage_table.STAGES] == list(range(len(stage_table.STAGES)))
    # Only optional stages say which boolean params field enables them, and that field exists.
    assert [s.name for s in stage_table.STAGES if s.enabled_by] == ["00_cold_start"]
    from sif_lib.config.params import Params
    assert all(isinstance(Params().value(s.enabled_by), bool) for s in stage_table.STAGES if s.enabled_by)
    for entry in stage_table.STAGES:
        assert (REPO / "notebooks" / entry.notebook).is_file(), entry.name
        module = importlib.import_module(entry.module)
        assert callable(module.run) and module.STAGE == entry, entry.name
        assert "ctx" in inspect.signature(module.run).parameters
        for artifact in entry.artifacts:
            assert stage_table.producer(artifact) == entry and stage_table.producer(artifact + "/x") == entry
        if entry.finish:
            name, _, function = entry.finish.partition(":")
            assert callable(getattr(importlib.import_module(name), function))
    assert stage_table.producer("data/curriculum.jsonl").name == "02_decompose_curriculum"
    assert stage_table.select() == list(stage_table.STAGE_NAMES)
    # No stage name is spelled out elsewhere in the package: the table is the only list.
    for module, path in _modules().items():
        if module in ("sif_lib.runner.stage_table",):
            continue
        text = path.read_text()
        spelled = [s.name for s in stage_table.STAGES if f'"{s.name}"' in text]
        assert not spelled, (module, spelled)
    assert pipeline.STAGE_NAMES is stage_table.STAGE_NAMES


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
