"""The house rules a reader relies on, checked on the source itself (no app, no servers).

Dependencies point one way (tasks/ imports luffy/, never the reverse) and no two modules
import each other, counting imports inside functions; modules and functions stay short
enough to read in one sitting; Lua lives in .lua files.
"""

import ast
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("luffy", "tasks")
MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 60
# Long modules and functions here are not read as the app's code.
EXEMPT_DIRS = ("migrations", "bench")
# The lead makes (c) and (d) strict once every branch has landed; until then the offenders
# named in the failure message are the parts of the tree other branches are splitting.


def modules():
    """{dotted name: path} of every module under luffy/ and tasks/."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imported_names(module, path):
    """Every module name ``module`` imports, anywhere in the file (functions included)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module
            for alias in node.names:
                yield base, alias.name


def import_graph():
    """{module: set of modules of luffy/ and tasks/ it imports}."""
    known = modules()
    graph = {name: set() for name in known}
    for name, path in known.items():
        for base, member in imported_names(name, path):
            if member and f"{base}.{member}" in known:
                graph[name].add(f"{base}.{member}")  # from package import submodule
            elif base in known:
                graph[name].add(base)
            elif base.split(".")[0] in PACKAGES:
                # ``import luffy.x.y`` of a name that is no module: its closest module
                parts = base.split(".")
                while parts and ".".join(parts) not in known:
                    parts.pop()
                if parts:
                    graph[name].add(".".join(parts))
        graph[name].discard(name)
    return graph


def cycles(graph):
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
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


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycle_among_luffy_and_tasks():
    assert cycles(import_graph()) == []


def test_luffy_never_imports_tasks():
    offenders = sorted(
        f"{name} imports {base}"
        for name, path in modules().items()
        if name.startswith("luffy")
        for base, _ in imported_names(name, path)
        if base == "tasks" or base.startswith("tasks.")
    )
    assert offenders == []


def tracked_files(*patterns):
    listed = subprocess.run(
        ["git", "ls-files", "-z", *patterns], cwd=ROOT, capture_output=True, check=True
    ).stdout
    return [ROOT / name for name in listed.decode().split("\0") if name]


def long_modules():
    return sorted(
        f"{path.relative_to(ROOT)}: {lines} lines"
        for path in modules().values()
        if path.parts[len(ROOT.parts)] == "luffy"
        and (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    )


def long_functions():
    found = []
    for path in modules().values():
        if any(part in EXEMPT_DIRS for part in path.relative_to(ROOT).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {lines}")
    return sorted(found)


def test_no_module_in_luffy_is_over_350_lines():
    assert long_modules() == []


def test_no_function_is_over_60_lines():
    assert long_functions() == []


def test_no_lua_inside_python_files():
    call = "redis" + ".call"  # so that this file passes its own check
    offenders = sorted(
        str(path.relative_to(ROOT))
        for path in tracked_files("*.py")
        if path.exists() and call in path.read_text(encoding="utf-8")
    )
    assert offenders == []


def test_the_project_stands_alone():
    # Built so that this file does not contain the word it looks for.
    word = "PIT" + "FALLS"
    offenders = sorted(
        str(path.relative_to(ROOT))
        for path in tracked_files()
        if path.is_file() and word in path.read_bytes().decode("utf-8", "replace")
    )
    assert offenders == []
