"""The rooms' import rules, checked on the source (module- and function-level imports alike):

    top      cosmo.driver, cosmo.evaluation, cosmo.cli, cosmo.report, ...   may import anything
    rooms    actors/, rewards/, learner/                              the core and their own room only
    core     cosmo.config, cosmo.rules, cosmo.data, cosmo.models, ... the core only

and no import cycle among modules at import time. A new module must be given its layer in LAYERS.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cosmo", "actors", "rewards", "learner")
ROOMS = ("actors", "rewards", "learner")

# module prefix -> layer; the longest matching prefix wins
LAYERS: dict[str, str] = {
    "cosmo": "top",  # the package's __init__ only (no prefix match: each module is listed)
    "cosmo.config": "core",
    "cosmo.rules": "core",
    "cosmo.data": "core",
    "cosmo.models": "core",
    "cosmo.algorithms": "core",
    "cosmo.trajectory": "core",
    "cosmo.stats": "core",
    "cosmo.files": "core",
    "cosmo.cli": "top",
    "cosmo.__main__": "top",
    "cosmo.driver": "top",
    "cosmo.evaluation": "top",  # held-out evaluation, tables, suites, the refusal judge, `cosmo eval`
    "cosmo.report": "top",
    "cosmo.benchmarks": "core",
    "cosmo.weights": "core",
    "cosmo.logs": "core",
    "cosmo.vllm_env": "core",
    "cosmo.lazy": "core",
    "cosmo.submit_paths": "top",
    "cosmo.report_plots": "top",
    "cosmo.plan": "top",
    "cosmo.plan_shapes": "top",
    "cosmo.workers": "core",  # imports Ray: the one wait-or-replace helper the three rooms share
    "cosmo.submit": "top",
    "actors": "actors",
    "rewards": "rewards",
    "learner": "learner",
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str) -> str | None:
    best = max((p for p in LAYERS if module == p or (p != "cosmo" and module.startswith(p + "."))), key=len,
               default=None)
    return LAYERS[best] if best is not None else None


def imports(path: Path, module: str, root: Path = ROOT) -> Iterator[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every import of the project's packages."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")[: -node.level] if path.name != "__init__.py" else module.split(".")
                names = [".".join([*base, node.module] if node.module else base)]
            else:
                names = [node.module or ""]
            names = [f"{n}.{a.name}" if _is_submodule(root, f"{n}.{a.name}") else n for n in names for a in node.names]
        else:
            continue
        for name in dict.fromkeys(names):
            if name.split(".")[0] in PACKAGES:
                yield name, node.lineno, id(node) in top_level


def _is_submodule(root: Path, name: str) -> bool:
    path = root.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def violations(root: Path) -> list[str]:
    """Every import that breaks the rules, and every module without a layer."""
    out = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            module = module_name(path, root)
            mine = layer_of(module)
            if mine is None:
                out.append(f"{module}: no layer (add it to LAYERS in tests/test_layers.py)")
                continue
            for name, line, _ in imports(path, module, root):
                theirs = layer_of(name)
                where = f"{path.relative_to(root)}:{line}: {module} ({mine}) imports {name} ({theirs})"
                if mine == "core" and theirs != "core":
                    out.append(where + ": the core imports only the core")
                elif mine in ROOMS and theirs not in ("core", mine):
                    out.append(where + ": a room imports only the core and itself")
    return out


def cycles(root: Path) -> list[list[str]]:
    """Import cycles among the project's modules through module-level imports (what runs at import)."""
    graph: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            module = module_name(path, root)
            graph[module] = {n for n, _, top in imports(path, module, root) if top and n != module}
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            target = nxt if nxt in graph else nxt.rsplit(".", 1)[0]
            if target not in graph or target == node:
                continue
            if state.get(target) == "open":
                found.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, [*stack, target])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def test_imports_point_down():
    assert violations(ROOT) == []


def test_no_import_cycles():
    assert cycles(ROOT) == []


def test_the_check_catches_a_planted_violation_and_a_cycle(tmp_path):
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "actors" / "rollout.py").write_text("from learner.weights import pack\n")  # room -> other room
    (tmp_path / "learner" / "weights.py").write_text("def pack():\n    from cosmo.driver import train\n")  # room -> top
    (tmp_path / "cosmo" / "config.py").write_text("import cosmo.data.loader\n")
    (tmp_path / "cosmo" / "data").mkdir()
    (tmp_path / "cosmo" / "data" / "__init__.py").write_text("")
    (tmp_path / "cosmo" / "data" / "loader.py").write_text("import cosmo.config\n")  # a cycle, both core
    (tmp_path / "cosmo" / "mystery.py").write_text("")
    found = violations(tmp_path)
    assert any("actors/rollout.py:1: actors.rollout (actors) imports learner.weights (learner)" in v for v in found)
    assert any("learner/weights.py:2: learner.weights (learner) imports cosmo.driver (top)" in v for v in found)
    assert "cosmo.mystery: no layer (add it to LAYERS in tests/test_layers.py)" in found
    assert len(found) == 3
    assert cycles(tmp_path) == [["cosmo.config", "cosmo.data.loader", "cosmo.config"]]
