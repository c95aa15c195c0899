"""The package's modules form layers: no import cycle, and the core imports strictly downwards.

Imports are read from the source (ast), late ones inside functions included;
those under ``if TYPE_CHECKING:`` (never run) and a module's ``__getattr__``
(tensor.py's, which serves names that moved up to function.py to old imports)
are left out.
"""
from __future__ import annotations

import ast
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import tinygrad_seq

PACKAGE = Path(tinygrad_seq.__file__).parent
CORE = ["settings", "checks", "backend", "blas", "compiled", "modes", "lazy_grad", "anomaly", "engine", "tensor", "function", "ops"]  # lowest first


def module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int]]:
    """(imported module of the package, line) for every import ``name`` runs."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.FunctionDef) and child.name == "__getattr__" and node is tree:
                continue
            if isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - child.level + 1] + ([child.module] if child.module else []))
                for alias in child.names:
                    target = f"{base}.{alias.name}"
                    found.append((target if target in modules else base, child.lineno))
            elif isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno) for alias in child.names)
            else:
                visit(child)

    tree = ast.parse(path.read_text(encoding="utf-8"))
    visit(tree)
    return [(target, line) for target, line in found if target in modules and target != name]


def import_graph() -> dict[str, list[tuple[str, int]]]:
    modules = module_names()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for target, _ in edges:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(graph[target])))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
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


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    found = cycles(graph)
    detail = [f"{a}:{line} imports {b}" for group in found for a in group for b, line in graph[a] if b in group]
    assert not found, f"import cycles: {found}\n" + "\n".join(detail)


def test_the_cycle_finder_finds_a_late_import_cycle():
    graph = {"a": [("b", 1)], "b": [("c", 3)], "c": [("a", 9)], "d": [("a", 2)]}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": [("b", 1)], "b": []}) == []


def test_the_core_imports_only_downwards():
    graph = import_graph()
    rank = {}
    for name in graph:
        short = name.removeprefix("tinygrad_seq.")
        layer = short.split(".")[0]
        if layer in CORE:
            rank[name] = CORE.index(layer)
    upward = [f"{name}:{line} imports {target}" for name, r in rank.items() for target, line in graph[name]
              if target in rank and rank[target] > r]
    outside = [f"{name}:{line} imports {target}" for name in rank for target, line in graph[name]
               if target not in rank]
    assert not upward, "a core module imports one above it:\n" + "\n".join(upward)
    assert not outside, "the core imports the rest of the package:\n" + "\n".join(outside)


def test_old_import_paths_of_the_core_still_work():
    code = ("from tinygrad_seq.tensor import Tensor, Function, unbroadcast, no_grad, tags, backward_iter, "
            "topological_order, SliceGrad, OuterGrad, LazyGrad, BackwardStep, as_tensor; "
            "import tinygrad_seq.function as f; assert Function is f.Function and unbroadcast is f.unbroadcast; "
            "x = Tensor([1.0, 2.0], requires_grad=True); (x * x + 1).sum().backward(); print(x.grad.tolist())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[2.0, 4.0]"


def code_lines(path: Path) -> int:
    """Lines holding code: blank lines, comments and docstrings left out."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                docstrings.update(range(first.lineno, first.end_lineno + 1))
    skipped = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)
    lines = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skipped:
            lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines - docstrings)


def test_code_lines_leave_out_docstrings_comments_and_blank_lines(tmp_path):
    path = tmp_path / "m.py"
    path.write_text('"""Doc\nstring."""\n\n# a comment\ndef f(x):\n    """One line."""\n    return (x +\n            1)  # why\n')
    assert code_lines(path) == 3


def test_the_readme_reports_the_core_size():
    core = [PACKAGE / f"{name}.py" for name in CORE if name != "ops"] + sorted((PACKAGE / "ops").glob("*.py"))
    total = sum(code_lines(path) for path in core)
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    reported = int(re.search(r"is ([\d,]+) lines of code", readme).group(1).replace(",", ""))
    assert abs(reported - total) <= 25, f"README.md says the core is {reported} lines of code; it is {total} now: update it"
    package = sum(code_lines(path) for path in PACKAGE.rglob("*.py"))
    said = int(re.search(r"About ([\d,]+) lines of code in the\s+package", readme).group(1).replace(",", ""))
    assert abs(said - package) <= 150, f"README.md says the package is about {said} lines of code; it is {package} now: update it"
