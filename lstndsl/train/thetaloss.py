"""θ supervision: the loss term that pulls predicted θ towards the ideal θ of each image.

What it is: `ThetaSupervision`, built once per run from the dataset's ideal θ (the embedded
digits keep the transform that undoes each distortion), which holds
- the labelled subset: a fixed share (`--theta-labels`) of the training images, drawn from the
  run's seed on a private stream (weak supervision; 1.0 = fully supervised);
- the targets: ideal θ, plus (`--theta-noise σ`) Gaussian noise of std σ on each of the six
  entries, drawn once per image (a noisy annotation stays the same noisy annotation);
and `loss(θ_pred, indices, size)`: the mean, over the labelled images in the batch, of the
distance between the two sampling grids, in half-image units (the units of `affine_grid`,
where the image spans [-1, 1]; 1.0 = half the image side).

Why that distance: θ's six numbers are not commensurable (a 0.1 error in a translation entry
moves every pixel by 5 % of the image; the same error in a linear entry moves the centre by
nothing and the corners by 5 %), and what matters is where the sampler reads. The grid
distance weighs them by their effect on the output, is zero exactly at the ideal θ, and equals
the recovery metric divided by N/2 (so the same W means the same thing at 32 px and at 224 px).
It is a mean Euclidean distance, not a squared one: its gradient does not vanish as θ gets
close, and a few badly distorted images do not dominate. `affine_grid` is linear in θ, so the
loss is cheap (one grid of the θ difference).

Nothing here touches the global random generators: with `--theta-labels 0` (or W = 0) the run
is, number for number, the unsupervised one. What it is not: the θ-recovery metric (that is
`thetastats.grid_distance` in pixels, reported for every run on data with known transforms).
"""

from __future__ import annotations

import numpy as np
import torch

from lstndsl.ir import Transform
from lstndsl.train.splits import rng_for
from lstndsl.train.thetastats import AFFINE, grid_distance

#: private random streams of the run's seed (the data layer uses 1–3)
STREAM_THETA_LABELS, STREAM_THETA_NOISE = 101, 102


class ThetaSupervision:
    """Targets and the labelled mask for the θ loss, over the whole dataset's indices."""

    def __init__(
        self,
        theta_ideal: torch.Tensor,
        train_indices: np.ndarray,
        *,
        labels: float,
        noise: float,
        seed: int,
    ) -> None:
        n = theta_ideal.shape[0]
        self.targets = theta_ideal.clone().float()
        if noise > 0:
            gen = rng_for(seed, STREAM_THETA_NOISE)
            jitter = gen.normal(0.0, noise, size=tuple(self.targets.shape))
            self.targets += torch.from_numpy(jitter).float()
        # cpu-ok: built on the host once; masked_loss copies it to each device once
        self.labelled = torch.zeros(n, dtype=torch.bool)
        count = round(labels * len(train_indices))
        if count > 0:
            chosen = rng_for(seed, STREAM_THETA_LABELS).permutation(np.asarray(train_indices))
            self.labelled[torch.from_numpy(np.sort(chosen[:count]))] = True
        #: how many training images carry a θ label
        self.count = count
        #: (targets, labelled) copied once to each device `masked_loss` has run on
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def loss(
        self,
        theta_pred: torch.Tensor,
        indices: torch.Tensor,
        size: tuple[int, int],
        transform: Transform = AFFINE,
    ) -> tuple[torch.Tensor | None, int]:
        """(mean grid distance in half-image units over the labelled images, their number);
        (None, 0) when the batch has none."""
        mask = self.labelled.index_select(0, indices.cpu())
        k = int(mask.sum())
        if k == 0:
            return None, 0
        where = mask.to(theta_pred.device)
        target = self.targets.index_select(0, indices.cpu()[mask]).to(theta_pred.device)
        pixels = grid_distance(theta_pred[where], target, size, transform)
        half = min(size) / 2.0
        return (pixels / half).mean(), k

    def masked_loss(
        self,
        theta_pred: torch.Tensor,
        indices: torch.Tensor,
        size: tuple[int, int],
        transform: Transform = AFFINE,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`loss` without reading anything back to the host (the trainer's step): (the mean
        grid distance over the batch's labelled images, 0 when it has none; their number), both
        0-d tensors on θ_pred's device. Targets and mask travel to the device once."""
        device = theta_pred.device
        if device not in self._on:
            self._on[device] = (self.targets.to(device), self.labelled.to(device))
        targets, labelled = self._on[device]
        idx = indices.to(device, non_blocking=True)
        mask = labelled.index_select(0, idx)
        target = targets.index_select(0, idx)
        pixels = grid_distance(theta_pred, target, size, transform)
        count = mask.sum()
        half = min(size) / 2.0
        loss = (pixels * mask).sum() / count.clamp(min=1) / half
        return loss, count
