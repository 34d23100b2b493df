"""The package's layout holds: no module-level import loop inside ``taskito`` (imports
under ``if TYPE_CHECKING:`` and inside functions do not count: they run after every module
has loaded), and the enqueue options that ``enqueue``, ``enqueue_many``, ``publish`` and
``apply_async`` share are the ones ``taskito.facets.base.JobOptions`` declares, with its
defaults. Run as a script, prints the loops, with and without imports inside functions."""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path

import taskito
from taskito import Queue, TaskWrapper
from taskito.facets.base import JOB_OPTION_DEFAULTS, JobOptions

PACKAGE = Path(taskito.__file__).parent


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level(body, nested):
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _module_level(node.body, nested)
            yield from _module_level(node.orelse, nested)
        elif isinstance(node, ast.Try):
            for part in (node.body, node.orelse, node.finalbody, *[h.body for h in node.handlers]):
                yield from _module_level(part, nested)
        elif nested and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.With)):
            yield from _module_level(node.body, nested)


def graph(root: Path, nested: bool = False) -> dict[str, set[str]]:
    pkg = root.name
    modules = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    for stub in root.rglob("*.pyi"):
        # A compiled module (typed by its stub) is a leaf: it imports nothing of the package.
        name = ".".join(stub.relative_to(root.parent).with_suffix("").parts)
        modules.setdefault(name, stub)
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        if path.suffix == ".pyi":
            continue
        is_pkg = path.name == "__init__.py"
        for node in _module_level(ast.parse(path.read_text()).body, nested):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for t in targets:
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != mod and t.split(".")[0] == pkg:
                    edges[mod].add(t)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_module_level_import_loop() -> None:
    assert cycles(graph(PACKAGE)) == []


def test_the_graph_sees_a_loop() -> None:
    edges = {"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}, "p.d": {"p.a"}}
    assert cycles(edges) == [["p.a", "p.b", "p.c"]]


def test_the_graph_reads_the_imports_that_run_at_import_time(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from pkg import a\n"
        "def f():\n    from pkg.a import x\n"
        "try:\n    from pkg import c\nexcept ImportError:\n    pass\n"
    )
    (pkg / "c.py").write_text("import pkg.a\n")
    edges = graph(pkg)
    assert edges["pkg.a"] == {"pkg.b"}
    assert edges["pkg.b"] == {"pkg.c"}
    assert cycles(edges) == [["pkg.a", "pkg.b", "pkg.c"]]
    assert cycles(graph(pkg, nested=True)) == [["pkg.a", "pkg.b", "pkg.c"]]


# Which of the shared options each public enqueue call takes (enqueue_many takes a key per
# job as ``unique_keys``; publish takes each task's own queue, retries and timeout).
_TAKES = {
    TaskWrapper.apply_async: set(JobOptions.__annotations__),
    Queue.enqueue: set(JobOptions.__annotations__),
    Queue.enqueue_many: set(JobOptions.__annotations__) - {"unique_key"},
    Queue.publish: {"priority", "delay", "metadata"},
}


def test_enqueue_calls_share_the_declared_options() -> None:
    for call, names in _TAKES.items():
        params = inspect.signature(call).parameters
        shared = {n for n in params if n in JOB_OPTION_DEFAULTS}
        assert shared == names, call.__qualname__
        for name in shared:
            assert params[name].default == JOB_OPTION_DEFAULTS[name], (call.__qualname__, name)  # type: ignore[literal-required]


if __name__ == "__main__":
    for nested in (False, True):
        found = cycles(graph(PACKAGE, nested))
        print("with imports inside functions:" if nested else "module level:", len(found))
        for c in found:
            print("  ", " <-> ".join(c))
