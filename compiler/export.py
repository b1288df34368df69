"""Export a compiled model to a file other runtimes load, and prove the file computes the same.

Two formats, chosen by the file's extension (or `fmt`):

- `onnx` (`.onnx`): `torch.onnx.export` with the dynamo exporter (torch 2.14's default;
  the TorchScript-based exporter cannot translate `affine_grid` below opset 20). Opset 20:
  the first with both GridSample and AffineGrid. One self-contained file (no external
  data), input `image` (B×C×H×W, batch dynamic), output `output`. Verified with
  onnxruntime's CPUExecutionProvider.
- `pt2` (`.pt2`): a `torch.export` ExportedProgram (`torch.export.save`; load it back with
  `torch.export.load(path).module()`), batch dynamic. TorchScript is not offered:
  `torch.jit.trace` and `torch.jit.script` are deprecated in torch 2.14 (FutureWarning), and
  scripting fails on the spatial transformer's annotations.

`export(model, path, input_shape)` writes the file, runs it on a seeded random batch of a
different size than the one traced (so the dynamic batch is exercised) and compares with
the PyTorch module: `Verification.max_abs_diff` against `tolerance`, (1e-4 + 8 float32
ulps × the image's longer side) × max(1, max |output|): the second term is the sampler's,
whose grid onnxruntime rounds differently (2.8e-5 measured at 224 px, 9.4e-5 at 600 px, on
random images with the identity θ). An export error or a disagreement raises `ExportError`
(exit 1).

This module is not the CLI (lstndsl/commands/export.py) and does not build models.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lstndsl.errors import Diagnostic, LstnError, UsageError, did_you_mean

#: format name -> file extension
FORMATS: dict[str, str] = {"onnx": ".onnx", "pt2": ".pt2"}

#: ONNX opset: 20 is the first with AffineGrid (GridSample arrived in 16)
OPSET = 20

#: verification tolerance, relative to the output's scale: RTOL, plus the sampler's
#: coordinate rounding (SAMPLER_ULPS float32 ulps per pixel of the image's longer side:
#: onnxruntime's AffineGrid rounds the grid differently, and a coordinate off by δ pixels
#: moves a bilinear sample by up to δ × the pixel step; measured ≈ 1.5 ulps × side)
RTOL = 1e-4
SAMPLER_ULPS = 8


class ExportError(LstnError):
    """Export failed, or the exported file disagrees with PyTorch (exit 1)."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__([Diagnostic("error", message, path, 0, 0)], None, exit_code=1)


@dataclass(frozen=True)
class Verification:
    """The exported file run against the PyTorch module on the same batch."""

    format: str
    path: str
    batch: int
    max_abs_diff: float
    tolerance: float
    runtime: str
    """What ran the file: 'onnxruntime 1.x CPUExecutionProvider', 'torch.export'."""

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.tolerance


def format_of(path: str | Path, fmt: str | None = None) -> str:
    """The export format: `fmt` if given, else from the extension; UsageError if neither."""
    if fmt is not None:
        if fmt not in FORMATS:
            hint = did_you_mean(fmt, FORMATS) or f"use one of {', '.join(FORMATS)}"
            raise UsageError(f"unknown export format '{fmt}'; {hint}")
        return fmt
    suffix = Path(path).suffix.lower()
    for name, ext in FORMATS.items():
        if suffix == ext:
            return name
    known = ", ".join(f"{ext} ({name})" for name, ext in FORMATS.items())
    raise UsageError(
        f"cannot tell the export format from '{path}': name it {known}, or pass --format"
    )


def _quiet() -> contextlib.ExitStack:
    """Silence the exporters' progress lines and warnings (errors still raise)."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    return stack


def _dynamic_batch() -> tuple[dict[int, torch.export.Dim],]:
    return ({0: torch.export.Dim("batch", min=1, max=4096)},)


def export_onnx(model: nn.Module, path: str | Path, example: torch.Tensor) -> None:
    with _quiet():
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["image"],
            output_names=["output"],
            opset_version=OPSET,
            dynamo=True,
            dynamic_shapes=_dynamic_batch(),
            external_data=False,
            verbose=False,
        )


def export_pt2(model: nn.Module, path: str | Path, example: torch.Tensor) -> None:
    with _quiet():
        program = torch.export.export(model, (example,), dynamic_shapes=_dynamic_batch())
        torch.export.save(program, str(path))


def run_onnx(path: str | Path, x: torch.Tensor) -> torch.Tensor:
    """Run an exported .onnx file on x with onnxruntime (CPU)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    (out, *_) = session.run(None, {name: x.detach().cpu().numpy()})
    return torch.from_numpy(out)


def run_pt2(path: str | Path, x: torch.Tensor) -> torch.Tensor:
    """Load an exported .pt2 file and run it on x."""
    with _quiet():
        program = torch.export.load(str(path))
    with torch.no_grad():
        out: torch.Tensor = program.module()(x)
    return out


def _runtime(fmt: str) -> str:
    if fmt == "onnx":
        import onnxruntime as ort

        return f"onnxruntime {ort.__version__} CPUExecutionProvider"
    return f"torch.export (torch {torch.__version__.split('+')[0]})"


def tolerance_for(input_shape: tuple[int, ...]) -> float:
    """The relative tolerance for a model taking (C, H, W) images."""
    eps = torch.finfo(torch.float32).eps
    return RTOL + SAMPLER_ULPS * eps * max(input_shape[1:])


def verify(
    model: nn.Module, path: str | Path, fmt: str, input_shape: tuple[int, ...], batch: int = 3
) -> Verification:
    """Run the exported file and the module on one seeded random batch in [0, 1)."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, *input_shape, generator=g)
    with torch.no_grad():
        expected = model(x)
    got = run_onnx(path, x) if fmt == "onnx" else run_pt2(path, x)
    if got.shape != expected.shape:
        raise ExportError(
            f"the exported {fmt} file gives shape {tuple(got.shape)}, PyTorch"
            f" {tuple(expected.shape)}",
            str(path),
        )
    diff = (got.float() - expected.float()).abs().max().item()
    tolerance = tolerance_for(input_shape) * max(1.0, expected.abs().max().item())
    return Verification(fmt, str(path), batch, diff, tolerance, _runtime(fmt))


def export(
    model: nn.Module,
    path: str | Path,
    input_shape: tuple[int, ...],
    fmt: str | None = None,
    example_batch: int = 2,
    verify_batch: int = 3,
) -> Verification:
    """Write `model` (put in eval mode) to `path` and verify the file against it.

    `input_shape` is (C, H, W); the batch dimension is dynamic. Raises `ExportError` if the
    exporter fails or the file disagrees with PyTorch beyond the tolerance."""
    fmt = format_of(path, fmt)
    model.eval()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    example = torch.rand(example_batch, *input_shape, generator=torch.Generator().manual_seed(1))
    try:
        if fmt == "onnx":
            export_onnx(model, path, example)
        else:
            export_pt2(model, path, example)
    except Exception as err:  # the exporters raise many types; the user needs the first line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExportError(f"{fmt} export failed: {type(err).__name__}: {first}", str(path)) from err
    result = verify(model, path, fmt, input_shape, verify_batch)
    if not result.ok:
        raise ExportError(
            f"the exported file disagrees with PyTorch: max abs diff {result.max_abs_diff:.3g}"
            f" > tolerance {result.tolerance:.3g} ({result.runtime}, batch {result.batch})",
            str(path),
        )
    return result
