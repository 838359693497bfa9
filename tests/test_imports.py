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


def _imports_of(path: Path) -> set[str]:
    """Top-level package names a module imports (function-level imports included)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
    return out


def test_only_the_trainers_parallel_module_imports_dask():
    """The Dask cluster is the trainer's business: no daemon module names dask or distributed."""
    users = {str(p.relative_to(ROOT)) for pkg in ("digitd", "train") for p in (ROOT / pkg).glob("*.py")
             if _imports_of(p) & {"dask", "distributed"}}
    assert users == {"train/parallel.py"}


def test_daemon_commands_do_not_load_dask(model_path, fsdd):
    """`digitd predict` and the daemon's modules run without loading dask/distributed (even
    when they are installed)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import digitd.cli, digitd.daemon, digitd.pipeline, digitd.predict, digitd.bench, digitd.serve, digitd.model\n"
        f"rc = digitd.cli.main(['predict', '--model', {str(model_path)!r}, {str(fsdd / '3_theo_0.wav')!r}])\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed'))\n"
        "print('LOADED', bad)\n"
        "sys.exit(rc or (1 if bad else 0))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "LOADED []" in p.stdout
