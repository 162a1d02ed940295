"""Structure checks: engine/graph imports no module in a cycle, nobody outside the graph
core touches the channel index's private tables, and importing the engine (or the app)
changes nothing process-wide."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GRAPH = ROOT / "engine" / "graph"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """Every (module, imported names) of `path`, wherever the import statement is: module
    level, inside functions, under `if TYPE_CHECKING:` (type-only imports count: a cycle
    of them is still a design cycle)."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path.parent)
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.append((mod, [alias.name for alias in node.names]))
    return found


def import_graph(folder: Path) -> dict[str, set[str]]:
    """module -> the modules of the same package it imports. `from . import rules`
    imports the submodule `rules`; `from . import X` of anything else, the package."""
    modules = {_module_name(p): p for p in folder.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for mod, names in _imports(path):
            subs = [f"{mod}.{n}" for n in names if f"{mod}.{n}" in modules]
            targets.update(subs)
            if len(subs) < len(names) or not names:
                targets.add(mod)
        graph[name] = {m for m in targets if m in modules and m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None (depth-first search, three colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_engine_graph_has_no_import_cycle() -> None:
    graph = import_graph(GRAPH)
    assert "engine.graph.dependency" in graph and len(graph) >= 12
    assert "engine.graph.channel_index" in graph["engine.graph.dependency"]
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_the_cycle_check_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_import_reader_sees_lazy_and_type_only_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import X\n"
        "def f():\n    from . import c\n")
    (pkg / "b.py").write_text("")
    (pkg / "c.py").write_text("")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert import_graph(pkg)["pkg.a"] == {"pkg.b", "pkg.c"}
    finally:
        ROOT = saved


# the graph core's private state: outside engine/graph/{dependency,channel_index}.py
# (and group.py for a group's own fields) nobody may read or write these on another
# object (`self._index` of an unrelated class is its own business)
PRIVATE = {
    "_ports", "_port_index", "_pruning_history", "_next_prune_serial", "_prune_serial",
    "_port_of", "_group_from_classes", "_locked_mask", "_locked_fine", "_locked_label",
    "_classes", "_made_at", "_port_ids", "_arrays", "_index", "_history", "_derivation",
}
OWNERS = {"engine/graph/dependency.py", "engine/graph/channel_index.py",
          "engine/graph/group.py"}


def test_nobody_else_touches_the_graph_cores_private_state() -> None:
    offenders = []
    for folder in ("engine", "app", "tests", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in OWNERS or rel == "tests/engine/test_structure.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if (isinstance(node, ast.Attribute) and node.attr in PRIVATE
                        and not (isinstance(node.value, ast.Name)
                                 and node.value.id in ("self", "cls"))):
                    offenders.append(f"{rel}:{node.lineno} .{node.attr}")
    assert not offenders, offenders


def _fresh_python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_importing_the_engine_installs_no_global_hooks() -> None:
    code = (
        "import torch.nn.modules.module as M\n"
        "names = [n for n in dir(M) if n.startswith('_global_') and n.endswith('hooks')]\n"
        "before = {n: len(getattr(M, n)) for n in names}\n"
        "import engine, engine.families, engine.plan\n"
        "after = {n: len(getattr(M, n)) for n in names}\n"
        "print(len(names), before == after)\n"
    )
    n, same = _fresh_python(code).split()
    assert int(n) >= 3 and same == "True"


def test_the_refresh_index_follows_a_swapped_block() -> None:
    """No global hook reports that a module was replaced: a touched module the owner's
    index never saw rebuilds it, so the new block's attributes are refreshed too."""
    import torch
    import torchvision
    from torchvision.models.vision_transformer import EncoderBlock

    import engine as tp
    from engine.function.attributes import AttributeRefresher

    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(
        image_size=32, patch_size=16, num_layers=1, num_heads=4, hidden_dim=16, mlp_dim=32,
        num_classes=4).eval()
    refresh = AttributeRefresher(model)
    refresh()  # index built
    block = EncoderBlock(4, 16, 32, 0.0, 0.0)
    model.encoder.layers[0] = block
    tp.prune_multihead_attention_out_channels(block.self_attention, [0, 1, 2, 3])  # one head
    assert block.self_attention.num_heads == 3 and block.num_heads == 4
    refresh([block.self_attention])
    assert block.num_heads == 3
