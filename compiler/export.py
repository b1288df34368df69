"""Export a compiled model to a file other runtimes load, and prove the file computes the same.

Two formats, chosen by the file's extension (or `fmt`):

- `onnx` (`.onnx`): `torch.onnx.export` with the dynamo exporter (torch 2.14's default;
  the TorchScript-based exporter cannot translate `affine_grid` below opset 20). Opset 20:
  the first with both GridSample and AffineGrid. One self-contained file (no external
  data). Verified with onnxruntime's CPUExecutionProvider.
- `pt2` (`.pt2`): a `torch.export` ExportedProgram (`torch.export.save`; load it back with
  `torch.export.load(path).module()`). TorchScript is not offered: `torch.jit.trace` and
  `torch.jit.script` are deprecated in torch 2.14 (FutureWarning), and scripting fails on the
  spatial transformer's annotations.

The exported function takes `image` (B×C×H×W, the batch dynamic) and, for a model from
`compiler.build`, returns `output` (the resampled image, or the backbone's logits) and the θ of
each transformer from the same forward: `theta` for a model of one (B×2×3, B×3×3 projective,
B×N×2 tps control points), `theta_<name>` for each of several (`theta_input`, `theta_layer2`).
Any other module returns `output` only.

Verification (`verify`, run by `export`) feeds one seeded random batch, of another size than
the one traced, to the file and to PyTorch, and checks each stage against its own
conditioning, because the sampler amplifies rounding in θ: a θ off by δ moves a sample by
δ × W/2 pixels, and where the image meets the zero padding one pixel step is the whole pixel
value (a θ off by 1e-6 changes such samples by ~1e-4 at 224 px).

- `theta`: within 1e-4 × max(1, max |θ|) of PyTorch's (the localization net and the head);
- `output`: within (1e-4 + 8 float32 ulps × the image's longer side) × max(1, max |output|)
  of PyTorch's sampler (and backbone) run on the file's own θ. The ulps term is the grid
  rounding: onnxruntime's AffineGrid rounds the coordinates differently (2.8e-5 measured at
  224 px, 9.4e-5 at 600 px, identity θ, random images);
- the end-to-end difference (PyTorch's output vs the file's) is reported, not checked.

An export error or a disagreement raises `ExportError` (exit 1). This module is not the CLI
(lstndsl/commands/export.py) and does not build models.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from compiler.stn import compiled
from lstndsl.errors import Diagnostic, LstnError, UsageError, did_you_mean

#: format name -> file extension
FORMATS: dict[str, str] = {"onnx": ".onnx", "pt2": ".pt2"}

#: ONNX opset: 20 is the first with AffineGrid (GridSample arrived in 16)
OPSET = 20

#: verification tolerances, relative to each output's scale: RTOL, plus for the resampled
#: output SAMPLER_ULPS float32 ulps per pixel of the image's longer side
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
    """`output`: the file's vs PyTorch's, PyTorch run on the file's θ when there is one."""
    tolerance: float
    theta_max_abs_diff: float | None
    """`theta`: the file's vs PyTorch's (None: the model has no θ output)."""
    theta_tolerance: float | None
    end_to_end_max_abs_diff: float
    """`output`: the file's vs PyTorch's own forward (reported, not checked)."""
    runtime: str
    """What ran the file: 'onnxruntime 1.x CPUExecutionProvider', 'torch.export …'."""

    @property
    def ok(self) -> bool:
        theta_ok = self.theta_max_abs_diff is None or (
            self.theta_tolerance is not None and self.theta_max_abs_diff <= self.theta_tolerance
        )
        return self.max_abs_diff <= self.tolerance and theta_ok


class WithTheta(nn.Module):
    """What the exported file computes for a model with spatial transformers: (output, θ of
    each transformer in application order), one forward, through the model's own API."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out, thetas = self.model(x, return_theta=True)
        return (out, *thetas.values())


def has_theta(model: nn.Module) -> bool:
    """Whether the model is one of compiler.build's, with at least one transformer."""
    return bool(getattr(model, "transformers", None))


def output_names(model: nn.Module) -> list[str]:
    """`output`, then `theta` for a model of one transformer, `theta_<name>` for each of
    several."""
    if not has_theta(model):
        return ["output"]
    names = list(compiled(model).transformers)
    if len(names) == 1:
        return ["output", "theta"]
    return ["output", *(f"theta_{n}" for n in names)]


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


def _exported(model: nn.Module) -> tuple[nn.Module, list[str]]:
    if has_theta(model):
        return WithTheta(model).eval(), output_names(model)
    return model, ["output"]


def export_onnx(model: nn.Module, path: str | Path, example: torch.Tensor) -> None:
    module, outputs = _exported(model)
    with _quiet():
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=["image"],
            output_names=outputs,
            opset_version=OPSET,
            dynamo=True,
            dynamic_shapes=_dynamic_batch(),
            external_data=False,
            verbose=False,
        )


def export_pt2(model: nn.Module, path: str | Path, example: torch.Tensor) -> None:
    module, _ = _exported(model)
    with _quiet():
        program = torch.export.export(module, (example,), dynamic_shapes=_dynamic_batch())
        torch.export.save(program, str(path))


def run_onnx(path: str | Path, x: torch.Tensor) -> list[torch.Tensor]:
    """Run an exported .onnx file on x with onnxruntime (CPU): its outputs, in order."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return [torch.from_numpy(out) for out in session.run(None, {name: x.detach().numpy()})]


def run_pt2(path: str | Path, x: torch.Tensor) -> list[torch.Tensor]:
    """Load an exported .pt2 file and run it on x: its outputs, in order."""
    with _quiet():
        program = torch.export.load(str(path))
    with torch.no_grad():
        out = program.module()(x)
    return list(out) if isinstance(out, tuple | list) else [out]


def _runtime(fmt: str) -> str:
    if fmt == "onnx":
        import onnxruntime as ort

        return f"onnxruntime {ort.__version__} CPUExecutionProvider"
    return f"torch.export (torch {torch.__version__.split('+')[0]})"


def tolerance_for(input_shape: tuple[int, ...]) -> float:
    """The relative tolerance on the output of a model taking (C, H, W) images."""
    eps = torch.finfo(torch.float32).eps
    return RTOL + SAMPLER_ULPS * eps * max(input_shape[1:])


def _max_diff(a: torch.Tensor, b: torch.Tensor, what: str, path: str | Path) -> float:
    if a.shape != b.shape:
        raise ExportError(
            f"the exported file's {what} has shape {tuple(a.shape)}, PyTorch's {tuple(b.shape)}",
            str(path),
        )
    return (a.float() - b.float()).abs().max().item()


def _scale(t: torch.Tensor) -> float:
    return max(1.0, t.abs().max().item())


def verify(
    model: nn.Module, path: str | Path, fmt: str, input_shape: tuple[int, ...], batch: int = 3
) -> Verification:
    """Run the exported file and the module on one seeded random batch in [0, 1)."""
    # cpu-ok: the exported file runs on the host (onnxruntime's CPU provider, pt2 on the CPU)
    x = torch.rand(batch, *input_shape, generator=torch.Generator().manual_seed(0))
    got = run_onnx(path, x) if fmt == "onnx" else run_pt2(path, x)
    with torch.no_grad():
        expected = model(x)
        end_to_end = _max_diff(got[0], expected, "output", path)
        tolerance = tolerance_for(input_shape) * _scale(expected)
        if not has_theta(model) or len(got) < 2:
            return Verification(
                fmt, str(path), batch, end_to_end, tolerance, None, None, end_to_end, _runtime(fmt)
            )
        _, thetas = model(x, return_theta=True)
        theta_diff, theta_scale = 0.0, 0.0
        for file_theta, (name, theta) in zip(got[1:], thetas.items(), strict=True):
            theta_diff = max(theta_diff, _max_diff(file_theta, theta, f"theta of {name}", path))
            theta_scale = max(theta_scale, _scale(theta))
        files = {n: t.to(torch.float32) for n, t in zip(thetas, got[1:], strict=True)}
        given = model(x, thetas=files)
        diff = _max_diff(got[0], given, "output", path)
    return Verification(
        fmt,
        str(path),
        batch,
        diff,
        tolerance_for(input_shape) * _scale(given),
        theta_diff,
        RTOL * theta_scale,
        end_to_end,
        _runtime(fmt),
    )


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
    exporter fails or the file disagrees with PyTorch beyond the tolerances."""
    fmt = format_of(path, fmt)
    model.eval()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # cpu-ok: export traces the model on the host
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
        theta = ""
        if result.theta_max_abs_diff is not None:
            theta = (
                f"θ max abs diff {result.theta_max_abs_diff:.3g} (tolerance"
                f" {result.theta_tolerance:.3g}), "
            )
        raise ExportError(
            f"the exported file disagrees with PyTorch: {theta}output max abs diff"
            f" {result.max_abs_diff:.3g} (tolerance {result.tolerance:.3g});"
            f" {result.runtime}, batch {result.batch}",
            str(path),
        )
    return result
