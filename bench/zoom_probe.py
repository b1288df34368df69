"""Why an unsupervised spatial transformer zooms out on some data: the cost of a zoom, measured.

    .venv/bin/python bench/zoom_probe.py runs/digits-nostn runs/rts-nostn   # seconds per run

Each argument is a finished `lstndsl train --no-stn` run (a backbone trained alone on its data).
For a range of fixed zooms s (θ = [[s, 0, 0], [0, s, 0]]: s > 1 zooms *out*, the whole image
shrinks into the middle of the view with zero padding around it; s < 1 zooms *in*, the view's
edges are cut off), the script resamples every validation image as a spatial transformer with
that θ would, feeds it to the trained backbone and reports:
- the validation loss and top-1 under that zoom: what a transformer that drifted to s would cost
  the classifier the first moment it got there;
- the share of the digits' ink still in view (ink after the zoom × s², over the ink before):
  what zooming in cuts off.
The two sides of s = 1 are what an unsupervised transformer feels: the task loss is its only
signal, so a side where the loss barely moves is a side it can drift to for free.

What it is not: a benchmark of speed. Nothing is downloaded; the data are the runs' own.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from lstndsl.train import checkpoint as ckpt
from lstndsl.train.config import TrainConfig
from lstndsl.train.data import open_dataset

ZOOMS = (0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.5)


def zoom(images: torch.Tensor, s: float) -> torch.Tensor:
    """Images resampled with θ = s·I, as the trainer's samplers do (bilinear, zeros,
    align_corners=False)."""
    theta = torch.tensor([[s, 0.0, 0.0], [0.0, s, 0.0]], device=images.device)
    theta = theta.expand(images.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, padding_mode="zeros", align_corners=False)


@torch.no_grad()
def probe(run: Path) -> dict[str, list[float]]:
    """Loss, top-1 and ink in view at every zoom, on the run's validation split."""
    config = TrainConfig.from_json(json.loads((run / "config.json").read_text()))
    model = ckpt.rebuild_model(run / "best.pt")
    dataset = open_dataset(
        config.dataset,
        seed=config.seed,
        image_size=config.image_size,
        split_file=run / "split.json",
    )
    out: dict[str, list[float]] = {"loss": [], "top1": [], "ink": []}
    for s in ZOOMS:
        loss = correct = ink_kept = ink_all = 0.0
        n = 0
        for batch in dataset.batches("val", 250, shuffle=False):
            x = zoom(batch.images, s)
            logits = model(x)
            loss += F.cross_entropy(logits, batch.labels, reduction="sum").item()
            correct += (logits.argmax(1) == batch.labels).sum().item()
            # ink: the digits are white on black with mean 0 / std 1, so pixel values are ink
            ink_kept += x.clamp(min=0).sum().item() * s * s
            ink_all += batch.images.clamp(min=0).sum().item()
            n += len(batch)
        out["loss"].append(loss / n)
        out["top1"].append(100 * correct / n)
        out["ink"].append(100 * ink_kept / ink_all)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished --no-stn run directories")
    args = parser.parse_args()
    torch.set_num_threads(2)
    header = "| run | measure | " + " | ".join(f"s={s:g}" for s in ZOOMS) + " |"
    print(header)
    print("|---|---|" + "---:|" * len(ZOOMS))
    for run in args.runs:
        result = probe(run)
        for key, fmt in (("loss", "{:.3f}"), ("top1", "{:.1f}"), ("ink", "{:.1f}")):
            cells = " | ".join(fmt.format(v) for v in result[key])
            print(f"| {run.name} | {key} | {cells} |")


if __name__ == "__main__":
    main()
