"""The per-epoch picture of what the spatial transformer does: which validation images, the
transformer's θ and output for them, the ideal θ's output and the θ-recovery error per image.

What it is: `picture_indices`, `transform_rows` (the tensor work, on the run's device: one
function tests/test_fake_cuda.py runs on a fake CUDA device) and `draw_transforms` (that, then
the host side: captions read back from the device, the figure).
What it is not: the figure itself (pictures.py draws it with matplotlib).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lstndsl.ir import Transform
from lstndsl.train.data import Batch, Dataset
from lstndsl.train.inputs import PICTURES
from lstndsl.train.state import Run
from lstndsl.train.thetastats import grid_distance


def picture_indices(dataset: Dataset, count: int) -> np.ndarray:
    """`count` validation examples spread evenly over the (sorted) validation indices."""
    val = dataset.split["val"]
    count = min(count, len(val))
    return val[np.linspace(0, len(val) - 1, count).round().astype(np.int64)]


@torch.no_grad()
def transform_rows(
    run: Run, batch: Batch
) -> tuple[list[tuple[str, torch.Tensor]], torch.Tensor | None]:
    """The picture's rows on the run's device, (label, B×C×H×W in [0, 1]): the inputs, each
    transformer's output and (if known) the ideal θ's; and the per-image θ-recovery error of
    the input transformer (B, on the device; None without ideal θ). The model's mode is the
    caller's."""
    model = run.model
    x = batch.images.to(run.device)
    _, thetas = model(x, return_theta=True)
    # a transformer on a feature map is drawn on the image: feature maps align with it
    rows = [("input", run.dataset.denormalize(x))]
    for name, theta in thetas.items():
        label = "transformer" if len(thetas) == 1 else f"θ {name}"
        rows.append((label, run.dataset.denormalize(model.resample(x, theta, name))))
    supervised = model.input_transformer
    if batch.theta is None or supervised is None:
        return rows, None
    ideal = batch.theta.to(run.device)
    affine = Transform()  # the data's ideal θ is an affine map, whatever the transformer
    drawn = model.resample(x, ideal, supervised, affine)
    rows.append(("ideal θ", run.dataset.denormalize(drawn)))
    transform = model.transformers[supervised].transform
    return rows, grid_distance(thetas[supervised], ideal, run.size, transform)


def draw_transforms(run: Run, tag: str) -> Path | None:
    """Inputs, what the spatial transformer made of them and (if known) the ideal θ's output."""
    from lstndsl.train.pictures import transform_grid

    model = run.model
    if not model.transformers or run.config.pictures == 0 or not run.ctx.is_main:
        return None
    batch = run.dataset.load(picture_indices(run.dataset, run.config.pictures))
    was = model.training
    model.eval()
    try:
        rows, err = transform_rows(run, batch)
    finally:
        model.train(was)
    captions = [run.dataset.class_names[int(y)] for y in batch.labels]
    if err is not None:  # the one host read of the picture's numbers
        captions = [f"{c} · {e:.1f}px" for c, e in zip(captions, err.tolist(), strict=True)]
    title = f"{run.out.name}: {tag}"
    return transform_grid(run.out / PICTURES / f"transform-{tag}.png", rows, title, captions)
