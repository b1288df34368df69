"""The seams and the one-name-per-kind rule, and the compiler's side of issue 2.

- The front end (`check`, parser, IR, catalog, fmt, the CLI) never imports torch, timm or
  `compiler` (a subprocess imports it and runs `check` and `fmt`).
- One name per layer kind: IR tags == catalog keys == compiler builders; every catalog word
  parses to its kind; the grammar holds no layer or option word.
- Every kind, as a one-row spec, compiles and torch agrees with the catalog (parametrized over
  the catalog, so a new kind is covered by itself).
- `compiler.build`: submodules named after rows, per-row verification raising `CompileError`
  at the row torch disagrees with, re-inference at another input size.

Not here: random stacks against torch (test_properties.py).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import compiler
from compiler import layers as compiler_layers
from lstndsl import analyze, catalog, ir, load, parse
from lstndsl.errors import CompileError, SpecCheckError

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "specs"
GRAMMAR = REPO / "lstndsl" / "grammar" / "spec.lark"


# --- the seam ------------------------------------------------------------------------------

FRONT_END = """
import sys
import lstndsl, lstndsl.parser, lstndsl.interpret, lstndsl.check, lstndsl.catalog
import lstndsl.fmt, lstndsl.ir, lstndsl.errors, lstndsl.cli
codes = [
    lstndsl.cli.main(["check", "specs/lstn.spec", "specs/vstn.spec"]),
    lstndsl.cli.main(["check", "--json", "--input-size", "240", "specs/stn.spec"]),
    lstndsl.cli.main(["fmt", "--fill", "specs/lstn.spec"]),
]
heavy = sorted(
    m for m in sys.modules
    if m.split(".")[0] in {"torch", "timm", "torchvision", "compiler", "numpy", "onnx"}
)
print("RESULT", codes, heavy, file=sys.stderr)
"""


def test_front_end_never_imports_torch_timm_or_compiler() -> None:
    r = subprocess.run(
        [sys.executable, "-c", FRONT_END],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    result = r.stderr.splitlines()[-1]
    assert result == "RESULT [0, 0, 0] []", result


# --- one name per kind -----------------------------------------------------------------------


def ir_tags() -> set[str]:
    return {tag for cls in ir.LAYER_CLASSES for tag in ir.layer_tags(cls)}


def test_ir_tags_catalog_and_builders_are_the_same_set() -> None:
    tags = ir_tags()
    assert len(tags) >= 20
    assert tags == set(catalog.CATALOG)
    assert tags == set(compiler_layers.BUILDERS)
    for kind, entry in catalog.CATALOG.items():
        assert entry.kind == kind
        assert kind in ir.layer_tags(entry.model)


def test_the_issue_s_layer_kinds_are_all_there() -> None:
    required = {"conv", "maxpool", "avgpool", "batchnorm", "relu", "dropout", "linear", "flatten"}
    assert required <= set(catalog.CATALOG)
    assert {"tanh", "sigmoid", "gelu", "leakyrelu", "elu", "silu"} <= set(catalog.CATALOG)


def test_layer_words_are_unambiguous() -> None:
    owners: dict[str, set[str]] = {}
    for kind, entry in catalog.CATALOG.items():
        for word in (kind, *entry.words):
            owners.setdefault(catalog.normalize(word), set()).add(kind)
    clashes = {w: k for w, k in owners.items() if len(k) > 1}
    assert clashes == {}


ALL_WORDS = [(kind, word) for kind, e in catalog.CATALOG.items() for word in (kind, *e.words)]


@pytest.mark.parametrize(("kind", "word"), ALL_WORDS, ids=[w for _, w in ALL_WORDS])
def test_every_catalog_word_parses_to_its_kind(kind: str, word: str) -> None:
    for written in (word, word.upper(), word.lower()):
        spec = parse(f"input: 8x8x4\nhead: flatten -> fc 6\n| Type |\n|---|\n| {written} |\n")
        assert spec.rows[0].layers[0].kind == kind
        head = parse(
            f"input: 8x8x4\nhead: {written} -> flatten -> fc 6\n| Type |\n|---|\n| ReLU |\n"
        )
        assert head.head[0].kind == kind


def test_grammar_holds_no_layer_or_option_words() -> None:
    text = "\n".join(ln.split("//")[0] for ln in GRAMMAR.read_text(encoding="utf-8").splitlines())
    tokens = {t.lower() for t in re.findall(r"[A-Za-z]+", text)}
    words = {catalog.normalize(w) for e in catalog.CATALOG.values() for w in (e.kind, *e.words)}
    options = {catalog.normalize(w) for e in catalog.CATALOG.values() for w in e.options}
    meaningful = {w for w in words | options if len(w) >= 3}
    assert tokens & meaningful == set()
    for word in ("conv", "relu", "pool", "batch", "linear", "stride", "padding"):
        assert word not in text.lower()


# --- every kind compiles, and torch agrees ------------------------------------------------------


def one_row_spec(kind: str) -> ir.Spec:
    """A spec whose last row is `kind` in its plainest form: on an 8×8×4 map, or after a
    flatten when the kind needs a vector."""
    entry = catalog.CATALOG[kind]
    word = {"groupnorm": "Group norm 2"}.get(kind, entry.words[0])  # a kind with a required value
    header = "input: 8x8x4\nhead: flatten -> fc 6\n| Type | Filter Shape |\n|---|---|\n"
    filters = {"conv": "3x3x4x6", "pool": "2x2", "norm": "4", "linear": "256x5", None: ""}
    row = f"| {word} | {filters[entry.filter]} |\n"
    spec = parse(header + row, f"{kind}.spec")
    if not analyze(spec).ok:  # a kind that needs a flat input
        flat = "| Flatten | |\n" + row.replace("| 4 |", "| 256 |")
        spec = parse(header + flat, f"{kind}.spec")
    return spec


@pytest.mark.parametrize("kind", sorted(catalog.CATALOG))
def test_every_kind_compiles_and_torch_agrees(kind: str) -> None:
    spec = one_row_spec(kind)
    analysis = analyze(spec)
    assert analysis.ok, analysis.diagnostics
    stn = compiler.build(spec)  # verifies parameters and shapes itself
    last = analysis.rows[-1]
    assert last.layers[0].layer.kind == kind
    name, module = list(stn.localization.named_children())[-1]
    assert name == f"row{len(analysis.rows):02d}_{kind}"
    assert sum(p.numel() for p in module.parameters()) == last.params
    with torch.no_grad():
        out = stn.eval().localization(torch.rand(2, 4, 8, 8))
    assert tuple(out.shape[1:]) == last.output


# --- compiler.build --------------------------------------------------------------------------


def test_submodules_are_named_after_rows() -> None:
    stn = compiler.build(load(SPECS / "stn.spec"))
    assert [n for n, _ in stn.localization.named_children()] == [
        "row01_conv",
        "row02_maxpool_relu",
        "row03_conv",
        "row04_maxpool_relu",
    ]
    assert [n for n, _ in stn.head.named_children()] == ["flatten", "linear", "relu", "linear2"]
    lstn = compiler.build(load(SPECS / "lstn.spec"))
    names = [n for n, _ in lstn.localization.named_children()]
    assert names == [f"row{i:02d}_conv_batchnorm_relu" for i in range(1, 18)]
    assert isinstance(lstn.localization.row01_conv_batchnorm_relu.conv, nn.Conv2d)
    assert lstn.localization.row01_conv_batchnorm_relu.conv.padding == (1, 1)


def test_build_counts_match_the_paper() -> None:
    for name, local in (("stn", 3194), ("vstn", 3032), ("lstn", 3690)):
        stn = compiler.build(load(SPECS / f"{name}.spec"))
        assert sum(p.numel() for p in stn.localization.parameters()) == local
        assert sum(p.numel() for p in stn.head.parameters()) == 865_510


def test_build_at_another_input_size() -> None:
    spec = load(SPECS / "stn.spec")
    stn = compiler.build(spec, input_size=240)
    assert sum(p.numel() for p in stn.head.parameters()) == 1_003_750
    stn = compiler.build(spec, input_size=(240, 320))
    assert sum(p.numel() for p in stn.head.parameters()) == 1_362_150
    with torch.no_grad():
        assert stn.eval()(torch.rand(1, 3, 240, 320)).shape == (1, 3, 240, 320)


def test_build_refuses_specs_with_errors() -> None:
    spec = parse(
        "input: 32x32x3\nhead: flatten -> fc 6\n| Type | Filter Shape | Output Shape |\n"
        "|---|---|---|\n| Conv + ReLU | 3x3x3x4 | 32x32x4 |\n",
        "bad.spec",
    )
    with pytest.raises(SpecCheckError) as info:
        compiler.build(spec)
    assert [(d.line, d.column, d.code) for d in info.value.errors] == [(5, 27, "shape")]


def _stn_lines() -> dict[str, int]:
    """STN rows: conv at 15 and 17, max pool at 16 and 18."""
    spec = load(SPECS / "stn.spec")
    return {f"{r.layers[0].kind}{i}": r.pos.line for i, r in enumerate(spec.rows)}


def test_verify_reports_a_parameter_disagreement_at_each_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def conv_without_bias(layer: Any, r: Any) -> nn.Module:
        return nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel, bias=False)

    monkeypatch.setitem(compiler_layers.BUILDERS, "conv", conv_without_bias)
    with pytest.raises(CompileError) as info:
        compiler.build(load(SPECS / "stn.spec"))
    errors = info.value.errors
    assert [(d.line, d.column, d.code) for d in errors] == [(15, 3, "torch"), (17, 3, "torch")]
    assert errors[0].message == "torch's Sequential has 1176 parameters, the catalog infers 1184"
    assert info.value.exit_code == 1


def test_verify_reports_a_shape_disagreement_at_its_row(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        compiler_layers.BUILDERS, "maxpool", lambda layer, r: nn.MaxPool2d(layer.kernel, stride=1)
    )
    with pytest.raises(CompileError) as info:
        compiler.build(load(SPECS / "stn.spec"))
    (d,) = info.value.errors
    assert (d.line, d.column, d.code) == (16, 3, "torch")
    assert d.message == "torch's output is 217×217×8, the catalog infers 109×109×8"


def test_verify_reports_a_module_torch_cannot_run_at_its_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(
        compiler_layers.BUILDERS,
        "batchnorm",
        lambda layer, r: nn.BatchNorm2d(layer.num_features + 1),
    )
    with pytest.raises(CompileError) as info:
        compiler.build(load(SPECS / "lstn.spec"))
    errors = info.value.errors
    lines = [r.pos.line for r in load(SPECS / "lstn.spec").rows]
    # every row's parameter count disagrees; the dry forward stops at the first row
    assert [(d.line, d.code) for d in errors if "parameters" in d.message] == [
        (line, "torch") for line in lines
    ]
    runs = [d for d in errors if "parameters" not in d.message]
    assert [(d.line, d.column) for d in runs] == [(lines[0], 3)]
    assert runs[0].message.startswith("torch cannot run this row: ")


def test_verify_checks_the_head(monkeypatch: pytest.MonkeyPatch) -> None:
    original = compiler_layers.BUILDERS["linear"]

    def hidden_without_bias(layer: Any, r: Any) -> nn.Module:
        if layer.out_features == 32:
            return nn.Linear(layer.in_features, 32, bias=False)
        return original(layer, r)

    monkeypatch.setitem(compiler_layers.BUILDERS, "linear", hidden_without_bias)
    with pytest.raises(CompileError) as info:
        compiler.build(load(SPECS / "stn.spec"))
    (d,) = info.value.errors
    assert (d.line, d.column, d.code) == (9, 7, "torch")  # where the head is written
    assert d.message == "torch's head has 865478 parameters, the catalog infers 865510"


def test_compile_error_prints_at_the_row(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    from lstndsl.cli import main

    monkeypatch.setitem(
        compiler_layers.BUILDERS, "maxpool", lambda layer, r: nn.MaxPool2d(layer.kernel, stride=1)
    )
    assert main(["compile", str(SPECS / "stn.spec")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"{SPECS / 'stn.spec'}:16:3: error: torch's output is 217×217×8, the catalog infers"
        " 109×109×8"
    )
    assert "Traceback" not in err
