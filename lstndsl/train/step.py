"""One training step up to the loss, and what one batch adds to the epoch's sums.

What it is: `inputs` (a batch onto the run's device and memory format), `step` (forward under
autocast, cross-entropy in fp32, the θ loss: everything before `backward`, one function a test
can run under FakeTensorMode on a fake CUDA device, since backward cannot run without a driver),
`evaluate_batch` (one validation or test batch) and `measure` (accuracy, θ statistics and
θ-recovery error of one batch into a `Meter`); tests/test_fake_cuda.py runs all four there.
What it is not: the backward pass, the optimizer or the epoch loop (loop.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lstndsl.ir import Transform
from lstndsl.train.data import Batch
from lstndsl.train.device import use_channels_last
from lstndsl.train.metrics import Meter, topk_hits
from lstndsl.train.state import Run
from lstndsl.train.thetaloss import ThetaSupervision
from lstndsl.train.thetastats import AFFINE, grid_distance, per_image


def channels_last(run: Run) -> bool:
    """Whether this run's model and batches use the channels-last memory format."""
    return use_channels_last(run.device, run.config.channels_last, run.dataset.image_size)


def inputs(run: Run, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's images and labels on the run's device (channels-last where the run uses it)."""
    x = batch.images.to(run.device, non_blocking=True)
    if channels_last(run):
        x = x.contiguous(memory_format=torch.channels_last)
    return x, batch.labels.to(run.device, non_blocking=True)


@dataclass
class StepOut:
    """What `step` computed: the outputs (for the metrics) and the loss terms."""

    logits: torch.Tensor
    #: θ of every transformer, in application order (empty for a bare backbone)
    thetas: dict[str, torch.Tensor]
    ce: torch.Tensor
    loss: torch.Tensor
    theta_loss: torch.Tensor | None = None
    #: how many images of the batch carry a θ label (a 0-d tensor with a θ loss)
    labelled: torch.Tensor | int = 0


def step(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    indices: torch.Tensor,
    *,
    amp: Callable[[], Any],
    size: tuple[int, int],
    supervision: ThetaSupervision | None = None,
    theta_weight: float = 0.0,
    supervised: str | None = None,
    transform: Transform = AFFINE,
    label_smoothing: float = 0.0,
) -> StepOut:
    """Forward (under `amp()`), cross-entropy in fp32 (with `label_smoothing`), plus
    `theta_weight` × the θ loss of transformer `supervised` (of `transform`; the mean over the
    batch's labelled images; nothing read back to the host)."""
    with amp():
        logits, thetas = net(x, return_theta=True)
    ce = F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
    out = StepOut(logits=logits, thetas=thetas, ce=ce, loss=ce)
    if supervision is not None and supervised is not None:
        theta = thetas[supervised]
        out.theta_loss, out.labelled = supervision.masked_loss(theta, indices, size, transform)
        out.loss = ce + theta_weight * out.theta_loss
    return out


def evaluate_batch(run: Run, meter: Meter, batch: Batch, amp: Callable[[], Any]) -> None:
    """One evaluation batch into `meter` (the caller sets eval mode and no_grad): forward of the
    plain model under `amp()`, the summed cross-entropy in fp32, and `measure`; no host sync."""
    x, y = inputs(run, batch)
    with amp():
        logits, thetas = run.model(x, return_theta=True)
    logits = logits.float()
    meter.add("loss", F.cross_entropy(logits, y, reduction="sum"))
    measure(run, meter, batch, logits, thetas)


def measure(
    run: Run, meter: Meter, batch: Batch, logits: torch.Tensor, thetas: dict[str, torch.Tensor]
) -> None:
    """Accuracy, θ statistics of every transformer (the first under plain keys, the others
    under `name/…`) and the input transformer's θ-recovery error of one batch into `meter`
    (sums stay on the device: no host sync)."""
    n = len(batch)
    top1, top5 = topk_hits(logits, batch.labels.to(logits.device, non_blocking=True))
    meter.update({"n": n, "top1": top1, "top5": top5})
    stns = run.model.transformers
    for i, (name, theta) in enumerate(thetas.items()):
        prefix = "" if i == 0 else f"{name}/"
        stats = per_image(theta, theta_size(run, name), stns[name].transform)
        meter.update({prefix + k: v for k, v in stats.items()})  # Meter.add sums each
        meter.add(prefix + "theta_n", n)
    first = run.model.input_transformer
    if first is not None and run.dataset.has_theta and batch.theta is not None:
        theta = thetas[first].detach()
        ideal = batch.theta.to(theta.device, non_blocking=True)
        meter.add("theta_error", grid_distance(theta, ideal, run.size, stns[first].transform))


def theta_size(run: Run, name: str) -> tuple[int, int]:
    """The (H, W) a transformer's θ statistics are measured at: the image for one at the input,
    its feature map for one inside the backbone (translations in that map's pixels)."""
    if run.model.sites[name] == "input":
        return run.size
    _, h, w = run.model.transformers[name].analysis.input
    return (h, w)
