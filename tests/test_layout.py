"""The package's layout rules (docs/architecture.md): every module imports only from its own
folder and from the folders below it, there is no import circle (lazy imports inside
functions included), and no module outside backend/numba_kernels/ is much over 300 lines
unless its docstring says why."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "minicnn"
# Top to bottom; a module may import from its own layer and the layers after it.
LAYERS = [("commands", {"__init__", "__main__", "train", "run_setup", "evaluate", "sweep",
                        "report", "cli"}),
          ("sweeps", {"sweeps"}), ("nn", {"nn"}), ("data", {"data"}),
          ("results", {"results"}), ("parallel", {"parallel"}), ("backend", {"backend"}),
          ("ops", {"ops"}), ("base", {"paths", "gradcheck", "_version"})]
MAX_LINES = 300


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules():
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def rank(module):
    """The layer index of a minicnn module (0 = the top)."""
    first = module.split(".")[1] if "." in module else "__init__"
    return next(i for i, (_, names) in enumerate(LAYERS) if first in names)


def imports(path, name, known):
    """The minicnn modules ``path`` imports, anywhere in the file (lazy imports too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [target] + [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        for c in candidates:
            while c and c not in known:
                c = c.rpartition(".")[0]
            if c and c.startswith("minicnn") and c != name:
                found.add(c)
    return found


GRAPH = {name: imports(path, name, modules()) for name, path in modules().items()}


def upward(graph):
    """[(module, the higher modules it imports)] of an import graph."""
    return [(name, up) for name in sorted(graph)
            if (up := [o for o in graph[name] if o != "minicnn" and rank(o) < rank(name)])]


def circle(graph):
    """The first import circle of a graph (a list of modules), or None."""
    seen, stack = set(), []

    def visit(name):
        if name in stack:
            return stack[stack.index(name):] + [name]
        if name in seen:
            return None
        stack.append(name)
        for other in graph.get(name, ()):
            # a package's __init__ importing its own submodules is how packages work
            if not other.startswith(name + ".") and (found := visit(other)):
                return found
        stack.pop()
        seen.add(name)
        return None
    return next((c for c in map(visit, sorted(graph)) if c), None)


def test_every_module_has_a_layer():
    for name in GRAPH:
        rank(name)


def test_no_import_goes_up():
    assert upward(GRAPH) == []


def test_no_import_circle():
    assert circle(GRAPH) is None


@pytest.mark.parametrize("name,path", sorted(modules().items()))
def test_modules_are_small_or_say_why(name, path):
    if "numba_kernels" in name:
        return
    lines = len(path.read_text().splitlines())
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert lines <= MAX_LINES or "longer than" in doc, \
        f"{path.relative_to(PACKAGE.parent)} has {lines} lines; split it or say why in its docstring"


def test_the_checks_find_a_planted_upward_import_and_circle():
    planted = {k: set(v) for k, v in GRAPH.items()}
    planted["minicnn.ops.conv"].add("minicnn.nn.model")            # ops -> nn: up
    assert ("minicnn.ops.conv", ["minicnn.nn.model"]) in upward(planted)
    planted = {k: set(v) for k, v in GRAPH.items()}
    planted["minicnn.nn.layers"].add("minicnn.nn.loading")          # loading -> layers -> loading
    assert circle(planted) is not None
    assert "minicnn.nn.model" in GRAPH["minicnn.nn.loading"]        # lazy and module-level seen
