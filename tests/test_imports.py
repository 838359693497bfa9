"""Imports run one way: no module of digitd/ or train/ reaches itself again through its imports
(function-level imports included), and of the daemon only the CLI's train/eval commands reach train/."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _graph() -> dict[str, set[str]]:
    names = {".".join(p.relative_to(ROOT).with_suffix("").parts) for pkg in ("digitd", "train") for p in (ROOT / pkg).glob("*.py")}
    graph = {}
    for name in names:
        deps = set()
        for node in ast.walk(ast.parse((ROOT / (name.replace(".", "/") + ".py")).read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                deps |= {m for m in (node.module, *(f"{node.module}.{a.name}" for a in node.names)) if m in names}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in names}
        graph[name] = deps - {name}
    return graph


def test_no_import_circles():
    graph = _graph()
    state: dict[str, int] = {}
    circles = []

    def visit(n: str, path: list[str]) -> None:
        state[n] = 1
        for d in sorted(graph[n]):
            if state.get(d) == 1:
                circles.append(path[path.index(d):] + [d])
            elif d not in state:
                visit(d, path + [d])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])
    assert not circles, circles


def test_daemon_never_imports_the_trainer():
    graph = _graph()
    assert {m for m, deps in graph.items() if m.startswith("digitd.") and any(d.startswith("train") for d in deps)} == {"digitd.cli"}
