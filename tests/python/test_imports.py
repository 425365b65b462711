"""No import circles in embed_udfs: the graph of its modules, built from every import
statement (module level and inside functions, where late imports hide circles), has
no cycle. Imports under `if TYPE_CHECKING:` never run and are left out. And the model
stack (torch, open_clip, ...) is imported only inside functions: the core install lacks it."""

from __future__ import annotations

import ast
from pathlib import Path

import embed_udfs

PACKAGE = Path(embed_udfs.__file__).parent


def module_names(package: Path = PACKAGE) -> dict[str, Path]:
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking_only(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Each embed_udfs module and the embed_udfs modules it imports. `from a import b`
    counts as an import of a.b when that is a module, else of a; importing a.b.c also
    runs a and a.b, so each package on the way is an edge too (except the packages
    that contain the importing module, unless the import names one of them)."""
    modules = module_names(package)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        here = name if is_package else name.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = here.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            for target in targets:
                parts = target.split(".")
                for end in range(1, len(parts) + 1):
                    prefix = ".".join(parts[:end])
                    # a package above this module has begun importing before it; only an
                    # import that names it (`from pkg import x`) reads what it defines
                    above = name.startswith(prefix + ".")
                    if prefix in modules and prefix != name and (prefix == target or not above):
                        graph[name].add(prefix)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each with
    one cycle through it spelled out."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
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
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_one_cycle(graph, set(component)) for component in components]


def _one_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    start = min(component)
    path, seen = [start], {start}
    while True:
        step = min(t for t in graph[path[-1]] if t in component)
        if step in seen:
            return [*path[path.index(step) :], step]
        path.append(step)
        seen.add(step)


def test_embed_udfs_has_no_import_cycle():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles in embed_udfs:\n" + "\n".join(
        "  " + " -> ".join(cycle) for cycle in cycles
    )


def test_a_late_import_cycle_is_found_and_type_checking_imports_are_not(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text("def f():\n    from .. import c\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import d\n"
        "def g():\n    import pkg.a\n"
    )
    (package / "d.py").write_text("from pkg import c\n")
    graph = import_graph(package)
    assert graph["pkg.a"] == {"pkg.sub", "pkg.sub.b"}
    assert graph["pkg.sub.b"] == {"pkg.c"}
    assert graph["pkg.c"] == {"pkg.a"}  # not pkg.d: that import never runs
    assert find_cycles(graph) == [["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]]
    (package / "c.py").write_text("import pkg.d\n")
    assert find_cycles(import_graph(package)) == [["pkg.c", "pkg.d", "pkg.c"]]


# The model stack: only the extras bring it, so embed_udfs imports it inside the
# functions that run a model, never when a module loads (docs/install.md).
MODEL_STACK = ("torch", "torchvision", "open_clip", "sentence_transformers", "transformers")


def module_level_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """The imports that run when the module loads: not inside a function (or lambda), not
    under `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return
        if isinstance(node, ast.If) and _type_checking_only(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _top_level_names(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name.split(".")[0] for alias in node.names]
    return [] if node.level else [(node.module or "").split(".")[0]]


def eager_model_imports(package: Path = PACKAGE) -> list[str]:
    """`module: line N imports X` for each module-level import of the model stack."""
    found = []
    for name, path in module_names(package).items():
        for node in module_level_imports(ast.parse(path.read_text(), str(path))):
            for top in _top_level_names(node):
                if top in MODEL_STACK:
                    found.append(f"{name}: line {node.lineno} imports {top}")
    return found


def test_the_model_stack_is_imported_only_inside_functions():
    eager = eager_model_imports()
    assert not eager, "the core install has no model stack; import it where it runs:\n" + (
        "\n".join("  " + line for line in eager)
    )


def test_an_eager_import_of_the_model_stack_is_found(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "lazy.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import torch\n"
        "def f():\n    import open_clip\nclass C:\n    g = lambda: __import__('torch')\n"
    )
    (package / "eager.py").write_text(
        "import numpy\nclass C:\n    import transformers\nfrom torch.nn import functional\n"
    )
    assert eager_model_imports(package) == [
        "pkg.eager: line 3 imports transformers",
        "pkg.eager: line 4 imports torch",
    ]
