"""Emitted Python (compiler/emit.py, `lstndsl compile --emit python`): the generated file
imports only torch, is lint- and format-clean, loads the compiled model's state_dict with
strict=True, and gives exactly (torch.equal) the compiled model's θ and output, for the three
paper specs, every layer kind and every transform kind with and without bounds.

Not tested here: fusing (test_fuse.py) or export (test_export.py).
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from net_helpers import make_realistic
from torch import nn

import lstndsl
from compiler.build import build
from compiler.emit import EMITTERS, emit_python
from compiler.layers import BUILDERS
from lstndsl import catalog

SPECS = Path(__file__).resolve().parents[1] / "specs"
#: the paper's three nets (specs/ also holds a TPS spec and a feature-map spec)
PAPER_SPECS = [SPECS / f"{name}.spec" for name in ("lstn", "stn", "vstn")]

#: every layer kind of the catalog, at a small size (32×32)
ALL_KINDS = """\
name: Everything
input: 32x32x3
head: fc 16 -> batchnorm -> tanh -> dropout 0.1 -> fc {dof}
transform: {transform}
sampler: bilinear, padding border, align corners true

| Type                                                      | Filter Shape |
|-----------------------------------------------------------|--------------|
| Conv, stride 2, padding 1, no bias + BN + leaky relu 0.2  | 3×3×3×6      |
| Conv, groups 2, dilation 2 + ELU                          | 3×3×6×6      |
| Max pool, stride 1, ceil mode + PReLU, per channel        | 2×2          |
| Avg pool, stride 2, exclude pad, padding 1 + GELU         | 3×3          |
| Conv + selu + silu + mish + relu6 + sigmoid + hardswish   | 1×1×6×4      |
| Hardsigmoid + softplus + identity                         |              |
| Conv, padding same + layer norm + gelu                    | 3×3×4×4      |
| Conv + group norm 2, eps 0.001 + dropout2d 0.1            | 1×1×4×4      |
| Conv, no bias + instance norm, affine + relu              | 1×1×4×4      |
| Instance norm                                             |              |
| Global avg pool, output 2 + prelu                         |              |
| Dropout 0.2                                               |              |
| Flatten + layer norm, no affine                           |              |
"""

TRANSFORMS = [
    "affine",
    "affine, scale 0.5..2, translation 0.5",
    "translation",
    "translation, translation 0.3",
    "similarity",
    "similarity, scale 0.5..1.5, translation 0.4",
    "projective",
    "projective, scale 0.5..2, translation 0.5",
]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)  # the compiled models' initial weights


def all_kinds_spec(transform: str) -> lstndsl.Spec:
    kind = transform.split(",")[0]
    dof = lstndsl.transforms.KINDS[kind].dof
    return lstndsl.parse(ALL_KINDS.format(transform=transform, dof=dof), "all.spec")


def load_module(code: str, path: Path) -> ModuleType:
    path.write_text(code, encoding="utf-8")
    module_spec = importlib.util.spec_from_file_location(f"emitted_{path.stem}", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def images(batch: int, shape: tuple[int, ...], seed: int = 1) -> torch.Tensor:
    return torch.rand(batch, *shape, generator=torch.Generator().manual_seed(seed))


def assert_identical(spec: lstndsl.Spec, tmp_path: Path, size: int | None = None) -> None:
    shape = (spec.input.channels, size or spec.input.height, size or spec.input.width)
    x = images(2, shape)
    compiled = build(spec, input_size=size)
    make_realistic(compiled, x)
    emitted = load_module(emit_python(spec, size), tmp_path / "net.py").SpatialTransformer()
    emitted.load_state_dict(compiled.state_dict(), strict=True)
    emitted.eval()
    names = [n for n, _ in compiled.named_modules()]
    assert [n for n, _ in emitted.named_modules()] == names
    with torch.no_grad():
        theta, out = compiled.theta(x), compiled(x)
        assert torch.equal(emitted.theta(x), theta)
        assert torch.equal(emitted(x), out)
    # not vacuous: θ depends on the image, and the output is the image resampled (neither a
    # copy of it nor the zero padding)
    assert not torch.allclose(theta[0], theta[1], atol=1e-3)
    assert out.abs().mean() > 0.1 and not torch.allclose(out, x, atol=1e-2)


@pytest.mark.parametrize("path", PAPER_SPECS, ids=lambda p: p.stem)
def test_paper_specs_emit_identical_modules(path: Path, tmp_path: Path) -> None:
    assert_identical(lstndsl.load(path), tmp_path)


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_every_layer_and_transform_kind_is_identical(transform: str, tmp_path: Path) -> None:
    assert_identical(all_kinds_spec(transform), tmp_path)


def test_input_size_reinfers_the_head(tmp_path: Path) -> None:
    spec = lstndsl.load(SPECS / "lstn.spec")
    code = emit_python(spec, 64)
    assert "INPUT_SHAPE = (3, 64, 64)" in code
    assert "linear=nn.Linear(1440, 32)," in code  # 12×12×10 at 64 px
    assert_identical(spec, tmp_path, 64)


def test_emitters_cover_every_kind() -> None:
    assert set(EMITTERS) == set(BUILDERS) == set(catalog.CATALOG)


def _normalized(module: nn.Module) -> str:
    """repr with (n, n) written n, as the emitter writes square windows."""
    return re.sub(r"\((\d+), \1\)", r"\1", repr(module))


@pytest.mark.parametrize("transform", ["projective, scale 0.5..2, translation 0.5"])
def test_layers_have_the_compiled_hyperparameters(transform: str, tmp_path: Path) -> None:
    spec = all_kinds_spec(transform)
    compiled = build(spec)
    emitted = load_module(emit_python(spec), tmp_path / "net.py").SpatialTransformer()
    assert _normalized(emitted.localization) == _normalized(compiled.localization)
    assert _normalized(emitted.head) == _normalized(compiled.head)


def test_a_fresh_emitted_module_starts_at_the_identity(tmp_path: Path) -> None:
    spec = all_kinds_spec("similarity, scale 0.5..1.5, translation 0.4")
    module = load_module(emit_python(spec), tmp_path / "net.py")
    x = images(2, (3, 32, 32))
    with torch.no_grad():
        theta = module.SpatialTransformer().eval().theta(x)
    assert torch.allclose(theta, torch.eye(2, 3).expand(2, 2, 3), atol=1e-6)


def _imports(code: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add((node.module or "").split(".")[0])
    return found


def test_header_names_spec_size_and_parameters() -> None:
    code = emit_python(lstndsl.load(SPECS / "lstn.spec"))
    header = ast.get_docstring(ast.parse(code)) or ""
    assert "L-STN" in header and "lstn.spec" in header
    assert "224×224×3" in header
    assert "localization 3,690 + head 865,510 = 869,200" in header
    assert _imports(code) == {"__future__", "torch"}


@pytest.mark.parametrize("transform", ["affine", "projective, scale 0.5..2, translation 0.5"])
def test_emitted_file_is_lint_and_format_clean(transform: str, tmp_path: Path) -> None:
    path = tmp_path / "net.py"
    path.write_text(emit_python(all_kinds_spec(transform)), encoding="utf-8")
    ruff = [sys.executable, "-m", "ruff"]
    lint = ["check", "--isolated", "--select", "E,F,W,I,B,UP,SIM", str(path)]
    fmt = ["format", "--isolated", "--check", str(path)]
    for cmd in (lint, fmt):
        done = subprocess.run(ruff + cmd, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


# --- the CLI --------------------------------------------------------------------------------


def test_compile_emit_python_writes_the_file(cli: Callable[..., Any], tmp_path: Path) -> None:
    out = tmp_path / "net.py"
    result = cli("compile", SPECS / "lstn.spec", "--emit", "python", "-o", out)
    assert result.code == 0, result.err
    assert f"saved the standalone PyTorch source to {out}" in result.out
    code = out.read_text(encoding="utf-8")
    assert code == emit_python(lstndsl.load(SPECS / "lstn.spec"))


def test_compile_emit_python_without_output_prints_only_code(
    cli: Callable[..., Any],
) -> None:
    result = cli("compile", SPECS / "stn.spec", "--emit", "python", "--input-size", "64")
    assert result.code == 0
    ast.parse(result.out)
    assert result.out == emit_python(lstndsl.load(SPECS / "stn.spec"), 64)


def test_compile_emit_python_reports_spec_errors_at_their_row(
    cli: Callable[..., Any], write_spec: Callable[..., Path]
) -> None:
    text = (SPECS / "stn.spec").read_text(encoding="utf-8").replace("218×218×8", "216×216×8")
    result = cli("compile", write_spec(text), "--emit", "python")
    assert result.code == 1
    assert "x.spec:15:46: error: output shape" in result.err


HOSTILE_NAMES = [
    "a \\x41 b",
    "a \\N{foo} b",
    'x """ y',
    "x ''' y",
    "ends in a backslash\\",
    'q\\"""; import os; os.system("echo pwned")  "',
    "n\x00ul \u200b \x0b \x0c \u2028 z",
    "{0} %s {name}",
    "a\\ " + "long-hyphenated-" * 10 + "name",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_no_spec_text_reaches_the_emitted_module_unescaped(name: str) -> None:
    text = (
        f"name: {name}\ninput: 32x32x3\nhead: flatten -> fc 6\n"
        "| Type | Filter Shape |\n|---|---|\n| Conv | 3x3x3x4 |\n"
    )
    spec = lstndsl.parse(text, 'odd """ \\x path\\.spec')
    source = emit_python(spec)
    tree = ast.parse(source)  # the module always compiles
    doc = ast.get_docstring(tree, clean=False) or ""
    words = f"{name} spatial transformer, generated by lstndsl from".split()
    assert doc.split()[: len(words)] == words  # (the docstring is wrapped at spaces)
    assert 'odd """ \\x path\\.spec.' in " ".join(doc.split())
    # the docstring is the only statement that holds spec text: no code came from the name
    assert [type(n).__name__ for n in tree.body[:2]] == ["Expr", "ImportFrom"]
