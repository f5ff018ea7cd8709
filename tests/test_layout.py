"""The tree reads like the architecture: no import cycles, commands that only parse and print.

Imports are read with ``ast`` from the source folders (the installed names map
``watcher/`` -> ``trackprint.watcher`` and so on, as in pyproject.toml), every
import counted, also those inside functions: a cycle there is still two
modules that cannot be read alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"trackprint": "trackprint", "watcher": "trackprint.watcher", "analyzer": "trackprint.analyzer",
           "pyengine": "trackprint.pyengine", "persister": "trackprint.persister"}


def modules() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                out.add(name)
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(path, known) - {name} for name, path in known.items()}


def test_the_layout_maps_every_stage_folder():
    known = modules()
    for package in ("trackprint.watcher.service", "trackprint.analyzer.worker", "trackprint.analyzer.engines",
                    "trackprint.pyengine.engine", "trackprint.persister.service", "trackprint.bus"):
        assert package in known, package


def test_no_import_cycles():
    g = graph()
    # a package importing its own submodules (re-exports) is not a cycle of concerns
    edges = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in g.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_commands_import_no_other_command():
    g = graph()
    for module, deps in g.items():
        if module.startswith("trackprint.commands."):
            others = {d for d in deps if d.startswith("trackprint.commands.") and d != module}
            assert not others, f"{module} imports {others}"


def test_engine_choice_is_made_in_one_module():
    """Only trackprint.analyzer.engines talks to the Rust server or calls the Python engine's entry."""
    for module, path in modules().items():
        text = path.read_text()
        if module in ("trackprint.analyzer.engines", "trackprint.pyengine.engine"):
            continue
        assert "/v1/fingerprint" not in text, f"{module} calls the Rust server itself"
        assert "analyze_file(" not in text, f"{module} calls the Python engine itself"
