"""The code's shape, measured (../shared/DESIGN.md's targets): no file over 500 lines in
lstndsl/ and compiler/, no import circle among their modules, and the one-way seams: the
compiler never imports the trainer or the CLI. (Complexity is ruff's C901, in `make lint`.)"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("lstndsl", "compiler")
MAX_LINES = 500


def sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def top_level_imports(path: Path) -> set[str]:
    """Modules imported when `path` is imported: module-level statements only (imports inside
    functions are lazy, those under `if TYPE_CHECKING:` never run)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else None
    for node in tree.body:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level and package is not None:
                base = ".".join(
                    [*package.split(".")[: len(package.split(".")) - node.level + 1], base]
                )
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return found


def test_no_file_is_over_500_lines() -> None:
    long = {
        str(p.relative_to(REPO)): n
        for p in sources()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_compiler_never_imports_the_trainer_or_the_cli() -> None:
    bad = {}
    for path in (REPO / "compiler").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
            a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
        }
        wrong = sorted(
            n for n in names if n.startswith(("lstndsl.train", "lstndsl.commands", "lstndsl.cli"))
        )
        if wrong:
            bad[path.name] = wrong
    assert bad == {}


def test_no_import_circle() -> None:
    modules = {module_name(p): p for p in sources()}
    graph = {
        name: {m for m in top_level_imports(path) if m in modules and m != name}
        for name, path in modules.items()
    }
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    circles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    # a package's __init__ re-exporting its submodules is not a circle of code
    real = [c for c in circles if not any(m in PACKAGES for m in c)]
    assert real == []


def test_the_import_walk_sees_real_imports_and_circles() -> None:
    """The walk above is not vacuous: it finds the imports everyone knows are there."""
    imports = top_level_imports(REPO / "compiler" / "stn.py")
    assert "compiler.geometry" in imports and "lstndsl.ir" in imports
    assert "lstndsl.transforms" in top_level_imports(REPO / "lstndsl" / "ir.py")
