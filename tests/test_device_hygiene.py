"""Device hygiene by reading the code: every tensor factory in lstndsl/ and compiler/ says where
its tensor lives.

What it is: an AST walk over every module of the two packages that fails on a call
`torch.<factory>(…)` (`tensor`, `zeros`, `ones`, `eye`, `arange`, `full`, `linspace`, `empty`,
`rand`, `randn`, `randint`, `randperm`, …) without a `device=` keyword, unless one of the call's
lines, or the line just above it, carries the marker `# cpu-ok: <reason>` (CPU on purpose: data
loading, a float64 solve done once, a build-time shape probe). A `*_like` factory or a
`tensor.new_*` method follows its argument and is never flagged; `torch.from_numpy` has no
device by definition (host memory) and is not a factory here.

This is the half of the device proof that covers code fake CUDA cannot run: backward, the
optimizer, checkpoints (tests/test_fake_cuda.py runs the forward half). What it is not: a
proof that a passed `device=` is the right one (the fake-CUDA test checks that where it runs),
and it sees only calls spelled `torch.<name>` (`from torch import zeros` would slip by; the
packages do not import factories that way, and `test_no_factory_imported_bare` keeps it so).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lstndsl", "compiler")
#: torch functions that make a tensor and take `device=`
FACTORIES = frozenset(
    [
        "tensor",
        "as_tensor",
        "scalar_tensor",
        "zeros",
        "ones",
        "eye",
        "arange",
        "range",
        "full",
        "linspace",
        "logspace",
        "empty",
        "empty_strided",
        "rand",
        "randn",
        "randint",
        "randperm",
        "normal",
        "tril_indices",
        "triu_indices",
    ]
)
MARKER = "# cpu-ok:"


def _unplaced(source: str) -> list[tuple[int, str]]:
    """(line, call text) of every `torch.<factory>(…)` without `device=` or a marker."""
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        func = node.func
        if not (isinstance(func.value, ast.Name) and func.value.id == "torch"):
            continue
        if func.attr not in FACTORIES or any(k.arg == "device" for k in node.keywords):
            continue
        end = node.end_lineno or node.lineno
        span = lines[max(node.lineno - 2, 0) : end]
        if any(MARKER in line for line in span):
            continue
        found.append((node.lineno, lines[node.lineno - 1].strip()))
    return found


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_every_factory_says_where_its_tensor_lives() -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line}: {text}"
        for path in _modules()
        for line, text in _unplaced(path.read_text(encoding="utf-8"))
    ]
    assert bad == [], (
        "tensor factories without device= (pass the device of the tensor they meet, use a "
        f"*_like, or mark the line '{MARKER} <why>'):\n" + "\n".join(bad)
    )


def test_no_factory_imported_bare() -> None:
    """`from torch import zeros` would hide a factory from the walk above."""
    bad = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "torch":
                names = {a.name for a in node.names} & FACTORIES
                if names:
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {sorted(names)}")
    assert bad == []


@pytest.mark.parametrize(
    ("source", "lines"),
    [
        # the digits bug of issue 11: a CPU tensor meets the grid's device
        ("import torch\ng = grid * torch.tensor([w / 2.0, h / 2.0])\n", [2]),
        ("import torch\nz = torch.zeros(3, dtype=torch.float64)\n", [2]),
        ("import torch\nz = torch.rand(\n    3,\n    generator=g,\n)\n", [2]),
        # placed, following, or marked: not flagged
        ("import torch\nz = torch.tensor([1.0], device=x.device)\n", []),
        ("import torch\nz = torch.zeros_like(x)\nq = x.new_zeros(3)\n", []),
        ("import torch\nz = torch.eye(3)  # cpu-ok: a float64 solve\n", []),
        ("import torch\n# cpu-ok: host floats for the reduction\nz = torch.tensor([1.0])\n", []),
        ("import torch\nz = torch.randn(\n    3,  # cpu-ok: on purpose\n)\n", []),
    ],
)
def test_the_walk_finds_what_it_should(source: str, lines: list[int]) -> None:
    assert [line for line, _ in _unplaced(source)] == lines
