"""The import graph of ``src/ctpheno`` keeps the layers of ``docs/architecture.md``.

Every ``import`` statement is read with :mod:`ast`, at module level and inside functions alike
(a function-level import that dodges a cycle is still a cycle), and resolved to a module of the
package. Two rules follow:

- no import cycle between modules;
- imports point down the layers. In a stage package (``ingest``, ``preprocess``, ``features``,
  ``train``, ``eval``, ``synth``, ``export``) the kernels (pure functions; every module that is not
  ``stage.py``, ``cli.py``, ``__main__.py`` or ``run.py``) import no ``stage.py`` and no entry
  module, nor the top-level ``ctpheno.cli`` / ``ctpheno.pipeline``; a ``stage.py`` imports no
  entry module; the bottom layer ``ctpheno.io`` imports no stage package.

The body of ``if __name__ == "__main__":`` is the entry layer whatever file it sits in (the seed
entry points ``python -m ctpheno.train.cluster`` etc. are such two-line shims): it runs only when
the file is executed as a script, as a module object of its own (``__main__``), so no other module
reaches it through an import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "ctpheno"
STAGE_PACKAGES = ("ingest", "preprocess", "features", "train", "eval", "synth", "export")
ENTRY_NAMES = ("cli", "__main__", "run")
TOP_ENTRY = ("ctpheno.cli", "ctpheno.pipeline", "ctpheno.__main__", "ctpheno.clicommon", "ctpheno.benchcli")


def _modules(src: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package ``__init__``) for every file of the package."""
    out = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


def _is_main_guard(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return (isinstance(node, ast.If) and isinstance(test, ast.Compare)
            and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators))


def _import_nodes(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import of the module, at any depth, except inside ``if __name__ == "__main__":``."""
    found, todo = [], [n for n in tree.body if not _is_main_guard(n)]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return found


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom,
             modules: dict[str, tuple[Path, bool]]) -> set[str]:
    """The modules of the package an import statement loads (the innermost one that exists)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            origin = ".".join(base + ([node.module] if node.module else []))
        else:
            origin = node.module or ""
        names = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in modules else origin for a in node.names]
    found = set()
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name.startswith(PACKAGE) and name != module:
            found.add(name)
    return found


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    modules = _modules(src)
    graph = {}
    for name, (path, is_package) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[name] = set().union(*(_targets(name, is_package, n, modules) for n in _import_nodes(tree)))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def layer(module: str) -> str:
    """``kernel`` (a package ``__init__`` too), ``stage`` or ``entry`` inside a stage package; ``io``;
    ``entry`` for the top-level command line and pipeline; ``other`` for the shared infrastructure
    (config, cluster, errors ...)."""
    parts = module.split(".")
    if module in TOP_ENTRY:
        return "entry"
    if len(parts) > 1 and parts[1] == "io":
        return "io"
    if len(parts) > 1 and parts[1] in STAGE_PACKAGES:
        if parts[-1] in ENTRY_NAMES:
            return "entry"
        return "stage" if parts[-1] == "stage" else "kernel"
    return "other"


RANK = {"kernel": 0, "stage": 1, "entry": 2}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """``"a -> b"`` for every import that points up a layer, or from ``io`` into a stage package."""
    bad = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            low, high = layer(module), layer(target)
            upward = low in RANK and high in RANK and RANK[high] > RANK[low]
            base_up = low in ("io", "other") and (high in RANK or target.split(".")[1] in STAGE_PACKAGES)
            if upward or base_up:
                bad.append(f"{module} ({low}) -> {target} ({high})")
    return bad


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles (break them by moving the shared code down a layer):\n" + "\n".join(
        " <-> ".join(c) for c in found)


def test_imports_point_down_the_layers():
    bad = upward_imports(import_graph())
    assert not bad, ("upward imports (kernel -> stage.py -> cli.py; io, config, cluster import no stage):\n"
                     + "\n".join(bad))


def test_the_checks_see_function_level_imports_and_cycles(tmp_path):
    """The walker finds a cycle and an upward import hidden in function bodies (and skips ``__main__``)."""
    pkg, io = tmp_path / PACKAGE / "train", tmp_path / PACKAGE / "io"
    pkg.mkdir(parents=True)
    io.mkdir()
    for init in (tmp_path / PACKAGE / "__init__.py", pkg / "__init__.py", io / "__init__.py"):
        init.write_text("")
    (pkg / "kernel.py").write_text("def main():\n    from .stage import run\n")
    (pkg / "stage.py").write_text("from .kernel import main\n")
    (pkg / "shim.py").write_text("if __name__ == '__main__':\n    from .cli import main\n")
    (pkg / "cli.py").write_text("")
    (io / "reader.py").write_text("class Reader:\n    def read(self):\n        import ctpheno.train.kernel\n")
    graph = import_graph(tmp_path)
    assert cycles(graph) == [["ctpheno.train.kernel", "ctpheno.train.stage"]]
    assert upward_imports(graph) == ["ctpheno.io.reader (io) -> ctpheno.train.kernel (kernel)",
                                     "ctpheno.train.kernel (kernel) -> ctpheno.train.stage (stage)"]
    assert graph["ctpheno.train.shim"] == set()


@pytest.mark.parametrize("module, expected", [
    ("ctpheno.features.qct", "kernel"), ("ctpheno.features.airways.stage", "stage"),
    ("ctpheno.preprocess.run", "entry"), ("ctpheno.cli", "entry"), ("ctpheno.io.readers", "io"),
    ("ctpheno.config.base", "other"), ("ctpheno.features", "kernel"), ("ctpheno.clicommon", "entry"),
])
def test_layers_are_named_by_file(module, expected):
    assert layer(module) == expected
