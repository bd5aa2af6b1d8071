"""The package's import graph: no import circle, and no module imports from a higher layer.

The graph is read from the source (every ``import`` statement, also those inside functions), so a
lazy import counts like any other.  Layers, lowest first; a module belongs to the layer of its longest
listed prefix, may import its own layer and the ones below, never one above.  See docs/architecture.md.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "redimnet"

LAYERS = [
    ("errors", "_version", "_utils", "examples"),  # foundations: the error catalogue, private helpers, shipped data
    ("audio",),  # audio in: files, bytes, blocks at 16 kHz
    ("frontend", "fast", "layers"),  # features and the network's building blocks (and their inference forms)
    ("models",),  # the model families: configuration, key maps, networks, checkpoints
    ("hub",),  # named architectures, published weights: tables, download, name resolution
    ("embedding", "fast.optimize", "fast.int8"),  # audio -> embeddings: pipeline, embedder, files, export, cosine
    ("evaluation",),  # scores: back-ends, calibration, metrics, trials
    ("speakers",),  # enrolled speakers: stores, scoring decisions
    ("diarization",),  # who spoke when: VAD, clustering, segments
    ("training", "recipes", "testing"),  # training, its recipes, synthetic test data
    ("service", "cli", "metrics", "__main__", ""),  # the adapters: HTTP, command line; the public names
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _layer(module: str) -> int:
    best, found = -1, None
    for index, names in enumerate(LAYERS):
        for name in names:
            if name == "" and module == "":
                return index
            if name and (module == name or module.startswith(name + ".")) and len(name) > best:
                best, found = len(name), index
    assert found is not None, f"redimnet.{module} is in no layer: add it to LAYERS (and docs/architecture.md)"
    return found


def _imports(module: str, path: Path):
    """(line, imported module) of every import of this package in ``path`` (module names without ``redimnet.``)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
                prefix = "redimnet" + ("." + stem if stem else "")
            else:
                prefix = node.module or ""
            targets = [f"{prefix}.{alias.name}" for alias in node.names] + [prefix]
        else:
            continue
        for target in targets:
            if target != "redimnet" and not target.startswith("redimnet."):
                continue
            name = target[len("redimnet.") :] if target != "redimnet" else ""
            while name not in MODULES and "." in name:
                name = name.rpartition(".")[0]
            if name in MODULES and name != module:
                yield node.lineno, name
                break  # "from x import y": the submodule y if it is one, else the module x


GRAPH = {module: sorted(set(_imports(module, path))) for module, path in MODULES.items()}


def test_every_module_has_a_layer():
    for module in MODULES:
        _layer(module)


def test_no_import_goes_up_a_layer():
    upward = [
        f"redimnet.{module} (layer {_layer(module)}) line {line} imports redimnet.{target} (layer {_layer(target)})"
        for module, imports in GRAPH.items()
        for line, target in imports
        if _layer(target) > _layer(module) and not module.startswith(target + ".")
    ]
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def _cycles():
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    edges = {module: {target for _, target in imports} for module, imports in GRAPH.items()}
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return found


def test_no_import_circle():
    cycles = _cycles()
    assert not cycles, "modules that import each other (directly or around a circle):\n" + "\n".join(
        " <-> ".join(f"redimnet.{m}" if m else "redimnet" for m in component) for component in cycles
    )


@pytest.mark.parametrize("module", ["redimnet.hub.registry", "redimnet.cli"])
def test_the_checker_sees_imports(module):
    """The graph is not empty by mistake: known imports are found."""
    assert GRAPH[module[len("redimnet.") :]], f"no imports found in {module}"
