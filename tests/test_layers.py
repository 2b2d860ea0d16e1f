"""The import structure: layers only point down (CLI -> commands -> library).

The sources are parsed with ``ast``, never imported. Two rules are checked:

* no import cycles among the project's modules at module level (a cycle means two layers point
  at each other, so neither can be understood, tested or imported alone);
* no imports hidden inside functions, except of optional dependencies: a function-level import
  is the usual way to paper over a cycle, and it hides the real layering.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# folder (relative to ROOT) -> package it is installed as (pyproject's package-dir mapping)
PACKAGES = {"pai_bench": "pai_bench"}  # the file path is the import path
# Optional dependencies (Ray, TensorBoard, safetensors, SparseProp), plugins (importlib), and the
# heavy libraries a command may not need (torchvision's model zoo and data sets, matplotlib,
# pandas, statsmodels, scipy: about 2 s of CPU together, against 1 s for torch; issue 37's start-up
# target) may be imported lazily, inside the function that needs them; everything else must be
# imported at module level so that the layering is visible at the top of each file.
ALLOWED = {"ray", "grpc", "tensorboard", "torch.utils.tensorboard", "safetensors", "importlib",
           "sparseprop", "torchvision", "matplotlib", "pandas", "statsmodels", "scipy"}
# grpc: Ray's own dependency (the Ray executor's connection probe)


def project_modules(root: Path, packages: dict[str, str]) -> dict[str, Path]:
    """Module name -> source file, for every .py file under the mapped folders."""
    modules = {}
    for folder, package in packages.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = list(path.relative_to(root / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return getattr(test, "id", getattr(test, "attr", None)) == "TYPE_CHECKING"  # Name / typing.X


def _collect(nodes, in_function: bool, top: list, inner: list, typing: bool = False) -> None:
    """Sort the import statements under ``nodes`` into module-level and function-level ones
    (``typing``: count the imports made for type checkers only as module-level ones)."""
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            (inner if in_function else top).append(node)
        elif isinstance(node, ast.If) and _is_type_checking(node.test) and not typing:
            _collect(node.orelse, in_function, top, inner)  # the ``if TYPE_CHECKING`` body never runs
        else:
            is_function = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            _collect(ast.iter_child_nodes(node), in_function or is_function, top, inner, typing)


def _targets(node, module: str, is_package: bool, modules) -> set[str]:
    """The modules one import statement names: only those, not their parent packages."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    base = node.module or ""
    if node.level:  # relative: ``from .. import x`` inside package a.b.c resolves against a.b
        anchor = module.split(".")[: len(module.split(".")) - (not is_package) - (node.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
    return {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}


def scan(root: Path, packages: dict[str, str], typing: bool = False):
    """(module-level import graph among project modules, [(file, line, module)] in functions);
    ``typing``: with the imports made for type checkers only."""
    modules = project_modules(root, packages)
    graph, function_imports = {}, []
    for module, path in modules.items():
        top, inner = [], []
        _collect(ast.parse(path.read_text(), str(path)).body, False, top, inner, typing)
        is_package = path.name == "__init__.py"
        graph[module] = {t for node in top for t in _targets(node, module, is_package, modules)
                         if t in modules and t != module}
        function_imports += [(path.relative_to(root).as_posix(), node.lineno, t) for node in inner
                             for t in sorted(_targets(node, module, is_package, modules))]
    return graph, function_imports


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each as a closed path."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:  # v is the root of a component: pop it off the stack
            component = {stack.pop()}
            while v not in component:
                component.add(stack.pop())
            on_stack.difference_update(component)
            if len(component) > 1:
                found.append(_walk(graph, component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def _walk(graph, component: set[str]) -> list[str]:
    """A closed walk along real edges through every module of an SCC, from its first module."""
    def path(a, b):  # shortest path a -> b inside the component (breadth first)
        parent, queue = {a: None}, [a]
        for v in queue:
            for w in sorted(graph[v] & component - parent.keys()):
                parent[w] = v
                queue.append(w)
        steps = [b]
        while steps[-1] != a:
            steps.append(parent[steps[-1]])
        return steps[::-1]

    start = min(component)
    walk = [start]
    for target in sorted(component - {start}) + [start]:
        if target == start or target not in walk:
            walk += path(walk[-1], target)[1:]
    return walk


def test_no_import_cycles():
    found = cycles(scan(ROOT, PACKAGES)[0])
    assert not found, "import cycles at module level:\n" + "\n".join(" -> ".join(c) for c in found)


def test_no_import_cycles_even_through_imports_for_type_checkers():
    """A circle that only type checkers see is still two modules that each need the other's
    names: the shared piece belongs below both (data/cache and data/folders -> data/files)."""
    found = cycles(scan(ROOT, PACKAGES, typing=True)[0])
    assert not found, "import cycles through TYPE_CHECKING:\n" + "\n".join(" -> ".join(c) for c in found)


def test_function_level_imports_only_for_optional_dependencies():
    bad = [f"{file}:{line} {module}" for file, line, module in scan(ROOT, PACKAGES)[1]
           if not any(module == a or module.startswith(a + ".") for a in ALLOWED)]
    assert not bad, "imports inside functions (move them to module level):\n" + "\n".join(bad)


def test_checker_on_a_synthetic_tree(tmp_path):
    files = {
        "pkg/__init__.py": "from pkg import a\nfrom .plug import x\n",  # a package's own children
        "pkg/a.py": "from pkg import b\n",
        "pkg/b.py": "from . import a\n",  # a <-> b: a cycle
        "pkg/c.py": "import pkg.d\n",  # d imports c only lazily or when type checking: no cycle
        "pkg/d.py": ("import typing\nif typing.TYPE_CHECKING:\n    import pkg.c\nelse:\n    import os\n"
                     "def f():\n    from pkg import c\n"),
        "plug/__init__.py": "",
        "plug/x.py": "from pkg.plug import y\nfrom ..plug import y as z\n",
        "plug/y.py": "import pkg.d\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph, function_imports = scan(tmp_path, {"pkg": "pkg", "plug": "pkg.plug"})
    assert graph["pkg.plug.x"] == {"pkg.plug.y"} and graph["pkg.d"] == set()
    assert graph["pkg"] == {"pkg.a", "pkg.plug.x"} and graph["pkg.plug.y"] == {"pkg.d"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.a"]]
    assert function_imports == [("pkg/d.py", 7, "pkg.c")]


def _type_checking_names(tree: ast.Module) -> set[str]:
    """Names a module binds only for type checkers (``if TYPE_CHECKING:`` imports)."""
    names = set()
    for node in tree.body:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for sub in node.body:
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    names |= {(a.asname or a.name).split(".")[0] for a in sub.names}
    return names


def _used_without_import(fn, names: set[str], imported: frozenset = frozenset()):
    """(line, function, name) for each of ``names`` that ``fn`` or a function inside it reads
    at run time (annotations aside) where neither it nor an enclosing function imported it."""
    body = [n for stmt in fn.body for n in ast.walk(stmt)]
    own = imported | {(a.asname or a.name).split(".")[0] for sub in body
                      if isinstance(sub, (ast.Import, ast.ImportFrom)) for a in sub.names}
    annotations = {id(n) for sub in [fn, *body] for a in (
        [getattr(sub, "returns", None), getattr(sub, "annotation", None)]) if a is not None
        for n in ast.walk(a)}
    for sub in body:
        if isinstance(sub, ast.Name) and sub.id in names - own and id(sub) not in annotations:
            yield sub.lineno, fn.name, sub.id


def test_a_library_imported_for_type_checkers_only_is_imported_where_it_is_used():
    """A heavy library loaded where it is used (start-up) is imported at module level only for
    type checkers; a function that reads it without importing it would fail at run time, and
    the linter cannot tell (it sees the TYPE_CHECKING import). A nested function may use what
    the function around it imported."""
    bad = set()

    def visit(node, names, imported):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found = list(_used_without_import(child, names, imported))
                mine = imported | {(a.asname or a.name).split(".")[0] for stmt in child.body
                                   for sub in ast.walk(stmt)
                                   if isinstance(sub, (ast.Import, ast.ImportFrom))
                                   for a in sub.names}
                bad.update((path.relative_to(ROOT), *f) for f in found if not any(
                    isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n is not child
                    and n.lineno <= f[0] <= n.end_lineno for n in ast.walk(child)))
                visit(child, names, mine)
            else:
                visit(child, names, imported)

    for module, path in project_modules(ROOT, PACKAGES).items():
        tree = ast.parse(path.read_text(), str(path))
        names = _type_checking_names(tree)
        if names:
            visit(tree, names, frozenset())
    assert not bad, "imported for type checkers only, used at run time:\n" + "\n".join(
        f"{p}:{line} {fn} uses {name}" for p, line, fn, name in sorted(bad))
