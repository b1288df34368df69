"""Export (compiler/export.py, `lstndsl export`): the ONNX file runs in onnxruntime and the
torch.export program loads back, both with a dynamic batch, and both match PyTorch; the
command verifies what it wrote and says so; bad flags and a disagreeing file are errors.

Models are exported at 64×64 (the exporters' cost hardly depends on the size; the tolerance's
dependence on it is spelled out in compiler/export.py). Not tested: the emitted Python
(test_emit.py) and fusing itself (test_fuse.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx
import pytest
import torch
from torch import nn

import lstndsl
from compiler import export as export_module
from compiler.build import build
from compiler.export import (
    OPSET,
    ExportError,
    export,
    format_of,
    run_onnx,
    run_pt2,
    tolerance_for,
)
from lstndsl.errors import UsageError

SPECS = Path(__file__).resolve().parents[1] / "specs"
SHAPE = (3, 64, 64)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)  # the compiled models' initial weights


def images(batch: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(batch, *SHAPE, generator=torch.Generator().manual_seed(seed))


def move_theta(model: nn.Module) -> None:
    """Batch-norm statistics from a batch (at init they shrink the features to nothing), then
    the head's last layer set so that θ = identity + up to ±0.1, differently for each image
    (a fresh spatial transformer outputs the identity whatever it sees)."""
    for bn in model.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.momentum = 1.0
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    seen: list[torch.Tensor] = []
    hook = last.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    with torch.no_grad():
        model.train()(images(4, seed=9))
        model.eval()(images(2))
        h = seen[-1] - seen[-1].mean(0)
        w = torch.randn(last.weight.shape, generator=torch.Generator().manual_seed(0))
        last.weight.copy_(w * 0.1 / (h @ w.T).abs().max().clamp_min(1e-12))
    hook.remove()


def lstn() -> nn.Module:
    model = build(lstndsl.load(SPECS / "lstn.spec"), input_size=64)
    move_theta(model)
    with torch.no_grad():
        theta = model.theta(images(2))  # type: ignore[operator]
    assert theta.isfinite().all() and not torch.allclose(theta[0], theta[1], atol=1e-2)
    return model


def test_onnx_runs_in_onnxruntime_with_a_dynamic_batch(tmp_path: Path) -> None:
    model, path = lstn(), tmp_path / "lstn.onnx"
    result = export(model, path, SHAPE)
    assert result.format == "onnx" and result.batch == 3 and result.ok
    assert result.max_abs_diff <= result.tolerance == pytest.approx(tolerance_for(SHAPE))
    assert "onnxruntime" in result.runtime and "CPUExecutionProvider" in result.runtime
    assert list(tmp_path.iterdir()) == [path]  # one self-contained file, no external data
    proto = onnx.load(str(path))
    assert {(o.domain, o.version) for o in proto.opset_import} >= {("", OPSET)}
    assert [i.name for i in proto.graph.input] == ["image"]
    assert [o.name for o in proto.graph.output] == ["output", "theta"]
    assert {"GridSample", "Conv"} <= {n.op_type for n in proto.graph.node}
    assert result.theta_max_abs_diff is not None and result.theta_tolerance is not None
    assert result.theta_max_abs_diff <= result.theta_tolerance
    assert 1e-4 <= result.theta_tolerance <= 2e-4  # 1e-4 × max(1, max |θ|), θ ≈ identity
    x = images(5, seed=2)  # neither the traced batch (2) nor the verified one (3)
    with torch.no_grad():
        expected, theta = model(x), model.theta(x)  # type: ignore[operator]
    got, got_theta = run_onnx(path, x)
    assert got.shape == expected.shape == (5, *SHAPE) and got_theta.shape == (5, 2, 3)
    assert (got_theta - theta).abs().max().item() <= 1e-4
    with torch.no_grad():  # the output, given the file's θ: the sampler's rounding only
        given = model.sample(x, got_theta)  # type: ignore[operator]
    assert (got - given).abs().max().item() <= tolerance_for(SHAPE)


def test_pt2_loads_back_and_matches_exactly(tmp_path: Path) -> None:
    model = build(lstndsl.load(SPECS / "stn.spec"), input_size=64).eval()
    move_theta(model)
    path = tmp_path / "stn.pt2"
    result = export(model, path, SHAPE)
    assert result.format == "pt2"
    assert result.max_abs_diff == result.theta_max_abs_diff == result.end_to_end_max_abs_diff == 0
    x = images(4, seed=3)
    out, theta = run_pt2(path, x)
    with torch.no_grad():
        assert torch.equal(out, model(x))
        assert torch.equal(theta, model.theta(x))  # type: ignore[operator]


def test_the_tolerance_grows_with_the_image_side() -> None:
    # 1e-4, plus 8 float32 ulps per pixel of the longer side (the sampler's grid rounding)
    assert tolerance_for((3, 224, 224)) == pytest.approx(1e-4 + 8 * 2**-23 * 224)
    assert tolerance_for((3, 224, 600)) == pytest.approx(1e-4 + 8 * 2**-23 * 600)


def test_format_comes_from_the_extension_or_the_flag() -> None:
    assert format_of("a/model.onnx") == "onnx"
    assert format_of("model.PT2") == "pt2"
    assert format_of("model.bin", "onnx") == "onnx"
    with pytest.raises(UsageError, match=r"cannot tell the export format from 'model\.pt'"):
        format_of("model.pt")
    with pytest.raises(UsageError, match="did you mean 'onnx'"):
        format_of("model.bin", "onx")


def test_a_disagreeing_file_is_an_export_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = build(lstndsl.load(SPECS / "stn.spec"), input_size=64).eval()
    real = export_module.run_pt2
    off = {"theta": 0.0, "output": 0.0}

    def run(path: Path, x: torch.Tensor) -> list[torch.Tensor]:
        out, theta = real(path, x)
        return [out + off["output"], theta + off["theta"]]

    monkeypatch.setattr(export_module, "run_pt2", run)
    off["output"] = 1e-2
    with pytest.raises(
        ExportError,
        match=r"θ max abs diff 0 \(tolerance 0\.0001\), output max"
        r" abs diff 0\.01 \(tolerance 0\.000161\); torch\.export",
    ):
        export(model, tmp_path / "a.pt2", SHAPE)
    off.update(output=0.0, theta=1e-3)
    with pytest.raises(ExportError, match=r"θ max abs diff 0\.001 \(tolerance 0\.0001\)"):
        export(model, tmp_path / "b.pt2", SHAPE)


def test_an_exporter_failure_is_an_export_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("Unsupported: some operator\nlong trace ...")

    monkeypatch.setattr(torch.export, "export", fail)
    model = build(lstndsl.load(SPECS / "stn.spec"), input_size=64)
    with pytest.raises(ExportError) as err:
        export(model, tmp_path / "stn.pt2", SHAPE)
    assert str(err.value).endswith(
        "stn.pt2: error: pt2 export failed: RuntimeError: Unsupported: some operator"
    )


# --- the CLI --------------------------------------------------------------------------------


def test_cli_exports_a_fused_backbone_model_and_verifies_it(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    out = tmp_path / "model.onnx"
    args = ["--backbone", "resnet18", "--num-classes", "7", "--input-size", "64", "--fuse"]
    result = cli("export", SPECS / "lstn.spec", "-o", out, *args)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == f"L-STN  {SPECS / 'lstn.spec'}  STN + resnet18, input 64×64×3"
    assert lines[1] == (
        "fused: 37 batch norms folded into the layers before them, channels-last"
    )  # 17 in the L-STN, 20 in resnet18
    assert lines[2].startswith(
        f"exported onnx (opset {OPSET}, image -> output, theta, dynamic batch) to {out}: "
    )
    assert lines[3].startswith("verified against PyTorch on a batch of 3, onnxruntime")
    assert lines[4].startswith("  theta   max abs diff ")
    assert lines[5].startswith("  output  max abs diff ") and "end to end" in lines[5]
    logits, theta = run_onnx(out, images(2))
    assert logits.shape == (2, 7) and theta.shape == (2, 2, 3)


def test_cli_json_contract(cli: Callable[..., Any], tmp_path: Path) -> None:
    out = tmp_path / "stn.pt2"
    result = cli("export", SPECS / "stn.spec", "-o", out, "--input-size", "64", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert {
        "path",
        "format",
        "spec",
        "backbone",
        "input",
        "params",
        "bytes",
        "fused",
        "batchnorms_folded",
        "outputs",
        "verified",
    } <= set(data)
    assert set(data["verified"]) >= {
        "max_abs_diff",
        "tolerance",
        "theta_max_abs_diff",
        "theta_tolerance",
        "end_to_end_max_abs_diff",
        "batch",
        "runtime",
    }
    assert data["outputs"] == ["output", "theta"]
    assert data["format"] == "pt2" and data["spec"] == "STN" and data["input"] == [3, 64, 64]
    assert data["params"] == 3_194 + (1_440 * 32 + 32) + (32 * 6 + 6)  # 12×12×10 at 64 px
    assert data["verified"]["max_abs_diff"] <= data["verified"]["tolerance"]
    assert data["bytes"] == out.stat().st_size


def test_cli_loads_weights_before_exporting(cli: Callable[..., Any], tmp_path: Path) -> None:
    model = build(lstndsl.load(SPECS / "stn.spec"), input_size=64).eval()
    move_theta(model)
    weights = tmp_path / "ckpt.pt"
    torch.save({"format": "lstndsl-checkpoint/1", "model": model.state_dict()}, weights)
    out = tmp_path / "stn.pt2"
    args = ["--input-size", "64", "--weights", weights]
    assert cli("export", SPECS / "stn.spec", "-o", out, *args).code == 0
    x = images(3)
    with torch.no_grad():
        assert torch.equal(run_pt2(out, x)[0], model(x))


def test_cli_rejects_weights_of_another_model(cli: Callable[..., Any], tmp_path: Path) -> None:
    model = build(lstndsl.load(SPECS / "stn.spec"))  # 224×224: another head size
    weights = tmp_path / "w.pt"
    torch.save(model.state_dict(), weights)
    args = ["--input-size", "64", "--weights", weights]
    result = cli("export", SPECS / "stn.spec", "-o", tmp_path / "x.pt2", *args)
    assert result.code == 2
    assert f"lstndsl: error: --weights: '{weights}' does not fit this model" in result.err
    assert "size mismatch" in result.err or "Error(s) in loading" in result.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "m.pt"], "m.pt': name it .onnx (onnx), .pt2 (pt2), or pass --format"),
        (["-o", "m.onnx", "--num-classes", "3"], "--num-classes needs --backbone"),
        (["-o", "m.onnx", "--format", "pt3"], "unknown export format 'pt3'; did you mean 'pt2'?"),
        (["-o", "m.onnx", "--input-size", "0"], "--input-size takes N or HxW"),
        (["-o", "m.onnx", "--backbone", "resnet81"], "did you mean"),
    ],
)
def test_cli_usage_errors(
    cli: Callable[..., Any], tmp_path: Path, args: list[str], message: str
) -> None:
    args = [str(tmp_path / a) if a.startswith("m.") else a for a in args]
    result = cli("export", SPECS / "stn.spec", *args)
    assert result.code == 2
    assert message in result.err
    assert "Traceback" not in result.err


def test_cli_reports_spec_errors_at_their_row(
    cli: Callable[..., Any], write_spec: Callable[..., Path], tmp_path: Path
) -> None:
    text = (SPECS / "stn.spec").read_text(encoding="utf-8").replace("| 2010 ", "| 2000 ")
    result = cli("export", write_spec(text), "-o", tmp_path / "x.onnx")
    assert result.code == 1
    assert "x.spec:17:61: error: parameters: declared 2000, inferred 2010" in result.err
    assert not (tmp_path / "x.onnx").exists()
