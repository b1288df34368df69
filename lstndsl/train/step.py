"""One training step up to the loss, and what one batch adds to the epoch's sums.

What it is: `inputs` (a batch onto the run's device and memory format), `step` (forward under
autocast, cross-entropy in fp32, the θ loss: everything before `backward`, one function a test
can run under FakeTensorMode on a fake CUDA device, since backward cannot run without a driver),
and `measure` (accuracy, θ statistics and θ-recovery error of one batch into a `Meter`).
What it is not: the backward pass, the optimizer or the epoch loop (loop.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lstndsl.train.data import Batch
from lstndsl.train.device import use_channels_last
from lstndsl.train.metrics import Meter, topk_hits
from lstndsl.train.state import Run
from lstndsl.train.thetaloss import ThetaSupervision
from lstndsl.train.thetastats import grid_distance, per_image


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
    theta: torch.Tensor | None
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
) -> StepOut:
    """Forward (under `amp()`), cross-entropy in fp32, plus `theta_weight` × the θ loss (the
    mean over the batch's labelled images; nothing read back to the host)."""
    with amp():
        logits, theta = net(x)
    ce = F.cross_entropy(logits.float(), y)
    out = StepOut(logits=logits, theta=theta, ce=ce, loss=ce)
    if supervision is not None and theta is not None:
        out.theta_loss, out.labelled = supervision.masked_loss(theta, indices, size)
        out.loss = ce + theta_weight * out.theta_loss
    return out


def measure(
    run: Run, meter: Meter, batch: Batch, logits: torch.Tensor, theta: torch.Tensor | None
) -> None:
    """Accuracy, θ statistics and θ-recovery error of one batch into `meter` (sums stay on the
    device: no host sync)."""
    n = len(batch)
    top1, top5 = topk_hits(logits, batch.labels.to(logits.device, non_blocking=True))
    meter.update({"n": n, "top1": top1, "top5": top5})
    if theta is not None:
        meter.update(per_image(theta, run.size))  # Meter.add sums each over the batch
        meter.add("theta_n", n)
        if run.dataset.has_theta and batch.theta is not None:
            ideal = batch.theta.to(theta.device, non_blocking=True)
            meter.add("theta_error", grid_distance(theta.detach(), ideal, run.size))
