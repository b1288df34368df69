"""The GPU path on a machine without a GPU: the model, the trainer's step up to the loss, its
evaluation, θ statistics, θ-recovery error and the pictures' tensor work, run under torch's
`FakeTensorMode` with tensors on a fake `cuda:0`.

Fake tensors carry shapes, dtypes and devices but no data, so a tensor that meets one on
another device raises `FakeTensorDeviceMismatchError` exactly where CUDA would raise "Expected
all tensors to be on the same device" (issue 11: `theta_recovery_error` multiplied the CUDA
grid by a CPU `torch.tensor([w / 2.0, h / 2.0])`; putting that back in digits.py fails
`test_theta_recovery_error_on_fake_cuda`, and putting it in `geometry.pixel_scale`, where the
pixel scale lives now, also fails the step, evaluation, picture and model tests). Models are
built for real on the CPU (the builder's checks run) and then moved with `.to("cuda")` inside
the fake mode, as the trainer moves them. CUDA autocast needs `torch.cuda` to say it is
available and supports bf16: the fixture says so (monkeypatched), so autocast really casts (the
tests assert bf16/fp16 logits), and θ is checked to stay in float32.

What is not covered here, and why (where fake tensors cannot run a piece, the seam is cut there):
- backward and the optimizer step: autograd asks the CUDA driver for a context, so they do
  not run without one. tests/test_device_hygiene.py covers their code by reading it (no tensor
  factory without `device=`); `step` returns everything up to the loss so that all of the
  forward half runs here;
- host reads: `Meter.sums`/`reduce` (one `.tolist()` per device at the end of an epoch), the
  non-finite-loss check (`bool(torch.isfinite(loss))`), `thetastats.theta_sums`, the
  pictures' captions (`err.tolist()`) and matplotlib (`.cpu().numpy()`): the tests stop at the
  device tensors those reads would fetch and assert they are on the device;
- the data layer (batches are made on the host by design, moved by `step.inputs`, which runs
  here), checkpoints, the GradScaler, DDP and `--compile` (inductor needs a real device).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch._subclasses.fake_tensor import (
    FakeTensor,
    FakeTensorDeviceMismatchError,
    FakeTensorMode,
)

from compiler import geometry
from compiler.build import build
from lstndsl import parser
from lstndsl.train.data import Dataset, open_dataset
from lstndsl.train.device import autocast
from lstndsl.train.digits import theta_recovery_error
from lstndsl.train.drawing import transform_rows
from lstndsl.train.metrics import Meter
from lstndsl.train.step import evaluate_batch, inputs, measure, step
from lstndsl.train.thetaloss import ThetaSupervision
from lstndsl.train.thetastats import grid_distance, per_image

REPO = Path(__file__).resolve().parents[1]
CUDA = torch.device("cuda", 0)
AMPS = [None, "bf16", "fp16"]
DTYPES = {None: torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

TINY = """name: tiny
input: 32x32x3
head: flatten -> fc 8 -> relu -> fc {dof}
transform: {transform}

| Type                  | Filter Shape | Output Shape | Parameters |
|-----------------------|--------------|--------------|------------|
| Conv, stride 2 + ReLU | 3×3×3×4      | 15×15×4      | 112        |
"""
#: every transform kind: (the `transform:` header, head outputs, θ's shape after the batch)
KINDS = {
    "affine": ("affine", 6, (2, 3)),
    "translation": ("translation", 2, (2, 3)),
    "similarity": ("similarity, scale 0.5..2, translation 0.5", 4, (2, 3)),
    "projective": ("projective", 8, (3, 3)),
    "rotation": ("rotation", 1, (2, 3)),
    "tps": ("tps 6", 12, (6, 2)),
}


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTensorMode]:
    """A fake CUDA device, entered with `with fake_cuda:` (what is built before stays real, on
    the host): tensors made or moved to `cuda` inside are fake, and autocast on `cuda` is on
    (torch disables it, with a warning, when it sees no CUDA)."""
    monkeypatch.setattr(torch.cuda.amp.common, "amp_definitely_not_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    yield FakeTensorMode(allow_non_fake_inputs=True)


def on_cuda(t: torch.Tensor) -> bool:
    return isinstance(t, FakeTensor) and t.device == CUDA


@cache
def _tiny_model(kind: str, backbone: str | None) -> nn.Module:
    header, dof, _ = KINDS[kind]
    spec = parser.parse(TINY.format(dof=dof, transform=header), f"{kind}.spec")
    return build(spec, backbone=backbone, num_classes=10 if backbone else None, input_size=32)


def tiny_model(kind: str, backbone: str | None) -> nn.Module:
    """A fresh copy (moving a module is in place) of the tiny spec's model, built on the CPU."""
    return copy.deepcopy(_tiny_model(kind, backbone))


def test_the_harness_sees_a_device_mismatch(fake_cuda: FakeTensorMode) -> None:
    """The bug class of issue 11, as the issue wrote it: without this, passing tests below
    would prove nothing."""
    with fake_cuda, pytest.raises(FakeTensorDeviceMismatchError):
        eye = torch.eye(2, 3, device="cuda").expand(4, 2, 3)
        grid = F.affine_grid(eye, [4, 1, 8, 8], align_corners=False)
        grid * torch.tensor([4.0, 4.0])


@pytest.mark.parametrize("amp", AMPS)
@pytest.mark.parametrize("backbone", [None, "resnet18"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_the_model_runs_on_fake_cuda(
    fake_cuda: FakeTensorMode, kind: str, backbone: str | None, amp: str | None
) -> None:
    model = tiny_model(kind, backbone)
    with fake_cuda:
        model = model.to(CUDA)
        x = torch.randn(2, 3, 32, 32, device=CUDA)
        with autocast(CUDA, amp)():
            out, thetas = model(x, return_theta=True)
        ((name, theta),) = thetas.items()
        geometry_on_cuda(model, name, x, theta)
    assert on_cuda(out) and on_cuda(theta)
    # the backbone computes in autocast's dtype; θ, grid and sampler stay in float32
    assert out.shape == ((2, 10) if backbone else (2, 3, 32, 32))
    assert out.dtype == (DTYPES[amp] if backbone else torch.float32)
    assert theta.dtype == torch.float32 and tuple(theta.shape) == (2, *KINDS[kind][2])


def geometry_on_cuda(model: nn.Module, name: str, x: torch.Tensor, theta: torch.Tensor) -> None:
    """θ geometry of the transformer's kind on the device: statistics, the distance to an
    affine target (θ loss, θ-recovery error), the picture's resampling."""
    transform = _transform(model, name)
    stats = per_image(theta, (32, 32), transform)
    assert set(stats) == {"scale", "rotation", "translation", "outside"}
    assert all(on_cuda(v) and v.shape == (2,) for v in stats.values())
    ideal = torch.eye(2, 3, device=CUDA).expand(2, 2, 3)
    distance = grid_distance(theta, ideal, (32, 32), transform)
    assert on_cuda(distance) and distance.shape == (2,)
    resampled = model.resample(x, theta, name)
    assert on_cuda(resampled) and resampled.shape == x.shape


def _transform(model: nn.Module, name: str) -> Any:
    return model.transformers[name].transform


def test_theta_geometry_on_fake_cuda(fake_cuda: FakeTensorMode) -> None:
    with fake_cuda:
        theta = torch.randn(4, 2, 3, device=CUDA)
        inverse = geometry.inverse(theta)
        homography = geometry.inverse(torch.randn(4, 3, 3, device=CUDA))
        scale = geometry.pixel_scale((32, 48), theta)
    assert on_cuda(inverse) and on_cuda(homography)
    assert on_cuda(scale)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_theta_recovery_error_on_fake_cuda(fake_cuda: FakeTensorMode, reduction: str) -> None:
    """Issue 11's bug: this raised FakeTensorDeviceMismatchError (a CPU pixel scale)."""
    with fake_cuda:
        pred = torch.randn(4, 2, 3, device=CUDA)
        ideal = torch.randn(4, 2, 3, device=CUDA)
        err = theta_recovery_error(pred, ideal, (64, 48), reduction=reduction)
    assert on_cuda(err) and err.shape == (() if reduction == "mean" else (4,))


# --- the trainer: one batch of the embedded digits, specs/lstn.spec + resnet18 -------------


@cache
def _digits() -> Dataset:
    return open_dataset("digits", seed=0)


@cache
def _trainer_model() -> nn.Module:
    specs = [parser.parse_file(REPO / "specs" / n) for n in ("lstn.spec", "stage2.spec")]
    return build(specs, backbone="resnet18", num_classes=10, input_size=64)


def fake_run(mode: FakeTensorMode, amp: str | None) -> SimpleNamespace:
    """What `step`, `measure`, `evaluate_batch` and `transform_rows` read of a `Run`, with the
    model moved to the fake device as `loop.main` moves it (channels-last: CUDA's default)."""
    dataset = _digits()
    model = copy.deepcopy(_trainer_model())
    with mode:
        model = model.to(CUDA, memory_format=torch.channels_last)  # one move: fakes do not swap
    return SimpleNamespace(
        device=CUDA,
        config=SimpleNamespace(channels_last=None, amp=amp),
        dataset=dataset,
        model=model,
        net=model,
        size=(dataset.image_size, dataset.image_size),
    )


def supervision(dataset: Dataset) -> ThetaSupervision:
    """θ labels on half the training images (built on the host, as the trainer does)."""
    assert dataset.source.theta is not None
    train = dataset.split["train"]
    return ThetaSupervision(dataset.source.theta, train, labels=0.5, noise=0.01, seed=0)


def _pending(meter: Meter) -> dict[str, torch.Tensor]:
    return meter._pending  # the device-side sums a host read would fetch


@pytest.mark.parametrize("amp", AMPS)
def test_the_training_step_up_to_the_loss(fake_cuda: FakeTensorMode, amp: str | None) -> None:
    """`step` (forward, cross-entropy, θ loss) and `measure` for one training batch; two
    transformers (specs/lstn.spec at the input, specs/stage2.spec on resnet18's layer2)."""
    run = fake_run(fake_cuda, amp)
    batch = run.dataset.load(run.dataset.split["train"][:8])
    sup = supervision(run.dataset)
    first = run.model.input_transformer
    with fake_cuda:
        x, y = inputs(run, batch)  # type: ignore[arg-type]
        assert on_cuda(x) and on_cuda(y) and x.is_contiguous(memory_format=torch.channels_last)
        out = step(
            run.net,
            x,
            y,
            batch.indices,
            amp=autocast(CUDA, amp),
            size=run.size,
            supervision=sup,
            theta_weight=10.0,
            supervised=first,
            transform=run.model.transformers[first].transform,
        )
        meter = Meter()
        measure(run, meter, batch, out.logits.detach(), out.thetas)  # type: ignore[arg-type]
    assert out.logits.dtype == DTYPES[amp] and on_cuda(out.logits)
    assert list(out.thetas) == ["input", "layer2"] and all(map(on_cuda, out.thetas.values()))
    assert out.theta_loss is not None and isinstance(out.labelled, torch.Tensor)
    for t in (out.ce, out.theta_loss, out.labelled, out.loss):
        assert on_cuda(t) and t.shape == ()
    assert out.loss.dtype == torch.float32
    pending = _pending(meter)
    assert {"top1", "top5", "scale", "layer2/scale", "theta_error"} <= set(pending)
    assert all(on_cuda(v) for v in pending.values())


@pytest.mark.parametrize("amp", AMPS)
def test_evaluation_batch(fake_cuda: FakeTensorMode, amp: str | None) -> None:
    run = fake_run(fake_cuda, amp)
    batch = run.dataset.load(run.dataset.split["val"][:8])
    run.model.eval()
    meter = Meter()
    with fake_cuda, torch.no_grad():
        evaluate_batch(run, meter, batch, autocast(CUDA, amp))  # type: ignore[arg-type]
    pending = _pending(meter)
    assert {"loss", "top1", "top5", "scale", "outside", "theta_error"} <= set(pending)
    assert all(on_cuda(v) and v.dtype == torch.float64 for v in pending.values())


def test_picture_tensors(fake_cuda: FakeTensorMode) -> None:
    run = fake_run(fake_cuda, None)
    batch = run.dataset.load(run.dataset.split["val"][:4])
    run.model.eval()
    with fake_cuda:
        rows, err = transform_rows(run, batch)  # type: ignore[arg-type]
    assert [label for label, _ in rows] == ["input", "θ input", "θ layer2", "ideal θ"]
    assert all(on_cuda(images) and images.shape == (4, 3, 64, 64) for _, images in rows)
    assert err is not None and on_cuda(err) and err.shape == (4,)
