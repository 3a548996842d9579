"""The package's shape: imports flow one way, and no module reaches into another's privates."""

from __future__ import annotations

import ast
from pathlib import Path

import tsne_dist

PACKAGE = Path(tsne_dist.__file__).parent
ALGORITHM_PACKAGES = ("affinity", "arrays", "metrics", "cooccurrence", "neighbors", "tsne", "io")


def _modules(root: Path) -> dict[str, Path]:
    modules = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[:len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(root: Path = PACKAGE) -> tuple[dict[str, set[str]], list[str]]:
    """Module -> the tsne_dist modules it imports (any depth, lazy imports too), and the
    private names one module takes from another (``from .x import _y`` or ``x._y``)."""
    modules = _modules(root)
    edges: dict[str, set[str]] = {name: set() for name in modules}
    private: list[str] = []
    for module, path in modules.items():
        aliases: dict[str, str] = {}
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(module, path, node)
                if not target.startswith("tsne_dist"):
                    continue
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    if full in modules:
                        edges[module].add(full)
                        aliases[alias.asname or alias.name] = full
                    else:
                        edges[module].add(target)
                        if alias.name.startswith("_") and not alias.name.startswith("__"):
                            private.append(f"{module} imports {full}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("tsne_dist"):
                        edges[module].add(alias.name)
                        aliases[alias.asname or alias.name] = alias.name
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                private.append(f"{module} uses {aliases[node.value.id]}.{node.attr}")
    return edges, private


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in edges:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in edges[node]:
                cycles.append(sorted(group))

    for node in edges:
        if node not in index:
            visit(node)
    return cycles


def test_the_import_graph_has_no_cycle_and_no_private_import():
    edges, private = import_graph()
    assert len(edges) > 40  # the walk saw the whole package
    assert find_cycles(edges) == []
    assert private == []


def test_the_checks_catch_a_cycle_and_a_private_import(tmp_path):
    package = tmp_path / "tsne_dist"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from .a import run\n")
    (package / "sub" / "a.py").write_text("def run():\n    from ..b import helper\n    return helper()\n")
    (package / "b.py").write_text("from .sub import a\nfrom . import c\n\ndef helper():\n    return a._state, c\n")
    (package / "c.py").write_text("from .b import _cache\n")
    edges, private = import_graph(package)
    assert find_cycles(edges) == [["tsne_dist.b", "tsne_dist.c", "tsne_dist.sub.a"]]  # b <-> c and b <-> sub.a
    assert sorted(private) == ["tsne_dist.b uses tsne_dist.sub.a._state", "tsne_dist.c imports tsne_dist.b._cache"]


def test_algorithm_packages_never_see_the_config_the_store_or_the_pipeline():
    edges, _ = import_graph()
    forbidden = {"tsne_dist.config", "tsne_dist.store", "tsne_dist.settings", "tsne_dist.cli"}
    for module, targets in edges.items():
        short = module.removeprefix("tsne_dist.").split(".")[0]
        if short in ALGORITHM_PACKAGES:
            reached = {target for target in targets if target in forbidden or target.startswith("tsne_dist.pipeline")}
            assert reached == set(), module


def test_only_the_store_opens_zarr_groups_of_the_run():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        if path.name != "store.py":
            for opener in ("zarr.open_group", "zarr.open_array", '"run.zarr"', "STORE_NAME"):
                assert opener not in text, (path, opener)
            if path.name != "vectors.py":  # io/vectors.py reads a user's own Zarr vectors
                assert "zarr.open(" not in text, path


def test_the_command_starts_without_scikit_learn():
    """scikit-learn takes about 2 s to import; only PCA initialization and silhouettes use it,
    so a command (or a Dask worker importing our functions) does not load it before they run."""
    import subprocess
    import sys

    probe = "import sys, tsne_dist.cli; print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn'))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
